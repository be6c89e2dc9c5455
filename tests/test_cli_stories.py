"""`huskies init`, `story …`, `unblock` and `state dump` as a user runs them: real processes in a
real git repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def huskies(cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: str = ""):
    exe = shutil.which("huskies")
    command = [exe] if exe else [sys.executable, "-m", "huskies"]
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        input=stdin,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def ok(cwd: Path, *args: str, **kwargs) -> str:
    result = huskies(cwd, *args, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def fails(cwd: Path, *args: str, **kwargs) -> str:
    result = huskies(cwd, *args, **kwargs)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    return path


@pytest.fixture
def project(repo: Path) -> Path:
    ok(repo, "init")
    return repo


def test_init_creates_the_project_once_and_only_in_git(tmp_path: Path, repo: Path):
    outside = tmp_path / "plain"
    outside.mkdir()
    assert "git" in fails(outside, "init")
    assert list(outside.iterdir()) == []
    assert "huskies init" in fails(repo, "story", "list")
    (repo / "sub").mkdir()
    output = ok(repo / "sub", "init")  # from a subdirectory: at the repository's top
    assert "Initialised huskies" in output
    files = {p.name for p in (repo / ".huskies").iterdir()}
    assert files == {"project.toml", "agents.toml", ".gitignore"}
    before = {p.name: p.read_bytes() for p in (repo / ".huskies").iterdir()}
    assert "already initialised" in fails(repo, "init")
    assert {p.name: p.read_bytes() for p in (repo / ".huskies").iterdir()} == before
    ok(repo, "story", "new", "First")
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "huskies.db" not in status  # the database is ignored, the config is not
    assert ".huskies/project.toml" in status


def test_the_story_commands_from_new_to_purge(project: Path, tmp_path: Path):
    body = tmp_path / "body.md"
    body.write_text("## Goal\nLog in with a passkey.\n")
    assert ok(project, "story", "new", "Add login", "--body-file", str(body)) == (
        "Created #1 (story): Add login\n"
    )
    ok(project, "story", "new", "Crash on save", "--kind", "bug", "--depends-on", "1")
    assert "no item #7" in fails(project, "story", "new", "Orphan", "--depends-on", "7")
    assert "No such file" in fails(project, "story", "new", "X", "--body-file", "nope.md")
    assert "'epic' is not one of" in huskies(project, "story", "new", "X", "--kind", "epic").stderr

    listing = ok(project, "story", "list")
    assert "Add login" in listing
    assert "Crash on save" in listing
    assert "backlog" in listing

    shown = ok(project, "story", "show", "2")
    assert "Crash on save" in shown
    assert "#1" in shown
    assert "server (project default)" in shown
    assert "Log in with a passkey." in ok(project, "story", "show", "1")
    assert "no item #9" in fails(project, "story", "show", "9")

    assert ok(project, "story", "move", "1", "coding") == "#1 is now in coding.\n"
    refusal = fails(project, "story", "move", "1", "done")
    assert "cannot move #1" in refusal
    assert "merge" in refusal
    assert "cannot move #2" in fails(project, "unblock", "2")
    assert "coding" in ok(project, "story", "list", "--stage", "coding")
    assert "Crash on save" not in ok(project, "story", "list", "--stage", "coding")

    ok(project, "story", "move", "2", "archived")
    assert "Crash on save" not in ok(project, "story", "list")
    assert "archived (abandoned)" in ok(project, "story", "list", "--all")

    assert "Nothing purged" in ok(project, "story", "purge", "1", stdin="n\n")
    assert "Purged #1." in ok(project, "story", "purge", "1", "--yes")
    assert "Add login" not in ok(project, "story", "list", "--all")

    dump = json.loads(ok(project, "state", "dump"))
    assert dump["log"]["changes"] == 5
    assert dump["log"]["pending"] == 0
    assert list(dump["log"]["authors"].values()) == [5]
    assert [item["title"] for item in dump["document"]["items"]] == ["Crash on save"]


def test_story_edit_in_the_editor_and_without(project: Path, tmp_path: Path):
    ok(project, "story", "new", "Draft")
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import sys\n"
        "from pathlib import Path\n"
        "path = Path(sys.argv[1])\n"
        "title, _, body = path.read_text().partition('\\n')\n"
        "path.write_text('Final title\\n\\nWritten in the editor.\\n')\n"
    )
    env = {"EDITOR": f"{sys.executable} {editor}", "VISUAL": ""}
    assert ok(project, "story", "edit", "1", env=env) == "Updated #1.\n"
    shown = ok(project, "story", "show", "1")
    assert "Final title" in shown
    assert "Written in the editor." in shown
    unchanged = {"EDITOR": "true", "VISUAL": ""}
    assert "nothing changed" in ok(project, "story", "edit", "1", env=unchanged)
    assert "exited with status" in fails(project, "story", "edit", "1", env={"EDITOR": "false"})
    assert ok(project, "story", "edit", "1", "--title", "Final title") == "#1 is unchanged.\n"
    assert "one line" in fails(project, "story", "edit", "1", "--title", "a\nb")
    escape = fails(project, "story", "edit", "1", "--title", "red \x1b[31m")
    assert "control character U+001B" in escape
    assert "\x1b" not in escape
    assert escape.count("\n") == 1  # one line, whatever the terminal's width
    assert ok(project, "story", "edit", "1", "--title", "Renamed") == "Updated #1.\n"
    literal = "Fix [bold]markup[/bold] in titles"  # shown as typed, never as rich markup
    ok(project, "story", "edit", "1", "--title", literal)
    assert literal in ok(project, "story", "show", "1")
    assert "[bold]markup[/bold]" in ok(project, "story", "list")


def test_a_bad_config_names_the_file_and_key(project: Path):
    toml = project / ".huskies" / "project.toml"
    toml.write_text(toml.read_text().replace('synchronous = "normal"', 'synchronous = "fast"'))
    message = fails(project, "story", "list")
    assert "project.toml" in message
    assert "store.synchronous" in message
    assert "fast" in message
    assert not (project / ".huskies" / "huskies.db").exists()  # nothing was opened or written
