"""`huskies demo`: the sample project, the scripted demo agent on each sample item (run for real
against a real server, in real git worktrees, with the real gate command), and the whole demo
as a subprocess."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from huskies.agents.runtimes import RunContext, launch_spec
from huskies.demo import serve_demo
from huskies.demo_agent import Attempt, DemoAgentError, parse_script, script_block
from huskies.demo_project import (
    BASE_BRANCH,
    CODERS,
    ITEMS,
    SAMPLE_FILES,
    DemoError,
    add_sample_items,
    agents_toml,
    create_sample_project,
)
from huskies.pipeline import Archived, ArchiveReason, Done, ItemKind, WorkItem
from huskies.project import Project
from huskies.server import Running, running
from huskies.services.stories import Board
from huskies.store import Replica
from huskies.store.replica import wall_clock_ms

DEADLINE_S = 60


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


@dataclass
class Finished:
    code: int
    output: str


async def run_command(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> Finished:
    """A real process, awaited without blocking the loop (the server runs on it)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(DEADLINE_S):
        output, _ = await process.communicate()
    assert process.returncode is not None
    return Finished(process.returncode, output.decode())


async def run_gate(project: Project, directory: Path) -> Finished:
    """The sample project's one gate, as configured, in `directory`."""
    (component,) = project.config().components
    return await run_command("/bin/sh", "-c", component.gates["tests"].command, cwd=directory)


@pytest.fixture
def sample(tmp_path: Path) -> Project:
    return create_sample_project(tmp_path / "calc")


@pytest.fixture
async def server(sample: Project) -> AsyncIterator[Running]:
    async with running(sample, sample.config(), "127.0.0.1", 0) as handle:
        yield handle


def add_worktree(project: Project, number: int, start: str = BASE_BRANCH) -> Path:
    """Item `number`'s branch and worktree, made with plain git, as huskies would name them."""
    path = project.root.parent / f"worktree-{number}"
    git(project.root, "worktree", "add", "-q", "-b", f"feature/story-{number}", str(path), start)
    return path


async def run_agent(server: Running, item: WorkItem, worktree: Path, prompt: str = "") -> Finished:
    """The demo's configured coder on `item`: its argv and the environment huskies gives it."""
    project = server.services.project
    agent = project.agents().agents[0]
    context = RunContext(
        story_id=item.id,
        number=item.number,
        title=item.title,
        worktree=worktree,
        branch=git(worktree, "branch", "--show-current"),
        base_branch=BASE_BRANCH,
        server_url=f"http://127.0.0.1:{server.port}",
        agent_token="unused",
    )
    spec = launch_spec(agent, context, project.dir / "runs" / "test", prompt=prompt or None)
    return await run_command(*spec.argv, cwd=spec.cwd, env=dict(spec.env))


def commits_since_base(worktree: Path) -> list[str]:
    return git(worktree, "log", "--reverse", "--format=%s", f"{BASE_BRANCH}..HEAD").splitlines()


def changed_since_base(worktree: Path) -> set[str]:
    return set(git(worktree, "diff", "--name-only", f"{BASE_BRANCH}...HEAD").splitlines())


def finished(item: WorkItem | None) -> bool:
    return item is not None and (
        isinstance(item.stage, Done)
        or (isinstance(item.stage, Archived) and item.stage.reason is ArchiveReason.COMPLETED)
    )


# ---- the sample project ------------------------------------------------------------------


async def test_the_sample_project_is_a_committed_repository_set_up_for_the_demo(sample: Project):
    config = sample.config()
    assert config.default_qa == "server"
    assert config.archive_after == "4h"  # the default: done items stay on the board
    assert config.max_coders == len(CODERS) == 2
    (component,) = config.components
    assert component.path == "."
    assert list(component.gates) == ["tests"]
    assert component.gates["tests"].command.startswith(f"{sys.executable} -m unittest")
    agents = sample.agents().agents
    assert [agent.name for agent in agents] == list(CODERS)
    for agent in agents:
        assert (agent.stage, agent.runtime) == ("coder", "command")
        assert agent.argv == (sys.executable, "-m", "huskies.demo_agent")
    assert git(sample.root, "branch", "--show-current") == BASE_BRANCH
    assert git(sample.root, "status", "--porcelain") == ""
    assert git(sample.root, "config", "--local", "user.email") == "demo@huskies.invalid"
    tracked = set(git(sample.root, "ls-files").splitlines())
    assert set(SAMPLE_FILES) | {".huskies/project.toml", ".huskies/agents.toml"} <= tracked
    for path, text in SAMPLE_FILES.items():
        assert (sample.root / path).read_text() == text
    # Its unit tests pass before any work, with the standard library alone.
    gate = await run_gate(sample, sample.root)
    assert gate.code == 0, gate.output
    assert "Ran 3 tests" in gate.output


@pytest.mark.parametrize("contents", ["a file", "a directory with a file"])
def test_a_directory_in_use_is_refused_and_left_alone(tmp_path: Path, contents: str):
    target = tmp_path / "taken"
    if contents == "a file":
        target.write_text("mine\n")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("mine\n")
    with pytest.raises(DemoError, match="not an empty directory; give --dir a new path"):
        create_sample_project(target)
    if contents == "a file":
        assert target.read_text() == "mine\n"
    else:
        assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_an_empty_directory_is_used(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    project = create_sample_project(tmp_path / "empty")
    assert project.config().default_qa == "server"


def test_the_demo_command_refuses_a_directory_in_use(tmp_path: Path):
    (tmp_path / "README").write_text("mine\n")
    result = subprocess.run(
        [sys.executable, "-m", "huskies", "demo", "--once", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert result.returncode == 1
    assert "not an empty directory" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["README"]


# ---- the script in an item's body ----------------------------------------------------------


def test_every_sample_items_script_reads_back_from_its_body():
    for sample in ITEMS:
        attempts = parse_script(sample.body)
        assert [(a.commit, dict(a.files), tuple(a.say)) for a in attempts] == [
            (a.commit, dict(a.files), tuple(a.say)) for a in sample.attempts
        ]
    assert [sample.kind for sample in ITEMS] == [
        ItemKind.STORY,
        ItemKind.STORY,
        ItemKind.BUG,
        ItemKind.SPIKE,
    ]


def test_a_script_keeps_unusual_text_exactly():
    attempt = Attempt(
        commit='Say "hi" \\ ünïcode ✓ 🐕',
        files={"a b/ç.txt": 'quotes " and \\ and {braces}\n\ttab\n'},
        say=('line with "quotes"',),
    )
    (read,) = parse_script(f"Some prose.\n\n{script_block([attempt])}\n\nMore prose.")
    assert (read.commit, dict(read.files), tuple(read.say)) == (
        attempt.commit,
        dict(attempt.files),
        tuple(attempt.say),
    )


def test_a_text_that_would_break_the_block_is_refused():
    for text in ("has ''' inside\n", "has ``` inside\n", "no final newline"):
        with pytest.raises(ValueError, match="must end with a newline"):
            script_block([Attempt(commit="c", files={"f": text})])


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("Just prose.", "has no ```demo-agent block"),
        ("```demo-agent\n[[attempt]\n```\n", "not valid TOML"),
        ("```demo-agent\nx = 1\n```\n", "no [[attempt]] tables"),
        ('```demo-agent\n[[attempt]]\nsay = ["hi"]\n```\n', "attempt 1: `commit` must be"),
        ('```demo-agent\n[[attempt]]\ncommit = "c"\n```\n', "attempt 1: it needs at least one"),
        (
            '```demo-agent\n[[attempt]]\ncommit = "c"\n[[attempt.write]]\npath = "f"\n```\n',
            "each write needs a `path` and a `text`",
        ),
    ],
)
def test_a_bad_script_says_what_is_wrong(body: str, problem: str):
    with pytest.raises(DemoAgentError, match=problem.replace("[", r"\[").replace("(", r"\(")):
        parse_script(body)


# ---- the demo agent on each sample item ------------------------------------------------------


async def test_the_demo_agent_does_what_each_sample_item_says(server: Running):
    project = server.services.project
    story, cli, bug, spike = await add_sample_items(server.services.board)
    assert cli.depends_on == (story.number,)

    # The story: one commit adding subtract() and its tests; the gate passes on it.
    worktree = add_worktree(project, story.number)
    agent = await run_agent(server, story, worktree)
    assert agent.code == 0, agent.output
    assert "committed" in agent.output
    assert commits_since_base(worktree) == ["Add subtract()"]
    assert changed_since_base(worktree) == {"calc/basic.py", "tests/test_basic.py"}
    assert git(worktree, "status", "--porcelain") == ""
    assert (await run_gate(project, worktree)).code == 0

    # The command line needs subtract(): on the base branch alone its tests fail...
    early = project.root.parent / "worktree-early"
    git(project.root, "worktree", "add", "-q", "-b", "early", str(early), BASE_BRANCH)
    assert (await run_agent(server, cli, early)).code == 0
    assert "cannot import name 'subtract'" in (await run_gate(project, early)).output
    # ...and once the story is squash-merged (as the merge queue would), they pass.
    git(project.root, "merge", "--squash", "-q", f"feature/story-{story.number}")
    git(project.root, "commit", "-q", "-m", "Add subtract() (#1)")
    worktree = add_worktree(project, cli.number)
    assert (await run_agent(server, cli, worktree)).code == 0
    assert commits_since_base(worktree) == ["Add a command-line interface"]
    assert changed_since_base(worktree) == {
        "calc/cli.py",
        "calc/__main__.py",
        "tests/test_cli.py",
    }
    gate = await run_gate(project, worktree)
    assert gate.code == 0, gate.output
    command = await run_command(sys.executable, "-m", "calc", "subtract", "5", "3", cwd=worktree)
    assert command.output == "2\n"

    # The bug: the first attempt's own test fails the gate...
    worktree = add_worktree(project, bug.number)
    first = await run_agent(server, bug, worktree)
    assert first.code == 0, first.output
    assert "attempt 1" in first.output
    assert commits_since_base(worktree) == ["Raise a ValueError when dividing by zero"]
    failed = await run_gate(project, worktree)
    assert failed.code != 0
    assert "ERROR: test_dividing_by_zero_says_so" in failed.output
    assert "ZeroDivisionError" in failed.output
    # ...the retry, told what the gates said, fixes it and the gate passes.
    prompt = f"Work on it.\n\nThe quality gates failed on your last attempt:\n{failed.output}"
    second = await run_agent(server, bug, worktree, prompt)
    assert second.code == 0, second.output
    assert "attempt 2" in second.output
    assert "  ERROR: test_dividing_by_zero_says_so" in second.output  # it read the prompt
    assert commits_since_base(worktree) == [
        "Raise a ValueError when dividing by zero",
        "Check the divisor, not the dividend, for zero",
    ]
    assert changed_since_base(worktree) == {"calc/division.py", "tests/test_division.py"}
    passed = await run_gate(project, worktree)
    assert passed.code == 0, passed.output
    # A run after the last attempt has nothing left to do, and commits nothing.
    third = await run_agent(server, bug, worktree)
    assert third.code == 0
    assert "nothing left to change" in third.output
    assert len(commits_since_base(worktree)) == 2

    # The spike: notes only, and the code's gate is unaffected.
    worktree = add_worktree(project, spike.number)
    assert (await run_agent(server, spike, worktree)).code == 0
    assert commits_since_base(worktree) == ["Notes on packaging calc"]
    assert changed_since_base(worktree) == {"notes/packaging.md"}
    assert (worktree / "notes" / "packaging.md").read_text().startswith("# Packaging calc")
    assert (await run_gate(project, worktree)).code == 0

    # The agents wrote nothing outside their worktrees.
    assert git(project.root, "status", "--porcelain") == ""


async def test_the_demo_agent_refuses_a_path_outside_its_worktree(server: Running):
    project = server.services.project
    body = script_block([Attempt(commit="Escape", files={"../escaped.txt": "out\n"})])
    item = await server.services.board.create("Escape", body=body)
    worktree = add_worktree(project, item.number)
    agent = await run_agent(server, item, worktree)
    assert agent.code == 1
    assert "refusing to write '../escaped.txt'" in agent.output
    assert not (worktree.parent / "escaped.txt").exists()
    assert commits_since_base(worktree) == []


async def test_the_demo_agent_says_when_an_item_has_no_script(server: Running):
    item = await server.services.board.create("No script", body="Just prose.")
    worktree = add_worktree(server.services.project, item.number)
    agent = await run_agent(server, item, worktree)
    assert agent.code == 1
    assert "has no ```demo-agent block" in agent.output


async def test_the_live_demos_agents_take_their_time_over_each_line(server: Running):
    project = server.services.project
    assert 'HUSKIES_DEMO_PACE_S = "0"' in project.agents_toml.read_text()  # --once: no pace
    project.agents_toml.write_text(agents_toml(sys.executable, pace_s=0.2))
    story, *_ = await add_sample_items(server.services.board)
    began = time.monotonic()
    agent = await run_agent(server, story, add_worktree(project, story.number))
    assert agent.code == 0, agent.output
    lines = agent.output.splitlines()
    assert len(lines) >= 3
    # A lower bound only: each line said takes at least the pace.
    assert time.monotonic() - began >= 0.2 * len(lines)


async def test_a_bad_pace_is_named(server: Running):
    project = server.services.project
    project.agents_toml.write_text(
        agents_toml(sys.executable).replace('PACE_S = "0"', 'PACE_S = "soon"')
    )
    item = await server.services.board.create("Paced", body="Just prose.")
    agent = await run_agent(server, item, add_worktree(project, item.number))
    assert agent.code == 1
    assert "$HUSKIES_DEMO_PACE_S must be a number of seconds, got 'soon'" in agent.output


# ---- the whole demo ------------------------------------------------------------------------


async def test_the_demo_reports_items_that_need_a_person_and_fails(sample: Project):
    # Coders that cannot work, and no second chances: every item is blocked after one run
    # (the story that waits for #1 too, once #1 has left the pipeline).
    failing = ["sh", "-c", 'echo "cannot work on #$HUSKIES_NUMBER"; exit 3']
    sample.agents_toml.write_text(
        agents_toml(sys.executable).replace(
            f"argv = {json.dumps([sys.executable, '-m', 'huskies.demo_agent'])}",
            f"argv = {json.dumps(failing)}",
        )
    )
    toml = sample.project_toml.read_text()
    sample.project_toml.write_text(toml.replace("max_retries = 3", "max_retries = 1"))
    output = io.StringIO()
    console = Console(file=output, width=200, highlight=False)
    status = await serve_demo(sample, once=True, timeout_s=DEADLINE_S, console=console)
    text = output.getvalue()
    assert status == 1, text
    assert "Some items left the pipeline unfinished" in text
    # The plain log, line by line as it happened.
    assert "#1 backlog → coding" in text
    assert "#1 coder-1 started" in text
    assert "#1 coder-1 │ cannot work on #1" in text
    assert "#1 coder-1 crashed: " in text
    assert "#1 coding → archived (blocked)" in text
    # The report: every item, why it stopped, and what its agent said last.
    report = text[text.index("Some items left the pipeline unfinished") :]
    for number, item in enumerate(ITEMS, 1):
        assert f"#{number} {item.kind.value} “{item.title}”: archived (blocked)" in report
        assert f"│ cannot work on #{number}" in report
    assert report.count("blocked: ") == len(ITEMS)


async def test_demo_once_completes_every_item(tmp_path: Path):
    directory = tmp_path / "demo"
    demo = ["demo", "--once", "--dir", str(directory), "--timeout", "60"]
    result = subprocess.run(
        [sys.executable, "-m", "huskies", *demo],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Every item is done" in result.stdout
    # The document says so too: every item done (or archived as completed), the bug after
    # one retry.
    replica = await Replica.open(Project(directory).db_path)
    try:
        items = Board(replica, wall_clock_ms).view().items
    finally:
        await replica.close()
    assert [item.title for item in items] == [sample.title for sample in ITEMS]
    assert all(finished(item) for item in items), [(i.number, i.stage) for i in items]
    assert [item.retries for item in items] == [0, 0, 1, 0]
    # The stories and the bug were merged into the base branch; the spike was not.
    merged = set(git(directory, "ls-tree", "-r", "--name-only", BASE_BRANCH).splitlines())
    assert {"calc/cli.py", "tests/test_cli.py"} <= merged
    assert "notes/packaging.md" not in merged
    assert "if b == 0:" in git(directory, "show", f"{BASE_BRANCH}:calc/division.py")
    # And the merged result passes the gate.
    check = tmp_path / "check"
    git(directory, "worktree", "add", "-q", "--detach", str(check), BASE_BRANCH)
    gate = await run_gate(Project(directory), check)
    assert gate.code == 0, gate.output
