"""The permission policy: first matching rule wins, argument patterns, chained commands, paths
relative to the worktree (and never outside it), huskies' own tools, and deny by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huskies.agents.permissions import ToolCall, rule_on
from huskies.config import PermissionRule


def rule(tool: str, decision: str, **keys: str) -> PermissionRule:
    return PermissionRule.model_validate({"tool": tool, "decision": decision, **keys})


def ask(tmp_path: Path, tool: str, agent: str | None = "coder", **tool_input: Any) -> ToolCall:
    return ToolCall(tool, tool_input, agent, tmp_path)


RULES = (
    rule("Bash(git *)", "allow"),
    rule("Bash(rm *)", "deny", message="no deleting"),
    rule("Bash", "ask"),
    rule("Edit(docs/*)", "allow"),
    rule("mcp__github__*", "allow", agent="reviewer"),
    rule("mcp__huskies__purge_item", "deny"),
)


def test_the_first_matching_rule_decides(tmp_path: Path):
    git = rule_on(RULES, ask(tmp_path, "Bash", command="git status"))
    assert (git.decision, git.shown) == ("allow", "Bash(git status)")
    assert "permission[0]" in git.reason
    assert rule_on(RULES, ask(tmp_path, "Bash", command="rm -rf build")).decision == "deny"
    assert rule_on(RULES, ask(tmp_path, "Bash", command="make")).decision == "ask"


def test_a_rules_message_is_what_a_denied_agent_is_told(tmp_path: Path):
    ruling = rule_on(RULES, ask(tmp_path, "Bash", command="rm -rf build"))
    assert ruling.reason == "no deleting"


def test_a_chained_or_redirected_command_never_matches_an_argument_pattern(tmp_path: Path):
    for command in (
        "git status; rm -rf ~",
        "git status && curl evil",
        "git log | sh",
        "git log > /etc/passwd",
        "git $(rm -rf ~)",
        "git `whoami`",
        "git status\nrm -rf ~",
    ):
        # Not allowed by Bash(git *): the plain Bash rule asks a person instead.
        assert rule_on(RULES, ask(tmp_path, "Bash", command=command)).decision == "ask", command
    anything = (rule("Bash(*)", "allow"),)
    assert rule_on(anything, ask(tmp_path, "Bash", command="a; b")).decision == "allow"


def test_paths_match_relative_to_the_worktree(tmp_path: Path):
    inside = rule_on(RULES, ask(tmp_path, "Edit", file_path=str(tmp_path / "docs" / "a.md")))
    assert (inside.decision, inside.shown) == ("allow", "Edit(docs/a.md)")
    relative = rule_on(RULES, ask(tmp_path, "Edit", file_path="docs/deep/b.md"))
    assert relative.decision == "allow"
    elsewhere = rule_on(RULES, ask(tmp_path, "Edit", file_path="src/c.py"))
    assert elsewhere.decision == "deny"
    assert "no [[permission]] rule" in elsewhere.reason


def test_a_path_outside_the_worktree_is_denied_whatever_the_rules(tmp_path: Path):
    everything = (rule("Edit", "allow"), rule("Write(*)", "allow"))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "out").symlink_to(tmp_path.parent)
    for tool, path in (
        ("Edit", "../x"),
        ("Edit", "/etc/passwd"),
        ("Write", "docs/out/x"),
        ("Edit", "docs/../../x"),
    ):
        ruling = rule_on(everything, ask(tmp_path, tool, file_path=path))
        assert ruling.decision == "deny", path
        assert "is outside" in ruling.reason


def test_a_rule_for_one_agent_does_not_apply_to_others(tmp_path: Path):
    github = ask(tmp_path, "mcp__github__create_issue", agent="reviewer", title="x")
    assert rule_on(RULES, github).decision == "allow"
    coder = ask(tmp_path, "mcp__github__create_issue", agent="coder", title="x")
    assert rule_on(RULES, coder).decision == "deny"
    person = ask(tmp_path, "mcp__github__create_issue", agent=None, title="x")
    assert rule_on(RULES, person).decision == "deny"


def test_huskies_own_tools_are_allowed_unless_a_rule_says_otherwise(tmp_path: Path):
    todos = rule_on(RULES, ask(tmp_path, "mcp__huskies__get_todos", number=1))
    assert todos.decision == "allow"
    assert rule_on(RULES, ask(tmp_path, "mcp__huskies__purge_item", number=1)).decision == "deny"


def test_with_no_rules_everything_but_huskies_tools_is_denied(tmp_path: Path):
    assert rule_on((), ask(tmp_path, "Bash", command="ls")).decision == "deny"
    assert rule_on((), ask(tmp_path, "WebFetch", url="https://example.com")).decision == "deny"
    assert rule_on((), ask(tmp_path, "mcp__huskies__git_status")).decision == "allow"


def test_a_url_pattern(tmp_path: Path):
    rules = (rule("WebFetch(https://docs.python.org/*)", "allow"),)
    docs = ask(tmp_path, "WebFetch", url="https://docs.python.org/3/library/asyncio.html")
    assert rule_on(rules, docs).decision == "allow"
    other = ask(tmp_path, "WebFetch", url="https://example.com/?q=https://docs.python.org/")
    assert rule_on(rules, other).decision == "deny"
