"""The agent endpoints over real HTTP against a real server: start, live output, stop, assign,
and every refusal as a clear 4xx that changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
import pytest
from websockets.asyncio.client import connect

from huskies.project import Project

from ..services.agent_rig import agent_table, make_repo, waiting_project
from .support import error_of, served, stored, until
from .test_events import next_event, subscribers


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return waiting_project(tmp_path)


def release(project: Project) -> None:
    (project.root.parent / "release").write_text("go")


async def test_start_streams_output_and_stop_ends_the_run(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Watch me"})
        url = f"ws://127.0.0.1:{server.port}/api/events?kinds=agent_output,agent_state"
        async with connect(url) as stream:
            await subscribers(server, 1)
            started = await api.post("/api/items/1/start", json={})
            assert started.status_code == 200, started.text
            body = started.json()
            assert body["message"] == "#1: coder is running"
            assert body["run"]["agent"] == "coder"
            assert body["run"]["state"] == "running"
            seen: list[dict[str, Any]] = []
            while not any(e["kind"] == "agent_output" for e in seen):
                seen.append(await next_event(stream))
            output = next(e for e in seen if e["kind"] == "agent_output")
            assert output["data"]["event"] == {"type": "text", "text": "working"}
            assert output["data"]["number"] == 1

        listed = (await api.get("/api/agents")).json()
        coder = next(agent for agent in listed["agents"] if agent["name"] == "coder")
        assert coder["running"]["number"] == 1
        assert (await api.get("/api/items/1")).json()["stage"] == {"name": "coding"}

        got = (await api.get("/api/items/1/output")).json()
        assert [e["event"]["text"] for e in got["events"]] == ["working"]
        assert (await api.get("/api/items/1/output", params={"after": 1})).json()["events"] == []

        stopped = await api.post("/api/items/1/stop")
        assert stopped.json() == {
            "outcome": "stopped",
            "exit_code": -15,
            "message": "stopped by request",
        }
        error = error_of(await api.post("/api/items/1/stop"), 409)
        assert error["message"] == "#1 has no agent running"


async def test_a_second_start_of_a_running_item_is_refused(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Busy"})
        assert (await api.post("/api/items/1/start")).status_code == 200
        before = stored(server)
        error = error_of(await api.post("/api/items/1/start"), 409)
        assert error["message"] == "#1 already has coder running"
        assert stored(server) == before
        release(project)


async def test_assign_sets_the_preferred_agent(project: Project):
    async with served(project) as (_, api):
        await api.post("/api/items", json={"title": "Picky"})
        assigned = await api.post("/api/items/1/assign", json={"agent": "coder"})
        assert assigned.status_code == 200
        assert assigned.json()["agent"] == "coder"


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "field", "message"),
    [
        ("POST", "/api/items/9/start", {}, 404, None, "there is no item #9"),
        (
            "POST",
            "/api/items/1/start",
            {"agent": "nobody"},
            400,
            "body.agent",
            "there is no agent 'nobody' in agents.toml (agents: coder, reviewer)",
        ),
        (
            "POST",
            "/api/items/1/start",
            {"agent": "reviewer"},
            409,
            None,
            "reviewer is a qa agent; #1 needs a coder agent",
        ),
        ("POST", "/api/items/1/start", {"agent": 5}, 400, "body.agent", "body.agent"),
        ("POST", "/api/items/1/start", {"robot": True}, 400, "body.robot", "body.robot"),
        (
            "POST",
            "/api/items/1/assign",
            {"agent": "nobody"},
            400,
            "body.agent",
            "there is no agent 'nobody'",
        ),
        ("POST", "/api/items/1/assign", {}, 400, "body.agent", "body.agent"),
        ("POST", "/api/items/9/assign", {"agent": "coder"}, 404, None, "there is no item #9"),
        ("POST", "/api/items/1/stop", None, 409, None, "#1 has no agent running"),
        (
            "GET",
            "/api/items/1/output",
            None,
            404,
            None,
            "#1 has not had an agent run on this node yet",
        ),
        ("GET", "/api/items/1/output?after=-1", None, 400, "query.after", "query.after"),
        ("POST", "/api/items/x/start", {}, 400, "path.number", "path.number"),
    ],
)
async def test_bad_requests_are_refused_and_change_nothing(
    project: Project, method, path, payload, status, field, message
):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Target"})
        before = stored(server)
        response = await api.request(method, path, json=payload)
        error = error_of(response, status)
        assert error["field"] == field
        assert message in error["message"]
        assert stored(server) == before


async def test_malformed_json_is_refused(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Target"})
        before = stored(server)
        response = await api.post(
            "/api/items/1/assign", content=b"{agent", headers={"content-type": "application/json"}
        )
        assert "not valid JSON" in error_of(response, 400)["message"]
        assert stored(server) == before


async def test_a_finished_item_cannot_be_started(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Old"})
        await api.post("/api/items/1/move", json={"stage": "archived"})
        before = stored(server)
        error = error_of(await api.post("/api/items/1/start"), 409)
        assert "agents work on items in backlog, coding, qa or merge" in error["message"]
        assert stored(server) == before


async def test_the_schema_lists_the_agent_routes(project: Project):
    async with served(project) as (_, api):
        paths = (await api.get("/openapi.json")).json()["paths"]
    for path in (
        "/api/agents",
        "/api/items/{number}/start",
        "/api/items/{number}/stop",
        "/api/items/{number}/assign",
        "/api/items/{number}/output",
    ):
        assert path in paths


async def test_the_server_stops_its_agents_when_it_stops(project: Project):
    async with served(project) as (_, api):
        await api.post("/api/items", json={"title": "Orphan?"})
        pid = (await api.post("/api/items/1/start")).json()["run"]["pid"]
        assert alive(pid)
    assert not alive(pid)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_a_rejected_item_is_coded_again_by_itself(tmp_path: Path):
    project = make_repo(tmp_path / "repo")
    toml = project.project_toml.read_text()
    project.project_toml.write_text(toml.replace('default_qa = "server"', 'default_qa = "human"'))
    # Each run commits a file of its own, so the second attempt has work to show too.
    again = 'echo "$HUSKIES_PROMPT" > "attempt-$(date +%s%N).txt"; git add -A; git commit -qm again'
    project.agents_toml.write_text(agent_table("coder", again))
    async with served(project) as (server, api):
        agents = server.services.agents
        assert agents is not None
        await api.post("/api/items", json={"title": "Do it"})
        await api.post("/api/items/1/start")
        await until(lambda: server.services.board.get(1).stage.name.value == "qa", "in qa")
        rejected = await api.post("/api/items/1/reject", json={"reason": "add a test"})
        assert rejected.status_code == 200, rejected.text
        # Back in coding, auto-assign starts the coder again, with the reason in its prompt.
        await until(lambda: len([r for r in agents.runs() if r["number"] == 1]) == 2, "rerun")
        await until(lambda: server.services.board.get(1).stage.name.value == "qa", "in qa again")
        prompts = server.services.worktrees
        assert prompts is not None
        found = await prompts.find(1)
        assert found is not None
        attempts = sorted(found.path.glob("attempt-*.txt"))
        assert len(attempts) == 2
        assert "add a test" in attempts[1].read_text()
