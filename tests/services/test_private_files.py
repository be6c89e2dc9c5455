"""What huskies writes under `.huskies/` is private whatever the directories around it were
(a clone leaves `.huskies/` 0755); the config files meant for git stay ordinary files. A real
server runs a real agent and the gates, under a permissive umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from huskies.pipeline import ExecutionState

from .agent_rig import COMMIT, agent_table, served_rig

GATE = '\n[[component]]\nname = "all"\n[component.gates.check]\ncommand = "echo checked"\n'


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def everything_below(directory: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            yield Path(root) / name


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("permissive_umask")
async def test_runs_logs_and_run_files_are_private_in_an_open_directory(tmp_path: Path):
    async with served_rig(tmp_path, agent_table("coder", COMMIT)) as r:
        project = r.project
        project.project_toml.write_text(project.project_toml.read_text() + GATE)
        project.dir.chmod(0o755)  # as a clone leaves it
        runs = project.dir / "runs"
        runs.mkdir(mode=0o755, exist_ok=True)
        runs.chmod(0o755)
        stale = runs / "old.log"  # a file an earlier version left readable
        stale.write_text("transcript")
        stale.chmod(0o644)
        item = await r.board.create("Private work")
        await r.agents.start(item.number)
        await r.until(
            lambda: r.agents.execution_state(item.id) is ExecutionState.COMPLETED, "completed"
        )
        written = list(everything_below(runs))
        assert any(path.suffix == ".log" and path.parent == runs for path in written)  # agent
        assert any(path.parent.name == "gates" for path in written)
        for path in written:
            if path == stale:
                continue
            expected = 0o700 if path.is_dir() else 0o600
            assert mode(path) == expected, f"{path.relative_to(project.dir)}: {oct(mode(path))}"
        assert mode(runs) == 0o700
        assert mode(project.db_path) == 0o600
        for meant_for_git in (
            project.project_toml,
            project.agents_toml,
            project.dir / ".gitignore",
        ):
            assert mode(meant_for_git) == 0o644, meant_for_git.name
