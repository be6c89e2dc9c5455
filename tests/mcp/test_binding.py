"""An agent's run token binds the tools to its item and worktree; the HTTP endpoint refuses
unknown tokens (401) and unexpected Host headers (421)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from huskies.pipeline.gates import read_gate_reports
from huskies.project import Project
from huskies.server import Running

from ..web.support import served, stored
from .support import BODY, call, call_text, connect, make_project, refused


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "repo")


async def agent_token(server: Running, number: int) -> tuple[str, Path]:
    agents = server.services.agents
    assert agents is not None
    run = await agents.start(number)
    assert run is not None
    assert run.worktree is not None
    return run.token, run.worktree


async def test_an_agent_token_acts_only_on_its_own_item(project: Project):
    async with served(project) as (server, _), connect(server) as person:
        board = server.services.board
        await call(person, "create_item", title="Mine", body=BODY)
        await call(person, "create_item", title="Theirs", body=BODY)
        token, _ = await agent_token(server, 1)
        async with connect(server, token) as agent:
            assert await call(agent, "get_pipeline_status") == {
                "coding": [{"n": 1, "title": "Mine"}]
            }
            assert (await call(agent, "get_item", number=1))["title"] == "Mine"
            await call(agent, "check_criterion", number=1, index=0)
            assert board.get(1).body.count("- [x]") == 2

            before = stored(server)
            for tool, arguments in (
                ("get_item", {}),
                ("get_todos", {}),
                ("check_criterion", {"index": 0}),
                ("update_item", {"title": "Taken over"}),
                ("move_item", {"stage": "archived"}),
                ("start_agent", {}),
                ("set_timer", {"at": "09:30"}),
                ("run_tests", {}),
                ("git_status", {}),
            ):
                message = await refused(agent, tool, number=2, **arguments)
                assert "bound to #1" in message, (tool, message)
            assert "person's client" in await refused(agent, "create_item", title="New")
            assert "person's client" in await refused(agent, "purge_item", number=2)
            assert "person's client" in await refused(agent, "dump_state")
            assert stored(server) == before


async def test_an_agent_cannot_leave_its_worktree(project: Project, tmp_path: Path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret\n")
    async with served(project) as (server, _), connect(server) as person:
        await call(person, "create_item", title="Mine")
        token, worktree = await agent_token(server, 1)
        (worktree / "inside.txt").write_text("inside\n")
        (worktree / "escape").symlink_to(outside)
        (worktree / "sub").mkdir()
        async with connect(server, token) as agent:
            for path in ("../secret.txt", "sub/../../secret.txt", str(outside), "escape"):
                message = await refused(agent, "git_diff", path=path)
                assert "absolute" in message or "outside" in message, (path, message)
            assert "?? inside.txt" in await call_text(agent, "git_status")
            # Untracked files have no diff; a path inside is accepted all the same.
            assert await call_text(agent, "git_diff", path="sub/../inside.txt") == ""
            log = await call(agent, "git_log", limit=1)
            assert log[0]["subject"] == "start"


async def test_run_tests_in_the_agents_worktree(project: Project):
    async with served(project) as (server, _), connect(server) as person:
        await call(person, "create_item", title="Mine")
        token, worktree = await agent_token(server, 1)
        async with connect(server, token) as agent:
            failed = await call(agent, "run_tests")
            assert failed["done"] is True
            assert failed["passed"] is False
            assert failed["steps"][0]["exit_code"] == 1
            assert "files/ready" in failed["summary"]

            (worktree / "ready.txt").write_text("ready\n")
            passed = await call(agent, "run_tests")
            assert passed["passed"] is True
            assert passed["steps"][0]["exit_code"] == 0

            started = await call(agent, "run_tests", wait_s=0)
            result = started
            while not result["done"]:
                result = await call(agent, "get_test_result", run_id=started["run_id"], wait_s=5)
            assert result["passed"] is True
        # A person names the item, and the tests run in its worktree.
        by_person = await call(person, "run_tests", number=1)
        assert by_person["passed"] is True
        assert "number" in await refused(person, "run_tests")
        reports, _ = read_gate_reports(server.services.replica.document)
        assert [report.passed for report in reports] == [True, True, True, False]


async def test_unknown_tokens_get_401_and_unexpected_hosts_421(project: Project):
    async with served(project) as (server, _api):
        url = f"http://127.0.0.1:{server.port}/mcp"
        hello = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"},
            },
        }
        headers = {"Accept": "application/json, text/event-stream"}
        async with httpx.AsyncClient(timeout=10) as http:
            good = await http.post(url, json=hello, headers=headers)
            assert good.status_code == 200, good.text
            wrong = await http.post(
                url, json=hello, headers={**headers, "Authorization": "Bearer nope"}
            )
            assert wrong.status_code == 401
            assert "neither a running agent's" in wrong.json()["error"]["message"]
            rebound = await http.post(
                url, json=hello, headers={**headers, "Host": f"evil.example:{server.port}"}
            )
            assert rebound.status_code == 421
            localhost = await http.post(
                url, json=hello, headers={**headers, "Host": f"localhost:{server.port}"}
            )
            assert localhost.status_code == 200


async def test_with_a_required_token_only_it_or_an_agents_token_gets_in(project: Project):
    async with served(project, require_token=True) as (server, _):
        url = f"http://127.0.0.1:{server.port}/mcp"
        async with httpx.AsyncClient(timeout=10) as http:
            missing = await http.post(url, json={})
            assert missing.status_code == 401
            assert "access token" in missing.json()["error"]["message"]
        token = (project.dir / "access-token").read_text().strip()
        async with connect(server, token) as person:
            await call(person, "create_item", title="Mine")
            agent, _ = await agent_token(server, 1)
        async with connect(server, agent) as bound:
            assert (await call(bound, "get_item", number=1))["title"] == "Mine"


async def test_agent_tools_start_watch_and_stop_a_run(project: Project):
    async with served(project) as (server, _), connect(server) as person:
        await call(person, "create_item", title="Mine")
        started = await call(person, "start_agent", number=1)
        assert started["started"] is True
        assert started["agent"] == "coder"
        listed = await call(person, "list_agents")
        assert listed["agents"][0]["running"]["number"] == 1
        output = await call(person, "get_agent_output", number=1)
        while not output["events"]:
            output = await call(person, "get_agent_output", number=1)
        assert output["events"][0]["event"] == {"type": "text", "text": "working"}
        waited = await call(person, "wait_for_agent", number=1, timeout_s=0.2)
        assert waited["ended"] is False
        stopped = await call(person, "stop_agent", number=1)
        assert stopped["outcome"] == "stopped"
        ended = await call(person, "wait_for_agent", number=1, timeout_s=5)
        assert ended["ended"] is True
        assert ended["run"]["outcome"] == "stopped"

        timer = await call(person, "set_timer", number=1, at="09:30")
        assert timer["number"] == 1
        assert "09:30" in timer["local"]
        assert [t["number"] for t in await call(person, "list_timers")] == [1]
        assert await call(person, "cancel_timer", number=1) == {"cancelled": True}
        assert await call(person, "list_timers") == []
        merge = await call(person, "get_merge_status", number=1)
        assert merge == {"stage": "coding", "job": None}
