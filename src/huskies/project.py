"""Finding and initialising a huskies project: the `.huskies/` directory of a git repository."""

import contextlib
import json
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from huskies.config import (
    AGENTS_TOML_TEMPLATE,
    PROJECT_TOML_TEMPLATE,
    AgentsConfig,
    ProjectConfig,
    load_agents_config,
    load_project_config,
)

DIR_NAME = ".huskies"

GITIGNORE = """\
# Written by `huskies init`. The database and the working directories are this machine's
# own; the .toml files beside this one are meant to be committed.
huskies.db
huskies.db-wal
huskies.db-shm
*.lock
*.tmp
access-token
server.port
runs/
worktrees/
merge_workspace/
"""


PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """`path` as a directory only its owner may enter (made, with its parents, if missing).

    What huskies keeps under `.huskies/` (agents' transcripts, gate logs, run files holding
    tokens) is private whatever the directory around it was: a clone makes `.huskies/` 0755,
    and `mkdir`'s mode is cut by the umask and never applies to a directory that exists.
    """
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR_MODE)
    return path


def open_private(path: Path, *, append: bool = False) -> BinaryIO:
    """Open `path` for writing (emptied, or appended to), readable by its owner only, in a
    private directory; a file already there is made private too."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    private_dir(path.parent)
    fd = os.open(path, flags, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        return os.fdopen(fd, "ab" if append else "wb")
    except BaseException:
        os.close(fd)
        raise


class ProjectError(Exception):
    """No project where one was expected, or `init_project` could not (or need not) run."""


@dataclass(frozen=True)
class Project:
    """A huskies project: a git repository's top level and the `.huskies/` directory in it."""

    root: Path

    @property
    def dir(self) -> Path:
        return self.root / DIR_NAME

    @property
    def db_path(self) -> Path:
        return self.dir / "huskies.db"

    @property
    def project_toml(self) -> Path:
        return self.dir / "project.toml"

    @property
    def agents_toml(self) -> Path:
        return self.dir / "agents.toml"

    def config(self) -> ProjectConfig:
        """Load project.toml; raises `ConfigError`."""
        return load_project_config(self.project_toml)

    def agents(self) -> AgentsConfig:
        """Load agents.toml; raises `ConfigError`."""
        return load_agents_config(self.agents_toml)


def find_project(start: Path) -> Project:
    """The project whose `.huskies/project.toml` is at or nearest above `start`.

    From inside a linked git worktree (an agent's, under `.huskies/worktrees/`), that is the
    project of the main worktree: the worktree's own copy of the committed config files must
    not lead to a second database.
    """
    here = start.resolve()
    for candidate in (here, *here.parents):
        project = Project(candidate)
        if project.project_toml.is_file():
            main = _main_worktree(candidate)
            if main is not None and Project(main).project_toml.is_file():
                return Project(main)
            return project
    raise ProjectError(
        f"no huskies project at or above {start}; run `huskies init` in your git repository"
    )


def init_project(cwd: Path) -> Project:
    """Create `.huskies/` at the top of the git work tree holding `cwd`.

    Writes project.toml, agents.toml and a .gitignore for the database and the working
    directories. An agents.toml or .gitignore that is already there is kept; project.toml is
    written last, so an interrupted init can simply be run again. Raises `ProjectError`, having
    changed nothing, outside a git work tree or when project.toml already exists.
    """
    project = Project(_git_top_level(cwd))
    if project.project_toml.exists():
        raise ProjectError(f"huskies is already initialised at {project.dir}; nothing changed")
    mcp_json = project.root / MCP_JSON
    mcp_text = _with_huskies_server(mcp_json)  # checked before anything is written
    try:
        project.dir.mkdir(mode=0o700, exist_ok=True)
        project.dir.chmod(0o700)
        for path, text in (
            (project.dir / ".gitignore", GITIGNORE),
            (project.agents_toml, AGENTS_TOML_TEMPLATE),
        ):
            if not path.exists():
                _write_atomically(path, text)
        if mcp_text is not None:
            _write_atomically(mcp_json, mcp_text)
        _write_atomically(project.project_toml, PROJECT_TOML_TEMPLATE)
    except OSError as exc:
        raise ProjectError(f"could not initialise {project.dir}: {exc}") from exc
    return project


MCP_JSON = ".mcp.json"

# How an MCP client in the project (a person's Claude Code, say) reaches the running server:
# through `huskies mcp`, which finds the server's port itself, so the file never goes stale.
MCP_SERVER = {"command": "huskies", "args": ["mcp"]}


def _with_huskies_server(path: Path) -> str | None:
    """The project's `.mcp.json` with huskies added (None: it is there already), keeping any
    servers already in it. A file that is not a JSON object of servers is an error."""
    if path.exists():
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ProjectError(
                f"{path} is not valid JSON ({exc}); fix or remove it and run `huskies init` again"
            ) from None
        servers = config.get("mcpServers") if isinstance(config, dict) else None
        if not isinstance(servers, dict):
            raise ProjectError(
                f'{path} has no "mcpServers" object; fix or remove it and run `huskies init` again'
            )
        if "huskies" in servers:
            return None
        servers["huskies"] = MCP_SERVER
    else:
        config = {"mcpServers": {"huskies": MCP_SERVER}}
    return json.dumps(config, indent=2) + "\n"


def _main_worktree(root: Path) -> Path | None:
    """The main worktree's top level if `root` is a linked worktree (its .git is a file)."""
    if not (root / ".git").is_file():
        return None
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return None
    common = Path(result.stdout.strip())
    if result.returncode != 0 or common.name != ".git":
        return None
    return common.parent


def _git_top_level(cwd: Path) -> Path:
    if not cwd.is_dir():
        raise ProjectError(f"{cwd} is not a directory; nothing was created")
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise ProjectError(
            "git was not found on PATH; huskies needs git. Nothing was created."
        ) from None
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        reason = f" (git says: {detail[-1]})" if detail else ""
        raise ProjectError(
            f"{cwd} is not inside a git work tree{reason}; run `huskies init` inside your "
            "repository, or `git init` first. Nothing was created."
        )
    return Path(result.stdout.rstrip("\n"))


def _write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, sync it, then rename it into place. The
    file is an ordinary one (its mode from the umask, as an editor's): it is meant for git."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
