"""`prompt_permission` over MCP, and the person's side of it over HTTP: the rules answer at once,
"ask" waits for `POST /api/permissions/{id}` (and is published as events), no answer denies, and
an agent's paths outside its worktree are denied whatever the rules say."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from huskies.project import Project
from huskies.server import Running
from huskies.services.permissions import PERMISSION_ANSWERED, PERMISSION_REQUEST

from ..web.support import served, until
from .support import call, connect, make_project, text
from .test_binding import agent_token

RULES = """
[[permission]]
tool = "Bash(git *)"
decision = "allow"

[[permission]]
tool = "Bash(rm *)"
decision = "deny"
message = "nothing is deleted here"

[[permission]]
tool = "Bash(make *)"
decision = "ask"

[[permission]]
tool = "Edit"
decision = "allow"
"""


def with_rules(root: Path, timeout_s: int) -> Project:
    project = make_project(root)
    agents = project.agents_toml.read_text()
    project.agents_toml.write_text(f"permission_timeout_secs = {timeout_s}\n{agents}{RULES}")
    return project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return with_rules(tmp_path / "repo", timeout_s=60)


async def test_the_rules_answer_at_once(project: Project):
    async with served(project) as (server, _), connect(server) as client:
        git = await call(
            client, "prompt_permission", tool_name="Bash", input={"command": "git log"}
        )
        assert git == {"behavior": "allow", "updatedInput": {"command": "git log"}}
        rm = await call(client, "prompt_permission", tool_name="Bash", input={"command": "rm -r x"})
        assert rm == {"behavior": "deny", "message": "nothing is deleted here"}
        fetch = await call(
            client,
            "prompt_permission",
            tool_name="WebFetch",
            input={"url": "https://example.com"},
            tool_use_id="toolu_01",
        )
        assert fetch["behavior"] == "deny"
        assert "no [[permission]] rule in agents.toml allows WebFetch" in fetch["message"]
        assert server.services.permissions is not None
        assert server.services.permissions.pending() == []


async def asking(server: Running, token: str | None, command: str) -> asyncio.Task[str]:
    """prompt_permission for `command`, called in the background (it waits for a person)."""

    async def ask() -> str:
        async with connect(server, token) as client:
            result = await client.call_tool(
                "prompt_permission", {"tool_name": "Bash", "input": {"command": command}}
            )
            assert not result.is_error, text(result)
            return text(result)

    return asyncio.create_task(ask())


async def test_ask_waits_for_a_person_who_answers_over_http(project: Project):
    async with served(project) as (server, api):
        await server.services.board.create("Build it")
        token, _ = await agent_token(server, 1)
        with server.services.hub.subscribe({PERMISSION_REQUEST, PERMISSION_ANSWERED}) as events:
            waiting = await asking(server, token, "make test")
            published = await asyncio.wait_for(events.get(), 20)
            assert published.kind == PERMISSION_REQUEST
            listed = (await api.get("/api/permissions")).json()["requests"]
            assert [request["id"] for request in listed] == [published.data["id"]]
            [request] = listed
            assert request["tool"] == "Bash(make test)"
            assert (request["number"], request["agent"]) == (1, "coder")
            assert request["input"] == {"command": "make test"}
            assert request["expires_at"] - request["asked_at"] == 60_000
            assert not waiting.done()

            answered = await api.post(
                f"/api/permissions/{request['id']}", json={"decision": "allow"}
            )
            assert answered.status_code == 200, answered.text
            assert json.loads(await waiting) == {
                "behavior": "allow",
                "updatedInput": {"command": "make test"},
            }
            done = await asyncio.wait_for(events.get(), 20)
            assert (done.kind, done.data) == (
                PERMISSION_ANSWERED,
                {"id": request["id"], "decision": "allow", "by": "person"},
            )
            again = await api.post(f"/api/permissions/{request['id']}", json={"decision": "deny"})
            assert again.status_code == 404
            assert "no permission request" in again.json()["error"]["message"]

            denied = await asking(server, token, "make deploy")
            second = await asyncio.wait_for(events.get(), 20)
            refusal = {"decision": "deny", "message": "not from an agent, please"}
            response = await api.post(f"/api/permissions/{second.data['id']}", json=refusal)
            assert response.status_code == 200
            assert json.loads(await denied) == {
                "behavior": "deny",
                "message": "not from an agent, please",
            }
        assert (await api.get("/api/permissions")).json() == {"requests": []}


async def test_bad_answers_are_refused_and_change_nothing(project: Project):
    async with served(project) as (server, api):
        permissions = server.services.permissions
        assert permissions is not None
        waiting = await asking(server, None, "make all")
        await until(lambda: permissions.pending(), "the request")
        [request] = (await api.get("/api/permissions")).json()["requests"]
        path = f"/api/permissions/{request['id']}"
        maybe = await api.post(path, json={"decision": "maybe"})
        assert maybe.status_code == 400
        assert maybe.json()["error"]["field"] == "body.decision"
        extra = await api.post(path, json={"decision": "allow", "why": "x"})
        assert extra.status_code == 400
        assert extra.json()["error"]["field"] == "body.why"
        unknown = await api.post("/api/permissions/nope", json={"decision": "allow"})
        assert unknown.status_code == 404
        assert (await api.get("/api/permissions")).json()["requests"] == [request]
        assert not waiting.done()
        await api.post(path, json={"decision": "deny"})
        assert json.loads(await waiting) == {"behavior": "deny", "message": "denied by a person"}


async def test_no_answer_in_time_denies(tmp_path: Path):
    project = with_rules(tmp_path / "repo", timeout_s=1)
    async with served(project) as (server, api):
        with server.services.hub.subscribe({PERMISSION_ANSWERED}) as events:
            waiting = await asking(server, None, "make slow")
            assert json.loads(await waiting) == {
                "behavior": "deny",
                "message": "no one answered within 1 s",
            }
            done = await asyncio.wait_for(events.get(), 20)
            assert (done.data["decision"], done.data["by"]) == ("deny", "timeout")
        assert (await api.get("/api/permissions")).json() == {"requests": []}


async def test_an_agents_paths_outside_its_worktree_are_denied(project: Project):
    async with served(project) as (server, _):
        await server.services.board.create("Edit it")
        token, worktree = await agent_token(server, 1)
        async with connect(server, token) as agent:
            inside = await call(
                agent,
                "prompt_permission",
                tool_name="Edit",
                input={"file_path": str(worktree / "src" / "a.py")},
            )
            assert inside["behavior"] == "allow"
            outside = await call(
                agent,
                "prompt_permission",
                tool_name="Edit",
                input={"file_path": str(project.root / "README.md")},
            )
            assert outside["behavior"] == "deny"
            assert f"is outside {worktree}" in outside["message"]
