"""Archiving done items on a real replica: once `archive_after` has passed since the merge,
never before, never twice, and quietly past items someone else archived first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from huskies.pipeline import (
    Archived,
    ArchiveReason,
    Done,
    ItemKind,
    MergeSucceeded,
    QaApproved,
    Start,
    Submit,
)
from huskies.pipeline.stages import StageName
from huskies.project import Project
from huskies.services.archiver import Archiver
from huskies.services.settings import Settings
from huskies.services.stories import Board
from huskies.store import Replica

from ..web.support import make_project, until

T = 1_717_228_800_000
HOUR = 3_600_000


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@dataclass
class Rig:
    project: Project
    board: Board
    settings: Settings
    clock: Clock


@contextlib.asynccontextmanager
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    project = make_project(tmp_path / "repo")
    clock = Clock(T)
    async with await Replica.open(project.db_path) as replica:
        yield Rig(project, Board(replica, clock), Settings.load(project), clock)


async def finish(board: Board, title: str, merged_at: int, kind: ItemKind = ItemKind.STORY) -> int:
    """A new item taken to done, merged (a spike: approved) at `merged_at`; its number."""
    item = await board.create(title, kind=kind)
    await board.apply(item.number, Start())
    await board.apply(item.number, Submit())
    await board.apply(item.number, QaApproved(merged_at, f"feature/story-{item.number}", 1))
    if kind is not ItemKind.SPIKE:
        await board.apply(item.number, MergeSucceeded(merged_at, "0123456789abcdef"))
    assert isinstance(board.get(item.number).stage, Done)
    return item.number


async def test_done_items_are_archived_once_archive_after_has_passed(tmp_path: Path):
    async with rig(tmp_path) as r:
        first = await finish(r.board, "Merged first", T)
        spike = await finish(r.board, "A spike", T, ItemKind.SPIKE)
        later = await finish(r.board, "Merged later", T + HOUR)
        await r.board.create("Still in the backlog")
        archiver = Archiver(r.board, r.settings, r.clock)

        r.clock.now = T + 4 * HOUR - 1  # archive_after is "4h" by default
        assert await archiver.sweep() == []

        r.clock.now = T + 4 * HOUR
        archived = await archiver.sweep()
        assert [item.number for item in archived] == [first, spike]
        for number in (first, spike):
            stage = r.board.get(number).stage
            assert isinstance(stage, Archived)
            assert stage.reason is ArchiveReason.COMPLETED
            assert stage.archived_at == T + 4 * HOUR
            assert isinstance(stage.previous, Done)
        assert isinstance(r.board.get(later).stage, Done)
        assert r.board.get(4).stage.name is StageName.BACKLOG

        r.clock.now = T + 5 * HOUR
        assert [item.number for item in await archiver.sweep()] == [later]
        assert await archiver.sweep() == []  # nothing twice


async def test_the_delay_is_read_from_the_settings_in_force(tmp_path: Path):
    async with rig(tmp_path) as r:
        number = await finish(r.board, "Merged", T)
        archiver = Archiver(r.board, r.settings, r.clock)
        r.clock.now = T + 30 * 60_000
        assert await archiver.sweep() == []
        toml = r.project.project_toml.read_text()
        r.project.project_toml.write_text(
            toml.replace('archive_after = "4h"', 'archive_after = "30m"')
        )
        r.settings.reload()
        assert [item.number for item in await archiver.sweep()] == [number]


async def test_items_archived_by_someone_else_meanwhile_are_skipped_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, "huskies.archiver")
    async with rig(tmp_path) as r:
        numbers = [await finish(r.board, f"Done {n}", T) for n in range(3)]
        r.clock.now = T + 4 * HOUR
        # Two sweeps at once both see every item done; each item is archived by one of them,
        # and the other skips it without an error.
        one, two = await asyncio.gather(
            Archiver(r.board, r.settings, r.clock).sweep(),
            Archiver(r.board, r.settings, r.clock).sweep(),
        )
        assert sorted(item.number for item in one + two) == numbers
        # A person archived it first, or purged it: also skipped.
        purged = await finish(r.board, "Purged", T)
        by_hand = await finish(r.board, "Archived by hand", T)
        await r.board.move(by_hand, StageName.ARCHIVED)
        sweep = asyncio.create_task(Archiver(r.board, r.settings, r.clock).sweep())
        await r.board.purge(purged)  # while the sweep waits for the board, having seen it
        assert await sweep == []
    skipped = [record.getMessage() for record in caplog.records if record.levelname == "DEBUG"]
    assert f"#{purged} was not archived: there is no item #{purged}" in skipped[-1]
    assert all(record.levelno < logging.WARNING for record in caplog.records)


async def test_the_loop_keeps_sweeping(tmp_path: Path):
    async with rig(tmp_path) as r:
        number = await finish(r.board, "Merged", T)
        loop = asyncio.create_task(Archiver(r.board, r.settings, r.clock).run_forever(0.02))
        try:
            r.clock.now = T + 4 * HOUR
            await until(lambda: isinstance(r.board.get(number).stage, Archived), "archived")
            later = await finish(r.board, "Merged later", r.clock.now)
            r.clock.now += 4 * HOUR
            await until(lambda: isinstance(r.board.get(later).stage, Archived), "archived too")
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
