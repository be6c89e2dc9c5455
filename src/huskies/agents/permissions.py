"""The permission policy: how the `[[permission]]` rules of agents.toml rule on one tool call.

A runtime asks before a tool call its allowed tools do not cover (Claude Code through its
permission prompt tool). The rules are tried in file order and the first that matches decides;
with none matching, huskies' own MCP tools (bound to the agent's item and worktree by its
token) are allowed and everything else is denied. A file path that leads outside the directory
the agent works in is denied before any rule is tried.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from huskies.config import Decision, PermissionRule

OWN_TOOLS = "mcp__huskies__*"

ARGUMENT_KEYS = ("command", "file_path", "notebook_path", "path", "url", "pattern", "query")
"""Input fields that say what a tool call is about, in the order they are looked for: the first
one present is what a rule's argument pattern is matched against."""

PATH_KEYS = frozenset({"file_path", "notebook_path", "path"})

CHAINING = re.compile(r";|&&|\|\||\||\$\(|`|<|>|\n")
"""Shell syntax that runs or redirects more than one simple command: `Bash(git *)` must not
allow `git status; rm -rf ~`."""


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
        argument = relative
    shown = _shown(call.tool, argument)
    for index, rule in enumerate(rules):
        if rule.agent and rule.agent != call.agent:
            continue
        if _matches(rule, call.tool, key, argument):
            said = f"permission[{index}] ({rule.tool} → {rule.decision})"
            return Ruling(rule.decision, rule.message or f"{shown}: {said}", shown)
    if fnmatchcase(call.tool, OWN_TOOLS):
        return Ruling("allow", f"{shown}: huskies' own tools are allowed", shown)
    return Ruling(
        "deny",
        f"no [[permission]] rule in agents.toml allows {shown}, so it is denied",
        shown,
    )


def _matches(rule: PermissionRule, tool: str, key: str | None, argument: str | None) -> bool:
    if not fnmatchcase(tool, rule.tool_name):
        return False
    pattern = rule.argument
    if pattern is None:
        return True
    if argument is None:
        return False
    if key == "command" and pattern != "*" and CHAINING.search(argument):
        return False
    return fnmatchcase(argument, pattern)


def _argument(tool_input: Mapping[str, Any]) -> tuple[str | None, str | None]:
    for key in ARGUMENT_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str):
            return key, value
    return None, None


def _inside(directory: Path, path: str) -> str | None:
    """`path` relative to `directory` (symlinks followed), or None when it leads outside."""
    root = directory.resolve()
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        return None
    return resolved.relative_to(root).as_posix()


def _shown(tool: str, argument: str | None) -> str:
    return tool if argument is None else f"{tool}({argument})"
