"""How each runtime is started: the argv, environment and output parser for one agent run.

`claude-code` and `codex` run in their structured output modes, so huskies reads events rather
than scraping a terminal; `command` runs any program with the placeholders filled in. Every
runtime gets the same HUSKIES_* environment, so a script can find the server and its item.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from huskies.agents.events import parse_claude_line, parse_codex_line, parse_command_line
from huskies.agents.supervisor import LaunchSpec, SpawnError
from huskies.config import AgentConfig
from huskies.project import open_private

CLAUDE_ENV = "HUSKIES_CLAUDE"
CODEX_ENV = "HUSKIES_CODEX"
PERMISSION_TOOL = "mcp__huskies__prompt_permission"


@dataclass(frozen=True, slots=True)
class RunContext:
    """What one run is about: the values of the prompt placeholders, and where the server is."""

    story_id: str
    number: int
    title: str
    worktree: Path
    branch: str
    base_branch: str
    server_url: str
    """The server's base URL, e.g. http://127.0.0.1:3000."""
    agent_token: str
    """This run's own token: the MCP server binds tools called with it to this item."""

    def placeholders(self) -> dict[str, str]:
        return {
            "story_id": self.story_id,
            "number": str(self.number),
            "title": self.title,
            "worktree": str(self.worktree),
            "branch": self.branch,
            "base_branch": self.base_branch,
        }


def fill(template: str, context: RunContext) -> str:
    """A prompt or argument with its placeholders filled in (checked when the config loaded)."""
    return template.format_map(context.placeholders())


def launch_spec(
    agent: AgentConfig,
    context: RunContext,
    run_dir: Path,
    *,
    prompt: str | None = None,
    base_env: Mapping[str, str] | None = None,
) -> LaunchSpec:
    """How to run `agent` for `context`. `prompt` replaces the configured one (a commit-only
    respawn asks for less); `run_dir` receives files the run needs, such as its MCP config."""
    task = prompt if prompt is not None else fill(agent.prompt, context)
    env = {**(os.environ if base_env is None else base_env), **_huskies_env(context, task)}
    env.update(agent.env)
    _add_git_config(env, AGENT_GIT_CONFIG)
    if agent.runtime == "claude-code":
        argv = _claude_argv(agent, context, task, run_dir)
        env.setdefault("DISABLE_TELEMETRY", "1")
        env.setdefault("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        parse = parse_claude_line
    elif agent.runtime == "codex":
        argv = _codex_argv(agent, context, task)
        parse = parse_codex_line
    else:
        assert agent.argv is not None  # the config requires argv for "command"
        argv = [fill(arg, context) for arg in agent.argv]
        parse = parse_command_line
    return LaunchSpec(
        argv=tuple(argv),
        cwd=context.worktree,
        env=env,
        parse=parse,
        inactivity_timeout_s=float(agent.inactivity_timeout_secs),
    )


AGENT_GIT_CONFIG = {"safe.bareRepository": "explicit"}
"""Git settings every agent's git gets. git takes any directory that looks like a bare
repository for one, and an agent can make one of ordinary files (whose config names a program
to run), `cd` into it, and have a plain `git diff` run that program: bare repositories only
when named (`--git-dir`, `GIT_DIR`)."""


def _add_git_config(env: dict[str, str], settings: Mapping[str, str]) -> None:
    """Add `settings` to those git takes from the environment (GIT_CONFIG_COUNT and its
    GIT_CONFIG_KEY_n/GIT_CONFIG_VALUE_n pairs), after any already there."""
    given = env.get("GIT_CONFIG_COUNT", "")
    count = int(given) if given.isdigit() else 0
    for key, value in settings.items():
        env[f"GIT_CONFIG_KEY_{count}"] = key
        env[f"GIT_CONFIG_VALUE_{count}"] = value
        count += 1
    env["GIT_CONFIG_COUNT"] = str(count)


def mcp_config(context: RunContext) -> dict[str, object]:
    """The MCP client config that points an agent at this server with its own token."""
    return {
        "mcpServers": {
            "huskies": {
                "type": "http",
                "url": f"{context.server_url}/mcp",
                "headers": {"Authorization": f"Bearer {context.agent_token}"},
            }
        }
    }


def _huskies_env(context: RunContext, prompt: str) -> dict[str, str]:
    return {
        "HUSKIES_SERVER": context.server_url,
        "HUSKIES_AGENT_TOKEN": context.agent_token,
        "HUSKIES_ITEM_ID": context.story_id,
        "HUSKIES_NUMBER": str(context.number),
        "HUSKIES_TITLE": context.title,
        "HUSKIES_WORKTREE": str(context.worktree),
        "HUSKIES_BRANCH": context.branch,
        "HUSKIES_BASE_BRANCH": context.base_branch,
        "HUSKIES_PROMPT": prompt,
    }


def _claude_argv(agent: AgentConfig, context: RunContext, prompt: str, run_dir: Path) -> list[str]:
    config_path = run_dir / "mcp.json"
    # The token is a secret: the file is readable by this user only.
    with open_private(config_path) as file:
        file.write(json.dumps(mcp_config(context), indent=2).encode())
    argv = [
        _program(CLAUDE_ENV, "claude", "npm install -g @anthropic-ai/claude-code"),
        "-p",
        prompt,
        "--output-format",
        "stream-json",
        "--verbose",
        "--max-turns",
        str(agent.max_turns),
        "--max-budget-usd",
        f"{agent.max_budget_usd:g}",
        "--permission-mode",
        "acceptEdits",
        "--mcp-config",
        str(config_path),
        # Tools beyond --allowedTools are asked about here; huskies rules on them with the
        # [[permission]] rules of agents.toml, asking a person when a rule says so.
        "--permission-prompt-tool",
        PERMISSION_TOOL,
    ]
    if agent.model:
        argv += ["--model", agent.model]
    if agent.allowed_tools:
        argv += ["--allowedTools", ",".join(agent.allowed_tools)]
    if agent.system_prompt:
        argv += ["--append-system-prompt", fill(agent.system_prompt, context)]
    return argv


def _codex_argv(agent: AgentConfig, context: RunContext, prompt: str) -> list[str]:
    argv = [
        _program(CODEX_ENV, "codex", "npm install -g @openai/codex"),
        "exec",
        "--json",
        "--full-auto",
        "--cd",
        str(context.worktree),
        "-c",
        f"mcp_servers.huskies.url={json.dumps(context.server_url + '/mcp')}",
    ]
    if agent.model:
        argv += ["--model", agent.model]
    if agent.system_prompt:
        prompt = f"{fill(agent.system_prompt, context)}\n\n{prompt}"
    return [*argv, prompt]


def _program(variable: str, name: str, install: str) -> str:
    """The runtime's executable: $variable if set, else `name` on PATH."""
    configured = os.environ.get(variable)
    if configured:
        return configured
    found = shutil.which(name)
    if found is None:
        raise SpawnError(f"{name!r} is not on PATH; install it ({install}) or set ${variable}")
    return found
