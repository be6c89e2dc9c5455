"""`POST /api/commands` over real HTTP: answers, and refusals in the API's one error shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from huskies.project import Project

from .support import error_of, make_project, served, stored


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "repo")


async def test_a_command_answers_with_its_text(project: Project):
    async with served(project) as (_, api):
        await api.post("/api/items", json={"title": "Add login"})
        answered = await api.post("/api/commands", json={"command": "status"})
        assert answered.status_code == 200
        body = answered.json()
        assert set(body) == {"output", "ok"}
        assert body["ok"] is True
        assert body["output"].startswith("backlog 1 · coding 0")
        assert "  #1  Add login" in body["output"].splitlines()

        shown = await api.post("/api/commands", json={"command": "show 1"})
        assert shown.json()["output"].splitlines()[0] == "#1 Add login"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"command": "deploy"}, "body.command", "there is no command 'deploy'"),
        ({"command": "start x"}, "body.command", "'x' is not an item number"),
        ({"command": "timer 1 9:30"}, "body.command", "'9:30' is not a time of day"),
        ({"command": ""}, "body.command", "no command given"),
        ({"command": 5}, "body.command", "valid string"),
        ({"command": "x" * 10_001}, "body.command", "at most 10000 characters"),
        ({}, "body.command", "Field required"),
        ({"command": "status", "as": "json"}, "body.as", "Extra inputs"),
    ],
)
async def test_a_command_that_cannot_be_read_is_a_400_naming_it(project, body, field, words):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Only"})
        before = stored(server)
        error = error_of(await api.post("/api/commands", json=body), 400)
        assert error["field"] == field
        assert words in error["message"]
        assert stored(server) == before


@pytest.mark.parametrize(
    ("command", "status", "words"),
    [
        ("start 9", 404, "there is no item #9"),
        ("stop 1", 409, "#1 has no agent running"),
        ("approve 1", 409, "#1 is in backlog; only items in qa are reviewed"),
        ("unblock 1", 409, "cannot move #1"),
    ],
)
async def test_a_refused_command_answers_as_its_route_would(project, command, status, words):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Only"})
        before = stored(server)
        error = error_of(await api.post("/api/commands", json={"command": command}), status)
        assert words in error["message"]
        assert error["field"] is None
        assert stored(server) == before


async def test_the_schema_documents_the_answer_and_the_errors(project: Project):
    async with served(project) as (_, api):
        schema = (await api.get("/openapi.json")).json()
        operation = schema["paths"]["/api/commands"]["post"]
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": "#/components/schemas/CommandAnswer"}
        assert {"400", "404", "409"} <= set(operation["responses"])
        assert set(schema["components"]["schemas"]["CommandAnswer"]["properties"]) == {
            "output",
            "ok",
        }
