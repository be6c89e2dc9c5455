"""huskies running the real Claude Code CLI as a coder, against the scripted fake model.

The story is started, huskies makes the worktree and spawns `claude -p … --output-format
stream-json` in it; the fake model has it write a file and commit; huskies records the run's
cost and tokens from the result event, and the commit is on `feature/story-<n>`.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from huskies.agents.events import RateLimit, SessionStarted
from huskies.pipeline import ExecutionState
from huskies.pipeline.usage import read_usage

from ..services.agent_rig import served_rig
from .fake_model import FakeModel, Reply, claude_agent_toml, rate_limited, tool

WORKTREE = Path(".huskies") / "worktrees" / "1-say-hello"


def write_and_commit(root: Path) -> list:
    worktree = root / WORKTREE
    return [
        tool("Write", file_path=str(worktree / "hello.txt"), content="hello from claude\n"),
        tool("Bash", command="git add hello.txt && git commit -q -m 'Say hello'"),
        Reply("I wrote hello.txt and committed it."),
    ]


@pytest.fixture
def use_claude(claude_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUSKIES_CLAUDE", str(claude_bin))


@pytest.mark.usefixtures("use_claude")
async def test_claude_code_codes_a_story_and_huskies_records_its_cost(
    tmp_path: Path, fake_model: FakeModel
):
    toml = claude_agent_toml(fake_model, tmp_path / "home")
    async with served_rig(tmp_path, toml) as r:
        fake_model.add(*write_and_commit(r.project.root))
        item = await r.board.create("Say hello")
        run = await r.agents.start(1)
        assert run is not None
        async with asyncio.timeout(60):
            await run.finished.wait()
        ended = r.agents.runs()[0]
        assert (ended["outcome"], ended["exit_code"]) == ("completed", 0), ended
        assert r.agents.execution_state(item.id) is ExecutionState.COMPLETED
        assert r.git("log", "-1", "--format=%s", "feature/story-1") == "Say hello"
        assert r.git("show", "feature/story-1:hello.txt") == "hello from claude"
        assert r.git("log", "-1", "--format=%s", "main") == "start"

        # Claude Code ran in the worktree and got the prompt with the placeholders filled.
        first = json.dumps(fake_model.main_requests[0].body)
        assert "Work on story 1: Say hello" in first
        assert str(r.project.root / WORKTREE) in first
        results = fake_model.tool_results()
        assert len(results) == 2
        assert not any(result.get("is_error") for result in results), results

        events = [stamped.event for stamped in run.process.events] if run.process else []
        (session,) = [e for e in events if isinstance(e, SessionStarted)]
        # Its MCP config points at this server with the run's token (the MCP server itself
        # comes later, so Claude Code reports it as not connected).
        assert [name for name, _ in session.mcp_servers] == ["huskies"]
        assert run.worktree is not None
        config = json.loads((r.project.dir / "runs" / run.id / "mcp.json").read_text())
        assert config["mcpServers"]["huskies"]["headers"] == {
            "Authorization": f"Bearer {run.token}"
        }

        (record,), problems = read_usage(r.replica.document)
        assert problems == []
        assert (record.number, record.agent, record.outcome) == (1, "claude", "completed")
        assert record.cost_usd is not None
        assert record.cost_usd > 0
        assert (record.input_tokens, record.output_tokens) == (3 * 1200, 3 * 80)
        assert record.turns == 3


@pytest.mark.usefixtures("use_claude")
async def test_a_rate_limited_claude_waits_for_the_reset_and_resumes(
    tmp_path: Path, fake_model: FakeModel
):
    # With a subscription token Claude Code does not retry a 429: it reports the limit with
    # its reset time, and huskies ends the run and resumes it then.
    toml = claude_agent_toml(
        fake_model,
        tmp_path / "home",
        ANTHROPIC_API_KEY="",
        CLAUDE_CODE_OAUTH_TOKEN="sk-ant-oat-fake",
    )
    async with served_rig(tmp_path, toml) as r:
        reset_s = int(time.time()) + 2
        fake_model.add(rate_limited(reset_s), *write_and_commit(r.project.root))
        item = await r.board.create("Say hello")
        first = await r.agents.start(1)
        assert first is not None
        await r.until(
            lambda: r.agents.execution_state(item.id) is ExecutionState.RATE_LIMITED,
            "rate limited",
        )
        assert first.process is not None
        limits = [s.event for s in first.process.events if isinstance(s.event, RateLimit)]
        assert limits
        assert limits[0].resets_at == reset_s * 1000
        await r.until(
            lambda: r.agents.execution_state(item.id) is ExecutionState.COMPLETED, "resumed"
        )
        runs = list(reversed(r.agents.runs()))
        assert [run["outcome"] for run in runs] == ["rate_limited", "completed"]
        assert runs[1]["started_at"] >= reset_s * 1000
        assert runs[0]["worktree"] == runs[1]["worktree"]
        assert r.item(1).retries == 0
        assert r.git("log", "-1", "--format=%s", "feature/story-1") == "Say hello"
