"""Finding and initialising a project, in real git repositories."""

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from huskies.config import (
    AGENTS_TOML_TEMPLATE,
    PROJECT_TOML_TEMPLATE,
    ProjectConfig,
    load_agents_config,
)
from huskies.project import Project, ProjectError, find_project, init_project


@pytest.fixture(autouse=True)
def git_stops_at_tmp_path(tmp_path, monkeypatch):
    """Whatever encloses the test's directory, git must not find a repository above it."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for variable in ("GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.delenv(variable, raising=False)


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30
    )
    return result.stdout


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    return root.resolve()


def snapshot(directory: Path) -> dict[str, tuple[bytes | None, int, int]]:
    """Every path below `directory` with its bytes (None for directories), mtime and mode."""
    result = {}
    for path in sorted(directory.rglob("*")):
        info = path.lstat()
        content = None if path.is_dir() else path.read_bytes()
        result[str(path.relative_to(directory))] = (content, info.st_mtime_ns, info.st_mode)
    return result


def test_project_paths():
    project = Project(Path("/src/app"))
    assert project.dir == Path("/src/app/.huskies")
    assert project.db_path == Path("/src/app/.huskies/huskies.db")
    assert project.project_toml == Path("/src/app/.huskies/project.toml")
    assert project.agents_toml == Path("/src/app/.huskies/agents.toml")


def test_init_writes_the_templates_into_a_private_directory(repo):
    project = init_project(repo)
    assert project == Project(repo)
    assert stat.S_IMODE(project.dir.stat().st_mode) == 0o700
    assert sorted(path.name for path in project.dir.iterdir()) == [
        ".gitignore",
        "agents.toml",
        "project.toml",
    ]
    assert project.project_toml.read_text() == PROJECT_TOML_TEMPLATE
    assert project.agents_toml.read_text() == AGENTS_TOML_TEMPLATE
    assert project.config() == ProjectConfig()
    assert project.agents() == load_agents_config(project.agents_toml)
    assert [agent.name for agent in project.agents().agents] == ["coder"]


def test_init_from_a_subdirectory_uses_the_top_of_the_work_tree(repo):
    deep = repo / "src" / "pkg"
    deep.mkdir(parents=True)
    project = init_project(deep)
    assert project.root == repo
    assert project.project_toml.is_file()
    assert not (deep / ".huskies").exists()


def test_the_gitignore_keeps_the_database_and_work_directories_out_of_git(repo):
    project = init_project(repo)
    for name in (
        "huskies.db",
        "huskies.db-wal",
        "huskies.db-shm",
        "server.lock",
        "access-token",
        "server.port",
    ):
        (project.dir / name).write_bytes(b"x")
    for name in ("worktrees/story-1", "merge_workspace"):
        (project.dir / name).mkdir(parents=True)
        (project.dir / name / "file.py").write_text("x = 1\n")
    untracked = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert sorted(untracked) == [
        "?? .huskies/.gitignore",
        "?? .huskies/agents.toml",
        "?? .huskies/project.toml",
        "?? .mcp.json",
    ]


def test_init_writes_an_mcp_json_that_runs_the_stdio_bridge(repo):
    init_project(repo)
    config = json.loads((repo / ".mcp.json").read_text())
    assert config == {"mcpServers": {"huskies": {"command": "huskies", "args": ["mcp"]}}}


def test_init_adds_huskies_to_an_existing_mcp_json_and_keeps_the_rest(repo):
    other = {"command": "other-server", "args": []}
    (repo / ".mcp.json").write_text(json.dumps({"mcpServers": {"other": other}}))
    init_project(repo)
    servers = json.loads((repo / ".mcp.json").read_text())["mcpServers"]
    assert servers == {"other": other, "huskies": {"command": "huskies", "args": ["mcp"]}}


@pytest.mark.parametrize("text", ["{not json", '["a list"]', '{"mcpServers": 5}'])
def test_a_broken_mcp_json_stops_init_before_anything_is_written(repo, text):
    (repo / ".mcp.json").write_text(text)
    with pytest.raises(ProjectError, match=r"\.mcp\.json .*run `huskies init` again"):
        init_project(repo)
    assert (repo / ".mcp.json").read_text() == text
    assert not (repo / ".huskies").exists()


def test_init_outside_a_git_work_tree_creates_nothing(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("keep me\n")
    before = snapshot(tmp_path)
    with pytest.raises(ProjectError) as info:
        init_project(plain)
    message = str(info.value)
    assert message.startswith(f"{plain} is not inside a git work tree (git says: fatal: ")
    assert message.endswith("or `git init` first. Nothing was created.")
    assert snapshot(tmp_path) == before


def test_init_inside_the_git_directory_creates_nothing(repo):
    before = snapshot(repo)
    with pytest.raises(ProjectError, match="is not inside a git work tree"):
        init_project(repo / ".git")
    assert snapshot(repo) == before


def test_init_twice_changes_nothing(repo):
    project = init_project(repo)
    project.project_toml.write_text('default_qa = "human"\n')
    before = snapshot(repo)
    with pytest.raises(ProjectError) as info:
        init_project(repo / ".huskies")
    assert str(info.value) == f"huskies is already initialised at {project.dir}; nothing changed"
    assert snapshot(repo) == before
    assert project.config().default_qa == "human"


def test_init_keeps_an_agents_toml_that_is_already_there(repo):
    mine = '[[agent]]\nname = "mine"\nstage = "qa"\nruntime = "codex"\nprompt = "Review"\n'
    (repo / ".huskies").mkdir(mode=0o755)
    (repo / ".huskies" / "agents.toml").write_text(mine)
    project = init_project(repo)
    assert project.agents_toml.read_text() == mine
    assert project.project_toml.read_text() == PROJECT_TOML_TEMPLATE
    assert (project.dir / ".gitignore").is_file()
    assert stat.S_IMODE(project.dir.stat().st_mode) == 0o700


def test_an_interrupted_init_leaves_no_partial_file_and_can_be_rerun(repo, monkeypatch):
    replace = os.replace

    def fail_for_project_toml(source, target):
        if Path(target).name == "project.toml":
            raise OSError(28, "No space left on device")
        replace(source, target)

    monkeypatch.setattr(os, "replace", fail_for_project_toml)
    with pytest.raises(ProjectError) as info:
        init_project(repo)
    assert str(info.value).startswith(f"could not initialise {repo / '.huskies'}: ")
    assert "No space left on device" in str(info.value)
    assert sorted(path.name for path in (repo / ".huskies").iterdir()) == [
        ".gitignore",
        "agents.toml",
    ]
    monkeypatch.setattr(os, "replace", replace)
    project = init_project(repo)
    assert project.project_toml.read_text() == PROJECT_TOML_TEMPLATE
    assert project.agents_toml.read_text() == AGENTS_TOML_TEMPLATE


def test_init_without_git_on_path_creates_nothing(repo, monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    before = snapshot(repo)
    with pytest.raises(ProjectError, match="git was not found on PATH"):
        init_project(repo)
    assert snapshot(repo) == before


def test_init_in_a_directory_that_does_not_exist(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(ProjectError) as info:
        init_project(missing)
    assert str(info.value) == f"{missing} is not a directory; nothing was created"
    assert not missing.exists()


def test_find_project_from_the_root_and_from_below(repo):
    project = init_project(repo)
    deep = repo / "src" / "pkg"
    deep.mkdir(parents=True)
    assert find_project(repo) == project
    assert find_project(deep) == project
    assert find_project(project.dir) == project


def test_find_project_from_an_agents_worktree_finds_the_main_project(repo):
    """The config files are committed, so a linked worktree has its own copy; it must still
    lead to the main worktree's project (and its one database)."""
    project = init_project(repo)
    git(repo, "add", ".huskies")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "huskies")
    worktree = project.dir / "worktrees" / "1-first"
    git(repo, "worktree", "add", "-q", "-b", "feature/story-1", str(worktree))
    assert (worktree / ".huskies" / "project.toml").is_file()
    (worktree / "src").mkdir()
    assert find_project(worktree / "src") == project


def test_find_project_takes_the_nearest(repo):
    outer = init_project(repo)
    inner_root = repo / "vendor" / "lib"
    inner_root.mkdir(parents=True)
    git(inner_root, "init", "-q")
    inner = init_project(inner_root)
    assert find_project(inner_root / "sub" / "missing") == inner
    assert find_project(repo / "vendor") == outer


def test_find_project_needs_project_toml_not_just_the_directory(repo):
    (repo / ".huskies").mkdir()
    (repo / ".huskies" / "agents.toml").write_text("")
    with pytest.raises(ProjectError) as info:
        find_project(repo)
    assert str(info.value) == (
        f"no huskies project at or above {repo}; run `huskies init` in your git repository"
    )
