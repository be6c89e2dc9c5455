"""QA decisions against a real repository: approval reads the branch from git, refuses an empty
one, sends spikes to done; rejection needs a reason and reaches the coder's feedback."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from huskies.pipeline import ItemKind, Merge, QaMode, StageName, Start, Submit, WorkItem
from huskies.pipeline.stages import Done
from huskies.services.review import Review
from huskies.services.settings import Settings
from huskies.services.stories import BadField, Board, IllegalMove
from huskies.services.worktrees import Worktrees
from huskies.store import Replica
from huskies.store.replica import wall_clock_ms

from .agent_rig import make_repo


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Board, Review, Path, list]]:
    project = make_repo(tmp_path / "repo")
    rejected: list[tuple[WorkItem, str]] = []
    async with await Replica.open(project.db_path) as replica:
        board = Board(replica, wall_clock_ms)
        worktrees = Worktrees(project.root, "")
        review = Review(
            board,
            worktrees,
            Settings.load(project),
            wall_clock_ms,
            lambda item, text: rejected.append((item, text)),
        )
        yield board, review, project.root, rejected


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


async def to_qa(board: Board, title: str, kind: ItemKind = ItemKind.STORY) -> WorkItem:
    item = await board.create(title, kind=kind)
    await board.apply(item.number, Start())
    return await board.apply(item.number, Submit())


async def test_approval_sends_the_branch_and_its_commits_to_merge(setup):
    board, review, root, _ = setup
    item = await to_qa(board, "Feature")
    git(root, "branch", "feature/story-1")
    git(root, "worktree", "add", "-q", str(root.parent / "wt"), "feature/story-1")
    for n in (1, 2):
        (root.parent / "wt" / f"f{n}.txt").write_text(str(n))
        git(root.parent / "wt", "add", "-A")
        git(root.parent / "wt", "commit", "-qm", f"change {n}")
    approved = await review.approve(item.number)
    assert approved.stage == Merge("feature/story-1", 2)


async def test_an_approval_with_nothing_to_merge_is_refused(setup):
    board, review, root, _ = setup
    await to_qa(board, "Nothing")
    with pytest.raises(IllegalMove, match="nothing to merge"):
        await review.approve(1)  # no branch at all
    git(root, "branch", "feature/story-1")
    with pytest.raises(IllegalMove, match="has no commits ahead"):
        await review.approve(1)
    assert board.get(1).stage.name is StageName.QA  # nothing changed


async def test_a_spike_is_done_after_review_without_a_merge(setup):
    board, review, _, _ = setup
    await to_qa(board, "Look into it", ItemKind.SPIKE)
    approved = await review.approve(1)
    assert isinstance(approved.stage, Done)
    assert approved.stage.merge_commit is None


async def test_rejection_needs_a_reason_and_tells_the_coder(setup):
    board, review, _, rejected = setup
    await to_qa(board, "Sloppy")
    with pytest.raises(BadField, match="needs a reason"):
        await review.reject(1, "  ")
    assert rejected == []
    back = await review.reject(1, "no tests for the edge case")
    assert back.stage.name is StageName.CODING
    assert back.retries == 1
    ((item, text),) = rejected
    assert item.number == 1
    assert text == "QA rejected your last attempt: no tests for the edge case"


async def test_only_items_in_qa_are_reviewed(setup):
    board, review, _, _ = setup
    await board.create("Early")
    with pytest.raises(IllegalMove, match="#1 is in backlog; only items in qa are reviewed"):
        await review.approve(1)
    with pytest.raises(IllegalMove, match="only items in qa"):
        await review.reject(1, "why")


async def test_the_mode_is_the_items_own_or_the_projects(setup):
    board, review, _, _ = setup
    plain = await board.create("Plain")
    picky = await board.create("Picky", qa=QaMode.HUMAN)
    assert review.mode(plain) is QaMode.SERVER  # the template's default_qa
    assert review.mode(picky) is QaMode.HUMAN
