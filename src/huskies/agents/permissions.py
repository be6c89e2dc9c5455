"""The permission policy: how the `[[permission]]` rules of agents.toml rule on one tool call.

A runtime asks before a tool call its allowed tools do not cover (Claude Code through its
permission prompt tool). The rules are tried in file order and the first that matches decides;
with none matching, huskies' own MCP tools (bound to the agent's item and worktree by its
token) are allowed and everything else is denied. A file path that leads outside the directory
the agent works in is denied before any rule is tried, and so is one of git's own files inside
it (its `.git`, see `huskies.agents.plain_git.is_gits_own`): an agent that writes git's
configuration or hooks makes the next `git status` (Claude Code's own, or huskies') run its
program. Reading them is denied too: agents learn what they need from git, and the config of a
repository's own checkout can hold credentials (a token in a remote's URL).

An `allow` rule with a command pattern (`Bash(git *)`, anything but `Bash(*)`) allows only a
plain command: one simple command with no shell operator, redirection or expansion (see
`huskies.agents.shell`), and, for git, plain git in the worktree (see
`huskies.agents.plain_git`). For any other command the rule is passed over, and the ruling
says why. `deny` and `ask` rules match the command as written, so `Bash(rm *)` → deny also
catches `rm -rf ~ & true`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePath
from typing import Any

from huskies.agents.plain_git import GITS_OWN, check_plain_git, is_gits_own
from huskies.agents.shell import NotPlain, plain_words
from huskies.config import Decision, PermissionRule

OWN_TOOLS = "mcp__huskies__*"

ARGUMENT_KEYS = ("command", "file_path", "notebook_path", "path", "url", "pattern", "query")
"""Input fields that say what a tool call is about, in the order they are looked for: the first
one present is what a rule's argument pattern is matched against."""

PATH_KEYS = frozenset({"file_path", "notebook_path", "path"})


@dataclass(frozen=True, slots=True)
class ToolCall:
    """What is asked: `tool` with `tool_input`, by agent `agent` (None: a person's client),
    working in `directory`."""

    tool: str
    tool_input: Mapping[str, Any]
    agent: str | None
    directory: Path


@dataclass(frozen=True, slots=True)
class Ruling:
    decision: Decision
    reason: str
    shown: str
    """The call as people read it, e.g. `Bash(git status)`."""


def rule_on(rules: Sequence[PermissionRule], call: ToolCall) -> Ruling:
    key, argument = _argument(call.tool_input)
    if argument is not None and key in PATH_KEYS:
        relative = _inside(call.directory, argument)
        if relative is None:
            return Ruling(
                "deny", f"{argument} is outside {call.directory}", _shown(call.tool, argument)
            )
        if is_gits_own(call.directory.resolve(), argument):
            return Ruling("deny", f"{relative} {GITS_OWN}", _shown(call.tool, relative))
        argument = relative
    shown = _shown(call.tool, argument)
    not_plain = None
    if key == "command" and argument is not None:
        not_plain = why_not_plain(argument, call.directory)
    passed_over: list[str] = []
    for index, rule in enumerate(rules):
        if rule.agent and rule.agent != call.agent:
            continue
        if not _matches(rule, call.tool, argument):
            continue
        said = f"permission[{index}] ({rule.tool} → {rule.decision})"
        if not_plain is not None and _allows_plain_commands_only(rule):
            passed_over.append(said)
            continue
        reason = rule.message or f"{shown}: {said}"
        return Ruling(rule.decision, _noting(reason, passed_over, not_plain), shown)
    if fnmatchcase(call.tool, OWN_TOOLS):
        return Ruling("allow", f"{shown}: huskies' own tools are allowed", shown)
    reason = f"no [[permission]] rule in agents.toml allows {shown}, so it is denied"
    return Ruling("deny", _noting(reason, passed_over, not_plain), shown)


def why_not_plain(command: str, directory: Path) -> str | None:
    """Why `command`, run in `directory`, is not one plain command (None when it is)."""
    try:
        words = plain_words(command)
        if PurePath(words[0]).name == "git":
            check_plain_git(words[1:], directory)
    except NotPlain as refusal:
        return str(refusal)
    return None


def _matches(rule: PermissionRule, tool: str, argument: str | None) -> bool:
    if not fnmatchcase(tool, rule.tool_name):
        return False
    pattern = rule.argument
    if pattern is None:
        return True
    return argument is not None and fnmatchcase(argument, pattern)


def _allows_plain_commands_only(rule: PermissionRule) -> bool:
    """An allow rule with a command pattern allows plain commands only; `*` allows anything,
    and deny or ask rules match however much the command does."""
    return rule.decision == "allow" and rule.argument not in (None, "*")


def _noting(reason: str, passed_over: list[str], not_plain: str | None) -> str:
    """`reason`, with the allow rules that matched the command's text but not its meaning."""
    if not passed_over:
        return reason
    return f"{reason}; {' and '.join(passed_over)} did not apply because {not_plain}"


def _argument(tool_input: Mapping[str, Any]) -> tuple[str | None, str | None]:
    for key in ARGUMENT_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str):
            return key, value
    return None, None


def _inside(directory: Path, path: str) -> str | None:
    """`path` relative to `directory` (symlinks followed), or None when it leads outside (or
    is no path at all: a NUL in it, say)."""
    root = directory.resolve()
    try:
        resolved = (root / path).resolve()
    except (OSError, ValueError):
        return None
    if not resolved.is_relative_to(root):
        return None
    return resolved.relative_to(root).as_posix()


def _shown(tool: str, argument: str | None) -> str:
    return tool if argument is None else f"{tool}({argument})"
