"""`/api/items` over real HTTP: every route, its answers, and bad requests that change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from huskies.pipeline import (
    Archived,
    ArchiveReason,
    Coding,
    ItemError,
    QaMode,
    StageName,
    WorkItem,
    parse_item_key,
    project_item,
    set_stage,
)
from huskies.project import Project
from huskies.web.models import Edited, Item, ItemList

from .support import error_of, make_project, served, stored


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "repo")


def rebuilt(json: dict) -> WorkItem:
    Item.model_validate(json)  # the schema describes what is sent
    item = project_item(json["id"], json)
    assert not isinstance(item, ItemError)
    return item


async def test_items_are_created_shown_and_listed(project: Project):
    async with served(project) as (server, api):
        board = server.services.board
        created = await api.post("/api/items", json={"title": "Add login", "body": "## Goal\n"})
        assert created.status_code == 201
        assert rebuilt(created.json()) == board.get(1)
        bug = await api.post(
            "/api/items",
            json={"title": "Crash", "kind": "bug", "depends_on": [1], "qa": "human"},
        )
        assert rebuilt(bug.json()) == board.get(2)
        assert (board.get(2).depends_on, board.get(2).qa) == ((1,), QaMode.HUMAN)

        shown = await api.get("/api/items/2")
        assert shown.status_code == 200
        assert rebuilt(shown.json()) == board.get(2)

        await api.post("/api/items/2/move", json={"stage": "archived"})
        listing = await api.get("/api/items")
        assert listing.status_code == 200
        ItemList.model_validate(listing.json())
        assert [rebuilt(i) for i in listing.json()["items"]] == [board.get(1)]
        assert (listing.json()["total"], listing.json()["errors"]) == (2, [])
        everything = (await api.get("/api/items", params={"all": "true"})).json()
        assert [i["number"] for i in everything["items"]] == [1, 2]
        archived = (await api.get("/api/items", params={"stage": "archived"})).json()
        assert [i["number"] for i in archived["items"]] == [2]
        none = (await api.get("/api/items", params={"stage": "qa"})).json()
        assert (none["items"], none["total"]) == ([], 2)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"title": 5}, "body.title", "valid string"),
        ({"title": ""}, "body.title", "empty"),
        ({"title": "two\nlines"}, "body.title", "one line"),
        ({"title": "a\u0000b"}, "body.title", "control character U+0000 at position 1"),
        ({"title": "red \u001b[31m"}, "body.title", "control character U+001B"),
        ({"title": "txt.exe\u202egpj"}, "body.title", "control character U+202E"),
        ({}, "body.title", "Field required"),
        ({"title": "X", "kind": "epic"}, "body.kind", "'story'"),
        ({"title": "X", "kind": 3}, "body.kind", "'story'"),
        ({"title": "X", "depends_on": ["1"]}, "body.depends_on.0", "valid integer"),
        ({"title": "X", "qa": "robot"}, "body.qa", "'server'"),
        ({"title": "X", "colour": "red"}, "body.colour", "Extra inputs"),
        ([1, 2], "body", "valid dictionary"),
    ],
)
async def test_a_bad_new_item_is_refused_naming_the_field(project, body, field, words):
    async with served(project) as (server, api):
        before = stored(server)
        error = error_of(await api.post("/api/items", json=body), 400)
        assert error["field"] == field
        assert words in error["message"]
        assert stored(server) == before


async def test_a_dependency_on_an_item_that_does_not_exist_is_a_404_naming_the_field(project):
    async with served(project) as (server, api):
        before = stored(server)
        missing = await api.post("/api/items", json={"title": "X", "depends_on": [9]})
        error = error_of(missing, 404)
        assert (error["field"], error["message"]) == (
            "body.depends_on",
            "there is no item #9 to depend on",
        )
        assert stored(server) == before


async def test_malformed_or_missing_json_is_a_400_and_changes_nothing(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Keep me"})
        before = stored(server)
        headers = {"content-type": "application/json"}
        for path, method in [("/api/items", "POST"), ("/api/items/1", "PATCH")]:
            broken = await api.request(method, path, content=b'{"title": ', headers=headers)
            error = error_of(broken, 400)
            assert "not valid JSON" in error["message"]
            assert error["field"] is None
        missing = error_of(await api.post("/api/items"), 400)
        assert (missing["field"], missing["message"]) == ("body", "the request needs a JSON body")
        assert stored(server) == before


async def test_unknown_items_are_404_naming_the_number(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Only"})
        before = stored(server)
        for method, path, body in [
            ("GET", "/api/items/7", None),
            ("PATCH", "/api/items/7", {"title": "x"}),
            ("POST", "/api/items/7/move", {"stage": "coding"}),
            ("POST", "/api/items/7/unblock", None),
            ("DELETE", "/api/items/7", None),
        ]:
            error = error_of(await api.request(method, path, json=body), 404)
            assert "no item #7" in error["message"], (method, path)
        bad = error_of(await api.get("/api/items/seven"), 400)
        assert bad["field"] == "path.number"
        assert stored(server) == before


async def test_edits_change_only_the_fields_given(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Draft", "body": "one\n"})
        board = server.services.board
        edited = await api.patch("/api/items/1", json={"title": "Final", "body": "two\n"})
        assert edited.status_code == 200
        Edited.model_validate(edited.json())
        assert edited.json()["changed"] is True
        assert rebuilt(edited.json()["item"]) == board.get(1)
        assert (board.get(1).title, board.get(1).body) == ("Final", "two\n")

        edited = await api.patch("/api/items/1", json={"agent": "coder", "qa": "agent"})
        assert (board.get(1).agent, board.get(1).qa) == ("coder", QaMode.AGENT)
        assert board.get(1).title == "Final"
        before = stored(server)
        same = await api.patch("/api/items/1", json={"agent": "coder", "title": "Final"})
        assert same.json()["changed"] is False
        assert stored(server) == before
        await api.patch("/api/items/1", json={"agent": None, "qa": None})
        assert (board.get(1).agent, board.get(1).qa) == (None, None)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"agent": "nobody"}, "body.agent", "no agent named 'nobody' in agents.toml"),
        ({"agent": 3}, "body.agent", "valid string"),
        ({"title": None}, "body.title", "leave the field out"),
        ({"body": None}, "body.body", "leave the field out"),
        ({"title": "   "}, "body.title", "empty"),
        ({"qa": "robot"}, "body.qa", "'server'"),
        ({"stage": "done"}, "body.stage", "Extra inputs"),
        ({"title": "Good", "agent": "nobody"}, "body.agent", "(configured: coder)"),
    ],
)
async def test_a_bad_edit_is_refused_naming_the_field(project, body, field, words):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Draft"})
        before = stored(server)
        error = error_of(await api.patch("/api/items/1", json=body), 400)
        assert error["field"] == field
        assert words in error["message"]
        assert stored(server) == before


async def test_only_legal_moves_are_made(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Story"})
        board = server.services.board
        moved = await api.post("/api/items/1/move", json={"stage": "coding"})
        assert moved.status_code == 200
        assert rebuilt(moved.json()) == board.get(1)
        assert board.get(1).stage == Coding()
        before = stored(server)
        refused = error_of(await api.post("/api/items/1/move", json={"stage": "merge"}), 409)
        assert refused["message"].startswith("cannot move #1: merge needs a feature branch")
        again = error_of(await api.post("/api/items/1/move", json={"stage": "coding"}), 409)
        assert "already in coding" in again["message"]
        unblock = error_of(await api.post("/api/items/1/unblock"), 409)
        assert "cannot move #1" in unblock["message"]
        bad = error_of(await api.post("/api/items/1/move", json={"stage": "limbo"}), 400)
        assert bad["field"] == "body.stage"
        assert error_of(await api.post("/api/items/1/move", json={}), 400)["field"] == "body.stage"
        assert stored(server) == before


async def test_a_blocked_item_is_unblocked(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Stuck"})
        replica, board = server.services.replica, server.services.board
        tx = replica.transaction()
        blocked = Archived(5, ArchiveReason.BLOCKED, Coding())
        set_stage(tx, parse_item_key(board.get(1).id), blocked, 5)
        await replica.change(tx)
        unblocked = await api.post("/api/items/1/unblock")
        assert unblocked.status_code == 200
        assert rebuilt(unblocked.json()).stage == Coding()
        assert board.get(1).stage == Coding()


async def test_purged_items_are_gone_for_good(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Doomed"})
        item = server.services.board.get(1)
        purged = await api.delete("/api/items/1")
        assert purged.status_code == 200
        assert rebuilt(purged.json()) == item
        error_of(await api.get("/api/items/1"), 404)
        error_of(await api.delete("/api/items/1"), 404)
        assert (await api.get("/api/items", params={"all": "true"})).json()["total"] == 0


async def test_the_list_reports_items_it_cannot_read(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Good"})
        await api.post("/api/items", json={"title": "Soon bad"})
        replica, board = server.services.replica, server.services.board
        tx = replica.transaction()
        tx.set((*("items",), parse_item_key(board.get(2).id)), "kind", 7)
        await replica.change(tx)
        listing = (await api.get("/api/items")).json()
        assert [i["title"] for i in listing["items"]] == ["Good"]
        [error] = listing["errors"]
        assert (error["field"], error["problem"]) == ("kind", "must be a string, got a number")
        assert listing["total"] == 1


async def test_a_stored_title_with_a_control_character_is_an_item_error(project: Project):
    """As another (older or hostile) node may write it: the board still loads, the item is
    reported, and it can be neither shown nor started."""
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Good"})
        await api.post("/api/items", json={"title": "Soon bad"})
        error_of(await api.patch("/api/items/2", json={"title": "a\u0000b"}), 400)
        replica, board = server.services.replica, server.services.board
        tx = replica.transaction()
        tx.set(("items", parse_item_key(board.get(2).id)), "title", "a\u0000b")
        await replica.change(tx)
        listing = (await api.get("/api/items")).json()
        assert [i["title"] for i in listing["items"]] == ["Good"]
        [error] = listing["errors"]
        assert error["field"] == "title"
        assert error["problem"] == "holds the control character U+0000 at position 1"
        error_of(await api.get("/api/items/2"), 404)
        error_of(await api.post("/api/items/2/start"), 404)


async def test_unknown_routes_and_methods_answer_in_json(project: Project):
    async with served(project) as (_, api):
        missing = error_of(await api.get("/api/nothing"), 404)
        assert "GET /api/nothing" in missing["message"]
        wrong = await api.put("/api/items/1", json={})
        error = error_of(wrong, 405)
        assert wrong.headers["allow"] == "DELETE, GET, PATCH"
        assert "allows DELETE, GET, PATCH" in error["message"]
        assert error_of(await api.delete("/api/items"), 405)["field"] is None


async def test_every_stage_name_is_accepted_as_a_filter(project: Project):
    async with served(project) as (_, api):
        for stage in StageName:
            assert (await api.get("/api/items", params={"stage": stage.value})).status_code == 200
        error = error_of(await api.get("/api/items", params={"all": "maybe"}), 400)
        assert error["field"] == "query.all"
