"""The real Claude Code CLI using huskies' MCP tools, offline: its init event reports the huskies
server connected with our tools, the tool calls the fake model makes take effect, and its
permission prompts (whole compound commands, or none; every write to git's own files) go
through `prompt_permission`."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

import huskies.services.permissions
from huskies.agents.events import SessionStarted
from huskies.agents.permissions import Ruling, ToolCall, rule_on
from huskies.agents.plain_git import GITS_OWN
from huskies.config import PermissionRule
from huskies.pipeline.gates import read_gate_reports
from huskies.project import Project
from huskies.server import running
from huskies.services.permissions import PERMISSION_REQUEST

from ..services.agent_rig import make_repo
from .fake_model import FakeModel, Reply, claude_agent_toml, tool

GATE = '\n[[component]]\nname = "all"\n[component.gates.hello]\ncommand = "test -f hello.txt"\n'
BODY = "Say hello.\n\n- [ ] hello.txt exists\n- [ ] the gates pass\n"


@pytest.fixture
def use_claude(claude_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUSKIES_CLAUDE", str(claude_bin))


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[ToolCall, Ruling]]:
    """What huskies is asked, and how its policy rules, call by call."""
    calls: list[tuple[ToolCall, Ruling]] = []

    def recording(rules: tuple[PermissionRule, ...], call: ToolCall) -> Ruling:
        ruling = rule_on(rules, call)
        calls.append((call, ruling))
        return ruling

    monkeypatch.setattr(huskies.services.permissions, "rule_on", recording)
    return calls


@pytest.mark.usefixtures("use_claude")
async def test_claude_code_checks_a_criterion_and_runs_the_gates_through_mcp(
    tmp_path: Path, fake_model: FakeModel
):
    project = make_repo(tmp_path / "repo")
    project.project_toml.write_text(project.project_toml.read_text() + GATE)
    tools = ("Write", "mcp__huskies__check_criterion", "mcp__huskies__run_tests")
    project.agents_toml.write_text(claude_agent_toml(fake_model, tmp_path / "home", tools=tools))
    worktree = project.root / ".huskies" / "worktrees" / "1-say-hello"
    fake_model.add(
        tool("Write", file_path=str(worktree / "hello.txt"), content="hello\n"),
        tool("mcp__huskies__check_criterion", number=1, index=0),
        tool("mcp__huskies__run_tests", number=1, wait_s=60),
        Reply("hello.txt is there and the gates pass."),
    )
    async with running(project, project.config(), "127.0.0.1", 0, heartbeat_s=3600) as server:
        board = server.services.board
        agents = server.services.agents
        assert agents is not None
        await board.create("Say hello", body=BODY)
        run = await agents.start(1)
        assert run is not None
        async with asyncio.timeout(90):
            await run.finished.wait()
        assert run.process is not None
        events = [stamped.event for stamped in run.process.events]

        (session,) = [e for e in events if isinstance(e, SessionStarted)]
        assert ("huskies", "connected") in session.mcp_servers
        assert {"mcp__huskies__check_criterion", "mcp__huskies__run_tests"} <= set(session.tools)

        results = fake_model.tool_results()
        assert len(results) == 3
        assert not any(result.get("is_error") for result in results), results
        # The criterion is checked in the item's body...
        assert board.get(1).body == BODY.replace("- [ ] hello.txt", "- [x] hello.txt")
        # ...and the gates ran in the agent's worktree, on the server, and passed.
        reports, _ = read_gate_reports(server.services.replica.document, board.get(1).id)
        assert reports
        assert reports[-1].where == "worktree"
        assert reports[-1].passed
        assert "pass" in json.dumps(results[2]).lower()


PERMISSIONS = """
[[permission]]
tool = "Bash(git tag allowed)"
decision = "allow"

[[permission]]
tool = "Bash(git tag asked)"
decision = "ask"
"""


@pytest.mark.usefixtures("use_claude")
async def test_claude_codes_permission_prompts_go_through_prompt_permission(
    tmp_path: Path, fake_model: FakeModel
):
    project = make_repo(tmp_path / "repo")
    # Bash is not among the allowed tools, so Claude Code asks huskies before each command
    # that its own permission mode does not accept (acceptEdits accepts touch, mkdir and the
    # like, so the commands here are git's).
    agents = claude_agent_toml(fake_model, tmp_path / "home", tools=("Write",)) + PERMISSIONS
    project.agents_toml.write_text(agents)
    fake_model.add(
        tool("Bash", command="git tag allowed"),
        tool("Bash", command="git tag asked"),
        tool("Bash", command="git tag denied"),
        Reply("Two tags made, one refused."),
    )
    async with running(project, project.config(), "127.0.0.1", 0, heartbeat_s=3600) as server:
        services = server.services
        assert services.agents is not None
        assert services.permissions is not None
        await services.board.create("Touch files")
        with services.hub.subscribe({PERMISSION_REQUEST}) as requests:
            run = await services.agents.start(1)
            assert run is not None
            async with asyncio.timeout(90):
                request = await requests.get()
                # A person allows the asked one, as the board's Allow button does.
                assert (request.data["tool"], request.data["number"]) == (
                    "Bash(git tag asked)",
                    1,
                )
                services.permissions.answer(request.data["id"], allow=True)
                await run.finished.wait()
        tags = subprocess.run(
            ["git", "tag", "--list"], cwd=project.root, capture_output=True, text=True, check=True
        ).stdout.split()
        assert tags == ["allowed", "asked"]
        results = fake_model.tool_results()
        assert len(results) == 3
        assert [bool(result.get("is_error")) for result in results] == [False, False, True]
        assert "no [[permission]] rule in agents.toml allows Bash(git tag denied)" in json.dumps(
            results[2]
        )


async def run_one_item(project: Project, title: str) -> None:
    """Serve `project`, add one item titled `title`, and run its coder until it ends."""
    async with running(project, project.config(), "127.0.0.1", 0, heartbeat_s=3600) as server:
        services = server.services
        assert services.agents is not None
        await services.board.create(title)
        run = await services.agents.start(1)
        assert run is not None
        async with asyncio.timeout(90):
            await run.finished.wait()


GIT_ALLOWED = """
[[permission]]
tool = "Bash(git *)"
decision = "allow"
"""


@pytest.mark.usefixtures("use_claude")
async def test_claude_code_asks_about_a_compound_command_whole_or_not_at_all(
    tmp_path: Path, fake_model: FakeModel, asked: list[tuple[ToolCall, Ruling]]
):
    project = make_repo(tmp_path / "repo")
    agents = claude_agent_toml(fake_model, tmp_path / "home", tools=("Write",)) + GIT_ALLOWED
    project.agents_toml.write_text(agents)
    fake_model.add(
        tool("Bash", command="git status & id"),
        tool("Bash", command="git status && git tag chained"),
        tool("Bash", command="git status && id"),
        tool("Bash", command="git log -1 --format=%h > head.txt"),
        tool("Bash", command="git tag plain"),
        Reply("One tag made."),
    )
    await run_one_item(project, "Compound commands")

    # Claude Code asks about a compound command once, with the whole command (it does not
    # split it and ask about each part)...
    assert [(call.tool_input["command"], ruling.decision) for call, ruling in asked] == [
        ("git status & id", "deny"),
        ("git status && git tag chained", "deny"),
        ("git tag plain", "allow"),
    ]
    background = asked[0][1].reason
    assert "permission[0] (Bash(git *) → allow) did not apply because `&` runs" in background
    # ...and what huskies denies does not run: no `id` output, no tag "chained".
    results = [json.dumps(result) for result in fake_model.tool_results()]
    assert len(results) == 5
    assert "did not apply because `&` runs" in results[0]
    assert "uid=" not in results[0]
    assert "did not apply because `&&` runs another command" in results[1]
    tags = subprocess.run(
        ["git", "tag", "--list"], cwd=project.root, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tags == ["plain"]
    # But a compound of commands Claude Code holds to be read-only (`git status`, `id`) it runs
    # itself without asking anyone, so no [[permission]] rule ever sees it; and so it does with
    # a redirection into a file in its working directory.
    assert "uid=" in results[2]
    assert '"is_error": false' in results[3]


FILES_ALLOWED = """
[[permission]]
tool = "Edit"
decision = "allow"

[[permission]]
tool = "Write"
decision = "allow"
"""


@pytest.mark.parametrize("allowed_tools", [(), ("Write", "Edit")])
@pytest.mark.usefixtures("use_claude")
async def test_claude_code_asks_before_writing_gits_own_files_and_huskies_denies(
    tmp_path: Path,
    fake_model: FakeModel,
    asked: list[tuple[ToolCall, Ruling]],
    allowed_tools: tuple[str, ...],
):
    project = make_repo(tmp_path / "repo")
    agents = claude_agent_toml(fake_model, tmp_path / "home", tools=allowed_tools)
    project.agents_toml.write_text(agents + FILES_ALLOWED)
    worktree = project.root / ".huskies" / "worktrees" / "1-dot-git"
    dot_git = worktree / ".git"
    fake_model.add(
        tool("Read", file_path=str(dot_git)),  # Claude Code writes no file it has not read
        tool("Write", file_path=str(dot_git), content=f"gitdir: {worktree}/evil\n"),
        tool("Edit", file_path=str(dot_git), old_string="gitdir: ", new_string="gitdir:  "),
        tool("Write", file_path=str(worktree / "sub/.git/config"), content="[core]\n"),
        tool("Write", file_path=str(worktree / "notes.txt"), content="notes\n"),
        Reply("Tried git's own files."),
    )
    await run_one_item(project, "Dot git")

    # In acceptEdits mode, and with Write and Edit among its allowed tools too, Claude Code
    # asks before writing a path with a `.git` in it; it reads one, and writes an ordinary
    # file, without asking. Only huskies' denial keeps the rules' Edit and Write from allowing.
    assert [(ruling.shown, ruling.decision) for _, ruling in asked] == [
        ("Write(.git)", "deny"),
        ("Edit(.git)", "deny"),
        ("Write(sub/.git/config)", "deny"),
    ]
    assert all(GITS_OWN in ruling.reason for _, ruling in asked)
    results = [json.dumps(result) for result in fake_model.tool_results()]
    assert len(results) == 5
    assert [('"is_error": true' in result) for result in results] == [
        False,
        True,
        True,
        True,
        False,
    ]
    assert all(GITS_OWN in result for result in results[1:4])
    # The worktree's .git still names its git directory in the repository, and no other .git
    # was made; the ordinary file was written.
    assert dot_git.read_text() == f"gitdir: {project.root}/.git/worktrees/1-dot-git\n"
    assert not (worktree / "sub").exists()
    assert (worktree / "notes.txt").read_text() == "notes\n"
