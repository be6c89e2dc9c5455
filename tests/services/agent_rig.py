"""A test rig for the agents service: a real git repository with a huskies project, a real
replica and worktrees, and the auto-assign loop running."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from huskies.pipeline import WorkItem
from huskies.project import Project, init_project
from huskies.server import running
from huskies.services.agents import Agents
from huskies.services.events import EventHub
from huskies.services.settings import Settings
from huskies.services.stories import Board
from huskies.services.worktrees import Worktrees
from huskies.store import Replica
from huskies.store.replica import wall_clock_ms

DEADLINE_S = 30

COMMIT = (
    'echo "$HUSKIES_TITLE" > "work-$HUSKIES_NUMBER.txt"; git add -A; '
    'git commit -qm "#$HUSKIES_NUMBER"; echo committed'
)


def agent_table(name: str, script: str, **extra: object) -> str:
    lines = [
        "[[agent]]",
        f"name = {json.dumps(name)}",
        f"stage = {json.dumps(extra.pop('stage', 'coder'))}",
        'runtime = "command"',
        f"argv = {json.dumps(['sh', '-c', script])}",
        'prompt = "Work on {number}: {title}"',
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


@dataclass
class Rig:
    project: Project
    board: Board
    agents: Agents
    hub: EventHub
    replica: Replica

    def item(self, number: int) -> WorkItem:
        return self.board.get(number)

    async def until(self, check: Callable[[], object], what: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting until {what}"
            await asyncio.sleep(0.02)

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.project.root, capture_output=True, text=True, check=True
        ).stdout.strip()


def make_repo(path: Path) -> Project:
    """A git repository on `main` with huskies initialised; its one commit, "start", holds the
    `.mcp.json` that init writes (a project commits it), so the checkout starts clean."""
    path.mkdir()
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.name", "Test"],
        ["config", "user.email", "test@example.com"],
    ):
        subprocess.run(["git", *args], cwd=path, check=True)
    project = init_project(path)
    for args in (["add", ".mcp.json"], ["commit", "-q", "-m", "start"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    return project


def waiting_project(tmp_path: Path) -> Project:
    """A repository whose coder says "working" and waits for a `release` file beside the
    repository before committing, and whose QA agent commits at once."""
    project = make_repo(tmp_path / "repo")
    release = tmp_path / "release"
    waiting = f"echo working; while [ ! -f {release} ]; do sleep 0.05; done; {COMMIT}"
    project.agents_toml.write_text(
        agent_table("coder", waiting) + agent_table("reviewer", COMMIT, stage="qa")
    )
    return project


def rig_project(tmp_path: Path, agents_toml: str, max_coders: int, max_retries: int) -> Project:
    project = make_repo(tmp_path / "repo")
    project.agents_toml.write_text(agents_toml)
    toml = project.project_toml.read_text()
    toml = toml.replace("max_coders = 3", f"max_coders = {max_coders}")
    project.project_toml.write_text(toml.replace("max_retries = 3", f"max_retries = {max_retries}"))
    return project


@contextlib.asynccontextmanager
async def rig(
    tmp_path: Path, agents_toml: str, *, max_coders: int = 3, max_retries: int = 3
) -> AsyncIterator[Rig]:
    project = rig_project(tmp_path, agents_toml, max_coders, max_retries)
    settings = Settings.load(project)
    replica = await Replica.open(project.db_path)
    board = Board(replica, wall_clock_ms)
    hub = EventHub()
    agents = Agents(
        settings=settings,
        replica=replica,
        board=board,
        worktrees=Worktrees(project.root, settings.config.base_branch),
        hub=hub,
        runs_dir=project.dir / "runs",
        server_url=lambda: "http://127.0.0.1:9",
        clock=wall_clock_ms,
    )
    loop = asyncio.create_task(agents.run_forever(interval_s=0.2))
    try:
        yield Rig(project, board, agents, hub, replica)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await agents.close()
        await replica.close()


@contextlib.asynccontextmanager
async def served_rig(
    tmp_path: Path, agents_toml: str, *, max_coders: int = 3, max_retries: int = 3
) -> AsyncIterator[Rig]:
    """The rig inside a whole `huskies serve`: for agents that need the server itself, such
    as Claude Code, whose permission prompts go to the server's MCP endpoint."""
    project = rig_project(tmp_path, agents_toml, max_coders, max_retries)
    async with running(project, project.config(), "127.0.0.1", 0, heartbeat_s=3600) as server:
        services = server.services
        assert services.agents is not None
        yield Rig(project, services.board, services.agents, services.hub, services.replica)
