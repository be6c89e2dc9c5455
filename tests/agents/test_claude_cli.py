"""The real Claude Code CLI (`claude -p`), driven by the scripted fake model: what it does in a
git worktree, what it sends to the API, what it prints, and how huskies parses that."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import TypeVar

import pytest

from huskies.agents.events import (
    AgentEvent,
    RateLimit,
    Result,
    SessionStarted,
    Text,
    ToolResult,
    ToolUse,
    parse_claude_line,
)

from .fake_model import FakeModel, Hold, Reply, claude_env, rate_limited, tool

pytestmark = pytest.mark.timeout(60)

BRANCH = "story-12"
RESET_AT = 1_900_000_000  # seconds since the epoch (March 2030)
RUN_TIMEOUT = 45
STREAM_JSON = ["--output-format", "stream-json", "--verbose"]


def git(repo: Path, *args: str) -> str:
    # Without the user's git configuration (signing, hooks), like the agent's own git.
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh repository with one commit on BRANCH, and a committer for the agent's commits."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", BRANCH)
    git(repo, "config", "user.name", "Huskies Agent")
    git(repo, "config", "user.email", "agent@huskies.invalid")
    (repo / "README.md").write_text("# demo\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Initial commit")
    return repo


def claude_command(claude_bin: Path, *flags: str, prompt: str = "Do the story.") -> list[str]:
    return [str(claude_bin), "-p", prompt, *STREAM_JSON, *flags]


def run_claude(
    claude_bin: Path,
    fake: FakeModel,
    cwd: Path,
    *flags: str,
    env: dict[str, str | None] | None = None,
) -> tuple[subprocess.CompletedProcess[str], list[AgentEvent]]:
    """Run `claude -p` in `cwd` (a directory of tmp_path) against `fake`, with tmp_path/home as
    its home; `env` adds variables (None removes one). Returns the process and its parsed
    stdout."""
    process = subprocess.run(
        claude_command(claude_bin, *flags),
        cwd=cwd,
        env=environment(fake, cwd, env),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    return process, [
        event for line in process.stdout.splitlines() for event in parse_claude_line(line)
    ]


def environment(fake: FakeModel, cwd: Path, extra: dict[str, str | None] | None) -> dict[str, str]:
    home = cwd.parent / "home"  # so not the real home, nor one shared by tests
    home.mkdir(exist_ok=True)
    env = claude_env(fake, home)
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


E = TypeVar("E", bound=AgentEvent)


def only(events: list[AgentEvent], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


def test_claude_writes_a_file_and_commits_it(
    claude_bin: Path, fake_model: FakeModel, repo: Path
) -> None:
    target = repo / "hello.py"
    fake_model.add(
        tool("Write", file_path=str(target), content="print('hello')\n"),
        tool("Bash", command="git add -A && git commit -m 'Add hello.py'", description="Commit"),
        Reply("Added hello.py and committed it."),
    )
    process, events = run_claude(
        claude_bin,
        fake_model,
        repo,
        "--permission-mode",
        "acceptEdits",
        "--allowedTools",
        "Write Bash",
    )
    assert process.returncode == 0, process.stderr

    # The work happened, in the worktree, on the branch, and nothing else was left behind.
    assert target.read_text() == "print('hello')\n"
    assert git(repo, "log", "--format=%s", BRANCH).splitlines() == [
        "Add hello.py",
        "Initial commit",
    ]
    assert git(repo, "show", "--name-only", "--format=", BRANCH).split() == ["hello.py"]
    assert git(repo, "status", "--porcelain") == ""

    # The CLI sent each tool's result back to the model.
    written, committed = fake_model.tool_results()
    assert "File created successfully" in str(written["content"])
    assert f"[{BRANCH} " in str(committed["content"])
    assert committed.get("is_error") is False
    assert len(fake_model.main_requests) == 3

    # And its stdout parses into the events huskies needs.
    assert not [e for e in events if isinstance(e, Text) and e.text.startswith("{")]
    started = events[0]
    assert isinstance(started, SessionStarted)
    assert started.session_id
    assert {"Write", "Bash"} <= set(started.tools)
    uses = only(events, ToolUse)
    assert [(u.name, u.input.get("file_path")) for u in uses] == [
        ("Write", str(target)),
        ("Bash", None),
    ]
    results = only(events, ToolResult)
    assert [r.tool_use_id for r in results] == [u.id for u in uses]
    assert not any(r.is_error for r in results)
    assert Text("Added hello.py and committed it.") in events
    result = events[-1]
    assert isinstance(result, Result)
    assert not result.is_error
    assert result.text == "Added hello.py and committed it."
    assert result.turns == 3
    assert result.cost_usd is not None
    assert result.cost_usd > 0
    # The CLI adds up the usage the fake reported for each of the three calls.
    assert result.usage.input_tokens == 3 * fake_model.input_tokens
    assert result.usage.output_tokens == 3 * fake_model.output_tokens


def test_rate_limit_with_an_api_key(claude_bin: Path, fake_model: FakeModel, repo: Path) -> None:
    """With an API key Claude Code retries a 429 (10 times by default, with backoff of up to
    ~40 s); CLAUDE_CODE_MAX_RETRIES=0 makes it give up at once. It does not print the reset
    time: only an error message and an error result."""
    fake_model.add(rate_limited(RESET_AT))
    process, events = run_claude(claude_bin, fake_model, repo, env={"CLAUDE_CODE_MAX_RETRIES": "0"})
    assert process.returncode == 1
    assert len(fake_model.main_requests) == 1
    [limited] = only(events, RateLimit)
    assert limited.resets_at is None
    assert "429" in limited.message
    result = events[-1]
    assert isinstance(result, Result)
    assert result.is_error
    assert result.text == limited.message


def test_rate_limit_with_a_subscription(
    claude_bin: Path, fake_model: FakeModel, repo: Path
) -> None:
    """Logged in with a subscription (an OAuth token), Claude Code does not retry a 429, and
    reports the reset time from the `anthropic-ratelimit-unified-reset` header."""
    fake_model.add(rate_limited(RESET_AT))
    subscription = {"ANTHROPIC_API_KEY": None, "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-fake"}
    process, events = run_claude(claude_bin, fake_model, repo, env=subscription)
    assert process.returncode == 1
    assert len(fake_model.main_requests) == 1
    assert fake_model.main_requests[0].headers["authorization"] == "Bearer sk-ant-oat01-fake"
    event, message = only(events, RateLimit)
    assert event.resets_at == RESET_AT * 1000
    # The error message that follows names the reset time only in words.
    assert message.resets_at is None
    assert message.message.startswith("You've hit your session limit · resets ")
    result = events[-1]
    assert isinstance(result, Result)
    assert result.is_error


def test_rate_limit_retried(claude_bin: Path, fake_model: FakeModel, repo: Path) -> None:
    """Each retry is reported (system/api_retry) and is a new request that takes a turn."""
    fake_model.add(rate_limited(RESET_AT, retry_after=0), Reply("Recovered."))
    process, events = run_claude(claude_bin, fake_model, repo, env={"CLAUDE_CODE_MAX_RETRIES": "1"})
    assert process.returncode == 0, process.stderr
    assert len(fake_model.main_requests) == 2
    [retry] = only(events, RateLimit)
    assert "retry 1/1" in retry.message
    assert events[-2:-1] == [Text("Recovered.")]
    result = events[-1]
    assert isinstance(result, Result)
    assert not result.is_error


def test_side_requests_do_not_take_turns(
    claude_bin: Path, fake_model: FakeModel, repo: Path
) -> None:
    """Without CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC the CLI also asks for a session title
    (no tools, a JSON schema answer); the fake answers it aside from the script."""
    fake_model.add(Reply("The main answer."))
    process, events = run_claude(
        claude_bin,
        fake_model,
        repo,
        env={"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": None},
    )
    assert process.returncode == 0, process.stderr
    side = [r for r in fake_model.requests if r.path.startswith("/v1/messages") and not r.main]
    assert side, "expected the title request"
    assert all(isinstance(r.body, dict) and not r.body.get("tools") for r in side)
    assert [r.method for r in fake_model.requests if not r.path.startswith("/v1/")] == ["HEAD"]
    result = events[-1]
    assert isinstance(result, Result)
    assert result.text == "The main answer."


async def test_a_held_reply_keeps_the_agent_waiting(
    claude_bin: Path, fake_model: FakeModel, repo: Path
) -> None:
    """From async code too: the agent waits on a held reply until the test releases it."""
    fake_model.add(Hold(Reply("Late answer.")))
    process = await asyncio.create_subprocess_exec(
        *claude_command(claude_bin),
        cwd=repo,
        env=environment(fake_model, repo, None),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await fake_model.until(lambda requests: any(r.main for r in requests))
        assert process.returncode is None
        fake_model.release()
        stdout, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    result = [e for line in stdout.decode().splitlines() for e in parse_claude_line(line)][-1]
    assert isinstance(result, Result)
    assert result.text == "Late answer."


def test_session_flags(claude_bin: Path, fake_model: FakeModel, repo: Path) -> None:
    """--model, --append-system-prompt, --mcp-config and --max-turns, as huskies uses them."""
    fake_model.add(tool("Write", file_path=str(repo / "a.txt"), content="a\n"), Reply("Unused."))
    process, events = run_claude(
        claude_bin,
        fake_model,
        repo,
        "--permission-mode",
        "acceptEdits",
        "--model",
        "claude-sonnet-5",
        "--append-system-prompt",
        "You are working on story 12.",
        "--mcp-config",
        '{"mcpServers": {"broken": {"command": "false"}}}',
        "--strict-mcp-config",
        "--max-turns",
        "1",
    )
    assert process.returncode == 1
    [request] = fake_model.main_requests  # the turn limit stopped it before a second call
    assert isinstance(request.body, dict)
    assert request.body["model"] == "claude-sonnet-5"
    assert "You are working on story 12." in str(request.body["system"])
    started = events[0]
    assert isinstance(started, SessionStarted)
    assert started.model == "claude-sonnet-5"
    assert started.mcp_servers == (("broken", "failed"),)
    assert (repo / "a.txt").read_text() == "a\n"  # the tool of that one turn did run
    result = events[-1]
    assert isinstance(result, Result)
    assert result.is_error
    assert result.text == "Reached maximum number of turns (1)"


def test_budget_limit(claude_bin: Path, fake_model: FakeModel, repo: Path) -> None:
    """--max-budget-usd is checked after each model call: the call that crosses it is paid
    for, but the tools it asked for are not run."""
    fake_model.add(
        tool("Write", file_path=str(repo / "a.txt"), content="a\n"),
        tool("Write", file_path=str(repo / "b.txt"), content="b\n"),
    )
    # claude-sonnet-5 costs $3 / $15 per million tokens: each call is 1200 in, 80 out.
    process, events = run_claude(
        claude_bin,
        fake_model,
        repo,
        "--permission-mode",
        "acceptEdits",
        "--model",
        "claude-sonnet-5",
        "--max-budget-usd",
        "0.005",
    )
    assert process.returncode == 1
    assert len(fake_model.main_requests) == 2
    assert (repo / "a.txt").exists()
    assert not (repo / "b.txt").exists()
    result = events[-1]
    assert isinstance(result, Result)
    assert result.is_error
    assert result.text == "Reached maximum budget ($0.005)"
    assert result.cost_usd == pytest.approx(2 * (1200 * 3 + 80 * 15) / 1e6)
