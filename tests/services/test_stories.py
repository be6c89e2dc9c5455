"""Work items through real replicas: numbers, moves, bodies, purge, and what a node sees."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from huskies.crdt import ObjKind
from huskies.pipeline import ItemKind
from huskies.pipeline.schema import ITEMS_PATH
from huskies.pipeline.stages import Coding, StageName
from huskies.services.stories import Board, StoryError
from huskies.store import Replica


def ticking(start: int) -> Callable[[], int]:
    """A clock that moves 1 ms per reading (times are arguments, so tests choose them)."""
    counter = itertools.count(start)
    return lambda: next(counter)


async def exchange(a: Replica, b: Replica) -> None:
    """Send each replica what the other lacks (what sync will do)."""
    await b.ingest_many(a.document.changes_since(b.document.clock()))
    await a.ingest_many(b.document.changes_since(a.document.clock()))


async def test_items_are_created_listed_and_validated(tmp_path: Path):
    async with await Replica.open(tmp_path / "a.db") as replica:
        board = Board(replica, ticking(1_000))
        first = await board.create("Add login", body="As a user…\n")
        bug = await board.create("Crash on save", kind=ItemKind.BUG, depends_on=[1, 1])
        assert (first.number, bug.number) == (1, 2)
        assert bug.depends_on == (1,)
        assert board.get(1).body == "As a user…\n"
        assert [i.title for i in board.view().items] == ["Add login", "Crash on save"]
        count = replica.document.change_count
        for title, message in [("", "empty"), ("two\nlines", "one line"), ("x" * 201, "201")]:
            with pytest.raises(StoryError, match=message):
                await board.create(title)
        with pytest.raises(StoryError, match="no item #9"):
            await board.create("Needs a ghost", depends_on=[9])
        with pytest.raises(StoryError, match="no item #5"):
            board.get(5)
        assert replica.document.change_count == count  # refused requests wrote nothing


async def test_only_legal_moves_are_written(tmp_path: Path):
    async with await Replica.open(tmp_path / "a.db") as replica:
        board = Board(replica, ticking(1_000))
        await board.create("Story")
        moved = await board.move(1, StageName.CODING)
        assert moved.stage == Coding()
        assert board.get(1).stage == Coding()
        count = replica.document.change_count
        with pytest.raises(StoryError, match=r"cannot move #1: .*feature branch"):
            await board.move(1, StageName.MERGE)
        with pytest.raises(StoryError, match="already in coding"):
            await board.move(1, StageName.CODING)
        with pytest.raises(StoryError, match="cannot move #1"):
            await board.unblock(1)
        assert replica.document.change_count == count
        archived = await board.move(1, StageName.ARCHIVED)
        assert archived.stage.name is StageName.ARCHIVED
        with pytest.raises(StoryError, match="stay archived"):
            await board.move(1, StageName.BACKLOG)


async def test_numbers_minted_concurrently_on_two_nodes_are_resolved_alike(tmp_path: Path):
    async with (
        await Replica.open(tmp_path / "a.db") as a,
        await Replica.open(tmp_path / "b.db") as b,
    ):
        board_a, board_b = Board(a, ticking(1_000)), Board(b, ticking(2_000))
        await board_a.create("Older, made on a")
        await board_b.create("Newer, made on b")
        await board_b.create("Second on b")
        await exchange(a, b)
        for board in (board_a, board_b):
            assert [(i.number, i.title) for i in board.view().items] == [
                (1, "Older, made on a"),
                (2, "Second on b"),
                (3, "Newer, made on b"),
            ]
        # Both nodes write the resolution at once; they agree, and the numbers then hold.
        settled_a = await board_a.settle_numbers()
        settled_b = await board_b.settle_numbers()
        for settled in (settled_a, settled_b):
            assert [(claimed, i.number, i.title) for claimed, i in settled] == [
                (1, 3, "Newer, made on b")
            ]
        await exchange(a, b)
        assert board_a.view() == board_b.view()
        assert await board_a.settle_numbers() == []
        newest = await board_a.create("After the clash")
        assert newest.number == 4
        await exchange(a, b)
        assert [i.number for i in board_b.view().items] == [1, 2, 3, 4]


async def test_concurrent_edits_to_different_parts_of_a_body_both_survive(tmp_path: Path):
    async with (
        await Replica.open(tmp_path / "a.db") as a,
        await Replica.open(tmp_path / "b.db") as b,
    ):
        board_a, board_b = Board(a, ticking(1_000)), Board(b, ticking(2_000))
        await board_a.create("Spec", body="Intro line.\nMiddle stays.\nLast line.\n")
        await exchange(a, b)
        await board_a.edit(1, body="Intro line, edited on a.\nMiddle stays.\nLast line.\n")
        await board_b.edit(1, body="Intro line.\nMiddle stays.\nLast line, edited on b.\n")
        await board_b.edit(1, title="Spec v2")
        await exchange(a, b)
        expected = "Intro line, edited on a.\nMiddle stays.\nLast line, edited on b.\n"
        for board in (board_a, board_b):
            assert board.get(1).body == expected
            assert board.get(1).title == "Spec v2"
        assert not await board_a.edit(1, title="Spec v2", body=expected)


async def test_a_purged_item_stays_gone_after_restart_and_late_older_edits(tmp_path: Path):
    async with await Replica.open(tmp_path / "b.db") as b:
        board_b = Board(b, ticking(2_000))
        async with await Replica.open(tmp_path / "a.db") as a:
            board_a = Board(a, ticking(1_000))
            await board_a.create("Doomed")
            await board_a.create("Kept")
            await exchange(a, b)
            # b edits #1 while apart; a purges it.
            await board_b.edit(1, title="Doomed, renamed")
            await board_b.move(1, StageName.CODING)
            await board_a.purge(1)
            assert [i.title for i in board_a.view().items] == ["Kept"]
        async with await Replica.open(tmp_path / "a.db") as a:
            board_a = Board(a, ticking(3_000))
            assert [i.title for i in board_a.view().items] == ["Kept"]
            await exchange(a, b)  # b's older edits arrive after the purge
            for board in (board_a, board_b):
                assert [(i.number, i.title) for i in board.view().items] == [(2, "Kept")]
            with pytest.raises(StoryError, match="no item #1"):
                await board_a.purge(1)
            again = await board_a.create("Doomed")  # re-created on purpose: a new item
            assert again.number == 3


async def test_a_malformed_item_is_reported_without_hiding_the_others(tmp_path: Path):
    async with await Replica.open(tmp_path / "a.db") as replica:
        board = Board(replica, ticking(1_000))
        await board.create("Fine")
        tx = replica.transaction()
        element = tx.insert_container(ITEMS_PATH, 0, ObjKind.MAP)
        good = {"number": 2, "kind": "story", "title": "Odd", "created_at": 1, "updated_at": 1}
        for name, value in good.items():
            tx.set((*ITEMS_PATH, element), name, value)
        tx.set((*ITEMS_PATH, element), "stage", {"name": "limbo"})
        await replica.change(tx)
        view = board.view()
        assert [i.title for i in view.items] == ["Fine"]
        [error] = view.errors
        assert error.field == "stage"
        assert "limbo" in error.problem
