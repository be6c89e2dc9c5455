"""`huskies status` and `huskies cost` as real CLI processes against a real server, and the
CLI and the command interpreter answering alike."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from huskies.project import Project

from .test_cli_server import Result, huskies
from .web.support import make_project, served


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "repo")


async def run(project: Project, *args: str) -> Result:
    # On a thread: the server answering it runs on this test's event loop.
    return await asyncio.to_thread(huskies, project.root, *args)


async def interpreted(api: httpx.AsyncClient, command: str) -> str:
    answered = await api.post("/api/commands", json={"command": command})
    assert answered.status_code == 200, answered.text
    output: str = answered.json()["output"]
    return output


async def test_status_and_cost_print_the_interpreters_answer(project: Project):
    async with served(project) as (_, api):
        await api.post("/api/items", json={"title": "Add login", "kind": "bug"})
        status = await run(project, "status")
        assert status.code == 0, status
        assert status.out == await interpreted(api, "status") + "\n"
        assert "  #1  Add login (bug)" in status.out.splitlines()
        cost = await run(project, "cost")
        assert cost == Result(0, "No agent runs are recorded yet, so nothing has been spent.\n", "")


async def test_the_cli_and_the_interpreter_say_the_same(project: Project):
    async with served(project) as (_, api):
        await api.post("/api/items", json={"title": "Add login", "body": "# Goal\n[red]x[/red]\n"})
        await api.post("/api/items/1/timer", json={"at": "23:59"})
        shown = await run(project, "story", "show", "1")
        assert shown.out == await interpreted(api, "show 1") + "\n"
        timers = await run(project, "timer", "list")
        assert timers.out == await interpreted(api, "timer list") + "\n"


def test_status_and_cost_need_the_running_server(project: Project):
    for command in ("status", "cost"):
        result = huskies(project.root, command)
        assert result.code == 1
        assert result.err.startswith("error: no huskies server is running for this project; ")
        assert result.err.endswith("so start it with `huskies serve`\n")
