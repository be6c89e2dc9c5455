"""The live event stream: item changes, agent output, agent state and notifications.

Producers publish without waiting; each subscriber has its own bounded queue. A subscriber that
falls behind is not slowed down for, nor silently skipped: it gets one `lagged` event and its
queue is emptied, so it knows to reload what it shows (the board re-reads the API).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

QUEUE_SIZE = 1024

LAGGED = "lagged"


@dataclass(frozen=True, slots=True)
class Event:
    """`seq` counts events from 1 since the server started; `kind` says what `data` is."""

    seq: int
    kind: str
    data: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "data": dict(self.data)}


class Subscription:
    def __init__(self, hub: EventHub, kinds: frozenset[str] | None) -> None:
        self._hub = hub
        self.kinds = kinds
        self.queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)

    def offer(self, event: Event) -> None:
        if self.kinds is not None and event.kind not in self.kinds:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(Event(event.seq, LAGGED, {"missed_from": event.seq}))

    async def get(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self._hub._subscribers.discard(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventHub:
    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._seq = itertools.count(1)

    def publish(self, kind: str, data: Mapping[str, Any]) -> Event:
        event = Event(next(self._seq), kind, data)
        for subscriber in list(self._subscribers):
            subscriber.offer(event)
        return event

    def subscribe(self, kinds: set[str] | frozenset[str] | None = None) -> Subscription:
        """Events published from now on (of `kinds`, or all); use as a context manager."""
        subscription = Subscription(self, None if kinds is None else frozenset(kinds))
        self._subscribers.add(subscription)
        return subscription

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
