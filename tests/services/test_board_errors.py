"""Board errors by type (the API picks statuses by them), listing, and edits of the preferred
agent and QA mode, through a real replica."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from huskies.pipeline import QaMode
from huskies.pipeline.stages import StageName
from huskies.services.stories import (
    BadField,
    Board,
    IllegalMove,
    UnknownDependency,
    UnknownItem,
)
from huskies.store import Replica


def board_of(replica: Replica) -> Board:
    counter = itertools.count(1_000)
    return Board(replica, lambda: next(counter), lambda: ("coder", "reviewer"))


async def test_each_refusal_has_its_type_and_writes_nothing(tmp_path: Path):
    async with await Replica.open(tmp_path / "a.db") as replica:
        board = board_of(replica)
        await board.create("Story")
        count = replica.document.change_count
        with pytest.raises(UnknownItem) as unknown:
            await board.move(4, StageName.CODING)
        assert unknown.value.number == 4
        with pytest.raises(IllegalMove, match="cannot move #1"):
            await board.move(1, StageName.DONE)
        with pytest.raises(BadField) as title:
            await board.create("")
        assert title.value.field == "title"
        with pytest.raises(UnknownDependency) as dependency:
            await board.create("Needs #8", depends_on=[8])
        assert (dependency.value.field, str(dependency.value)) == (
            "depends_on",
            "there is no item #8 to depend on",
        )
        with pytest.raises(BadField, match=r"no agent named 'ghost'.*coder, reviewer") as agent:
            await board.edit(1, title="Changed", agent="ghost")
        assert agent.value.field == "agent"
        assert board.get(1).title == "Story"  # the valid part of the edit was not written
        assert replica.document.change_count == count


async def test_the_preferred_agent_and_qa_are_set_kept_and_cleared(tmp_path: Path):
    async with await Replica.open(tmp_path / "a.db") as replica:
        board = board_of(replica)
        await board.create("Story")
        assert await board.edit(1, agent="reviewer", qa=QaMode.HUMAN)
        assert (board.get(1).agent, board.get(1).qa) == ("reviewer", QaMode.HUMAN)
        assert await board.edit(1, title="Renamed")  # leaves them as they are
        assert (board.get(1).agent, board.get(1).qa) == ("reviewer", QaMode.HUMAN)
        assert not await board.edit(1, agent="reviewer", qa=QaMode.HUMAN)
        assert await board.edit(1, agent=None, qa=None)
        assert (board.get(1).agent, board.get(1).qa) == (None, None)


async def test_a_board_without_agents_accepts_no_agent_name(tmp_path: Path):
    async with await Replica.open(tmp_path / "a.db") as replica:
        board = Board(replica, lambda: 5)
        await board.create("Story")
        with pytest.raises(BadField, match=r"\(configured: none\)"):
            await board.edit(1, agent="coder")


async def test_listing_selects_as_the_story_list_does(tmp_path: Path):
    async with await Replica.open(tmp_path / "a.db") as replica:
        board = board_of(replica)
        for title in ("One", "Two", "Three"):
            await board.create(title)
        await board.move(2, StageName.CODING)
        await board.move(3, StageName.ARCHIVED)

        def numbers(stage: StageName | None = None, archived: bool = False) -> list[int]:
            return [item.number for item in board.listing(stage, archived).items]

        assert numbers() == [1, 2]
        assert numbers(archived=True) == [1, 2, 3]
        assert numbers(StageName.ARCHIVED) == [3]
        assert numbers(StageName.CODING) == [2]
        assert numbers(StageName.QA) == []
        assert board.listing(StageName.QA).total == 3
