"""Notifications for people: what happened to which item, batched for the live event stream.

Services call `Notifier.notify`; the notifier publishes `notification` events on the hub, which
the board, chat transports and anyone on `/api/events` follow. Notifications come in bursts (an
agent ends, its item is blocked, the next one starts), so they are collected for a window of
`debounce_s` from the first one and published together as one event:
`{"messages": [{"kind", "message", "number", "at"}, …]}`. The window runs from the first message,
not the last, so a steady trickle still gets out once per window instead of waiting for a pause
that never comes.

`watch_items` turns the hub's `item` events into stage notifications ("#3 moved to qa"),
whichever node made the move.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from huskies.pipeline import Archived, ArchiveReason, Done, ItemError, WorkItem, project_item
from huskies.services.events import EventHub
from huskies.services.item_events import ITEM, ITEM_REMOVED
from huskies.services.stories import Board
from huskies.store.replica import wall_clock_ms

log = logging.getLogger("huskies.notifications")

NOTIFICATION = "notification"

# The kinds services use, so a reader can pick the ones it wants.
STAGE = "stage"
BLOCKED = "blocked"
MERGE_FAILED = "merge_failed"
RATE_LIMITED = "rate_limited"
TIMER_FIRED = "timer_fired"
ATTEMPT_FAILED = "attempt_failed"
AGENT_NOT_STARTED = "agent_not_started"
AGENT_COMPLETED = "agent_completed"

Notify = Callable[[str, str, int | None], None]
"""`notify(kind, message, number)`: how a service that takes a notifier calls it."""


def blocked_message(number: int, reason: str | None) -> str:
    """The one wording of "#N is blocked", so the agents service (which blocks items) and the
    stage watcher (which sees them blocked) say the same thing and are sent once."""
    why = f": {reason}" if reason else ""
    return f"#{number} is blocked{why}; `huskies unblock {number}` when it can go on"


class Notifier:
    """Batches notifications into `notification` events on `hub`; `clock` (ms since the
    epoch) stamps each message's `at`."""

    def __init__(
        self,
        hub: EventHub,
        debounce_s: float = 2.0,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        if debounce_s < 0:
            raise ValueError(f"debounce_s must be ≥ 0, got {debounce_s}")
        self._hub = hub
        self._debounce_s = debounce_s
        self._clock = clock
        self._pending: list[dict[str, Any]] = []
        self._timer: asyncio.TimerHandle | None = None

    def notify(self, kind: str, message: str, *, number: int | None = None) -> None:
        """Queue a message; it is published at the end of the current window. Must be called
        from the event loop's thread."""
        latest = next((m for m in reversed(self._pending) if m["number"] == number), None)
        if latest is not None and (latest["kind"], latest["message"]) == (kind, message):
            # The same news from two places (see blocked_message). Only the latest about the
            # item counts: "moved to merge" again after "failed to merge" is news.
            return
        self._pending.append(
            {"kind": kind, "message": message, "number": number, "at": self._clock()}
        )
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._debounce_s, self.flush)

    def __call__(self, kind: str, message: str, number: int | None) -> None:
        """`notify` in the shape services take as their `notify` argument."""
        self.notify(kind, message, number=number)

    def flush(self) -> None:
        """Publish what is queued now (the window's end, or the server's shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            messages, self._pending = self._pending, []
            self._hub.publish(NOTIFICATION, {"messages": messages})

    async def watch_items(self, board: Board) -> None:
        """Notify each item's changes of stage, for the server's life. Only real changes
        count: an edit of a title, a claim renewed or a retry counted sends nothing."""
        with self._hub.subscribe({ITEM, ITEM_REMOVED}) as events:
            # Read the board after subscribing, so no change falls between the two.
            stages = {item.id: _stage_key(item) for item in board.view().items}
            async for event in events:
                if event.kind == ITEM:
                    raw = event.data["item"]
                    projected = project_item(raw["id"], raw)
                    if isinstance(projected, ItemError):  # the stream sends readable items only
                        log.error("an item event does not hold an item: %s", projected)
                    else:
                        self._stage_changed(stages, projected)
                elif event.kind == ITEM_REMOVED:
                    stages.pop(event.data["id"], None)
                else:  # lagged: compare the whole board with what was last seen
                    log.warning("notifications fell behind the event stream; rereading the board")
                    current = board.view().items
                    for gone in set(stages) - {item.id for item in current}:
                        del stages[gone]
                    for item in current:
                        self._stage_changed(stages, item)

    def _stage_changed(self, stages: dict[str, str], item: WorkItem) -> None:
        key = _stage_key(item)
        previous = stages.get(item.id)
        stages[item.id] = key
        # An item not seen before is new (made here or arriving from a peer): nothing moved.
        if previous is not None and previous != key:
            kind, message = _stage_message(item)
            self.notify(kind, message, number=item.number)


def _stage_key(item: WorkItem) -> str:
    """What counts as the item's stage: archived items by why they were archived too."""
    stage = item.stage
    return f"archived:{stage.reason}" if isinstance(stage, Archived) else stage.name.value


def _stage_message(item: WorkItem) -> tuple[str, str]:
    number, stage = item.number, item.stage
    if isinstance(stage, Done):
        merged = f" (merged as {stage.merge_commit[:12]})" if stage.merge_commit else ""
        return STAGE, f"#{number} is done{merged}"
    if not isinstance(stage, Archived):
        return STAGE, f"#{number} moved to {stage.name.value}"
    match stage.reason:
        case ArchiveReason.BLOCKED:
            return BLOCKED, blocked_message(number, item.blocked_reason)
        case ArchiveReason.MERGE_FAILED:
            why = f": {item.blocked_reason}" if item.blocked_reason else ""
            return MERGE_FAILED, (
                f"#{number} failed to merge{why}; `huskies unblock {number}` returns it to merge"
            )
        case ArchiveReason.REVIEW_HELD:
            return (
                STAGE,
                f"#{number} is held in review; `huskies unblock {number}` returns it to qa",
            )
    return STAGE, f"#{number} was archived as {stage.reason.value}"
