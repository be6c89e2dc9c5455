"""How each runtime is launched: argv, environment, the MCP config and a missing program."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from huskies.agents.events import parse_claude_line, parse_codex_line, parse_command_line
from huskies.agents.runtimes import RunContext, launch_spec, mcp_config
from huskies.agents.supervisor import SpawnError
from huskies.config import AgentConfig


def agent(**fields: object) -> AgentConfig:
    values: dict[str, object] = {
        "name": "a",
        "stage": "coder",
        "runtime": "command",
        "prompt": "Work on #{number} {title} in {worktree} on {branch} (base {base_branch})",
        **fields,
    }
    if values["runtime"] == "command" and "argv" not in values:
        values["argv"] = ("./agent.sh", "--item", "{number}", "{story_id}")
    return AgentConfig.model_validate(values)


@pytest.fixture
def context(tmp_path: Path) -> RunContext:
    return RunContext(
        story_id="ab" * 32 + ".0",
        number=7,
        title="Add login",
        worktree=tmp_path / "wt",
        branch="feature/story-7",
        base_branch="main",
        server_url="http://127.0.0.1:3000",
        agent_token="secret-token",
    )


def test_command_fills_the_placeholders_and_gets_the_huskies_environment(context, tmp_path):
    spec = launch_spec(agent(env={"EXTRA": "1"}), context, tmp_path / "run", base_env={})
    assert spec.argv == ("./agent.sh", "--item", "7", "ab" * 32 + ".0")
    assert spec.cwd == context.worktree
    assert spec.parse is parse_command_line
    assert spec.inactivity_timeout_s == 600
    assert spec.env == {
        "HUSKIES_SERVER": "http://127.0.0.1:3000",
        "HUSKIES_AGENT_TOKEN": "secret-token",
        "HUSKIES_ITEM_ID": "ab" * 32 + ".0",
        "HUSKIES_NUMBER": "7",
        "HUSKIES_TITLE": "Add login",
        "HUSKIES_WORKTREE": str(context.worktree),
        "HUSKIES_BRANCH": "feature/story-7",
        "HUSKIES_BASE_BRANCH": "main",
        "HUSKIES_PROMPT": f"Work on #7 Add login in {context.worktree} on feature/story-7 "
        "(base main)",
        "EXTRA": "1",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "safe.bareRepository",
        "GIT_CONFIG_VALUE_0": "explicit",
    }


def test_a_replacement_prompt_wins(context, tmp_path):
    spec = launch_spec(agent(), context, tmp_path / "run", prompt="just commit", base_env={})
    assert spec.env["HUSKIES_PROMPT"] == "just commit"


def test_claude_code_runs_in_stream_json_with_its_limits_and_an_mcp_config(
    context, tmp_path, monkeypatch
):
    monkeypatch.setenv("HUSKIES_CLAUDE", "/opt/claude")
    claude = agent(
        runtime="claude-code",
        model="sonnet",
        max_turns=12,
        max_budget_usd=1.5,
        allowed_tools=("Write", "Bash(git *)"),
        system_prompt="You work on {branch}.",
    )
    spec = launch_spec(claude, context, tmp_path / "run", base_env={"PATH": "/bin"})
    config_path = tmp_path / "run" / "mcp.json"
    assert list(spec.argv) == [
        "/opt/claude",
        "-p",
        spec.env["HUSKIES_PROMPT"],
        "--output-format",
        "stream-json",
        "--verbose",
        "--max-turns",
        "12",
        "--max-budget-usd",
        "1.5",
        "--permission-mode",
        "acceptEdits",
        "--mcp-config",
        str(config_path),
        "--permission-prompt-tool",
        "mcp__huskies__prompt_permission",
        "--model",
        "sonnet",
        "--allowedTools",
        "Write,Bash(git *)",
        "--append-system-prompt",
        "You work on feature/story-7.",
    ]
    assert spec.parse is parse_claude_line
    assert spec.env["DISABLE_TELEMETRY"] == "1"
    assert spec.env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    # The run's token is a secret: its config is readable by this user only.
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert json.loads(config_path.read_text()) == mcp_config(context)
    assert mcp_config(context)["mcpServers"] == {
        "huskies": {
            "type": "http",
            "url": "http://127.0.0.1:3000/mcp",
            "headers": {"Authorization": "Bearer secret-token"},
        }
    }


def test_codex_runs_exec_json_in_the_worktree(context, tmp_path, monkeypatch):
    monkeypatch.setenv("HUSKIES_CODEX", "/opt/codex")
    spec = launch_spec(
        agent(runtime="codex", model="gpt-5", system_prompt="Be brief."),
        context,
        tmp_path / "run",
        base_env={},
    )
    assert list(spec.argv) == [
        "/opt/codex",
        "exec",
        "--json",
        "--full-auto",
        "--cd",
        str(context.worktree),
        "-c",
        'mcp_servers.huskies.url="http://127.0.0.1:3000/mcp"',
        "--model",
        "gpt-5",
        f"Be brief.\n\n{spec.env['HUSKIES_PROMPT']}",
    ]
    assert spec.parse is parse_codex_line


def test_a_runtime_that_is_not_installed_says_how_to_install_it(context, tmp_path, monkeypatch):
    monkeypatch.delenv("HUSKIES_CLAUDE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SpawnError, match=r"'claude' is not on PATH; install it \(npm install"):
        launch_spec(agent(runtime="claude-code"), context, tmp_path / "run")


def test_git_settings_given_in_the_environment_are_kept(context, tmp_path):
    given = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "user.name", "GIT_CONFIG_VALUE_0": "A"}
    env = launch_spec(agent(), context, tmp_path / "run", base_env=given).env
    assert (env["GIT_CONFIG_COUNT"], env["GIT_CONFIG_KEY_0"], env["GIT_CONFIG_VALUE_0"]) == (
        "2",
        "user.name",
        "A",
    )
    assert (env["GIT_CONFIG_KEY_1"], env["GIT_CONFIG_VALUE_1"]) == (
        "safe.bareRepository",
        "explicit",
    )


def test_an_agents_git_does_not_take_a_directory_it_made_for_a_repository(context, tmp_path):
    """An agent can write a bare repository's files (whose config names a program to run) and
    `cd` there. git's own default runs the program on a plain `git diff`; with the agent's
    environment git refuses to use the directory at all."""
    source = tmp_path / "source"
    source.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=source, check=True)
    for text in ("one", "two"):
        (source / "file").write_text(text)
        subprocess.run(["git", "add", "file"], cwd=source, check=True)
        who = ["-c", "user.name=T", "-c", "user.email=t@e"]
        subprocess.run(["git", *who, "commit", "-q", "-m", text], cwd=source, check=True)
    fake = tmp_path / "worktree" / "fake"
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(fake)], check=True)
    ran = tmp_path / "ran"
    with (fake / "config").open("a") as config:
        config.write(f"[diff]\n\texternal = touch {ran}\n")

    def diff(env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
        command = ["git", "diff", "HEAD~1", "HEAD"]
        return subprocess.run(command, cwd=fake, env=env, capture_output=True, text=True)

    base = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    diff(base)
    assert ran.exists()  # the attack works with git's own default
    ran.unlink()
    guarded = diff(launch_spec(agent(), context, tmp_path / "run", base_env=base).env)
    assert guarded.returncode != 0
    assert not ran.exists()
