"""The sample project of `huskies demo`: a tiny calculator package, its huskies setup, and the
four work items the demo runs through the pipeline.

The package and its tests need only the standard library, so the demo runs anywhere Python and
git do. Each item's body carries the script the demo agent follows (see `huskies.demo_agent`),
so the agent is generic and what happens to each item is written down here, in the sample data.
Every item touches files no other item touches, so the squash merges never conflict.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from huskies.demo_agent import PACE_ENV, Attempt, script_block, toml_string
from huskies.pipeline import ItemKind, WorkItem
from huskies.project import Project, ProjectError, init_project
from huskies.services.stories import Board

BASE_BRANCH = "main"

CODERS = ("coder-1", "coder-2")
"""Two coder agents running the same program: an agent works on one item at a time, so two let
two items be coded at once (and max_coders = 2 lets them)."""

GIT_CONFIG = {
    # Commits (the agents' and the merges') need an author, even on a machine without a
    # global git identity.
    "user.name": "huskies demo",
    "user.email": "demo@huskies.invalid",
    # A global setting that signs every commit would stop them on a machine without the key.
    "commit.gpgsign": "false",
}


class DemoError(Exception):
    """The demo cannot run; the message says why and what to do."""


# ---- the package before any work -------------------------------------------------------------

README = """\
# calc

A tiny calculator: the sample project of `huskies demo`.

Run the tests with the standard library only:

    python -m unittest discover -s tests -t .
"""

BASIC = '''\
"""Arithmetic on two numbers."""


def add(a: float, b: float) -> float:
    """The sum of a and b."""
    return a + b
'''

DIVISION = '''\
"""Division."""


def divide(a: float, b: float) -> float:
    """a divided by b."""
    return a / b
'''

TEST_BASIC = """\
import unittest

from calc.basic import add


class AddTest(unittest.TestCase):
    def test_adds_two_numbers(self) -> None:
        self.assertEqual(add(2, 3), 5)

    def test_adds_negative_numbers(self) -> None:
        self.assertEqual(add(-2, -3), -5)
"""

TEST_DIVISION = """\
import unittest

from calc.division import divide


class DivideTest(unittest.TestCase):
    def test_divides(self) -> None:
        self.assertEqual(divide(6, 3), 2)
"""

SAMPLE_FILES = {
    "README.md": README,
    ".gitignore": "__pycache__/\n",
    "calc/__init__.py": '"""calc: a tiny calculator."""\n',
    "calc/basic.py": BASIC,
    "calc/division.py": DIVISION,
    "tests/__init__.py": "",
    "tests/test_basic.py": TEST_BASIC,
    "tests/test_division.py": TEST_DIVISION,
}
"""The files of the sample repository (path → text), committed before huskies starts."""


# ---- what the items change ----------------------------------------------------------------

BASIC_WITH_SUBTRACT = (
    BASIC
    + '''

def subtract(a: float, b: float) -> float:
    """a minus b."""
    return a - b
'''
)

TEST_BASIC_WITH_SUBTRACT = TEST_BASIC.replace(
    "from calc.basic import add\n", "from calc.basic import add, subtract\n"
) + (
    """

class SubtractTest(unittest.TestCase):
    def test_subtracts(self) -> None:
        self.assertEqual(subtract(5, 3), 2)

    def test_goes_below_zero(self) -> None:
        self.assertEqual(subtract(3, 5), -2)
"""
)

CLI = '''\
"""The command line: `python -m calc add 2 3` prints 5."""

import argparse
from collections.abc import Sequence

from calc.basic import add, subtract

OPERATIONS = {"add": add, "subtract": subtract}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="calc", description="A tiny calculator.")
    parser.add_argument("operation", choices=sorted(OPERATIONS))
    parser.add_argument("a", type=float)
    parser.add_argument("b", type=float)
    args = parser.parse_args(argv)
    print(f"{OPERATIONS[args.operation](args.a, args.b):g}")
    return 0
'''

MAIN = """\
import sys

from calc.cli import main

sys.exit(main())
"""

TEST_CLI = """\
import contextlib
import io
import unittest

from calc.cli import main


def run(*argv: str) -> str:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        main(argv)
    return output.getvalue()


class CommandLineTest(unittest.TestCase):
    def test_adds(self) -> None:
        self.assertEqual(run("add", "2", "3"), "5\\n")

    def test_subtracts(self) -> None:
        self.assertEqual(run("subtract", "5", "3"), "2\\n")

    def test_refuses_an_unknown_operation(self) -> None:
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
            main(["multiply", "2", "3"])
"""

# The first attempt guards the wrong argument: its own new test shows divide(1, 0) still
# raising ZeroDivisionError, so the gates fail and the item comes back for a second attempt.
DIVISION_WRONG_GUARD = '''\
"""Division."""


def divide(a: float, b: float) -> float:
    """a divided by b; a ValueError if b is zero."""
    if a == 0:
        raise ValueError("cannot divide by zero")
    return a / b
'''

DIVISION_FIXED = '''\
"""Division."""


def divide(a: float, b: float) -> float:
    """a divided by b; a ValueError if b is zero."""
    if b == 0:
        raise ValueError("cannot divide by zero")
    return a / b
'''

TEST_DIVISION_BY_ZERO = (
    TEST_DIVISION
    + """
    def test_dividing_by_zero_says_so(self) -> None:
        with self.assertRaisesRegex(ValueError, "cannot divide by zero"):
            divide(1, 0)
"""
)

TEST_DIVISION_FIXED = (
    TEST_DIVISION_BY_ZERO
    + """
    def test_zero_can_be_divided(self) -> None:
        self.assertEqual(divide(0, 5), 0)
"""
)

PACKAGING_NOTES = """\
# Packaging calc: what are the options?

## Options

- **pyproject.toml with a build backend** (setuptools, hatchling or flit-core). The standard
  route: `pip install .` works from a checkout, and the same file builds the wheel and the
  source archive for an index. calc has no dependencies, so its wheel is pure Python and
  installs wherever Python does.
- **Vendoring**: copy `calc/` into the projects that use it. No install step, but no versions
  either, and every copy has to be updated by hand.
- **A zipapp** (`python -m zipapp`): one runnable file for the command line. Good for handing
  the tool to someone; awkward to import from other code.

## Recommendation

pyproject.toml with hatchling, and a `calc` console script pointing at `calc.cli:main` once
the command-line interface is in. That is one small file and no new tools for contributors.

## Open

Whether to publish to a package index at all: nobody has asked for it yet.
"""


@dataclass(frozen=True)
class SampleItem:
    title: str
    kind: ItemKind
    summary: str
    attempts: tuple[Attempt, ...]
    depends_on: tuple[int, ...] = ()
    """Positions (from 1) in ITEMS of the items this one waits for."""
    start: bool = False
    """Whether the demo starts it; the others wait for their dependencies."""

    @property
    def body(self) -> str:
        return f"{self.summary}\n\n{script_block(self.attempts)}\n"


ITEMS = (
    SampleItem(
        "Add subtract()",
        ItemKind.STORY,
        "calc can add but not subtract. Add `subtract(a, b)` to `calc/basic.py`, with tests.",
        (
            Attempt(
                commit="Add subtract()",
                say=("Reading calc/basic.py: add() is there, subtract() is not", "Adding both"),
                files={
                    "calc/basic.py": BASIC_WITH_SUBTRACT,
                    "tests/test_basic.py": TEST_BASIC_WITH_SUBTRACT,
                },
            ),
        ),
        start=True,
    ),
    SampleItem(
        "Add a command-line interface",
        ItemKind.STORY,
        "`python -m calc add 2 3` prints 5 and `python -m calc subtract 5 3` prints 2. It needs "
        "subtract() from the story before it, so it waits until that one is done.",
        (
            Attempt(
                commit="Add a command-line interface",
                say=("subtract() is on the base branch now", "Adding calc/cli.py and tests"),
                files={
                    "calc/cli.py": CLI,
                    "calc/__main__.py": MAIN,
                    "tests/test_cli.py": TEST_CLI,
                },
            ),
        ),
        depends_on=(1,),
    ),
    SampleItem(
        "divide() crashes on zero",
        ItemKind.BUG,
        "`divide(1, 0)` raises a bare ZeroDivisionError. It should raise a ValueError that says "
        "what is wrong. (The scripted agent gets this wrong at first, to show the gates at work.)",
        (
            Attempt(
                commit="Raise a ValueError when dividing by zero",
                say=("Adding a test for divide(1, 0)", "Guarding divide() against zero"),
                files={
                    "calc/division.py": DIVISION_WRONG_GUARD,
                    "tests/test_division.py": TEST_DIVISION_BY_ZERO,
                },
            ),
            Attempt(
                commit="Check the divisor, not the dividend, for zero",
                say=(
                    "The guard checked a, the dividend; b is the divisor",
                    "Fixing the guard and testing that 0 / 5 still works",
                ),
                files={
                    "calc/division.py": DIVISION_FIXED,
                    "tests/test_division.py": TEST_DIVISION_FIXED,
                },
            ),
        ),
        start=True,
    ),
    SampleItem(
        "Investigate packaging options",
        ItemKind.SPIKE,
        "How should people install calc? Compare the options and write down a recommendation "
        "in `notes/packaging.md`. A spike: findings, no code, so it is not merged.",
        (
            Attempt(
                commit="Notes on packaging calc",
                say=("Comparing pyproject.toml, vendoring and zipapp", "Writing the notes"),
                files={"notes/packaging.md": PACKAGING_NOTES},
            ),
        ),
        start=True,
    ),
)


# ---- making the project ----------------------------------------------------------------------


def gate_command(python: str) -> str:
    """The shell command of the sample project's one gate: its unit tests, run by `python`."""
    return f"{shlex.quote(python)} -m unittest discover -s tests -t . -q"


def project_toml(python: str) -> str:
    return f"""\
# The sample project of `huskies demo`. See `huskies init` for every key and its default.
default_qa = "server"
max_coders = {len(CODERS)}
max_retries = 3

# One component: the calc package, whose gate runs its unit tests.
[[component]]
name = "calc"
path = "."

[component.gates.tests]
command = {toml_string(gate_command(python))}
timeout_secs = 120
"""


def agents_toml(python: str, pace_s: float = 0.0) -> str:
    # The prompt says only where to look: the item's body holds the script.
    prompt = (
        'Work on item {number}, "{title}", in {worktree} on branch {branch}: '
        "follow the demo-agent block in its body."
    )
    argv = [python, "-m", "huskies.demo_agent"]
    tables = [
        f"""\
[[agent]]
name = {toml_string(name)}
stage = "coder"
runtime = "command"
argv = [{", ".join(toml_string(arg) for arg in argv)}]
prompt = {toml_string(prompt)}
inactivity_timeout_secs = 60
env = {{ {PACE_ENV} = "{pace_s:g}" }}
"""
        for name in CODERS
    ]
    header = (
        "# The demo's coders run huskies.demo_agent, a scripted program that follows the\n"
        "# demo-agent block in each item's body: no model, no API key, no network.\n\n"
    )
    return header + "\n".join(tables)


def create_sample_project(
    directory: Path, python: str = sys.executable, pace_s: float = 0.0
) -> Project:
    """Make the sample project in `directory` (new, or an empty directory): a git repository
    on BASE_BRANCH with the calc package committed, and huskies initialised for it, with its
    config committed too. `python` runs the gate and the agents, which take `pace_s` seconds
    over each line they say."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise DemoError(
            f"{directory} already exists and is not an empty directory; give --dir a new path"
        )
    directory.mkdir(parents=True, exist_ok=True)
    _git(directory, "init", "--quiet", f"--initial-branch={BASE_BRANCH}")
    for key, value in GIT_CONFIG.items():
        _git(directory, "config", key, value)
    for path, text in SAMPLE_FILES.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    try:
        project = init_project(directory)
    except ProjectError as exc:
        raise DemoError(str(exc)) from None
    project.project_toml.write_text(project_toml(python), encoding="utf-8")
    project.agents_toml.write_text(agents_toml(python, pace_s), encoding="utf-8")
    _git(directory, "add", "--all")
    _git(directory, "commit", "--quiet", "-m", "calc: the sample project of huskies demo")
    return project


async def add_sample_items(board: Board, items: Sequence[SampleItem] = ITEMS) -> list[WorkItem]:
    """Create `items` on the board, in order; returns them as created."""
    created: list[WorkItem] = []
    for sample in items:
        depends_on = [created[position - 1].number for position in sample.depends_on]
        created.append(
            await board.create(
                sample.title, kind=sample.kind, body=sample.body, depends_on=depends_on
            )
        )
    return created


def _git(directory: Path, *args: str) -> None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=directory, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise DemoError("git was not found on PATH; the demo needs git") from None
    if result.returncode != 0:
        detail = result.stderr.strip() or result.stdout.strip()
        raise DemoError(f"git {' '.join(args)} failed in {directory}: {detail}")
