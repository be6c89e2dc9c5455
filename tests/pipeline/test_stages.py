"""Stages: their invariants and their one stored JSON form."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from huskies.pipeline import (
    Archived,
    ArchiveReason,
    Backlog,
    Coding,
    Done,
    ExecutionState,
    Merge,
    Qa,
    Stage,
    StageError,
    StageName,
    stage_from_json,
    stage_to_json,
)

T = 1_700_000_000_000

times = st.integers(min_value=0, max_value=2**62)
texts = st.text(min_size=1, max_size=20)
active: st.SearchStrategy[Stage] = st.one_of(
    st.just(Backlog()),
    st.just(Coding()),
    st.just(Qa()),
    st.builds(Merge, texts, st.integers(min_value=1, max_value=10_000)),
    st.builds(Done, times, st.none() | texts),
)
stages: st.SearchStrategy[Stage] = active | st.builds(
    Archived, times, st.sampled_from(ArchiveReason), st.none() | active
)


def test_enum_values_are_the_lowercase_names():
    assert [n.value for n in StageName] == ["backlog", "coding", "qa", "merge", "done", "archived"]
    assert [r.value for r in ArchiveReason] == [
        "completed",
        "abandoned",
        "superseded",
        "blocked",
        "merge_failed",
        "review_held",
    ]
    assert [s.value for s in ExecutionState] == [
        "idle",
        "pending",
        "running",
        "rate_limited",
        "completed",
    ]


def test_each_stage_knows_its_name():
    assert Backlog().name is StageName.BACKLOG
    assert Coding().name is StageName.CODING
    assert Qa().name is StageName.QA
    assert Merge("feature/story-3", 1).name is StageName.MERGE
    assert Done(T, None).name is StageName.DONE
    assert Archived(T, ArchiveReason.BLOCKED, None).name is StageName.ARCHIVED


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Merge("", 1), "needs a feature branch"),
        (lambda: Merge("feature/story-3", 0), "at least one commit"),
        (lambda: Done(T, ""), "non-empty"),
        (
            lambda: Archived(T, ArchiveReason.BLOCKED, Archived(T, ArchiveReason.BLOCKED, None)),
            "archived from the archive",
        ),
    ],
)
def test_impossible_stages_cannot_be_built(build: Any, message: str):
    with pytest.raises(ValueError, match=message):
        build()


def test_json_forms():
    assert stage_to_json(Backlog()) == {"name": "backlog"}
    assert stage_to_json(Merge("feature/story-3", 2)) == {
        "name": "merge",
        "feature_branch": "feature/story-3",
        "commits_ahead": 2,
    }
    assert stage_to_json(Done(T, "abc123")) == {
        "name": "done",
        "merged_at": T,
        "merge_commit": "abc123",
    }
    assert stage_to_json(Archived(T, ArchiveReason.BLOCKED, Merge("feature/story-3", 2))) == {
        "name": "archived",
        "archived_at": T,
        "reason": "blocked",
        "previous": {"name": "merge", "feature_branch": "feature/story-3", "commits_ahead": 2},
    }
    assert stage_to_json(Archived(T, ArchiveReason.ABANDONED, None))["previous"] is None


@given(stages)
def test_json_round_trip(stage: Stage):
    assert stage_from_json(stage_to_json(stage)) == stage


def test_unknown_keys_are_ignored():
    assert stage_from_json({"name": "coding", "since": 5}) == Coding()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("backlog", "a stage must be an object, got a string"),
        ({}, "the stage has no 'name'"),
        ({"name": "review"}, "unknown stage name 'review' (expected one of backlog, coding, qa,"),
        ({"name": 3}, "unknown stage name 3"),
        ({"name": "merge", "commits_ahead": 1}, "merge stage: missing 'feature_branch'"),
        (
            {"name": "merge", "feature_branch": 7, "commits_ahead": 1},
            "merge stage: 'feature_branch' must be a string, got a number",
        ),
        (
            {"name": "merge", "feature_branch": "", "commits_ahead": 1},
            "merge stage: 'feature_branch' must not be empty",
        ),
        (
            {"name": "merge", "feature_branch": "f", "commits_ahead": 0},
            "merge stage: 'commits_ahead' must be ≥ 1, got 0",
        ),
        (
            {"name": "merge", "feature_branch": "f", "commits_ahead": True},
            "merge stage: 'commits_ahead' must be an integer, got a boolean",
        ),
        (
            {"name": "merge", "feature_branch": "f", "commits_ahead": 1.0},
            "merge stage: 'commits_ahead' must be an integer, got a number",
        ),
        ({"name": "done", "merge_commit": None}, "done stage: missing 'merged_at'"),
        ({"name": "done", "merged_at": T}, "done stage: missing 'merge_commit'"),
        (
            {"name": "done", "merged_at": None, "merge_commit": None},
            "done stage: 'merged_at' must be an integer, got null",
        ),
        (
            {"name": "done", "merged_at": T, "merge_commit": ""},
            "done stage: 'merge_commit' must not be empty (null for spikes)",
        ),
        (
            {"name": "archived", "archived_at": T, "reason": "lost", "previous": None},
            "archived stage: unknown reason 'lost' (expected one of completed, abandoned,",
        ),
        (
            {"name": "archived", "archived_at": T, "reason": "blocked"},
            "archived stage: missing 'previous'",
        ),
        (
            {"name": "archived", "archived_at": T, "reason": "blocked", "previous": []},
            "archived stage: 'previous' must be an object, got an array",
        ),
        (
            {"name": "archived", "archived_at": T, "reason": "blocked", "previous": {"name": "x"}},
            "archived stage: 'previous': unknown stage name 'x'",
        ),
        (
            {
                "name": "archived",
                "archived_at": T,
                "reason": "blocked",
                "previous": {"name": "archived", "archived_at": T, "reason": "blocked"},
            },
            "archived stage: 'previous': archived stage: missing 'previous'",
        ),
        (
            {
                "name": "archived",
                "archived_at": T,
                "reason": "blocked",
                "previous": {
                    "name": "archived",
                    "archived_at": T,
                    "reason": "blocked",
                    "previous": None,
                },
            },
            "archived stage: 'previous' cannot itself be archived",
        ),
    ],
)
def test_bad_json_says_what_is_wrong(value: object, message: str):
    with pytest.raises(StageError) as caught:
        stage_from_json(value)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, ValueError)
