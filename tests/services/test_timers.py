"""The timers service on a real replica: timers fire once when due (also after a restart),
cancel and replace, survive a failing start, and refuse bad requests without writing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from huskies.pipeline import ArchiveReason
from huskies.pipeline.events import Archive
from huskies.pipeline.timers import Timer, read_timers, set_timer
from huskies.project import Project
from huskies.services.notifications import TIMER_FIRED
from huskies.services.settings import Settings
from huskies.services.stories import BadField, Board, IllegalMove, UnknownItem
from huskies.services.timers import Timers
from huskies.store import Replica

from ..web.support import make_project

LONDON = ZoneInfo("Europe/London")
DEADLINE_S = 10


def london_ms(text: str) -> int:
    """ms since the epoch of a London wall time, "2024-06-01 08:59:59.800"."""
    moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=LONDON)
    return int(moment.timestamp() * 1000)


class Clock:
    """Wall-clock ms that reads `start` now and runs at real speed from there, so a timer
    can be due in a fraction of a second at whatever time of day a test picks."""

    def __init__(self, start: int) -> None:
        self._start = start
        self._t0 = time.monotonic()

    def __call__(self) -> int:
        return self._start + int((time.monotonic() - self._t0) * 1000)

    def jump(self, to: str) -> None:
        """Read `to` (a London wall time) now; real speed from there."""
        self._start, self._t0 = london_ms(to), time.monotonic()


@dataclass
class Rig:
    project: Project
    replica: Replica
    board: Board
    timers: Timers
    clock: Clock
    fired: asyncio.Queue[int]
    """The numbers `fire` was called with, in order."""
    fire_at: list[int]
    """The clock at each call of `fire`."""
    fail: set[int]
    """Numbers whose start raises."""
    notes: list[tuple[str, str, int | None]]

    async def next_fired(self) -> int:
        async with asyncio.timeout(DEADLINE_S):
            return await self.fired.get()

    def stored(self) -> list[Timer]:
        return read_timers(self.replica.document)[0]


def project_in(tmp_path: Path) -> Project:
    project = make_project(tmp_path / "repo")
    text = project.project_toml.read_text().replace(
        'timezone = "UTC"', 'timezone = "Europe/London"'
    )
    project.project_toml.write_text(text)
    return project


@contextlib.asynccontextmanager
async def rig(
    project: Project, start: str, *, loop: bool = True, items: int = 2
) -> AsyncIterator[Rig]:
    clock = Clock(london_ms(start))
    async with await Replica.open(project.db_path) as replica:
        board = Board(replica, clock)
        for n in range(len(board.view().items), items):
            await board.create(f"Story {n + 1}")
        fired: asyncio.Queue[int] = asyncio.Queue()
        fire_at: list[int] = []
        fail: set[int] = set()
        notes: list[tuple[str, str, int | None]] = []

        async def fire(number: int) -> None:
            fire_at.append(clock())
            await fired.put(number)
            if number in fail:
                raise RuntimeError(f"no agent for #{number}")

        timers = Timers(
            replica,
            board,
            Settings.load(project),
            clock,
            fire,
            notify=lambda kind, message, number: notes.append((kind, message, number)),
        )
        state = Rig(project, replica, board, timers, clock, fired, fire_at, fail, notes)
        task = asyncio.create_task(state.timers.run_forever()) if loop else None
        try:
            yield state
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def test_a_timer_fires_once_when_it_is_due(tmp_path: Path):
    async with rig(project_in(tmp_path), "2024-06-01 08:59:59.700") as r:
        # The loop is already asleep with nothing to do: setting the timer must wake it.
        timer = await r.timers.set(1, "09:00")
        assert timer.at == london_ms("2024-06-01 09:00:00.000")
        assert timer.number == 1
        assert timer.set_at <= r.clock()
        assert timer.node == r.replica.node_id
        assert r.timers.local_time(timer) == "2024-06-01 09:00 Europe/London"
        assert r.stored() == [timer]
        assert await r.next_fired() == 1
        assert r.fire_at[0] >= timer.at
        assert r.stored() == []
        assert r.notes == [(TIMER_FIRED, "#1: the timer came due and started work on it", 1)]
        # Fired once: another timer fires later, and #1 does not come round again.
        r.clock.jump("2024-06-01 09:00:59.800")
        await r.timers.set(2, "09:01")
        assert await r.next_fired() == 2
        assert r.fired.empty()


async def test_a_timer_that_came_due_while_the_server_was_down_fires_at_start(tmp_path: Path):
    project = project_in(tmp_path)
    async with rig(project, "2024-06-01 08:00:00.000", loop=False) as r:
        await r.timers.set(1, "09:00")
    # Restarted at 10:00, an hour late.
    async with rig(project, "2024-06-01 10:00:00.000") as r:
        assert await r.next_fired() == 1
        assert r.fire_at[0] >= london_ms("2024-06-01 10:00:00.000")
        assert r.stored() == []
    async with rig(project, "2024-06-01 10:00:01.000") as r:
        assert r.stored() == []
        await r.timers.set(2, "10:00")  # tomorrow: nothing more fires now
        assert r.timers.list()[0].at == london_ms("2024-06-02 10:00:00.000")
        assert r.fired.empty()


async def test_a_timer_not_yet_due_survives_a_restart(tmp_path: Path):
    project = project_in(tmp_path)
    async with rig(project, "2024-06-01 08:00:00.000") as r:
        timer = await r.timers.set(2, "09:00")
    async with rig(project, "2024-06-01 08:59:59.800") as r:
        assert r.timers.list() == [timer]
        assert await r.next_fired() == 2
        assert r.stored() == []


async def test_a_cancelled_timer_does_not_fire(tmp_path: Path):
    async with rig(project_in(tmp_path), "2024-06-01 08:59:59.700") as r:
        await r.timers.set(1, "09:00")
        assert await r.timers.cancel(1) is True
        assert r.timers.list() == []
        assert await r.timers.cancel(1) is False  # it has none now
        await r.timers.set(2, "09:00")
        assert await r.next_fired() == 2
        assert r.fired.empty()


async def test_setting_a_timer_again_replaces_it(tmp_path: Path):
    async with rig(project_in(tmp_path), "2024-06-01 08:59:59.500") as r:
        await r.timers.set(1, "09:00")
        later = await r.timers.set(1, "11:15")
        assert r.timers.list() == [later]
        assert later.at == london_ms("2024-06-01 11:15:00.000")
        await r.timers.set(2, "09:00")
        assert await r.next_fired() == 2
        assert r.fired.empty()  # the replaced 09:00 of #1 is gone
        assert r.stored() == [later]


async def test_a_timer_fires_once_even_when_starting_fails(tmp_path: Path):
    async with rig(project_in(tmp_path), "2024-06-01 08:59:59.700") as r:
        r.fail.add(1)
        await r.timers.set(1, "09:00")
        assert await r.next_fired() == 1
        assert r.stored() == []  # removed before the start was tried
        r.clock.jump("2024-06-01 09:00:59.800")
        await r.timers.set(2, "09:01")
        assert await r.next_fired() == 2  # the loop goes on
        assert r.fired.empty()
        assert r.notes == [
            (
                TIMER_FIRED,
                "#1: the timer came due, but its agent did not start: no agent for #1",
                1,
            ),
            (TIMER_FIRED, "#2: the timer came due and started work on it", 2),
        ]


async def test_a_timer_of_an_item_purged_meanwhile_starts_nothing(tmp_path: Path):
    async with rig(project_in(tmp_path), "2024-06-01 08:59:59.700") as r:
        await r.timers.set(1, "09:00")
        await r.board.purge(1)
        # Past #1's time; #2's comes after it, so the loop has dealt with #1 by then.
        r.clock.jump("2024-06-01 09:00:59.800")
        await r.timers.set(2, "09:01")
        assert await r.next_fired() == 2
        assert r.fired.empty()
        assert r.stored() == []
        assert (TIMER_FIRED, "the timer of #1 came due, but it is gone", 1) in r.notes


async def test_a_timer_set_on_another_node_is_left_to_it(tmp_path: Path):
    async with rig(project_in(tmp_path), "2024-06-01 08:59:59.700") as r:
        theirs = Timer(r.board.get(1).id, 1, london_ms("2024-06-01 08:00:00.000"), 0, "other")
        tx = r.replica.transaction()
        set_timer(tx, theirs)
        await r.replica.change(tx)
        await r.timers.set(2, "09:00")
        assert await r.next_fired() == 2
        assert r.fired.empty()
        assert r.stored() == [theirs]


async def test_bad_requests_are_refused_and_write_nothing(tmp_path: Path):
    async with rig(project_in(tmp_path), "2024-06-01 08:00:00.000", loop=False) as r:
        await r.board.apply(2, Archive(r.clock(), ArchiveReason.ABANDONED))
        before = r.replica.document.change_count
        with pytest.raises(UnknownItem, match="there is no item #9"):
            await r.timers.set(9, "09:00")
        with pytest.raises(UnknownItem, match="there is no item #9"):
            await r.timers.set(9, "nine")  # the item is named first
        with pytest.raises(UnknownItem, match="there is no item #9"):
            await r.timers.cancel(9)
        for text in ("9:00", "24:00", "09:00pm", ""):
            with pytest.raises(BadField, match=f"'{text}' is not a time of day") as caught:
                await r.timers.set(1, text)
            assert caught.value.field == "at"
        with pytest.raises(IllegalMove, match="#2 is archived; a timer starts an agent"):
            await r.timers.set(2, "09:00")
        assert r.replica.document.change_count == before
        assert r.timers.list() == []


async def test_list_is_soonest_first_with_each_items_current_number(tmp_path: Path):
    async with rig(project_in(tmp_path), "2024-06-01 08:00:00.000", loop=False, items=3) as r:
        second = await r.timers.set(2, "08:30")
        first = await r.timers.set(3, "07:45")  # tomorrow
        third = await r.timers.set(1, "23:59")
        assert [(t.number, t.at) for t in r.timers.list()] == [
            (2, second.at),
            (1, third.at),
            (3, first.at),
        ]
        assert r.timers.local_time(first) == "2024-06-02 07:45 Europe/London"
