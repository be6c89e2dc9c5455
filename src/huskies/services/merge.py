"""Merging finished work into the base branch: the merge workspace and the merge queue.

The rules this encodes, each a way the system huskies replaces went wrong:

- A merge never happens in the user's checkout or on a branch an agent works on. It is made in
  the merge workspace, `.huskies/merge_workspace`, a linked worktree on a detached HEAD, as one
  squash commit by huskies on top of the base branch's tip.
- An empty merge is never done: a branch with no commits ahead of the base, or whose squash
  changes nothing, is a failed merge.
- The base branch only ever moves by compare-and-swap from the tip the squash was made on, so a
  commit that landed meanwhile is never overwritten (the merge is redone on the new tip). Where
  the base is checked out (the user's own checkout, usually) it is fast-forwarded there with
  `git merge --ff-only`, which updates the files with the ref, so the checkout never looks
  dirty; if that would touch the user's uncommitted changes, git refuses and the merge fails.
- Every failure leaves the base branch exactly as it was.
- A merge is recorded in the document (`huskies.pipeline.merge_jobs`) before git is touched and
  with its commit before the base moves, so a restart finishes interrupted merges rather than
  losing or repeating them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from huskies.gitops import Git, GitResult
from huskies.pipeline import IllegalTransition, Merge, MergeSucceeded, WorkItem, set_fields
from huskies.pipeline.merge_jobs import (
    JobState,
    MergeJob,
    end_job,
    interrupted,
    is_interrupted,
    merge_failure,
    read_jobs,
    start_job,
    write_job,
)
from huskies.pipeline.schema import parse_item_key
from huskies.pipeline.stages import Archived
from huskies.pipeline.updates import ItemUpdate, apply_event
from huskies.services.passes import Passes
from huskies.services.settings import Settings
from huskies.services.stories import Board
from huskies.services.worktrees import GIT_TIMEOUT_S, WorktreeError, Worktrees
from huskies.store import Replica

log = logging.getLogger("huskies.merge")

WORKSPACE_DIR = Path(".huskies") / "merge_workspace"

# huskies' own commits carry a fixed identity, whatever the user's git config says, so a squash
# commit always shows who made it and never fails for want of a user.name.
IDENTITY = {
    "GIT_AUTHOR_NAME": "huskies",
    "GIT_AUTHOR_EMAIL": "huskies@localhost",
    "GIT_COMMITTER_NAME": "huskies",
    "GIT_COMMITTER_EMAIL": "huskies@localhost",
}

MAX_BASE_MOVES = 5
"""How many times one merge is redone because the base moved under it before it gives up."""

RETRY_AFTER_S = 60.0
"""How long the queue leaves an item alone after its merge failed, so a person has time to act
(commit or stash their changes, say) before the next attempt is counted."""

_SHOWN_PATHS = 10
_SAID_LINES = 4  # of git's explanation of a failure

CONFLICT_PROMPT = """\
You are the mergemaster for #{number} "{title}". huskies is squash-merging branch {branch} onto \
{base} in the merge workspace {workspace} (a detached HEAD on {base}'s tip), and the merge \
conflicts in: {paths}.

Resolve every conflict so that the intent of both sides is kept, remove all conflict markers, \
and `git add` each resolved file (and any new file the resolution needs). Run the project's \
checks if you can. Committing is optional: huskies turns what you leave here into one squash \
commit on {base} and runs the quality gates on it.

Work only in {workspace}. Do not switch branches, do not commit to {base} or any other branch, \
and do not merge, rebase, reset or push. If it cannot be done without the author (the two \
sides want different things), call the huskies tool report_merge_failure with the reason and \
stop.
"""

GATES_PROMPT = """\
You are the mergemaster for #{number} "{title}". huskies squash-merged branch {branch} onto \
{base} in the merge workspace {workspace} (a detached HEAD), and the quality gates fail on the \
merged code:

{summary}

Fix the code in {workspace} so that the gates pass, keeping what {branch} set out to do. \
`git add` your changes (committing is optional): huskies folds them into the one squash commit \
on {base} and runs the gates again.

Work only in {workspace}. Do not switch branches, do not commit to {base} or any other branch, \
and do not merge, rebase, reset or push. If it cannot be done without the author (the two \
sides want different things), call the huskies tool report_merge_failure with the reason and \
stop.
"""


class MergeKind(StrEnum):
    SQUASHED = "squashed"  # a squash commit is ready in the workspace
    ADVANCED = "advanced"  # the base branch now points at the squash commit
    NO_BRANCH = "no_branch"
    NO_COMMITS = "no_commits"
    EMPTY = "empty"  # the squash changes nothing: never a merge
    CONFLICT = "conflict"  # left in the workspace for a mergemaster
    REFUSED = "refused"  # git would not merge at all (unrelated histories, say)
    UNRESOLVED = "unresolved"  # a mergemaster left conflicts, or there was none to ask
    BASE_MOVED = "base_moved"  # redo the merge on the new tip; not a failure
    CHECKOUT_BLOCKED = "checkout_blocked"


@dataclass(frozen=True, slots=True)
class MergeResult:
    """What one workspace step did. `commit` is the squash commit (SQUASHED, ADVANCED), `onto`
    the base tip the squash was made on, `conflicts` the conflicted paths (CONFLICT,
    UNRESOLVED); `message` says what happened in words people read."""

    kind: MergeKind
    message: str
    commit: str | None = None
    onto: str | None = None
    conflicts: tuple[str, ...] = ()


class NoMergemaster(Exception):
    """No mergemaster is working on the item's merge, so there is nothing to give up."""


class MergeError(Exception):
    """The merge workspace cannot be used; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class _Squash:
    """The squash the workspace holds: finish_resolution commits onto `onto` with `message`."""

    base: str
    onto: str
    message: str
    conflicts: tuple[str, ...]


class MergeWorkspace:
    """The merge workspace of the repository `worktrees` manages.

    Made on first use and reused; everything left in it from before is discarded at the start
    of each squash. It is only used by one merge at a time (the queue serialises them).
    """

    def __init__(self, worktrees: Worktrees) -> None:
        self._worktrees = worktrees
        self.path = worktrees.root / WORKSPACE_DIR
        self._repo = Git(worktrees.root, timeout_s=GIT_TIMEOUT_S)
        self._git = Git(self.path, timeout_s=GIT_TIMEOUT_S)
        self._squash: _Squash | None = None

    async def base(self) -> str:
        """The base branch's name (raises WorktreeError when there is none)."""
        return await self._worktrees.base()

    async def squash(self, base: str, branch: str, message: str) -> MergeResult:
        """Squash `branch` onto the current tip of `base` in the workspace, and commit it."""
        onto = await self._tip(base)
        self._squash = None
        await self._reset(onto)
        if not await self._repo.branch_exists(branch):
            return MergeResult(
                MergeKind.NO_BRANCH, f"there is no branch {branch} to merge", onto=onto
            )
        if await self._repo.commits_ahead(onto, f"refs/heads/{branch}") < 1:
            return MergeResult(
                MergeKind.NO_COMMITS,
                f"{branch} has no commits that {base} does not have, and an empty merge is "
                "never made",
                onto=onto,
            )
        # --ff: a user's merge.ff=false would otherwise make git refuse --squash outright.
        merged = await self._git.run(
            "merge", "--squash", "--ff", f"refs/heads/{branch}", check=False
        )
        conflicts = await self._unmerged() if merged.returncode != 0 else ()
        self._squash = _Squash(base, onto, message, conflicts)
        if conflicts:
            return MergeResult(
                MergeKind.CONFLICT,
                f"merging {branch} into {base} conflicts in {_names(conflicts)}",
                onto=onto,
                conflicts=conflicts,
            )
        if merged.returncode != 0:
            return MergeResult(
                MergeKind.REFUSED,
                f"git would not merge {branch} into {base}: {_said(merged)}",
                onto=onto,
            )
        tree = await self._write_tree()
        if tree == await self._tree(onto):
            return MergeResult(
                MergeKind.EMPTY,
                f"squashing {branch} onto {base} changes nothing (its changes are already in "
                f"{base}), and an empty merge is never made",
                onto=onto,
            )
        commit = await self._commit(tree, onto, message)
        return MergeResult(
            MergeKind.SQUASHED, f"squashed {branch} onto {base}", commit=commit, onto=onto
        )

    async def discard_changes(self) -> None:
        """Throw away what was done in the workspace since its last commit (what the gates
        left behind, say), so a mergemaster starts from exactly the squash commit."""
        await self._git.run("reset", "--quiet", "--hard")
        await self._git.run("clean", "-ffdq")

    async def finish_resolution(self, base: str) -> MergeResult:
        """Turn what a mergemaster left in the workspace into one squash commit on the tip the
        squash was made on, or say why not.

        Whatever the agent did (staged, committed once or several times, or left edits to
        tracked files) becomes a single commit of the resulting tree, never the agent's own
        commits. New files count only once added: what the gates or the agent's tools leave
        untracked is not part of a merge.
        """
        squash = self._squash
        if squash is None or squash.base != base:
            raise MergeError(f"the merge workspace holds no squash onto {base} to finish")
        unmerged = await self._unmerged()
        if unmerged:
            return MergeResult(
                MergeKind.UNRESOLVED,
                f"conflicts are still unresolved in {_names(unmerged)}",
                onto=squash.onto,
                conflicts=unmerged,
            )
        await self._git.run("add", "--update")
        tree = await self._write_tree()
        if tree == await self._tree(squash.onto):
            return MergeResult(
                MergeKind.EMPTY,
                f"after the mergemaster the workspace changes nothing in {base}, and an empty "
                "merge is never made",
                onto=squash.onto,
            )
        marked = await self._conflict_markers(squash.onto, tree, squash.conflicts)
        if marked:
            return MergeResult(
                MergeKind.UNRESOLVED,
                f"conflict markers are left in {_names(marked)}",
                onto=squash.onto,
                conflicts=marked,
            )
        commit = await self._commit(tree, squash.onto, squash.message)
        return MergeResult(
            MergeKind.SQUASHED,
            f"the mergemaster's resolution is squashed onto {base}",
            commit=commit,
            onto=squash.onto,
        )

    async def advance(self, base: str, commit: str, expected_tip: str) -> MergeResult:
        """Move `base` to `commit` if it still points at `expected_tip`.

        Where `base` is checked out, that checkout is fast-forwarded instead, so its files move
        with the branch; git refuses when that would touch uncommitted changes there.
        """
        tip = await self._tip(base)
        if tip != expected_tip:
            return _moved(base, expected_tip, tip)
        checkout = await self._checkout_of(base)
        if checkout is None:
            ref = f"refs/heads/{base}"
            swapped = await self._repo.run(
                "update-ref", "-m", "huskies: squash merge", ref, commit, expected_tip, check=False
            )
            if swapped.returncode == 0:
                return _advanced(base, commit, expected_tip)
            tip = await self._tip(base)
            if tip != expected_tip:
                return _moved(base, expected_tip, tip)
            raise MergeError(f"could not move {base} to {commit}: {_said(swapped)}")
        forward = await Git(checkout, timeout_s=GIT_TIMEOUT_S).run(
            "merge", "--ff-only", "--no-autostash", "--no-verify-signatures", "--quiet", commit,
            check=False,
        )  # fmt: skip
        tip = await self._tip(base)
        if forward.returncode == 0 and tip == commit:
            return _advanced(base, commit, expected_tip)
        if tip != expected_tip:
            return _moved(base, expected_tip, tip)
        return MergeResult(
            MergeKind.CHECKOUT_BLOCKED,
            f"{base} is checked out at {checkout} and git would not bring it up to the merge "
            f"({_said(forward)}); {base} was left as it was. Commit or stash your changes "
            "there, and the merge is tried again",
            commit=commit,
            onto=expected_tip,
        )

    async def contains(self, base: str, commit: str) -> bool:
        """Whether `commit` is in `base`'s history (False for a commit git does not know)."""
        args = ("merge-base", "--is-ancestor", "--end-of-options", commit, f"refs/heads/{base}")
        return (await self._repo.run(*args, check=False)).returncode == 0

    # ---- inside the workspace --------------------------------------------------------------

    async def _reset(self, onto: str) -> None:
        """The workspace at `onto`, detached, with nothing left over: no conflict, no staged or
        changed file, no untracked file (ignored ones, such as build caches, may stay)."""
        await self._ensure(onto)
        # reset without a commit moves no branch, even if an agent checked one out here.
        await self._git.run("reset", "--quiet", "--hard")
        await self._git.run("checkout", "--quiet", "--detach", onto)
        await self._git.run("clean", "-ffdq")

    async def _ensure(self, onto: str) -> None:
        if (self.path / ".git").is_file():
            return
        async with self._worktrees.git_lock:
            entries = await self._repo.worktree_list()
            if any(_real(entry.path) == _real(self.path) for entry in entries):
                # Registered, but its directory is gone: git would refuse to add it again.
                await self._repo.worktree_prune()
            if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
                raise MergeError(
                    f"the merge workspace {self.path} is in the way (it exists but is not a git "
                    "worktree, perhaps left over from a crash); move or delete it, and merges "
                    "resume"
                )
            await self._repo.run("worktree", "add", "--quiet", "--detach", str(self.path), onto)

    async def _unmerged(self) -> tuple[str, ...]:
        listed = await self._git.run("ls-files", "--unmerged", "-z")
        # Each record is "mode sha stage<TAB>path", one per conflict stage of a path.
        paths = {record.split("\t", 1)[1] for record in listed.stdout.split("\0") if record}
        return tuple(sorted(paths))

    async def _conflict_markers(
        self, onto: str, tree: str, paths: tuple[str, ...]
    ) -> tuple[str, ...]:
        """Which of the once-conflicted `paths` still hold conflict markers. (Only those: a
        line of seven '=' is a heading underline elsewhere.)"""
        if not paths:
            return ()
        checked = await self._git.run("diff", "--check", onto, tree, "--", *paths, check=False)
        marked = {
            line.split(":", 1)[0]
            for line in checked.stdout.splitlines()
            if line.endswith("leftover conflict marker")
        }
        return tuple(sorted(marked))

    async def _write_tree(self) -> str:
        return (await self._git.run("write-tree")).stdout.strip()

    async def _tree(self, commit: str) -> str:
        return await self._repo.rev_parse(f"{commit}^{{tree}}")

    async def _commit(self, tree: str, onto: str, message: str) -> str:
        """Commit `tree` on `onto` as huskies and put the workspace's HEAD there. commit-tree
        runs no hooks, and is told not to sign (newer gits honour commit.gpgSign here), so
        nothing in the user's git config can stop it."""
        made = await self._git.run(
            "commit-tree", "--no-gpg-sign", tree, "-p", onto, env=IDENTITY, input=message.encode()
        )
        commit = made.stdout.strip()
        # --no-deref: HEAD becomes detached here even if an agent had checked out a branch.
        await self._git.run("update-ref", "--no-deref", "HEAD", commit)
        return commit

    # ---- in the repository -----------------------------------------------------------------

    async def _tip(self, base: str) -> str:
        return await self._repo.rev_parse(f"refs/heads/{base}")

    async def _checkout_of(self, base: str) -> Path | None:
        """The worktree where `base` is checked out, if it is (and is still there)."""
        async with self._worktrees.git_lock:
            entries = await self._repo.worktree_list()
        for entry in entries:
            if entry.branch == base and (entry.path / ".git").exists():
                return entry.path
        return None


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """What the quality gates said about the merged code: whether they passed, and a summary of
    their output for people and for the mergemaster."""

    passed: bool
    summary: str


Gates = Callable[[WorkItem, Path], Awaitable[GateVerdict]]
Mergemaster = Callable[[WorkItem, Path, str], Awaitable[bool]]
Notify = Callable[[str, WorkItem, str], None]


@dataclass(frozen=True, slots=True)
class _Merged:
    commit: str


@dataclass(frozen=True, slots=True)
class _Failed:
    """`counts`: the item's own failure, counted as a retry. A problem of this machine (git
    broken, no base branch, the gates could not run) is not the item's and costs no retry."""

    reason: str
    counts: bool = True


class MergeQueue:
    """Merges the items in the merge stage into the base branch, one at a time, by number.

    `gates` runs the quality gates on the merged code in the workspace. `mergemaster`, when
    given, runs a mergemaster agent in the workspace with a prompt and returns when it exits
    (True if it finished normally); it is asked when the squash conflicts or the gates fail.
    `notify(kind, item, message)` is told of each merge ("merged") and failure ("merge_failed",
    or "merge_archived" when the item is given up on). `boot_id` names this process: a job
    recorded as running under another boot of this node was interrupted, and is finished.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        replica: Replica,
        board: Board,
        workspace: MergeWorkspace,
        gates: Gates,
        mergemaster: Mergemaster | None,
        boot_id: str,
        clock: Callable[[], int],
        notify: Notify,
        retry_after_s: float = RETRY_AFTER_S,
    ) -> None:
        self._settings = settings
        self._replica = replica
        self._board = board
        self._workspace = workspace
        self._gates = gates
        self._mergemaster = mergemaster
        self._boot = boot_id
        self._clock = clock
        self._notify = notify
        self._retry_after_ms = int(retry_after_s * 1000)
        self._one_at_a_time = asyncio.Lock()
        self._merging: set[str] = set()  # item ids with a merge_one under way
        # Item ids whose mergemaster works now → the reason it gave up with, if it did.
        self._resolving: dict[str, str | None] = {}
        self._retry_at: dict[str, int] = {}
        self._reported: set[str] = set()  # bad job records already logged
        self._passes = Passes("merge queue", replica, self.merge_pass)

    def poke(self) -> None:
        self._passes.poke()

    async def run_forever(self, interval_s: float = 5.0) -> None:
        """Merge passes after every document change, and every interval."""
        await self._passes.run_forever(interval_s)

    async def merge_pass(self) -> None:
        """Merge each item in the merge stage that is due, by number, including those whose
        merge a restart interrupted; record how interrupted jobs of items that have left the
        merge stage since ended."""
        node = self._replica.node_id
        jobs, problems = read_jobs(self._replica.document)
        for problem in problems:
            if problem not in self._reported:
                self._reported.add(problem)
                log.warning("%s", problem)
        view = self._board.view()
        for job in interrupted(jobs.values(), node=node, boot=self._boot):
            item = view.by_id(job.item_id)
            if item is None or not isinstance(item.stage, Merge):
                await self._close_interrupted(job, item)
        now = self._clock()
        for item in sorted(view.items, key=lambda i: i.number):
            if not isinstance(item.stage, Merge) or self._retry_at.get(item.id, 0) > now:
                continue
            last = jobs.get(item.id)
            if (
                last is not None
                and last.state is JobState.RUNNING
                and not is_interrupted(last, node=node, boot=self._boot)
            ):
                continue  # under way in this process, or another node's
            await self.merge_one(item)

    async def merge_one(self, item: WorkItem) -> None:
        """Merge `item` now (after any merge under way). A second call for an item whose merge
        is under way returns at once: one item is never merged twice at the same time."""
        if item.id in self._merging:
            log.info("#%s is already being merged", item.number)
            return
        self._merging.add(item.id)
        try:
            async with self._one_at_a_time:
                await self._merge(item.id)
        finally:
            self._merging.discard(item.id)

    def report_failure(self, item: WorkItem, reason: str) -> None:
        """The mergemaster working on `item` gives up: when it exits, the merge fails with
        `reason` (counted as a retry) instead of huskies taking what it left."""
        if item.id not in self._resolving:
            raise NoMergemaster(
                f"no mergemaster is working on #{item.number}'s merge now, so there is no "
                "merge to report as failed"
            )
        self._resolving[item.id] = reason

    # ---- one merge --------------------------------------------------------------------------

    async def _merge(self, item_id: str) -> None:
        item = self._board.view().by_id(item_id)
        if item is None or not isinstance(item.stage, Merge):
            return  # moved or purged since it was picked
        try:
            base = await self._workspace.base()
        except WorktreeError as exc:
            log.error("#%s cannot be merged: %s", item.number, exc)
            self._retry_at[item_id] = self._clock() + self._retry_after_ms
            return
        node = self._replica.node_id
        previous = read_jobs(self._replica.document)[0].get(item_id)
        if previous is not None and is_interrupted(previous, node=node, boot=self._boot):
            log.warning(
                "#%s: its merge (attempt %s, boot %s) was interrupted by a restart; finishing it",
                item.number,
                previous.attempt,
                previous.boot,
            )
            if previous.commit is not None and await self._workspace.contains(
                base, previous.commit
            ):
                # The crash came after the base moved and before the outcome was recorded: the
                # merge is done, and must not be made a second time.
                log.warning("#%s: %s is already in %s", item.number, previous.commit, base)
                await self._conclude(item_id, previous, _Merged(previous.commit))
                return
        job = start_job(item, previous, node=node, boot=self._boot, at=self._clock())
        await self._record(job)  # before git is touched
        try:
            outcome = await self._attempt(item, item.stage, base, job)
        except Exception as exc:  # git broken, a callback failing: not the item's fault
            log.exception("#%s: the merge could not run", item.number)
            outcome = _Failed(f"the merge could not run: {exc}", counts=False)
        await self._conclude(item_id, job, outcome)

    async def _attempt(
        self, item: WorkItem, stage: Merge, base: str, job: MergeJob
    ) -> _Merged | _Failed:
        """Squash, check and advance; again from the squash whenever the base moved meanwhile."""
        for _ in range(MAX_BASE_MOVES):
            ready = await self._squashed(item, stage.feature_branch, base)
            if isinstance(ready, _Failed):
                return ready
            assert ready.commit is not None
            assert ready.onto is not None
            # Recorded before the base moves: after a crash right after the move, this commit
            # being in the base is how the next boot knows the merge happened.
            job = dataclasses.replace(job, commit=ready.commit)
            await self._record(job)
            current = self._board.view().by_id(item.id)
            if current is None or not isinstance(current.stage, Merge):
                where = "was purged" if current is None else f"moved to {current.stage.name}"
                return _Failed(f"#{item.number} {where} during the merge; {base} is untouched")
            moved = await self._workspace.advance(base, ready.commit, ready.onto)
            if moved.kind is MergeKind.ADVANCED:
                return _Merged(ready.commit)
            if moved.kind is not MergeKind.BASE_MOVED:
                return _Failed(moved.message)
            log.info("#%s: %s; merging again onto the new tip", item.number, moved.message)
        return _Failed(
            f"{base} moved {MAX_BASE_MOVES} times while #{item.number} was being merged",
            counts=False,
        )

    async def _squashed(self, item: WorkItem, branch: str, base: str) -> MergeResult | _Failed:
        """A squash commit of `branch` on `base`'s tip that the gates pass, with the
        mergemaster's help where the squash conflicts or the gates fail; or why there is none."""
        message = f"{item.title} (#{item.number})\n\nSquash merge of {branch} by huskies.\n"
        placeholders = self._placeholders(item, branch, base)
        result = await self._workspace.squash(base, branch, message)
        resolved = result.kind is MergeKind.CONFLICT
        if resolved:
            prompt = CONFLICT_PROMPT.format(**placeholders, paths=", ".join(result.conflicts))
            result = await self._resolve(item, base, prompt, result.message)
        if result.kind is not MergeKind.SQUASHED:
            return _Failed(result.message)
        verdict = await self._run_gates(item)
        if verdict is None:
            return _Failed("the gates could not run on the merged code", counts=False)
        if verdict.passed:
            return result
        if resolved:
            return _Failed(f"the gates fail on the mergemaster's resolution: {verdict.summary}")
        # Start the mergemaster from the squash commit itself, not from what the gates left.
        await self._workspace.discard_changes()
        prompt = GATES_PROMPT.format(**placeholders, summary=verdict.summary)
        failing = f"the gates fail on the merged code: {verdict.summary}"
        result = await self._resolve(item, base, prompt, failing)
        if result.kind is not MergeKind.SQUASHED:
            return _Failed(result.message)
        verdict = await self._run_gates(item)
        if verdict is None:
            return _Failed("the gates could not run on the merged code", counts=False)
        if not verdict.passed:
            return _Failed(f"the gates still fail after the mergemaster: {verdict.summary}")
        return result

    async def _resolve(self, item: WorkItem, base: str, prompt: str, problem: str) -> MergeResult:
        """Ask the mergemaster to fix `problem` in the workspace, then take what it left."""
        if self._mergemaster is None:
            return MergeResult(MergeKind.UNRESOLVED, f"{problem}, and no mergemaster is set up")
        log.info("#%s: %s; asking the mergemaster", item.number, problem)
        self._resolving[item.id] = None
        try:
            finished_cleanly = await self._mergemaster(item, self._workspace.path, prompt)
        finally:
            given_up = self._resolving.pop(item.id)
        if given_up is not None:
            return MergeResult(
                MergeKind.UNRESOLVED, f"{problem}, and the mergemaster gave up: {given_up}"
            )
        if not finished_cleanly:
            return MergeResult(
                MergeKind.UNRESOLVED, f"{problem}, and the mergemaster agent did not finish"
            )
        finished = await self._workspace.finish_resolution(base)
        if finished.kind is MergeKind.SQUASHED:
            return finished
        return MergeResult(finished.kind, f"{problem}; after the mergemaster, {finished.message}")

    async def _run_gates(self, item: WorkItem) -> GateVerdict | None:
        """The gates' verdict, or None if they could not run at all (this machine's problem)."""
        try:
            return await self._gates(item, self._workspace.path)
        except Exception:
            log.exception("#%s: the gates could not run on the merged code", item.number)
            return None

    # ---- recording --------------------------------------------------------------------------

    async def _conclude(self, item_id: str, job: MergeJob, outcome: _Merged | _Failed) -> None:
        """Record the outcome on the item and on its job in one change, then tell people."""
        at = self._clock()
        item = self._board.view().by_id(item_id)
        merging = item if item is not None and isinstance(item.stage, Merge) else None
        update: ItemUpdate | IllegalTransition | None = None
        if isinstance(outcome, _Merged):
            self._retry_at.pop(item_id, None)
            ended = end_job(job, JobState.SUCCEEDED, at, commit=outcome.commit)
            kind, message = "merged", f"merged into the base branch as {outcome.commit}"
            if merging is not None:
                update = apply_event(merging, MergeSucceeded(at, outcome.commit), at)
            else:
                log.warning("item %s left the merge stage before its merge landed", item_id)
        else:
            self._retry_at[item_id] = at + self._retry_after_ms
            ended = end_job(job, JobState.FAILED, at, reason=outcome.reason)
            kind, message = "merge_failed", outcome.reason
            if not outcome.counts:
                message += " (no retry counted; it is tried again later)"
            elif merging is not None:
                max_retries = self._settings.config.max_retries
                update = merge_failure(merging, outcome.reason, at, max_retries)
        tx = self._replica.transaction()
        write_job(tx, ended)
        if update is not None:
            assert not isinstance(update, IllegalTransition)  # an item in merge takes them all
            set_fields(tx, parse_item_key(item_id), update.fields, at)
            item = update.item
            if isinstance(item.stage, Archived):
                kind, message = "merge_archived", f"archived as merge_failed: {item.blocked_reason}"
        await self._replica.change(tx)
        level = logging.INFO if kind == "merged" else logging.WARNING
        log.log(level, "#%s %s: %s", job.number if item is None else item.number, kind, message)
        if item is not None:
            self._notify(kind, item, message)

    async def _close_interrupted(self, job: MergeJob, item: WorkItem | None) -> None:
        """A job interrupted by a restart whose item has left the merge stage since: record
        how it ended. It succeeded if its commit reached the base before the crash."""
        landed = False
        if job.commit is not None:
            with contextlib.suppress(WorktreeError):
                landed = await self._workspace.contains(await self._workspace.base(), job.commit)
        where = "was purged" if item is None else f"is in {item.stage.name} now"
        log.warning(
            "#%s: its merge was interrupted by a restart (%s), and it %s",
            job.number,
            "its commit had landed" if landed else "nothing was merged",
            where,
        )
        if landed:
            ended = end_job(job, JobState.SUCCEEDED, self._clock())
        else:
            reason = f"interrupted by a restart; #{job.number} {where}"
            ended = end_job(job, JobState.FAILED, self._clock(), reason=reason)
        await self._record(ended)

    async def _record(self, job: MergeJob) -> None:
        tx = self._replica.transaction()
        write_job(tx, job)
        await self._replica.change(tx)

    def _placeholders(self, item: WorkItem, branch: str, base: str) -> dict[str, object]:
        return {
            "number": item.number,
            "title": item.title,
            "branch": branch,
            "base": base,
            "workspace": self._workspace.path,
        }


def _advanced(base: str, commit: str, onto: str) -> MergeResult:
    return MergeResult(MergeKind.ADVANCED, f"{base} moved to {commit}", commit=commit, onto=onto)


def _moved(base: str, expected: str, tip: str) -> MergeResult:
    return MergeResult(
        MergeKind.BASE_MOVED,
        f"{base} moved from {expected[:12]} to {tip[:12]} during the merge",
        onto=expected,
    )


def _names(paths: tuple[str, ...]) -> str:
    shown = ", ".join(paths[:_SHOWN_PATHS])
    more = len(paths) - _SHOWN_PATHS
    return shown + (f" and {more} more" if more > 0 else "")


def _said(result: GitResult) -> str:
    """What git said about a failure, on one line: from its first error line on (which may list
    files on the lines after it), else its first lines."""
    for stream in (result.stderr, result.stdout):
        lines = [line.strip() for line in stream.splitlines() if line.strip()]
        lines = [line for line in lines if not line.startswith("hint:") and line != "Aborting"]
        first = next(
            (i for i, line in enumerate(lines) if line.startswith(("fatal:", "error:"))), 0
        )
        said = ""
        for line in lines[first : first + _SAID_LINES]:
            said += line if not said else (" " if said.endswith(":") else "; ") + line
        if said:
            return said
    return f"git exited with {result.returncode}"


def _real(path: Path) -> Path:
    # git may print a path through a symlink differently from how we spelled it.
    return Path(os.path.realpath(path))
