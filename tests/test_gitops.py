"""The git wrapper against the real git CLI, in throwaway repositories."""

from __future__ import annotations

import asyncio
import errno
import os
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from huskies.gitops import Commit, DiffStat, Git, GitError, WorktreeInfo, git


def run_git(cwd: Path, *args: str) -> str:
    """Set-up and checks go through plain subprocess, independent of the code under test."""
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    )  # fmt: skip
    return result.stdout.strip()


def commit_file(repo: Path, name: str, text: str, message: str) -> str:
    """Write `name`, commit it, and return the new commit's sha."""
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(text)
    run_git(repo, "add", "--", name)
    run_git(repo, "commit", "--quiet", "-m", message)
    return run_git(repo, "rev-parse", "HEAD")


def make_repo(path: Path, branch: str = "main") -> Path:
    """A repository on `branch` with one commit, and a committer configured in it (linked
    worktrees share this config)."""
    path.mkdir(parents=True)
    run_git(path, "init", "--quiet", "-b", branch)
    for key, value in [
        ("user.name", "Test Author"),
        ("user.email", "author@example.com"),
        ("commit.gpgsign", "false"),
    ]:
        run_git(path, "config", key, value)
    commit_file(path, "README.md", "hello\n", "Initial commit")
    return path


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Stop git looking above tmp_path for a repository, so "not a repository" is certain.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    return make_repo(tmp_path / "repo")


async def test_output_is_returned_and_check_false_returns_failures(repo: Path):
    result = await git(repo, "rev-parse", "HEAD")
    assert result.returncode == 0
    assert result.stdout.strip() == run_git(repo, "rev-parse", "HEAD")
    failed = await git(repo, "rev-parse", "--verify", "no-such-ref", check=False)
    assert failed.returncode == 128
    assert "Needed a single revision" in failed.stderr


async def test_a_failure_says_which_command_where_and_what_git_said(repo: Path):
    with pytest.raises(GitError) as caught:
        await git(repo, "worktree", "add", str(repo.parent / "w"), "no-such-branch")
    error = caught.value
    assert str(error).startswith(f"git worktree add {repo.parent / 'w'} no-such-branch in {repo}")
    assert "failed (exit 128): fatal: invalid reference: no-such-branch" in str(error)
    assert "\n" not in str(error)
    assert error.argv == ("git", "worktree", "add", str(repo.parent / "w"), "no-such-branch")
    assert (error.cwd, error.returncode) == (repo, 128)
    assert "invalid reference" in error.stderr
    assert not (repo.parent / "w").exists()


async def test_a_failure_with_nothing_on_stderr_shows_stdout_or_says_so(repo: Path):
    alias = "alias.fail=!echo CONFLICT in a.txt; exit 3"
    with pytest.raises(GitError, match=r"failed \(exit 3\): CONFLICT in a\.txt$"):
        await git(repo, "-c", alias, "fail")
    with pytest.raises(GitError, match=r"failed \(exit 1\): git printed nothing$"):
        await git(repo, "-c", "alias.quiet=!false", "quiet")


async def test_a_long_command_is_shortened_in_the_message(repo: Path):
    with pytest.raises(GitError) as caught:
        await git(repo, "rev-parse", "--verify", "x" * 500)
    assert "x" * 500 not in str(caught.value)
    assert "…" in str(caught.value)
    assert caught.value.argv[-1] == "x" * 500  # the attribute keeps it whole


async def test_a_missing_directory_or_git_binary_is_a_clear_error(tmp_path: Path):
    gone = re.escape(str(tmp_path / "gone"))
    with pytest.raises(GitError, match=rf"cannot run git status in {gone}: .*does not exist"):
        await git(tmp_path / "gone", "status")
    (tmp_path / "file").write_text("")
    with pytest.raises(GitError, match="not a directory") as caught:
        await git(tmp_path / "file", "status")
    assert caught.value.returncode is None
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    with pytest.raises(GitError, match="git was not found on PATH"):
        await git(tmp_path, "status", env={"PATH": str(empty)})


async def test_outside_a_repository_git_fails_with_its_own_message(tmp_path: Path, repo: Path):
    outside = tmp_path / "plain"
    outside.mkdir()
    with pytest.raises(GitError, match=r"symbolic-ref .* failed \(exit 128\): fatal: not a git"):
        await Git(outside).current_branch()
    with pytest.raises(GitError, match="not a git repository"):
        await Git(outside).branch_exists("main")


async def test_a_timeout_kills_git_and_what_it_started(repo: Path):
    fifo = repo.parent / "fifo"
    os.mkfifo(fifo)
    # The alias runs `cat` as git's child; opening a FIFO nobody writes to blocks forever.
    hang = f"alias.hang=!cat {fifo}"
    with pytest.raises(GitError, match=r"git -c .* hang in .* timed out after 0\.3 s") as caught:
        await asyncio.wait_for(git(repo, "-c", hang, "hang", timeout_s=0.3), 30)
    assert caught.value.returncode is None
    # No reader is left on the FIFO: `cat` died with git (a non-blocking writer needs one).
    with pytest.raises(OSError, match="No such device or address") as no_reader:
        os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    assert no_reader.value.errno == errno.ENXIO


async def test_cancelling_kills_git(repo: Path):
    fifo = repo.parent / "fifo"
    os.mkfifo(fifo)
    task = asyncio.create_task(git(repo, "-c", f"alias.hang=!cat {fifo}", "hang"))
    # Opening the FIFO for writing returns once git's `cat` has opened it for reading.
    writer = await asyncio.to_thread(os.open, fifo, os.O_WRONLY)
    task.cancel()
    await asyncio.wait({task}, timeout=30)  # a bound, so a regression fails instead of hanging
    assert task.cancelled()
    # cat was killed, so the FIFO has no reader: writing to it fails instead of blocking.
    with pytest.raises(BrokenPipeError):
        os.write(writer, b"x")
    os.close(writer)


async def test_cancelling_while_git_starts_kills_what_it_started(repo: Path):
    fifo = repo.parent / "fifo"
    os.mkfifo(fifo)
    task = asyncio.create_task(git(repo, "-c", f"alias.hang=!cat {fifo}", "hang"))
    # Two scheduling steps (no waiting on time): asyncio starts git, and is then still
    # connecting its pipes.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    # Block the event loop on purpose, so the start cannot move on until git's `cat` runs.
    writer = os.open(fifo, os.O_WRONLY)
    task.cancel()
    await asyncio.wait({task}, timeout=30)
    assert task.cancelled()
    with pytest.raises(BrokenPipeError):
        os.write(writer, b"x")
    os.close(writer)


async def test_git_runs_in_a_fixed_environment(repo: Path, monkeypatch: pytest.MonkeyPatch):
    # Inherited variables that would point git elsewhere (as inside a git hook) are dropped.
    monkeypatch.setenv("GIT_DIR", str(repo.parent / "nowhere"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(repo.parent / "other-index"))
    monkeypatch.setenv("GIT_EDITOR", "vim")
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    assert (await git(repo, "rev-parse", "--git-dir")).stdout.strip() == ".git"
    shown = (await git(repo, "-c", "alias.env=!env", "env")).stdout.splitlines()
    for setting in ["GIT_TERMINAL_PROMPT=0", "LC_ALL=C", "GIT_EDITOR=true", "GIT_PAGER=cat"]:
        assert setting in shown
    assert not [line for line in shown if line.startswith("GIT_INDEX_FILE=")]
    # What the caller passes is applied last.
    ident = await git(repo, "var", "GIT_AUTHOR_IDENT", env={"GIT_AUTHOR_NAME": "Ada Lovelace"})
    assert ident.stdout.startswith("Ada Lovelace <author@example.com>")


async def test_input_is_fed_to_stdin(repo: Path):
    result = await git(repo, "hash-object", "--stdin", input=b"hello\n")
    assert result.stdout.strip() == "ce013625030ba8dba906f756967f9e9ca394464a"


async def test_refs_and_branches(repo: Path):
    g = Git(repo)
    first = run_git(repo, "rev-parse", "HEAD")
    assert await g.head() == first
    assert await g.rev_parse("main") == first
    with pytest.raises(GitError, match="rev-parse --verify --end-of-options no-such-ref"):
        await g.rev_parse("no-such-ref")
    assert await g.current_branch() == "main"
    assert await g.branch_exists("main")
    assert not await g.branch_exists("no-such-branch")
    assert not await g.branch_exists("bad..name")  # not a valid name, so not a branch

    run_git(repo, "switch", "--quiet", "-c", "topic")
    commit_file(repo, "a.txt", "a\n", "Add a")
    tip = commit_file(repo, "b.txt", "b\n", "Add b")
    assert await g.commits_ahead("main", "topic") == 2
    assert await g.commits_ahead("topic", "main") == 0
    assert await g.merge_base("main", "topic") == first

    run_git(repo, "switch", "--quiet", "--detach", "topic")
    assert await g.current_branch() is None
    assert await g.head() == tip


async def test_diff_stat_counts_what_the_branch_brings(repo: Path):
    g = Git(repo)
    run_git(repo, "switch", "--quiet", "-c", "topic")
    commit_file(repo, "README.md", "hello\nworld\n", "Two lines")
    commit_file(repo, "new.txt", "1\n2\n3\n", "Three more")
    (repo / "blob.bin").write_bytes(b"\0\1\2")
    run_git(repo, "add", "blob.bin")
    run_git(repo, "commit", "--quiet", "-m", "Binary")
    run_git(repo, "switch", "--quiet", "main")
    commit_file(repo, "main-only.txt", "x\n", "Not on topic")  # three dots leave this out
    assert await g.diff_stat("main", "topic") == DiffStat(files=3, insertions=4, deletions=0)
    assert await g.diff_stat("topic", "topic") == DiffStat(0, 0, 0)


async def test_dirty_state_and_changed_paths(repo: Path):
    g = Git(repo)
    assert not await g.is_dirty()
    assert await g.changed_paths() == []
    (repo / "sub dir").mkdir()
    (repo / "sub dir" / "new file.txt").write_text("untracked\n")
    assert await g.is_dirty()
    assert await g.changed_paths() == ["sub dir/new file.txt"]
    (repo / "README.md").write_text("changed\n")
    assert await g.changed_paths() == ["README.md", "sub dir/new file.txt"]


async def test_a_staged_rename_is_reported_once_by_its_new_name(repo: Path):
    commit_file(repo, "old.txt", "content\n", "Add old")
    run_git(repo, "mv", "old.txt", "new.txt")
    assert await Git(repo).changed_paths() == ["new.txt"]


async def test_log_lists_newest_first(repo: Path):
    g = Git(repo)
    tip = commit_file(repo, "a.txt", "a\n", "Add a | with; odd: characters")
    commits = await g.log("main", limit=10)
    assert [c.subject for c in commits] == ["Add a | with; odd: characters", "Initial commit"]
    assert commits[0] == Commit(tip, commits[0].subject, "Test Author", commits[0].at)
    assert isinstance(commits[0].at, datetime)
    assert commits[0].at.tzinfo is not None
    assert len(await g.log(limit=1)) == 1
    with pytest.raises(ValueError, match="at least 1, not 0"):
        await g.log(limit=0)


async def test_worktrees_are_added_listed_and_removed(repo: Path):
    g = Git(repo)
    main_tip = run_git(repo, "rev-parse", "HEAD")
    new = repo.parent / "new"
    await g.worktree_add(new, "topic", "main")
    assert run_git(new, "branch", "--show-current") == "topic"
    # An existing branch is checked out as it is, not reset to the start point.
    work = commit_file(new, "work.txt", "work\n", "Work")
    await g.worktree_remove(new)
    again = repo.parent / "again"
    await g.worktree_add(again, "topic", "main")
    assert run_git(again, "rev-parse", "HEAD") == work
    with pytest.raises(GitError, match="invalid reference: no-such-branch"):
        await g.worktree_add(repo.parent / "never", "no-such-branch")
    # git's progress line ("Preparing worktree") is left out of the message.
    with pytest.raises(GitError, match=r"\): fatal: not a valid object name: 'no-such-start'$"):
        await g.worktree_add(repo.parent / "never", "other", "no-such-start")
    assert not (repo.parent / "never").exists()

    detached = repo.parent / "detached"
    run_git(repo, "worktree", "add", "--quiet", "--detach", str(detached))
    run_git(repo, "worktree", "lock", str(detached))  # adds a "locked" line to skip
    assert await g.worktree_list() == [
        WorktreeInfo(repo, "main", main_tip),
        WorktreeInfo(again, "topic", work),
        WorktreeInfo(detached, None, main_tip),
    ]

    (again / "work.txt").write_text("uncommitted\n")
    with pytest.raises(GitError, match="contains modified or untracked files"):
        await g.worktree_remove(again)
    await g.worktree_remove(again, force=True)
    assert not again.exists()
    assert await g.branch_exists("topic")


async def test_prune_forgets_deleted_worktree_directories(repo: Path):
    g = Git(repo)
    gone = repo.parent / "gone"
    await g.worktree_add(gone, "topic", "main")
    shutil.rmtree(gone)
    assert len(await g.worktree_list()) == 2  # still registered
    await g.worktree_prune()
    assert [w.path for w in await g.worktree_list()] == [repo]
