"""The whole pipeline in a real server with `command` agents and real git: stories, a dependent
story, a bug whose first attempt fails the gates, a spike, an empty branch, and a conflict that
the mergemaster resolves. Nothing is mocked; every wait polls with a deadline."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from huskies.pipeline import Archived, ArchiveReason, Done, ItemKind, StageName, WorkItem
from huskies.pipeline.gates import read_gate_reports
from huskies.project import Project
from huskies.server import running

from .services.agent_rig import make_repo

AGENT = Path(__file__).with_name("lifecycle_agent.py")
DEADLINE_S = 120

GATES = """
[[component]]
name = "files"
path = "."

[component.gates.no-bugs]
command = "! grep -rqs BUG --include='*.txt' ."
timeout_secs = 60
"""


def agents_toml() -> str:
    tables = []
    for name, stage, role in (
        ("coder-1", "coder", "coder"),
        ("coder-2", "coder", "coder"),
        ("merger", "mergemaster", "mergemaster"),
    ):
        argv = json.dumps([sys.executable, str(AGENT), role])
        tables.append(
            f'[[agent]]\nname = "{name}"\nstage = "{stage}"\nruntime = "command"\n'
            f'argv = {argv}\nprompt = "{{title}}"\ninactivity_timeout_secs = 60\n'
        )
    return "\n".join(tables)


def lifecycle_project(root: Path) -> Project:
    project = make_repo(root)
    project.project_toml.write_text(project.project_toml.read_text() + GATES)
    project.agents_toml.write_text(agents_toml())
    return project


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


FINISHED = (StageName.DONE, StageName.ARCHIVED)


async def until_finished(board, numbers: list[int]) -> dict[int, WorkItem]:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        items = {n: board.get(n) for n in numbers}
        if all(item.stage.name in FINISHED for item in items.values()):
            return items
        stuck = {n: (i.stage.name.value, i.retries, i.blocked_reason) for n, i in items.items()}
        assert time.monotonic() < deadline, f"not finished: {stuck}"
        await asyncio.sleep(0.1)


async def test_every_kind_of_item_goes_through_the_pipeline(tmp_path: Path):
    project = lifecycle_project(tmp_path / "repo")
    async with running(
        project, project.config(), "127.0.0.1", 0, heartbeat_s=3600, merge_retry_s=0.2
    ) as server:
        board = server.services.board
        agents = server.services.agents
        assert agents is not None
        await board.create("write a.txt alpha")
        await board.create("write b.txt beta", depends_on=[1])
        await board.create("flaky c.txt", kind=ItemKind.BUG)
        await board.create("spike notes", kind=ItemKind.SPIKE)
        await board.create("empty e.txt")
        await board.create("conflict shared.txt left")
        await board.create("conflict shared.txt right")
        for number in (1, 3, 4, 5, 6, 7):
            await agents.start(number)
        items = await until_finished(board, list(range(1, 8)))

        for number in (1, 2, 3, 6, 7):
            assert isinstance(items[number].stage, Done), items[number]
        spike = items[4].stage
        assert isinstance(spike, Done)
        assert spike.merge_commit is None  # a spike merges nothing
        empty = items[5].stage
        assert isinstance(empty, Archived)
        assert empty.reason is ArchiveReason.MERGE_FAILED

        # The bug failed the gates once, and its coder was told why.
        assert items[3].retries == 1
        reports, _ = read_gate_reports(server.services.replica.document, items[3].id)
        assert [r.passed for r in reversed(reports) if r.where == "worktree"][:2] == [False, True]
        bug_runs = [r for r in agents.runs() if r["number"] == 3]
        assert len(bug_runs) == 2

    root = project.root
    # The user's checkout is clean (.huskies/ itself is not committed in this repository).
    assert git(root, "status", "--porcelain", "--", ".", ":!.huskies") == ""
    assert (root / "a.txt").read_text() == "alpha\n"
    assert (root / "b.txt").read_text() == "beta\n"
    assert (root / "c.txt").read_text() == "fixed\n"
    assert not (root / "e.txt").exists()
    assert not (root / "NOTES.md").exists()
    assert sorted((root / "shared.txt").read_text().split()) == ["left", "right"]
    # One squash commit per merged item, nothing else on the base.
    subjects = git(root, "log", "--format=%s", "main").splitlines()
    assert len(subjects) == 1 + 5, subjects
