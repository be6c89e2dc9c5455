"""`huskies gates N` as real processes: the latest report of real gate runs, printed the same
with the database and through a running server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from huskies.pipeline.gates import GateReport
from huskies.project import Project
from huskies.services.gates import Gates
from huskies.services.settings import Settings
from huskies.services.stories import Board
from huskies.store import Replica
from huskies.store.replica import wall_clock_ms

from .test_cli_server import Server, huskies, ok, project, servers, start

__all__ = ["project", "servers"]  # fixtures, used by name

COMPONENT = """
[[component]]
name = "app"
setup = ["echo installing"]
teardown = ["echo cannot clean up; exit 5"]

[component.gates.test]
command = "seq 1 30; echo 'test_login FAILED'; exit 2"
timeout_secs = 30

[component.gates.lint]
command = "echo clean"
timeout_secs = 30
"""


async def run_gates(root: Path, tree: Path) -> list[GateReport]:
    """Two gate runs on item #1 (the second passes its lint only), stored in the database."""
    project = Project(root)
    async with await Replica.open(project.db_path) as replica:
        item = Board(replica, wall_clock_ms).get(1)
        gates = Gates(Settings.load(project), replica, root.parent / "logs", wall_clock_ms)
        return [await gates.check(item, tree, where) for where in ("worktree", "merge")]


def test_the_latest_report_is_shown_with_or_without_a_server(
    project: Path, tmp_path: Path, servers: list[Server]
):
    with (project / ".huskies" / "project.toml").open("a") as toml:
        toml.write(COMPONENT)
    ok(project, "story", "new", "Gated")
    ok(project, "story", "new", "Never checked")
    tree = tmp_path / "worktree"
    tree.mkdir()
    first, latest = asyncio.run(run_gates(project, tree))

    shown = ok(project, "gates", "1")
    lines = shown.splitlines()
    assert lines[0].startswith(f"#1 · gates in the merge · run {latest.run} · failed · ")
    assert lines[1].startswith("  ✓ app/setup 1     passed           ")
    assert lines[2].startswith("  ✗ app/test        exit code 2      ")
    # The end of the failing output (its last 20 lines), not the beginning.
    assert lines[3:24] == [
        "      …",
        *(f"      {n}" for n in range(12, 31)),
        "      test_login FAILED",
    ]
    assert lines[24].startswith("  ✓ app/lint        passed           ")
    assert lines[25].startswith("  ✗ app/teardown 1  exit code 5      ")
    assert lines[25].endswith(" s (a teardown: it fails nothing)")
    assert lines[26:] == ["      cannot clean up", f"full log: {latest.log}"]
    assert first.run not in shown

    assert ok(project, "gates", "2") == "#2 has no gate report yet.\n"
    unknown = huskies(project, "gates", "9")
    assert unknown.code == 1
    assert unknown.err == "error: there is no item #9; `huskies story list` shows them all\n"

    start(servers, project)
    assert ok(project, "gates", "1") == shown
    assert ok(project, "gates", "2") == "#2 has no gate report yet.\n"
    assert huskies(project, "gates", "9") == unknown
