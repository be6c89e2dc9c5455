"""The merge queue and workspace with real git repositories and a real replica: squash merges
onto the base, every way a merge fails leaving the base and the user's checkout untouched, the
mergemaster, retries, and restarts at each point a crash can interrupt a merge."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from huskies.pipeline import (
    Archived,
    ArchiveReason,
    Done,
    QaApproved,
    Start,
    Submit,
    WorkItem,
)
from huskies.pipeline.merge_jobs import JobState, MergeJob, read_jobs, write_job
from huskies.pipeline.stages import Backlog, StageName
from huskies.project import Project, init_project
from huskies.services.merge import (
    GateVerdict,
    MergeKind,
    MergeQueue,
    MergeResult,
    MergeWorkspace,
    NoMergemaster,
)
from huskies.services.settings import Settings
from huskies.services.stories import Board
from huskies.services.worktrees import Worktrees, branch_for
from huskies.store import Replica
from tests.test_gitops import commit_file, make_repo, run_git

T = 1_700_000_000_000
DEADLINE_S = 10
BASE = "main"

Gates = Callable[[WorkItem, Path], Awaitable[GateVerdict]]
Mergemaster = Callable[[WorkItem, Path, str], Awaitable[bool]]


class Crash(BaseException):
    """The process dying at a chosen point: not an Exception, so nothing in huskies handles
    it, and what was written before it stays written (as after a kill)."""


@dataclass
class Rig:
    project: Project
    replica: Replica
    board: Board
    settings: Settings
    worktrees: Worktrees
    workspace: MergeWorkspace
    clock: Callable[[], int]
    notes: list[tuple[str, int, str]] = field(default_factory=list)
    gate_runs: list[Path] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.project.root

    def queue(
        self,
        *,
        gates: Gates | None = None,
        mergemaster: Mergemaster | None = None,
        boot: str = "boot-1",
        workspace: MergeWorkspace | None = None,
    ) -> MergeQueue:
        return MergeQueue(
            settings=self.settings,
            replica=self.replica,
            board=self.board,
            workspace=workspace or self.workspace,
            gates=gates or self.passing_gates,
            mergemaster=mergemaster,
            boot_id=boot,
            clock=self.clock,
            notify=lambda kind, item, message: self.notes.append((kind, item.number, message)),
        )

    async def passing_gates(self, item: WorkItem, path: Path) -> GateVerdict:
        self.gate_runs.append(path)
        return GateVerdict(True, "all gates passed")

    async def in_merge(self, title: str, files: dict[str, str] | None = None) -> WorkItem:
        """A new item in the merge stage whose branch holds `files` in two commits (none if
        `files` is None: the branch is made at the base with nothing on it)."""
        item = await self.board.create(title)
        branch = branch_for(item.number)
        if files is None:
            run_git(self.root, "branch", branch, BASE)
        else:
            worktree = await self.worktrees.ensure(item.number, title)
            for name, text in files.items():
                commit_file(worktree.path, name, text, f"#{item.number}: {name}")
            commit_file(worktree.path, f"notes-{item.number}.txt", "done\n", "notes")
        await self.board.apply(item.number, Start())
        await self.board.apply(item.number, Submit())
        return await self.board.apply(item.number, QaApproved(self.clock(), branch, 1))

    def tip(self, ref: str = BASE) -> str:
        return run_git(self.root, "rev-parse", ref)

    def status(self) -> str:
        """The user's checkout as `git status` sees it ("" when clean)."""
        return run_git(self.root, "status", "--porcelain", "--untracked-files=all")

    def show(self, ref: str, path: str) -> str:
        return run_git(self.root, "show", f"{ref}:{path}")

    def commits_since(self, old: str) -> list[str]:
        return run_git(self.root, "rev-list", f"{old}..{BASE}").split()

    def job(self, item: WorkItem) -> MergeJob:
        return read_jobs(self.replica.document)[0][item.id]

    async def until(self, check: Callable[[], object], what: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting until {what}"
            await asyncio.sleep(0.02)


def new_project(tmp_path: Path, max_retries: int) -> Project:
    root = make_repo(tmp_path / "repo", BASE)
    project = init_project(root)
    toml = project.project_toml.read_text()
    project.project_toml.write_text(toml.replace("max_retries = 3", f"max_retries = {max_retries}"))
    run_git(root, "add", ".huskies", ".mcp.json")
    run_git(root, "commit", "--quiet", "-m", "huskies init")
    return project


@contextlib.asynccontextmanager
async def opened(project: Project, clock: Callable[[], int]) -> AsyncIterator[Rig]:
    """The services of one server process over `project` (a restart opens new ones)."""
    settings = Settings.load(project)
    replica = await Replica.open(project.db_path)
    try:
        worktrees = Worktrees(project.root, settings.config.base_branch)
        yield Rig(
            project,
            replica,
            Board(replica, clock),
            settings,
            worktrees,
            MergeWorkspace(worktrees),
            clock,
        )
    finally:
        await replica.close()


@pytest.fixture
def clock() -> Callable[[], int]:
    counter = itertools.count(T)
    return lambda: next(counter)


@pytest.fixture
async def rig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Callable[[], int]
) -> AsyncIterator[Rig]:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    async with opened(new_project(tmp_path, max_retries=3), clock) as opened_rig:
        yield opened_rig


def git_in(path: Path, *args: str) -> str:
    """What an agent does: plain git commands in its directory."""
    return run_git(path, *args)


# ---- merging ------------------------------------------------------------------------------


async def test_a_clean_merge_is_one_squash_commit_on_the_base(rig: Rig):
    item = await rig.in_merge("Add login", {"login.txt": "hello\n", "src/app.txt": "app\n"})
    seen: list[str] = []

    async def gates(gated: WorkItem, path: Path) -> GateVerdict:
        # The gates run on the merged code, in the workspace.
        seen.append((path / "login.txt").read_text())
        return await rig.passing_gates(gated, path)

    old = rig.tip()
    await rig.queue(gates=gates).merge_one(item)

    new = rig.tip()
    assert rig.commits_since(old) == [new]  # exactly one commit, however many the branch had
    assert run_git(rig.root, "rev-parse", f"{new}^") == old
    assert rig.show(new, "login.txt") == "hello"
    assert rig.show(new, "src/app.txt") == "app"
    assert run_git(rig.root, "log", "-1", "--format=%an <%ae>|%cn|%s", new) == (
        "huskies <huskies@localhost>|huskies|Add login (#1)"
    )
    # The user's checkout moved with the branch: same commit, files there, nothing dirty.
    assert run_git(rig.root, "rev-parse", "HEAD") == new
    assert (rig.root / "login.txt").read_text() == "hello\n"
    assert rig.status() == ""
    assert rig.gate_runs == [rig.workspace.path]
    assert seen == ["hello\n"]
    done = rig.board.get(1)
    assert isinstance(done.stage, Done)
    assert done.stage.merge_commit == new
    job = rig.job(item)
    assert (job.state, job.commit, job.attempt, job.boot) == (JobState.SUCCEEDED, new, 1, "boot-1")
    assert job.ended_at is not None
    assert rig.notes == [("merged", 1, f"merged into the base branch as {new}")]


async def test_the_workspace_is_a_detached_worktree_made_once_and_cleaned_each_time(rig: Rig):
    first = await rig.in_merge("First", {"a.txt": "a\n"})
    second = await rig.in_merge("Second", {"b.txt": "b\n"})
    queue = rig.queue()
    await queue.merge_one(first)
    path = rig.workspace.path
    assert path == rig.root / ".huskies" / "merge_workspace"
    listing = run_git(rig.root, "worktree", "list", "--porcelain")
    assert f"worktree {path}\nHEAD {rig.tip()}\ndetached" in listing
    assert [w.number for w in await rig.worktrees.list()] == [1, 2]  # not an item's worktree
    # Leftovers of any kind: a changed file, a staged file, an untracked file.
    (path / "a.txt").write_text("scribbled\n")
    (path / "staged.txt").write_text("x\n")
    git_in(path, "add", "staged.txt")
    (path / "junk.txt").write_text("junk\n")
    await queue.merge_one(second)
    tip = rig.tip()
    assert run_git(rig.root, "show", "--name-only", "--format=", tip).split() == [
        "b.txt",
        "notes-2.txt",
    ]
    assert not (path / "junk.txt").exists()
    assert not (path / "staged.txt").exists()
    assert run_git(path, "status", "--porcelain") == ""
    assert run_git(rig.root, "worktree", "list").count("merge_workspace") == 1
    assert rig.status() == ""


async def test_a_branch_with_no_commits_ahead_fails_and_the_base_is_untouched(rig: Rig):
    item = await rig.in_merge("Nothing done", None)
    old = rig.tip()
    await rig.queue().merge_one(item)
    assert rig.tip() == old
    assert rig.status() == ""
    failed = rig.board.get(1)
    assert (failed.stage, failed.retries) == (item.stage, 1)
    job = rig.job(item)
    assert job.state is JobState.FAILED
    assert job.reason is not None
    assert "no commits that main does not have" in job.reason
    assert rig.gate_runs == []
    assert [(kind, number) for kind, number, _ in rig.notes] == [("merge_failed", 1)]


async def test_a_branch_that_is_gone_fails(rig: Rig):
    item = await rig.in_merge("Lost branch", None)
    run_git(rig.root, "branch", "-D", branch_for(1))
    old = rig.tip()
    await rig.queue().merge_one(item)
    assert rig.tip() == old
    assert rig.board.get(1).retries == 1
    assert rig.job(item).reason == "there is no branch feature/story-1 to merge"


async def test_a_squash_that_changes_nothing_is_a_failure_never_done(rig: Rig):
    item = await rig.in_merge("Already there", {"same.txt": "same\n"})
    # The same changes reach the base by another way (cherry-picked after other work).
    commit_file(rig.root, "other.txt", "other\n", "other work")
    run_git(rig.root, "cherry-pick", "--quiet", f"{branch_for(1)}~1", f"{branch_for(1)}")
    old = rig.tip()
    await rig.queue().merge_one(item)
    assert rig.tip() == old
    assert rig.status() == ""
    failed = rig.board.get(1)
    assert failed.stage.name is StageName.MERGE
    assert failed.retries == 1
    reason = rig.job(item).reason
    assert reason is not None
    assert "changes nothing" in reason
    assert "never made" in reason
    assert rig.gate_runs == []


async def test_gates_failing_on_the_merged_code_fail_the_merge(rig: Rig):
    item = await rig.in_merge("Breaks things", {"x.txt": "x\n"})

    async def failing(gated: WorkItem, path: Path) -> GateVerdict:
        rig.gate_runs.append(path)
        return GateVerdict(False, "pytest: 2 failed, 10 passed")

    old = rig.tip()
    await rig.queue(gates=failing).merge_one(item)
    assert rig.tip() == old
    assert rig.status() == ""
    assert rig.board.get(1).retries == 1
    assert rig.job(item).reason == (
        "the gates fail on the merged code: pytest: 2 failed, 10 passed, and no mergemaster "
        "is set up"
    )


async def test_a_mergemaster_fixes_failing_gates_and_the_fix_is_part_of_the_squash(rig: Rig):
    item = await rig.in_merge("Needs a fix", {"value.txt": "broken\n"})
    prompts: list[str] = []

    async def gates(gated: WorkItem, path: Path) -> GateVerdict:
        rig.gate_runs.append(path)
        (path / "gate-report.log").write_text("artifact\n")  # untracked: never merged
        ok = (path / "value.txt").read_text() == "fixed\n"
        return GateVerdict(ok, "ok" if ok else "value.txt must say fixed")

    async def mergemaster(gated: WorkItem, path: Path, prompt: str) -> bool:
        prompts.append(prompt)
        assert not (path / "gate-report.log").exists()  # starts from the squash itself
        (path / "value.txt").write_text("fixed\n")  # edited, not even staged
        (path / "scratch.tmp").write_text("the agent's notes\n")  # never added: not merged
        return True

    old = rig.tip()
    await rig.queue(gates=gates, mergemaster=mergemaster).merge_one(item)
    new = rig.tip()
    assert rig.commits_since(old) == [new]
    assert rig.show(new, "value.txt") == "fixed"
    merged_files = run_git(rig.root, "ls-tree", "-r", "--name-only", new).split()
    assert "gate-report.log" not in merged_files
    assert "scratch.tmp" not in merged_files
    assert "value.txt must say fixed" in prompts[0]
    assert str(rig.workspace.path) in prompts[0]
    assert len(rig.gate_runs) == 2
    assert rig.status() == ""
    done = rig.board.get(1)
    assert isinstance(done.stage, Done)
    assert done.stage.merge_commit == new


# ---- conflicts and the mergemaster ------------------------------------------------------------


async def conflicting(rig: Rig) -> WorkItem:
    """An item whose branch and the base both change README.md's line."""
    item = await rig.in_merge("Reword readme", {"README.md": "hello from the branch\n"})
    commit_file(rig.root, "README.md", "hello from main\n", "main rewords too")
    return item


async def test_a_conflict_is_resolved_by_a_mergemaster_with_real_git(rig: Rig):
    item = await conflicting(rig)
    calls: list[tuple[Path, str]] = []

    async def mergemaster(gated: WorkItem, path: Path, prompt: str) -> bool:
        calls.append((path, prompt))
        assert "<<<<<<<" in (path / "README.md").read_text()
        (path / "README.md").write_text("hello from both\n")
        git_in(path, "add", "README.md")
        git_in(path, "commit", "--quiet", "-m", "resolve")  # committing is allowed
        git_in(path, "commit", "--quiet", "--allow-empty", "-m", "and a second commit")
        return True

    old = rig.tip()
    await rig.queue(mergemaster=mergemaster).merge_one(item)
    ((path, prompt),) = calls
    assert path == rig.workspace.path
    assert "conflicts in: README.md" in prompt
    assert "feature/story-1" in prompt
    new = rig.tip()
    assert rig.commits_since(old) == [new]  # the agent's commits are folded into one
    assert run_git(rig.root, "rev-parse", f"{new}^") == old
    assert run_git(rig.root, "log", "-1", "--format=%an", new) == "huskies"
    assert rig.show(new, "README.md") == "hello from both"
    assert rig.show(new, "notes-1.txt") == "done"
    assert (rig.root / "README.md").read_text() == "hello from both\n"
    assert rig.status() == ""
    assert rig.gate_runs == [rig.workspace.path]
    assert rig.board.get(1).stage.name is StageName.DONE


async def test_a_mergemaster_that_does_nothing_fails_the_merge(rig: Rig):
    item = await conflicting(rig)
    called: list[str] = []

    async def idle(gated: WorkItem, path: Path, prompt: str) -> bool:
        called.append(prompt)
        return True

    old = rig.tip()
    await rig.queue(mergemaster=idle).merge_one(item)
    assert called
    assert rig.tip() == old
    assert rig.status() == ""
    assert rig.board.get(1).retries == 1
    assert rig.job(item).reason == (
        "merging feature/story-1 into main conflicts in README.md; after the mergemaster, "
        "conflicts are still unresolved in README.md"
    )
    assert rig.gate_runs == []


async def test_conflict_markers_staged_as_a_resolution_are_refused(rig: Rig):
    item = await conflicting(rig)

    async def careless(gated: WorkItem, path: Path, prompt: str) -> bool:
        git_in(path, "add", "README.md")  # markers and all
        return True

    old = rig.tip()
    await rig.queue(mergemaster=careless).merge_one(item)
    assert rig.tip() == old
    reason = rig.job(item).reason
    assert reason is not None
    assert reason.endswith("conflict markers are left in README.md")


async def test_a_mergemaster_that_throws_the_squash_away_fails(rig: Rig):
    item = await conflicting(rig)

    async def resetting(gated: WorkItem, path: Path, prompt: str) -> bool:
        git_in(path, "reset", "--quiet", "--hard")
        return True

    old = rig.tip()
    await rig.queue(mergemaster=resetting).merge_one(item)
    assert rig.tip() == old
    reason = rig.job(item).reason
    assert reason is not None
    assert "changes nothing in main" in reason


async def test_a_mergemaster_that_did_not_finish_fails_and_so_does_none(rig: Rig):
    item = await conflicting(rig)

    async def crashed(gated: WorkItem, path: Path, prompt: str) -> bool:
        (path / "README.md").write_text("half done\n")
        git_in(path, "add", "README.md")
        return False

    old = rig.tip()
    await rig.queue(mergemaster=crashed).merge_one(item)
    assert rig.job(item).reason == (
        "merging feature/story-1 into main conflicts in README.md, and the mergemaster agent "
        "did not finish"
    )
    await rig.queue(mergemaster=None).merge_one(rig.board.get(1))
    assert rig.job(item).reason == (
        "merging feature/story-1 into main conflicts in README.md, and no mergemaster is set up"
    )
    assert rig.tip() == old
    assert rig.board.get(1).retries == 2


async def test_a_mergemaster_that_gives_up_fails_the_merge_with_its_reason(rig: Rig):
    item = await conflicting(rig)
    queue: MergeQueue | None = None

    async def giving_up(gated: WorkItem, path: Path, prompt: str) -> bool:
        assert "report_merge_failure" in prompt
        (path / "README.md").write_text("a resolution it does not trust\n")
        git_in(path, "add", "README.md")
        assert queue is not None
        queue.report_failure(gated, "the two sides want different greetings; ask the author")
        return True

    queue = rig.queue(mergemaster=giving_up)
    with pytest.raises(NoMergemaster, match="no mergemaster is working on #1's merge now"):
        queue.report_failure(item, "too early")
    old = rig.tip()
    await queue.merge_one(item)
    assert rig.tip() == old  # what it staged is not taken
    assert rig.board.get(1).retries == 1
    assert rig.job(item).reason == (
        "merging feature/story-1 into main conflicts in README.md, and the mergemaster gave up: "
        "the two sides want different greetings; ask the author"
    )
    with pytest.raises(NoMergemaster):
        queue.report_failure(rig.board.get(1), "too late")


async def test_gates_failing_on_a_resolution_fail_the_merge(rig: Rig):
    item = await conflicting(rig)

    async def resolve(gated: WorkItem, path: Path, prompt: str) -> bool:
        (path / "README.md").write_text("resolved\n")
        git_in(path, "add", "README.md")
        return True

    async def failing(gated: WorkItem, path: Path) -> GateVerdict:
        return GateVerdict(False, "lint: 1 error")

    old = rig.tip()
    await rig.queue(gates=failing, mergemaster=resolve).merge_one(item)
    assert rig.tip() == old
    assert rig.job(item).reason == "the gates fail on the mergemaster's resolution: lint: 1 error"


# ---- the base and the user's checkout -------------------------------------------------------


async def test_a_base_that_moves_during_the_merge_is_merged_onto_again(rig: Rig):
    item = await rig.in_merge("Add login", {"login.txt": "hello\n"})
    landed: list[str] = []

    async def gates(gated: WorkItem, path: Path) -> GateVerdict:
        rig.gate_runs.append(path)
        if not landed:  # someone else's commit lands on main meanwhile
            landed.append(commit_file(rig.root, "other.txt", "other\n", "someone else"))
        return GateVerdict(True, "ok")

    old = rig.tip()
    await rig.queue(gates=gates).merge_one(item)
    new = rig.tip()
    assert rig.commits_since(old) == [new, landed[0]]
    assert run_git(rig.root, "rev-parse", f"{new}^") == landed[0]
    assert rig.show(new, "other.txt") == "other"
    assert rig.show(new, "login.txt") == "hello"
    assert len(rig.gate_runs) == 2  # the gates ran again on the new merge
    assert rig.status() == ""
    assert rig.board.get(1).stage.name is StageName.DONE
    assert rig.notes[-1][0] == "merged"


async def test_local_changes_in_the_way_block_the_merge_and_are_kept(rig: Rig):
    item = await rig.in_merge("Reword readme", {"README.md": "branch words\n"})
    (rig.root / "README.md").write_text("my unsaved edit\n")
    # Not even with this set may git stash the user's work away and merge under it.
    run_git(rig.root, "config", "merge.autostash", "true")
    old = rig.tip()
    await rig.queue().merge_one(item)
    assert rig.tip() == old
    assert run_git(rig.root, "rev-parse", "HEAD") == old
    assert (rig.root / "README.md").read_text() == "my unsaved edit\n"
    assert rig.status() == "M README.md"
    reason = rig.job(item).reason
    assert reason is not None
    assert "main is checked out at" in reason
    assert "README.md" in reason
    assert "Commit or stash your changes" in reason
    assert rig.board.get(1).retries == 1
    assert rig.notes[-1][:2] == ("merge_failed", 1)
    # Once the user stashes, the next attempt goes through.
    run_git(rig.root, "stash", "--quiet")
    await rig.queue().merge_one(rig.board.get(1))
    assert rig.board.get(1).stage.name is StageName.DONE
    assert rig.show(BASE, "README.md") == "branch words"
    assert rig.status() == ""


async def test_an_untracked_file_in_the_way_blocks_the_merge(rig: Rig):
    item = await rig.in_merge("Add login", {"login.txt": "branch\n"})
    (rig.root / "login.txt").write_text("mine, not committed\n")
    old = rig.tip()
    await rig.queue().merge_one(item)
    assert rig.tip() == old
    assert (rig.root / "login.txt").read_text() == "mine, not committed\n"
    assert rig.board.get(1).retries == 1


async def test_unrelated_local_changes_stay_and_the_merge_goes_through(rig: Rig):
    item = await rig.in_merge("Add login", {"login.txt": "hello\n"})
    (rig.root / "README.md").write_text("my edit\n")
    await rig.queue().merge_one(item)
    assert rig.board.get(1).stage.name is StageName.DONE
    assert rig.status() == "M README.md"
    assert (rig.root / "login.txt").read_text() == "hello\n"


async def test_a_base_checked_out_nowhere_is_moved_by_compare_and_swap(rig: Rig):
    await rig.in_merge("Add login", {"login.txt": "hello\n"})
    run_git(rig.root, "switch", "--quiet", "--detach")
    old = rig.tip()
    squashed = await rig.workspace.squash(BASE, branch_for(1), "squash\n")
    assert squashed.kind is MergeKind.SQUASHED
    assert squashed.commit is not None
    # Expecting another tip: the ref is not touched.
    stale = await rig.workspace.advance(BASE, squashed.commit, rig.tip(f"{BASE}~1"))
    assert stale.kind is MergeKind.BASE_MOVED
    assert rig.tip() == old
    done = await rig.workspace.advance(BASE, squashed.commit, old)
    assert done == MergeResult(
        MergeKind.ADVANCED, f"main moved to {squashed.commit}", squashed.commit, old
    )
    assert rig.tip() == squashed.commit
    assert run_git(rig.root, "rev-parse", "HEAD") == old  # the detached checkout stays put


async def test_the_users_git_config_does_not_get_in_the_way(rig: Rig):
    item = await rig.in_merge("Add login", {"login.txt": "hello\n"})
    for key, value in [
        ("merge.ff", "false"),  # makes a plain `git merge --squash` refuse
        ("commit.gpgsign", "true"),  # with no key to sign with
        ("merge.autostash", "true"),
        ("user.name", ""),
    ]:
        run_git(rig.root, "config", key, value)
    hooks = rig.root / ".git" / "hooks"
    for hook in ("pre-commit", "commit-msg", "post-commit"):
        (hooks / hook).write_text("#!/bin/sh\nexit 1\n")
        (hooks / hook).chmod(0o755)
    old = rig.tip()
    await rig.queue().merge_one(item)
    assert rig.commits_since(old) == [rig.tip()]
    assert rig.board.get(1).stage.name is StageName.DONE
    assert rig.status() == ""


# ---- retries, failures of this machine, and items that move -------------------------------


async def test_retries_end_in_the_archive_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Callable[[], int]
):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    async with opened(new_project(tmp_path, max_retries=2), clock) as rig:
        item = await rig.in_merge("Nothing done", None)
        old = rig.tip()
        queue = rig.queue()
        await queue.merge_one(item)
        assert rig.board.get(1).stage.name is StageName.MERGE
        await queue.merge_one(rig.board.get(1))
        archived = rig.board.get(1)
        assert isinstance(archived.stage, Archived)
        assert archived.stage.reason is ArchiveReason.MERGE_FAILED
        assert archived.stage.previous == item.stage
        assert archived.blocked_reason is not None
        assert archived.blocked_reason.startswith("merge failed 2 times; last: feature/story-1")
        assert "no commits" in archived.blocked_reason
        assert rig.tip() == old
        job = rig.job(item)
        assert (job.state, job.attempt) == (JobState.FAILED, 2)
        assert [kind for kind, _, _ in rig.notes] == ["merge_failed", "merge_archived"]
        assert archived.blocked_reason in rig.notes[-1][2]
        # The pass leaves an archived item alone.
        await queue.merge_pass()
        assert rig.job(item).attempt == 2


async def test_a_workspace_that_cannot_be_made_costs_no_retry(rig: Rig):
    item = await rig.in_merge("Add login", {"login.txt": "hello\n"})
    in_the_way = rig.root / ".huskies" / "merge_workspace"
    in_the_way.mkdir()
    (in_the_way / "something.txt").write_text("not huskies'\n")
    old = rig.tip()
    await rig.queue().merge_one(item)
    assert rig.tip() == old
    still = rig.board.get(1)
    assert (still.stage.name, still.retries) == (StageName.MERGE, 0)
    reason = rig.job(item).reason
    assert reason is not None
    assert "is in the way" in reason
    assert (in_the_way / "something.txt").read_text() == "not huskies'\n"
    assert rig.notes[-1][2].endswith("(no retry counted; it is tried again later)")


async def test_gates_that_cannot_run_cost_no_retry(rig: Rig):
    item = await rig.in_merge("Add login", {"login.txt": "hello\n"})

    async def broken(gated: WorkItem, path: Path) -> GateVerdict:
        raise OSError("the test runner is not installed")

    old = rig.tip()
    await rig.queue(gates=broken).merge_one(item)
    assert rig.tip() == old
    assert rig.board.get(1).retries == 0
    assert rig.job(item).state is JobState.FAILED


async def test_an_item_moved_out_of_merge_meanwhile_is_not_merged(rig: Rig):
    item = await rig.in_merge("Add login", {"login.txt": "hello\n"})

    async def gates(gated: WorkItem, path: Path) -> GateVerdict:
        await rig.board.move(1, StageName.BACKLOG)  # a person demotes it during the gates
        return GateVerdict(True, "ok")

    old = rig.tip()
    await rig.queue(gates=gates).merge_one(item)
    assert rig.tip() == old
    moved = rig.board.get(1)
    assert (moved.stage, moved.retries) == (Backlog(), 0)
    reason = rig.job(item).reason
    assert reason == "#1 moved to backlog during the merge; main is untouched"


# ---- one at a time ---------------------------------------------------------------------------


async def test_one_item_is_never_merged_twice_at_once(rig: Rig):
    item = await rig.in_merge("Add login", {"login.txt": "hello\n"})
    release = asyncio.Event()

    async def slow(gated: WorkItem, path: Path) -> GateVerdict:
        rig.gate_runs.append(path)
        await release.wait()
        return GateVerdict(True, "ok")

    old = rig.tip()
    queue = rig.queue(gates=slow)
    first = asyncio.create_task(queue.merge_one(item))
    await rig.until(lambda: rig.gate_runs, "the first merge reaches its gates")
    # Both return while the first merge waits in its gates: that item is being merged.
    async with asyncio.timeout(DEADLINE_S):
        await queue.merge_one(item)
        await queue.merge_pass()
    assert not first.done()
    release.set()
    await first
    assert rig.commits_since(old) == [rig.tip()]
    assert len(rig.gate_runs) == 1
    assert rig.job(item).attempt == 1


async def test_the_pass_leaves_jobs_running_here_or_elsewhere_alone(rig: Rig):
    mine = await rig.in_merge("Mine", {"a.txt": "a\n"})
    theirs = await rig.in_merge("Theirs", {"b.txt": "b\n"})
    node = rig.replica.node_id
    tx = rig.replica.transaction()
    write_job(tx, MergeJob(mine.id, 1, node, "boot-1", JobState.RUNNING, 1, T))
    write_job(tx, MergeJob(theirs.id, 2, "another-node", "boot-0", JobState.RUNNING, 1, T))
    await rig.replica.change(tx)
    old = rig.tip()
    await rig.queue(boot="boot-1").merge_pass()
    assert rig.tip() == old
    assert rig.gate_runs == []
    assert rig.job(mine).boot == "boot-1"
    assert rig.job(theirs).node == "another-node"


async def test_the_queue_merges_items_as_they_arrive(rig: Rig):
    await rig.in_merge("First", {"a.txt": "a\n"})
    await rig.board.create("Not ready")
    old = rig.tip()
    queue = rig.queue()
    loop = asyncio.create_task(queue.run_forever(interval_s=60))
    try:
        await rig.until(lambda: rig.board.get(1).stage.name is StageName.DONE, "#1 merges")
        # The next arrives while the queue waits: the document's change wakes it up.
        third = await rig.in_merge("Third", {"c.txt": "c\n"})
        await rig.until(lambda: rig.board.get(third.number).stage.name is StageName.DONE, "#3")
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    subjects = run_git(rig.root, "log", "--format=%s", f"{old}..{BASE}").splitlines()
    assert subjects == ["Third (#3)", "First (#1)"]
    assert rig.board.get(2).stage.name is StageName.BACKLOG
    assert rig.status() == ""


async def test_items_in_merge_together_are_merged_in_number_order(rig: Rig):
    for title in ("One", "Two", "Three"):
        await rig.in_merge(title, {f"{title}.txt": f"{title}\n"})
    old = rig.tip()
    await rig.queue().merge_pass()
    subjects = run_git(rig.root, "log", "--reverse", "--format=%s", f"{old}..{BASE}").splitlines()
    assert subjects == ["One (#1)", "Two (#2)", "Three (#3)"]
    assert all(rig.board.get(n).stage.name is StageName.DONE for n in (1, 2, 3))


# ---- restarts ---------------------------------------------------------------------------------


class CrashingWorkspace(MergeWorkspace):
    """The real workspace, with the process dying at `point`."""

    def __init__(self, worktrees: Worktrees, point: str) -> None:
        super().__init__(worktrees)
        self.point = point

    async def advance(self, base: str, commit: str, expected_tip: str) -> MergeResult:
        if self.point == "before advance":
            raise Crash
        result = await super().advance(base, commit, expected_tip)
        if self.point == "after advance":
            raise Crash
        return result


async def restarted_merge(
    project: Project, clock: Callable[[], int], item: WorkItem, gates: Gates
) -> Rig:
    """Open everything afresh as a new process would, and let the queue run until the item is
    done."""
    async with opened(project, clock) as rig:
        loop = asyncio.create_task(
            rig.queue(boot="boot-2", gates=gates).run_forever(interval_s=0.05)
        )
        try:
            await rig.until(lambda: rig.board.get(item.number).stage.name is StageName.DONE, "done")
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        return rig


@pytest.mark.parametrize("point", ["during the gates", "before advance", "after advance"])
async def test_a_merge_interrupted_by_a_crash_is_finished_once_after_a_restart(
    point: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clock: Callable[[], int],
    caplog: pytest.LogCaptureFixture,
):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    project = new_project(tmp_path, max_retries=3)
    async with opened(project, clock) as rig:
        item = await rig.in_merge("Add login", {"login.txt": "hello\n"})
        old = rig.tip()

        async def gates(gated: WorkItem, path: Path) -> GateVerdict:
            if point == "during the gates":
                raise Crash
            return GateVerdict(True, "ok")

        workspace = CrashingWorkspace(rig.worktrees, point)
        with pytest.raises(Crash):
            await rig.queue(gates=gates, workspace=workspace).merge_one(item)
        before = rig.job(item)
        assert before.state is JobState.RUNNING
        assert before.boot == "boot-1"
        crashed_tip = rig.tip()
    assert (crashed_tip != old) == (point == "after advance")

    after_gates: list[Path] = []

    async def recording(gated: WorkItem, path: Path) -> GateVerdict:
        after_gates.append(path)
        return GateVerdict(True, "ok")

    caplog.set_level(logging.WARNING, logger="huskies.merge")
    rig = await restarted_merge(project, clock, item, recording)
    new = rig.tip()
    assert rig.commits_since(old) == [new]  # exactly one squash commit, whatever happened
    assert rig.show(new, "login.txt") == "hello"
    assert rig.status() == ""
    assert run_git(rig.root, "rev-parse", "HEAD") == new
    async with opened(project, clock) as reopened:
        done = reopened.board.get(1)
        assert isinstance(done.stage, Done)
        assert done.stage.merge_commit == new
        job = reopened.job(item)
        assert job.state is JobState.SUCCEEDED
        assert job.commit == new
    assert "interrupted by a restart" in caplog.text
    if point == "after advance":
        # The merge had happened: it is recorded, not made again.
        assert new == crashed_tip
        assert before.commit == new
        assert after_gates == []
        assert job.attempt == 1
    else:
        assert len(after_gates) == 1
        assert job.attempt == 2
        assert job.boot == "boot-2"


async def test_a_conflict_left_by_a_crash_is_merged_afresh_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Callable[[], int]
):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    project = new_project(tmp_path, max_retries=3)
    async with opened(project, clock) as rig:
        item = await conflicting(rig)
        old = rig.tip()

        async def dying(gated: WorkItem, path: Path, prompt: str) -> bool:
            (path / "README.md").write_text("half\n")
            (path / "scratch.txt").write_text("agent's scratch\n")
            raise Crash

        with pytest.raises(Crash):
            await rig.queue(mergemaster=dying).merge_one(item)

    async def resolve(gated: WorkItem, path: Path, prompt: str) -> bool:
        assert not (path / "scratch.txt").exists()
        assert "<<<<<<<" in (path / "README.md").read_text()
        (path / "README.md").write_text("resolved\n")
        git_in(path, "add", "README.md")
        return True

    async with opened(project, clock) as rig:
        await rig.queue(boot="boot-2", mergemaster=resolve).merge_pass()
        assert rig.board.get(1).stage.name is StageName.DONE
        assert len(rig.commits_since(old)) == 1
        assert rig.show(BASE, "README.md") == "resolved"
        assert rig.status() == ""


async def test_an_interrupted_job_whose_item_left_merge_is_closed_not_merged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Callable[[], int]
):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    project = new_project(tmp_path, max_retries=3)
    async with opened(project, clock) as rig:
        item = await rig.in_merge("Add login", {"login.txt": "hello\n"})
        old = rig.tip()
        workspace = CrashingWorkspace(rig.worktrees, "before advance")
        with pytest.raises(Crash):
            await rig.queue(workspace=workspace).merge_one(item)
        await rig.board.move(1, StageName.BACKLOG)
    async with opened(project, clock) as rig:
        await rig.queue(boot="boot-2").merge_pass()
        assert rig.tip() == old
        job = rig.job(item)
        assert job.state is JobState.FAILED
        assert job.reason == "interrupted by a restart; #1 is in backlog now"
        assert rig.board.get(1).stage == Backlog()
        assert rig.gate_runs == []


async def test_an_interrupted_job_that_had_landed_is_closed_as_succeeded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Callable[[], int]
):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    project = new_project(tmp_path, max_retries=3)
    async with opened(project, clock) as rig:
        item = await rig.in_merge("Add login", {"login.txt": "hello\n"})
        workspace = CrashingWorkspace(rig.worktrees, "after advance")
        with pytest.raises(Crash):
            await rig.queue(workspace=workspace).merge_one(item)
        landed = rig.tip()
        await rig.board.purge(1)
    async with opened(project, clock) as rig:
        await rig.queue(boot="boot-2").merge_pass()
        job = rig.job(item)
        assert (job.state, job.commit) == (JobState.SUCCEEDED, landed)
        assert rig.tip() == landed
