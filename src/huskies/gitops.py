"""The one way huskies runs git: an async wrapper of the git command line.

Every git command huskies runs goes through `git()`, so that all of them share one predictable
environment, one error type and one way of being stopped. `Git` binds a directory and offers
the few operations huskies needs, each a thin layer over `git()`.

git runs without a shell, in its own session (so it has no terminal to prompt on, and a timeout
or cancellation kills it together with any hook or helper it started), with stdin closed unless
input is given, and with an environment that cannot block or change its output:
see `FIXED_ENV`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

GIT = "git"

FIXED_ENV: Mapping[str, str] = {
    "GIT_TERMINAL_PROMPT": "0",  # fail instead of asking for a username or password
    "LC_ALL": "C",  # untranslated messages and C collation, whatever the user's locale
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "GIT_EDITOR": "true",  # a commit or merge never waits for someone to close an editor
    "GIT_SEQUENCE_EDITOR": "true",
    "GIT_MERGE_AUTOEDIT": "no",
    # Reading commands (status) then never take index.lock, which would make an agent's own
    # git commands in the same worktree fail with "index.lock exists".
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_ADVICE": "0",  # no "hint:" paragraphs in the messages we show people
}

# The variables that point git at another repository, index or config (the list printed by
# `git rev-parse --local-env-vars`). Inherited ones are dropped: run from inside a git hook, for
# example, huskies would otherwise operate on the hook's repository instead of the `cwd` given.
LOCAL_ENV_VARS = frozenset(
    {
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_CONFIG",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
        "GIT_OBJECT_DIRECTORY",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_IMPLICIT_WORK_TREE",
        "GIT_GRAFT_FILE",
        "GIT_INDEX_FILE",
        "GIT_NO_REPLACE_OBJECTS",
        "GIT_REPLACE_REF_BASE",
        "GIT_PREFIX",
        "GIT_INTERNAL_SUPER_PREFIX",
        "GIT_SHALLOW_FILE",
        "GIT_COMMON_DIR",
    }
)

_MAX_COMMAND_CHARS = 160  # of the command shown in an error message
_DETAIL_LINES = 3  # of git's output shown in an error message


class GitError(Exception):
    """A git command failed, timed out or could not be started.

    `returncode` is None when git did not run to completion (not started, or killed on timeout).
    """

    def __init__(
        self,
        message: str,
        *,
        argv: tuple[str, ...],
        cwd: Path,
        returncode: int | None,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        super().__init__(message)
        self.argv = argv
        self.cwd = cwd
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str


async def git(
    cwd: Path,
    *args: str,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    timeout_s: float | None = None,
) -> GitResult:
    """Run `git *args` in `cwd` and return what it printed.

    `env` is added on top of the inherited environment and `FIXED_ENV` (so a caller may set,
    say, GIT_INDEX_FILE or GIT_AUTHOR_NAME deliberately). With `check`, a non-zero exit raises
    `GitError`; a timeout, a missing directory or a missing git binary always do. stdout is
    decoded as UTF-8 with surrogateescape, so paths that are not UTF-8 survive a round trip
    through `os.fsencode`.
    """
    argv = (GIT, *args)
    command = _describe(argv)
    full_env = {k: v for k, v in os.environ.items() if k not in LOCAL_ENV_VARS}
    full_env.update(FIXED_ENV)
    if env is not None:
        full_env.update(env)
    starting = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=full_env,
            stdin=asyncio.subprocess.DEVNULL if input is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    )
    try:
        process = await asyncio.shield(starting)
    except asyncio.CancelledError:
        # Cancelling the start itself would kill git but not what git has already started
        # (a hook, an alias's shell), then wait for that forever on the shared pipes. So let
        # the start finish, then stop the lot.
        with contextlib.suppress(OSError):
            await _kill(await starting)
        raise
    except OSError as exc:
        raise GitError(
            f"cannot run {command} in {cwd}: {_spawn_problem(cwd, exc)}",
            argv=argv,
            cwd=cwd,
            returncode=None,
        ) from exc
    try:
        out, err = await asyncio.wait_for(process.communicate(input), timeout_s)
    except TimeoutError:
        await _kill(process)
        raise GitError(
            f"{command} in {cwd} timed out after {timeout_s:g} s and was stopped",
            argv=argv,
            cwd=cwd,
            returncode=None,
        ) from None
    except BaseException:  # cancelled: git must not carry on unobserved
        await _kill(process)
        raise
    assert process.returncode is not None  # communicate() returns once git has exited
    result = GitResult(
        process.returncode,
        out.decode("utf-8", "surrogateescape"),
        err.decode("utf-8", "replace"),
    )
    if check and result.returncode != 0:
        raise _failed(argv, cwd, result)
    return result


@dataclass(frozen=True)
class WorktreeInfo:
    """One entry of `git worktree list`; `branch` is None for a detached HEAD."""

    path: Path
    branch: str | None
    head: str


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str
    author: str
    at: datetime  # the author date, with its UTC offset


@dataclass(frozen=True)
class DiffStat:
    files: int
    insertions: int
    deletions: int  # binary files count as files, with no lines


class Git:
    """git operations in one directory (a repository or any of its worktrees).

    The worktree_* operations are not safe to run at the same time as each other in one
    repository: git can die reading the bookkeeping of a worktree that another `git worktree`
    command is still adding. Callers serialise them (see huskies.services.worktrees).
    """

    def __init__(self, cwd: Path, *, timeout_s: float | None = None) -> None:
        self.cwd = cwd
        self.timeout_s = timeout_s

    async def run(
        self,
        *args: str,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
    ) -> GitResult:
        return await git(
            self.cwd, *args, check=check, env=env, input=input, timeout_s=self.timeout_s
        )

    async def head(self) -> str:
        """The sha of the commit checked out here."""
        return await self.rev_parse("HEAD")

    async def current_branch(self) -> str | None:
        """The branch checked out here, or None for a detached HEAD."""
        args = ("symbolic-ref", "--quiet", "--short", "HEAD")
        result = await self.run(*args, check=False)
        if result.returncode == 1:  # what --quiet exits with for a detached HEAD
            return None
        _raise_unless_ok(result, args, self.cwd)
        return result.stdout.strip()

    async def branch_exists(self, name: str) -> bool:
        """Whether local branch `name` exists (a name that is not a valid branch name does not)."""
        args = ("show-ref", "--verify", "--quiet", f"refs/heads/{name}")
        result = await self.run(*args, check=False)
        if result.returncode == 1:
            return False
        _raise_unless_ok(result, args, self.cwd)
        return True

    async def rev_parse(self, ref: str) -> str:
        """The full object name `ref` resolves to."""
        result = await self.run("rev-parse", "--verify", "--end-of-options", ref)
        return result.stdout.strip()

    async def commits_ahead(self, base: str, branch: str) -> int:
        """How many commits `branch` has that `base` does not."""
        result = await self.run(
            "rev-list", "--count", "--end-of-options", f"{base}..{branch}", "--"
        )
        return int(result.stdout)

    async def merge_base(self, a: str, b: str) -> str:
        """The best common ancestor of `a` and `b` (a GitError when they share none)."""
        result = await self.run("merge-base", "--end-of-options", a, b)
        return result.stdout.strip()

    async def diff_stat(self, base: str, head: str) -> DiffStat:
        """What merging `head` would bring to `base`: the diff from their merge base to `head`."""
        result = await self.run(
            "diff", "--numstat", "-z", "--no-renames", "--end-of-options", f"{base}...{head}", "--"
        )
        files = insertions = deletions = 0
        # With -z each record is "added<TAB>deleted<TAB>path<NUL>"; binary files show "-".
        for record in result.stdout.split("\0"):
            if not record:
                continue
            added, deleted, _ = record.split("\t", 2)
            files += 1
            insertions += int(added) if added != "-" else 0
            deletions += int(deleted) if deleted != "-" else 0
        return DiffStat(files, insertions, deletions)

    async def is_dirty(self) -> bool:
        """Whether there are uncommitted changes here, untracked files included."""
        result = await self.run("status", "--porcelain", "--untracked-files=normal")
        return result.stdout != ""

    async def changed_paths(self) -> list[str]:
        """The paths with uncommitted changes here (untracked files included), as git sorts them."""
        result = await self.run("status", "--porcelain=v1", "-z", "--untracked-files=all")
        paths: list[str] = []
        records = iter(result.stdout.split("\0"))
        for record in records:
            if not record:
                continue
            status, path = record[:2], record[3:]
            paths.append(path)
            if "R" in status or "C" in status:
                next(records, None)  # a rename or copy is followed by the path it came from
        return paths

    async def worktree_list(self) -> list[WorktreeInfo]:
        """The repository's worktrees, the main one first. A bare repository's entry is left
        out: it has no working tree to work in."""
        result = await self.run("worktree", "list", "--porcelain")
        return _parse_worktree_list(result.stdout)

    async def worktree_add(self, path: Path, branch: str, start_point: str | None = None) -> None:
        """Check `branch` out in a new worktree at `path`.

        With `start_point`, the branch is created there if it does not exist yet. An existing
        branch is always checked out as it is, never reset. The new branch tracks nothing.
        """
        if start_point is None:
            await self.run("worktree", "add", str(path), branch)
            return
        # Creating is the common case, so try it first; git refuses before touching `path`
        # when the branch already exists.
        try:
            await self.run("worktree", "add", "--no-track", "-b", branch, str(path), start_point)
        except GitError:
            if not await self.branch_exists(branch):
                raise
            await self.run("worktree", "add", str(path), branch)

    async def worktree_remove(self, path: Path, *, force: bool = False) -> None:
        """Delete the worktree at `path`; git refuses uncommitted changes unless `force`."""
        await self.run("worktree", "remove", *(["--force"] if force else []), str(path))

    async def worktree_prune(self) -> None:
        """Forget worktrees whose directories no longer exist."""
        await self.run("worktree", "prune")

    async def log(self, ref: str = "HEAD", limit: int = 20) -> list[Commit]:
        """The newest `limit` commits reachable from `ref`, newest first."""
        if limit < 1:
            raise ValueError(f"log limit must be at least 1, not {limit}")
        # A unit separator between fields: it cannot occur in a one-line subject or a name.
        result = await self.run(
            "log", f"--max-count={limit}", "--no-show-signature",
            "--format=%H%x1f%an%x1f%aI%x1f%s", "--end-of-options", ref, "--",
        )  # fmt: skip
        commits = []
        for line in result.stdout.splitlines():
            sha, author, at, subject = line.split("\x1f", 3)
            commits.append(Commit(sha, subject, author, datetime.fromisoformat(at)))
        return commits


def _parse_worktree_list(text: str) -> list[WorktreeInfo]:
    """Parse `git worktree list --porcelain`: blank-line separated records of "key value"
    lines; keys we do not use (locked, prunable, ...) are skipped."""
    entries = []
    for record in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in record.splitlines():
            key, _, value = line.partition(" ")
            fields[key] = value
        if "worktree" not in fields or "bare" in fields:
            continue
        branch = fields.get("branch")
        if branch is not None:
            branch = branch.removeprefix("refs/heads/")
        entries.append(WorktreeInfo(Path(fields["worktree"]), branch, fields.get("HEAD", "")))
    return entries


def _describe(argv: tuple[str, ...]) -> str:
    """The command as a person would type it, shortened if it is very long."""
    text = shlex.join(argv)
    if len(text) > _MAX_COMMAND_CHARS:
        text = text[: _MAX_COMMAND_CHARS - 1] + "…"
    return text


def _detail(result: GitResult) -> str:
    """git's own explanation: the first lines of stderr, else of stdout (where a merge reports
    its conflicts); its "fatal:" and "error:" lines if it printed any, as the rest is progress
    ("Preparing worktree") or hints."""
    for stream in (result.stderr, result.stdout):
        lines = [line.strip() for line in stream.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
        lines = errors or [line for line in lines if not line.startswith("hint:")]
        if lines:
            shown = "; ".join(lines[:_DETAIL_LINES])
            return shown + ("; …" if len(lines) > _DETAIL_LINES else "")
    return "git printed nothing"


def _failed(argv: tuple[str, ...], cwd: Path, result: GitResult) -> GitError:
    return GitError(
        f"{_describe(argv)} in {cwd} failed (exit {result.returncode}): {_detail(result)}",
        argv=argv,
        cwd=cwd,
        returncode=result.returncode,
        stdout=result.stdout,
        stderr=result.stderr,
    )


def _raise_unless_ok(result: GitResult, args: tuple[str, ...], cwd: Path) -> None:
    """For commands run with check=False to read an expected exit code: any other failure."""
    if result.returncode != 0:
        raise _failed((GIT, *args), cwd, result)


def _spawn_problem(cwd: Path, exc: OSError) -> str:
    # Both a missing directory and a missing binary are FileNotFoundError: tell them apart.
    if not cwd.exists():
        return "the directory does not exist"
    if not cwd.is_dir():
        return "it is not a directory"
    if isinstance(exc, FileNotFoundError):
        return "git was not found on PATH; huskies needs git installed"
    return str(exc)


async def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill git and everything it started (its session), then reap it."""
    # start_new_session made git the leader of its own process group. Kill the group even if
    # git itself has exited: a hook or helper it started may still hold its output pipes.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()
