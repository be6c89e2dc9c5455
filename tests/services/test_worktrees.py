"""Item worktrees in real git repositories: creation, reuse, concurrency, leftovers, removal."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest

from huskies.services.worktrees import (
    MAX_SLUG,
    Worktree,
    WorktreeError,
    Worktrees,
    branch_for,
    slug,
)
from tests.test_gitops import commit_file, make_repo, run_git


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    return make_repo(tmp_path / "project")


def registered(repo: Path) -> list[str]:
    """The worktree paths git knows, as git lists them."""
    lines = run_git(repo, "worktree", "list", "--porcelain").splitlines()
    return [line.removeprefix("worktree ") for line in lines if line.startswith("worktree ")]


def test_slugs_are_short_lowercase_ascii_words():
    assert slug("Add login page") == "add-login-page"
    assert slug("Fix: the “foo” bug (again)!") == "fix-the-foo-bug-again"
    assert slug("Don't crash on save") == "dont-crash-on-save"
    assert slug("Ça marche très bien") == "ca-marche-tres-bien"
    assert slug("Straße in Ærø") == "strasse-in-aero"
    assert slug("日本語 title") == "title"
    assert slug("before—after") == "before-after"  # a dropped character still separates
    assert slug("  --Spaces   and\ttabs-- ") == "spaces-and-tabs"
    for nothing in ["", "   ", "!!!", "日本語", "🐺🐺"]:
        assert slug(nothing) == "item"


def test_long_slugs_are_cut_at_a_word_boundary():
    long = slug("Implement the very long title of a story that goes on and on")
    assert long == "implement-the-very-long-title-of-a-story"
    assert len(long) <= MAX_SLUG
    assert slug("x" * 100) == "x" * MAX_SLUG  # one long word is cut inside it
    assert slug("a " + "y" * 100) == "a"


def test_branch_names_and_bad_numbers():
    assert branch_for(42) == "feature/story-42"
    for bad in [0, -1, True]:
        with pytest.raises(ValueError, match="whole number from 1"):
            branch_for(bad)


async def test_a_worktree_is_made_from_the_checked_out_branch(repo: Path):
    run_git(repo, "switch", "--quiet", "-c", "trunk")
    trunk = commit_file(repo, "trunk.txt", "t\n", "On trunk")
    worktrees = Worktrees(repo, "")
    assert await worktrees.base() == "trunk"
    made = await worktrees.ensure(7, "Add login page")
    path = repo / ".huskies" / "worktrees" / "7-add-login-page"
    assert made == Worktree(7, path, "feature/story-7")
    assert run_git(path, "branch", "--show-current") == "feature/story-7"
    assert run_git(path, "rev-parse", "HEAD") == trunk
    # The new branch tracks nothing: pushing or pulling it never touches the base.
    assert run_git(repo, "for-each-ref", "--format=%(upstream)", "refs/heads/feature/story-7") == ""
    # The base is what was checked out when first needed, even if the root moves on.
    run_git(repo, "switch", "--quiet", "main")
    assert await worktrees.base() == "trunk"


async def test_a_configured_base_branch_is_used(repo: Path):
    run_git(repo, "switch", "--quiet", "-c", "release")
    release = commit_file(repo, "release.txt", "r\n", "On release")
    run_git(repo, "switch", "--quiet", "main")
    worktrees = Worktrees(repo, "release")
    made = await worktrees.ensure(1, "Ship it")
    assert run_git(made.path, "rev-parse", "HEAD") == release
    assert run_git(repo, "branch", "--show-current") == "main"  # the root is left alone


async def test_an_unknown_configured_base_is_a_clear_error(repo: Path):
    for name in ["develop", "bad..name"]:
        worktrees = Worktrees(repo, name)
        with pytest.raises(WorktreeError, match=rf"base branch '{name}' set in .*does not exist"):
            await worktrees.ensure(1, "Story")
    assert not (repo / ".huskies" / "worktrees").exists()
    assert not run_git(repo, "branch", "--list", "feature/*")


async def test_a_detached_head_without_a_configured_base_is_a_clear_error(repo: Path):
    run_git(repo, "switch", "--quiet", "--detach")
    worktrees = Worktrees(repo, "")
    with pytest.raises(WorktreeError, match=r"detached HEAD.*set base_branch in \.huskies/project"):
        await worktrees.base()
    with pytest.raises(WorktreeError, match="detached HEAD"):
        await worktrees.ensure(1, "Story")
    # A configured base makes it work.
    assert (await Worktrees(repo, "main").ensure(1, "Story")).branch == "feature/story-1"


async def test_the_worktree_is_reused_even_after_a_title_change(repo: Path):
    worktrees = Worktrees(repo, "")
    first = await worktrees.ensure(3, "Old title")
    (first.path / "scratch.txt").write_text("an agent's uncommitted work\n")
    assert await worktrees.ensure(3, "Old title") == first
    renamed = await worktrees.ensure(3, "A completely new title")
    assert renamed == first  # the old directory, found by its branch
    assert (first.path / "scratch.txt").read_text() == "an agent's uncommitted work\n"
    assert not (repo / ".huskies" / "worktrees" / "3-a-completely-new-title").exists()
    # A fresh service (a restarted server) finds it too.
    assert await Worktrees(repo, "").ensure(3, "Another title") == first


async def test_concurrent_ensures_of_one_item_make_one_worktree(repo: Path):
    worktrees = Worktrees(repo, "")
    made = await asyncio.gather(*(worktrees.ensure(5, "Same story") for _ in range(5)))
    assert len(set(made)) == 1
    assert len(registered(repo)) == 2  # the main worktree and this one


async def test_concurrent_ensures_of_different_items_all_succeed(repo: Path):
    worktrees = Worktrees(repo, "")
    # Unserialised, git's own worktree commands trip over each other now and then.
    made = await asyncio.gather(*(worktrees.ensure(n, f"Story {n}") for n in range(1, 13)))
    assert [w.number for w in made] == list(range(1, 13))
    for w in made:
        assert run_git(w.path, "branch", "--show-current") == f"feature/story-{w.number}"
    assert await worktrees.list() == made


async def test_a_branch_without_a_worktree_is_checked_out_again_with_its_work(repo: Path):
    worktrees = Worktrees(repo, "")
    first = await worktrees.ensure(4, "Story")
    work = commit_file(first.path, "feature.txt", "done\n", "The agent's work")
    assert await worktrees.remove(4)
    commit_file(repo, "later.txt", "later\n", "The base moves on")
    again = await worktrees.ensure(4, "Story, renamed")
    assert again.path.name == "4-story-renamed"
    assert run_git(again.path, "rev-parse", "HEAD") == work  # not reset to the base
    assert (again.path / "feature.txt").read_text() == "done\n"


async def test_existing_work_is_resumed_even_without_a_usable_base(repo: Path):
    await Worktrees(repo, "").ensure(2, "Story")
    assert await Worktrees(repo, "").remove(2)
    run_git(repo, "switch", "--quiet", "--detach")
    resumed = await Worktrees(repo, "no-such-base").ensure(2, "Story")
    assert run_git(resumed.path, "branch", "--show-current") == "feature/story-2"


async def test_a_deleted_worktree_directory_is_pruned_and_made_again(repo: Path):
    worktrees = Worktrees(repo, "")
    first = await worktrees.ensure(6, "Story")
    work = commit_file(first.path, "w.txt", "w\n", "Work")
    shutil.rmtree(first.path)  # as a crash or a person might
    assert await worktrees.find(6) is None
    again = await worktrees.ensure(6, "Story")
    assert again == first
    assert run_git(again.path, "rev-parse", "HEAD") == work
    assert len(registered(repo)) == 2


async def test_a_leftover_directory_in_the_way_is_a_clear_error(repo: Path):
    leftover = repo / ".huskies" / "worktrees" / "8-story"
    leftover.mkdir(parents=True)
    (leftover / "junk.txt").write_text("left from a crash\n")
    worktrees = Worktrees(repo, "")
    with pytest.raises(
        WorktreeError, match=rf"{re.escape(str(leftover))} is in the way.*move or delete it"
    ):
        await worktrees.ensure(8, "Story")
    assert (leftover / "junk.txt").exists()  # nothing of it was touched
    assert len(registered(repo)) == 1
    shutil.rmtree(leftover)
    leftover.mkdir()  # an empty directory is no obstacle
    assert (await worktrees.ensure(8, "Story")).path == leftover
    assert (leftover / "README.md").exists()


async def test_a_worktree_half_deleted_by_a_crash_is_forgotten_and_reported(repo: Path):
    worktrees = Worktrees(repo, "")
    made = await worktrees.ensure(8, "Story")
    (made.path / ".git").unlink()  # what is left is a plain directory, no longer a worktree
    assert await worktrees.list() == []
    with pytest.raises(WorktreeError, match="8-story is in the way"):
        await worktrees.ensure(8, "Story")
    assert registered(repo) == [str(repo)]  # the stale registration was pruned
    assert (made.path / "README.md").exists()  # but the files were not touched


async def test_a_file_in_the_way_is_a_clear_error(repo: Path):
    (repo / ".huskies" / "worktrees").mkdir(parents=True)
    (repo / ".huskies" / "worktrees" / "9-story").write_text("")
    with pytest.raises(WorktreeError, match="9-story is in the way"):
        await Worktrees(repo, "").ensure(9, "Story")


async def test_the_branch_checked_out_elsewhere_is_a_clear_error(repo: Path):
    run_git(repo, "branch", "feature/story-3")
    elsewhere = repo.parent / "elsewhere"
    run_git(repo, "worktree", "add", "--quiet", str(elsewhere), "feature/story-3")
    worktrees = Worktrees(repo, "")
    with pytest.raises(
        WorktreeError, match=f"feature/story-3 is checked out at {re.escape(str(elsewhere))};"
    ):
        await worktrees.ensure(3, "Story")
    assert await worktrees.list() == []  # not huskies' worktree


async def test_a_worktree_switched_to_another_branch_is_a_clear_error(repo: Path):
    worktrees = Worktrees(repo, "")
    made = await worktrees.ensure(5, "Story")
    run_git(made.path, "switch", "--quiet", "-c", "experiment")
    with pytest.raises(WorktreeError, match="5-story is a worktree on branch experiment, not"):
        await worktrees.ensure(5, "Story")
    assert await worktrees.find(5) is None


async def test_find_and_list_see_only_item_worktrees(repo: Path):
    worktrees = Worktrees(repo, "")
    assert await worktrees.list() == []
    assert await worktrees.find(1) is None
    ten = await worktrees.ensure(10, "Ten")
    two = await worktrees.ensure(2, "Two")
    run_git(repo, "worktree", "add", "--quiet", "-b", "mine", str(repo.parent / "mine"))
    assert await worktrees.list() == [two, ten]  # by number, not by name
    assert await worktrees.find(10) == ten
    assert await worktrees.find(3) is None


async def test_remove_refuses_uncommitted_changes_unless_forced(repo: Path):
    worktrees = Worktrees(repo, "")
    made = await worktrees.ensure(1, "Story")
    work = commit_file(made.path, "done.txt", "done\n", "Committed work")
    (made.path / "README.md").write_text("modified\n")
    (made.path / "notes.txt").write_text("untracked\n")
    with pytest.raises(
        WorktreeError,
        match=r"has uncommitted changes \(README\.md, notes\.txt\); commit them .*force",
    ):
        await worktrees.remove(1)
    assert made.path.exists()
    assert await worktrees.find(1) == made
    assert await worktrees.remove(1, force=True)
    assert not made.path.exists()
    assert await worktrees.find(1) is None
    assert run_git(repo, "rev-parse", "feature/story-1") == work  # the branch is kept
    assert not await worktrees.remove(1)  # there is none any more
    assert not await worktrees.remove(99)


async def test_remove_names_a_few_of_many_changes(repo: Path):
    worktrees = Worktrees(repo, "")
    made = await worktrees.ensure(1, "Story")
    for i in range(8):
        (made.path / f"new-{i}.txt").write_text("x\n")
    with pytest.raises(WorktreeError, match=r"new-4\.txt and 3 more\)"):
        await worktrees.remove(1)


async def test_a_clean_worktree_is_removed_without_force(repo: Path):
    worktrees = Worktrees(repo, "")
    made = await worktrees.ensure(1, "Story")
    assert await worktrees.remove(1)
    assert not made.path.exists()
    assert registered(repo) == [str(repo)]


async def test_bad_numbers_are_refused(repo: Path):
    worktrees = Worktrees(repo, "")
    with pytest.raises(ValueError, match="not 0"):
        await worktrees.ensure(0, "Story")
    with pytest.raises(ValueError, match="not -3"):
        await worktrees.remove(-3)
