"""One story carried through the whole pipeline by the real Claude Code CLI, offline, against
the scripted fake model: a Claude coder writes and commits, the server's gates pass, a Claude QA
agent approves, the squash conflicts with work that landed on the base meanwhile, and a Claude
mergemaster resolves it in the merge workspace; huskies merges and records every run's cost."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from huskies.pipeline import Done
from huskies.pipeline.usage import read_usage
from huskies.server import running

from ..services.agent_rig import make_repo
from .fake_model import FakeModel, Hold, Reply, claude_agent_toml, tool

DEADLINE_S = 90


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


async def until(check, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
def use_claude(claude_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUSKIES_CLAUDE", str(claude_bin))


@pytest.mark.usefixtures("use_claude")
async def test_claude_codes_reviews_and_merges_a_story(tmp_path: Path, fake_model: FakeModel):
    project = make_repo(tmp_path / "repo")
    root = project.root
    home = tmp_path / "home"
    gate = '[[component]]\nname = "all"\n[component.gates.present]\ncommand = "test -f hello.txt"'
    project.project_toml.write_text(
        project.project_toml.read_text().replace('default_qa = "server"', 'default_qa = "agent"')
        + f"\n{gate}\n"
    )
    project.agents_toml.write_text(
        "\n".join(
            claude_agent_toml(
                fake_model,
                home,
                name=name,
                stage=stage,
                prompt=f"{stage} work on story {{number}}: {{title}}",
            )
            for name, stage in (("coder", "coder"), ("reviewer", "qa"), ("merger", "mergemaster"))
        )
    )
    worktree = root / ".huskies" / "worktrees" / "1-say-hello"
    workspace = root / ".huskies" / "merge_workspace"
    fake_model.add(
        # The coder.
        tool("Write", file_path=str(worktree / "hello.txt"), content="hello from claude\n"),
        tool("Bash", command="git add hello.txt && git commit -q -m 'Say hello'"),
        Reply("Done: hello.txt is committed."),
        # The QA agent, held until the base has moved on.
        Hold(Reply("Reviewed: the greeting is there. Approved.")),
        # The mergemaster, in the merge workspace (Claude Code writes a file only once read).
        tool("Read", file_path=str(workspace / "hello.txt")),
        tool("Write", file_path=str(workspace / "hello.txt"), content="hello from both\n"),
        tool("Bash", command="git add hello.txt"),
        Reply("Resolved the conflict in hello.txt."),
    )
    async with running(project, project.config(), "127.0.0.1", 0, heartbeat_s=3600) as server:
        board = server.services.board
        agents = server.services.agents
        assert agents is not None
        await board.create("Say hello")
        await agents.start(1)
        await until(lambda: board.get(1).stage.name.value == "qa", "the gates to pass")
        await until(lambda: len(fake_model.main_requests) == 4, "the QA agent to ask the model")
        # Meanwhile someone lands their own hello.txt on the base: the squash will conflict.
        (root / "hello.txt").write_text("hello from a person\n")
        git(root, "add", "hello.txt")
        git(root, "commit", "-q", "-m", "A person's hello")
        fake_model.release()
        await until(lambda: isinstance(board.get(1).stage, Done), "the merge")

        done = board.get(1).stage
        assert isinstance(done, Done)
        assert done.merge_commit == git(root, "rev-parse", "main")
        records, problems = read_usage(server.services.replica.document)
        assert problems == []
        assert [(r.agent, r.outcome) for r in records] == [
            ("coder", "completed"),
            ("reviewer", "completed"),
            ("merger", "completed"),
        ]
        assert all(r.cost_usd is not None and r.cost_usd > 0 for r in records)

    assert (root / "hello.txt").read_text() == "hello from both\n"
    assert git(root, "log", "--format=%s", "-3", "main").splitlines()[1:] == [
        "A person's hello",
        "start",
    ]
    assert git(root, "status", "--porcelain", "--", ".", ":!.huskies") == ""
