"""Projecting one stored item map into a WorkItem, and item ids as text."""

from typing import Any

import pytest

from huskies.crdt import OpId
from huskies.pipeline import (
    Archived,
    ArchiveReason,
    Backlog,
    Claim,
    ItemError,
    ItemKind,
    QaMode,
    WorkItem,
    item_key,
    parse_item_key,
    project_item,
    stage_to_json,
)

T = 1_700_000_000_000
ID = "ab" * 32 + ".3"


def full() -> dict[str, Any]:
    return {
        "number": 7,
        "kind": "bug",
        "title": "Crash on empty backlog",
        "body": "Steps: …",
        "stage": stage_to_json(Archived(T + 5, ArchiveReason.BLOCKED, Backlog())),
        "agent": "coder-1",
        "qa": "human",
        "depends_on": [3, 5],
        "retries": 2,
        "blocked_reason": "needs a decision",
        "claim": {"node": "cd" * 32, "expires_at": T + 60_000},
        "created_at": T,
        "updated_at": T + 5,
    }


def test_a_full_item_projects_every_field():
    assert project_item(ID, full()) == WorkItem(
        id=ID,
        number=7,
        kind=ItemKind.BUG,
        title="Crash on empty backlog",
        body="Steps: …",
        stage=Archived(T + 5, ArchiveReason.BLOCKED, Backlog()),
        agent="coder-1",
        qa=QaMode.HUMAN,
        depends_on=(3, 5),
        retries=2,
        blocked_reason="needs a decision",
        claim=Claim("cd" * 32, T + 60_000),
        created_at=T,
        updated_at=T + 5,
    )


def test_missing_optional_fields_take_their_defaults():
    raw = {k: full()[k] for k in ("number", "kind", "title", "stage", "created_at", "updated_at")}
    item = project_item(ID, raw)
    assert isinstance(item, WorkItem)
    assert (item.body, item.agent, item.qa, item.depends_on) == ("", None, None, ())
    assert (item.retries, item.blocked_reason, item.claim) == (0, None, None)


def test_null_optional_fields_are_their_defaults():
    raw = full() | {"agent": None, "qa": None, "blocked_reason": None, "claim": None}
    item = project_item(ID, raw)
    assert isinstance(item, WorkItem)
    assert (item.agent, item.qa, item.blocked_reason, item.claim) == (None, None, None, None)


def test_unknown_fields_are_ignored():
    assert isinstance(project_item(ID, full() | {"labels": ["ui"]}), WorkItem)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("number", None, "missing"),
        ("number", 0, "must be a number ≥ 1, got 0"),
        ("number", "7", "must be an integer, got a string"),
        ("kind", "epic", "must be one of story, bug, spike, refactor, got 'epic'"),
        ("kind", None, "missing"),
        ("title", 5, "must be a string, got a number"),
        ("body", None, "must be a string, got null"),
        ("stage", {"name": "review"}, "unknown stage name 'review'"),
        ("stage", None, "missing"),
        ("agent", ["a"], "must be a string, got an array"),
        ("qa", "robot", "must be one of server, agent, human, got 'robot'"),
        ("depends_on", 3, "must be an array of item numbers, got a number"),
        ("depends_on", [1, "2"], "element 1 must be an integer, got a string"),
        ("depends_on", [1, 0], "element 1 must be a number ≥ 1, got 0"),
        ("retries", -1, "must be ≥ 0, got -1"),
        ("retries", False, "must be an integer, got a boolean"),
        ("blocked_reason", {}, "must be a string, got an object"),
        ("claim", "node-a", "must be an object, got a string"),
        ("claim", {"expires_at": T}, "has no 'node'"),
        (
            "claim",
            {"node": "n", "expires_at": 1.5},
            "'expires_at' must be an integer, got a number",
        ),
        ("created_at", None, "missing"),
        ("updated_at", "soon", "must be an integer, got a string"),
    ],
)
def test_a_bad_field_is_an_error_for_that_item(field: str, value: object, problem: str):
    raw = full()
    if value is None and problem == "missing":
        del raw[field]
    else:
        raw[field] = value
    error = project_item(ID, raw)
    assert isinstance(error, ItemError)
    assert (error.item_id, error.field) == (ID, field)
    assert error.problem.startswith(problem), error.problem
    assert str(error) == f"item {ID} field {field!r}: {error.problem}"


@pytest.mark.parametrize(
    ("raw", "described"), [([], "an array"), ("x", "a string"), (None, "null")]
)
def test_a_non_object_item_is_an_error_for_the_whole_item(raw: object, described: str):
    error = project_item(ID, raw)
    assert error == ItemError(ID, None, f"an item must be an object, got {described}")
    assert str(error) == f"item {ID}: an item must be an object, got {described}"


def test_item_keys_round_trip():
    op_id = OpId(bytes(range(32)), 12)
    key = item_key(op_id)
    assert key == bytes(range(32)).hex() + ".12"
    assert parse_item_key(key) == op_id


def test_an_unresolved_id_has_no_key():
    with pytest.raises(ValueError, match="not resolved yet"):
        item_key(OpId(b"", 0))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "must look like <64 hex digits>.<index>"),
        ("ab" * 32, "must look like"),
        ("ab" * 31 + ".0", "must start with 64 lowercase hex digits"),
        ("AB" * 32 + ".0", "must start with 64 lowercase hex digits"),
        ("zz" * 32 + ".0", "must start with 64 lowercase hex digits"),
        ("ab" * 32 + ".", "must end with an index"),
        ("ab" * 32 + ".-1", "must end with an index"),
        ("ab" * 32 + ".01", "must end with an index"),
        ("ab" * 32 + ".1.2", "must end with an index"),
        ("ab" * 32 + ".٣", "must end with an index"),
    ],
)
def test_bad_item_keys_are_refused(text: str, problem: str):
    with pytest.raises(ValueError, match=problem):
        parse_item_key(text)
