"""Timers: start an item's agent at a wall-clock time in the project's time zone.

Timers live in the replicated document (`huskies.pipeline.timers`), so they survive restarts: a
timer that came due while the server was down fires when it starts. Each fires once: the loop
removes the timer from the document first and only then starts the agent, so a start that
fails (or a crash in the middle) never fires it twice. A timer fires on the node that set it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from huskies.pipeline.stages import StageName
from huskies.pipeline.timers import (
    Timer,
    cancel_timer,
    next_occurrence,
    parse_hh_mm,
    read_timers,
    set_timer,
)
from huskies.services.notifications import TIMER_FIRED, Notify
from huskies.services.settings import Settings
from huskies.services.stories import BadField, Board, IllegalMove
from huskies.store import Replica, SubscriptionLagged

log = logging.getLogger("huskies.timers")

MAX_WAIT_S = 60.0
"""The longest the loop sleeps without looking again: it sleeps by the event loop's clock, and
the wall clock can jump (a machine that slept, a corrected clock)."""

RETRY_S = 5.0
"""How long to wait after a pass failed (the database refused a write, say)."""

# The stages an agent works from (a backlog item moves to coding when its agent starts).
STARTABLE = frozenset({StageName.BACKLOG, StageName.CODING, StageName.QA, StageName.MERGE})


class Timers:
    """The timers of one replica. `clock` gives ms since the epoch; `fire(number)` starts item
    `number`'s agent; `notify(kind, message, number)` tells people a timer fired."""

    def __init__(
        self,
        replica: Replica,
        board: Board,
        settings: Settings,
        clock: Callable[[], int],
        fire: Callable[[int], Awaitable[object]],
        *,
        notify: Notify | None = None,
    ) -> None:
        self._replica = replica
        self._board = board
        self._settings = settings
        self._clock = clock
        self._fire = fire
        self._notify = notify
        self._lock = asyncio.Lock()
        self._reported: set[str] = set()

    def zone(self) -> ZoneInfo:
        """The project's time zone, as configured now (a reload changes it)."""
        return ZoneInfo(self._settings.config.timezone)

    async def set(self, number: int, hh_mm: str) -> Timer:
        """Start item `number`'s agent at the next `hh_mm` (HH:MM) in the project's time zone,
        replacing the item's timer if it has one."""
        async with self._lock:
            item = self._board.get(number)
            try:
                parse_hh_mm(hh_mm)
            except ValueError as exc:
                raise BadField("at", str(exc)) from None
            if item.stage.name not in STARTABLE:
                raise IllegalMove(
                    f"#{number} is {item.stage.name.value}; a timer starts an agent, and agents "
                    "work on items in backlog, coding, qa or merge"
                )
            now = self._clock()
            timer = Timer(
                item_id=item.id,
                number=item.number,
                at=next_occurrence(hh_mm, self.zone(), now),
                set_at=now,
                node=self._replica.node_id,
            )
            tx = self._replica.transaction()
            set_timer(tx, timer)
            await self._replica.change(tx)
        log.info("#%s: timer set for %s", number, self.local_time(timer))
        return timer

    def list(self) -> list[Timer]:
        """Every timer, soonest first, numbered as the items are numbered now."""
        view = self._board.view()
        timers = []
        for timer in read_timers(self._replica.document)[0]:
            item = view.by_id(timer.item_id)
            timers.append(timer if item is None else dataclasses.replace(timer, number=item.number))
        return timers

    async def cancel(self, number: int) -> bool:
        """Remove item `number`'s timer; False if it had none."""
        async with self._lock:
            item = self._board.get(number)
            if self._stored(item.id) is None:
                return False
            tx = self._replica.transaction()
            cancel_timer(tx, item.id)
            await self._replica.change(tx)
        log.info("#%s: timer cancelled", number)
        return True

    def local_time(self, timer: Timer) -> str:
        """When `timer` fires, in the project's time zone: "2025-03-10 09:00 Europe/London"."""
        zone = self.zone()
        return f"{datetime.fromtimestamp(timer.at / 1000, zone):%Y-%m-%d %H:%M} {zone.key}"

    async def run_forever(self) -> None:
        """Fire timers as they come due, until the replica closes. Sleeps until the next timer
        is due or the document changes (a timer set, replaced or cancelled, here or on a peer),
        at most MAX_WAIT_S."""
        changes = self._replica.subscribe()
        try:
            while True:
                try:
                    wait_s = await self.fire_due()
                except Exception:  # one bad pass must not end the timers
                    log.exception("firing timers failed; trying again in %s s", RETRY_S)
                    wait_s = RETRY_S
                try:
                    # asyncio.timeout, not wait_for: 3.11's wait_for can lose a cancellation
                    # that arrives as the wait ends, and then shutdown hangs here.
                    async with asyncio.timeout(wait_s):
                        await anext(changes)
                except TimeoutError:
                    pass
                except StopAsyncIteration:
                    return  # the replica closed
                except SubscriptionLagged:  # missed changes: the next pass rereads them all
                    changes = self._replica.subscribe()
        finally:
            changes.close()

    async def fire_due(self) -> float:
        """Fire every timer of this node that is due; returns the seconds until the next one
        (at most MAX_WAIT_S)."""
        timers, problems = read_timers(self._replica.document)
        for problem in set(problems) - self._reported:
            log.warning("a timer in the document cannot be read, so it is left alone: %s", problem)
        self._reported = set(problems)
        node = self._replica.node_id
        for timer in timers:
            if timer.node not in (None, node):
                continue
            wait_ms = timer.at - self._clock()
            if wait_ms > 0:
                return min(MAX_WAIT_S, wait_ms / 1000)
            await self._fire_one(timer)
        return MAX_WAIT_S

    async def _fire_one(self, timer: Timer) -> None:
        async with self._lock:
            if self._stored(timer.item_id) != timer:
                return  # replaced or cancelled since it was read
            tx = self._replica.transaction()
            cancel_timer(tx, timer.item_id)
            await self._replica.change(tx)
        item = self._board.view().by_id(timer.item_id)
        if item is None:
            log.warning("the timer of #%s came due, but the item is gone", timer.number)
            self._tell(timer.number, f"the timer of #{timer.number} came due, but it is gone")
            return
        number = item.number
        log.info("#%s: timer due; starting its agent", number)
        try:
            await self._fire(number)
        except Exception as exc:
            log.warning("#%s: the timer came due, but its agent did not start: %s", number, exc)
            self._tell(number, f"#{number}: the timer came due, but its agent did not start: {exc}")
        else:
            self._tell(number, f"#{number}: the timer came due and started work on it")

    def _stored(self, item_id: str) -> Timer | None:
        timers = read_timers(self._replica.document)[0]
        return next((timer for timer in timers if timer.item_id == item_id), None)

    def _tell(self, number: int, message: str) -> None:
        if self._notify is not None:
            self._notify(TIMER_FIRED, message, number)
