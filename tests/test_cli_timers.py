"""`huskies timer` as real CLI processes against a real server: set (with and without the word
`set`), list, cancel, and the errors a person sees."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from huskies.project import Project

from .test_cli_server import Result, huskies
from .web.support import make_project, served


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "repo")


async def run(project: Project, *args: str) -> Result:
    # On a thread: the server answering it runs on this test's event loop.
    return await asyncio.to_thread(huskies, project.root, "timer", *args)


async def test_timers_are_set_listed_and_cancelled(project: Project):
    async with served(project) as (_, api):
        await api.post("/api/items", json={"title": "Nightly"})
        await api.post("/api/items", json={"title": "Morning"})

        set_one = await run(project, "1", "23:59")
        assert set_one.code == 0, set_one
        assert re.fullmatch(r"#1 will start at \d{4}-\d\d-\d\d 23:59 UTC\.\n", set_one.out)
        set_two = await run(project, "set", "2", "00:00")
        assert set_two.code == 0, set_two
        assert set_two.out.endswith(" 00:00 UTC.\n")

        listed = await run(project, "list")
        timers = (await api.get("/api/timers")).json()["timers"]  # soonest first
        assert listed.out.splitlines() == [f"#{t['number']}  {t['local']}" for t in timers]
        assert sorted(line[:2] for line in listed.out.splitlines()) == ["#1", "#2"]

        assert (await run(project, "cancel", "1")).out == "Cancelled the timer of #1.\n"
        assert (await run(project, "cancel", "1")).out == "#1 has no timer.\n"
        assert (await run(project, "cancel", "2")).code == 0
        assert (await run(project, "list")).out == "No timers.\n"


async def test_mistakes_are_one_line_errors_and_set_nothing(project: Project):
    async with served(project) as (_, api):
        await api.post("/api/items", json={"title": "Nightly"})
        bad = await run(project, "1", "9:30")
        assert (bad.code, bad.out) == (1, "")
        assert bad.err.startswith("error: '9:30' is not a time of day; give hours and minutes")
        assert bad.err.count("\n") == 1
        unknown = await run(project, "9", "09:30")
        assert unknown == Result(
            1, "", "error: there is no item #9; `huskies story list` shows them all\n"
        )
        missing = await run(project, "1")
        assert missing.code == 2
        assert "Missing argument 'HH:MM'" in missing.err
        assert (await run(project, "list")).out == "No timers.\n"


def test_timers_need_the_running_server(project: Project):
    result = huskies(project.root, "timer", "list")
    assert result.code == 1
    assert result.err.startswith("error: no huskies server is running for this project")
    assert "huskies serve" in result.err
