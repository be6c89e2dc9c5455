"""A service loop that runs a pass after every change to the document, whenever poked, and at
least every interval: how auto-assign and the merge queue notice there is work."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from huskies.store import Replica

log = logging.getLogger("huskies.passes")


class Passes:
    def __init__(
        self,
        name: str,
        replica: Replica,
        run_pass: Callable[[], Awaitable[None]],
        wait_at_most: Callable[[float], float] = lambda interval: interval,
    ) -> None:
        self._name = name
        self._replica = replica
        self._run_pass = run_pass
        self._wait_at_most = wait_at_most
        self._poke = asyncio.Event()

    def poke(self) -> None:
        """Run a pass soon (after the one under way, if any)."""
        self._poke.set()

    async def run_forever(self, interval_s: float) -> None:
        changes = self._replica.subscribe()

        async def watch_changes() -> None:
            async for _ in changes:
                self.poke()

        watcher = asyncio.create_task(watch_changes(), name=f"{self._name}: changes")
        try:
            while True:
                self._poke.clear()
                try:
                    await self._run_pass()
                except Exception:  # one bad pass must not end the loop
                    log.exception("%s failed; trying again at the next change", self._name)
                # asyncio.timeout, not wait_for: 3.11's wait_for can lose a cancellation
                # that arrives as the wait ends, and then shutdown hangs here.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._wait_at_most(interval_s)):
                        await self._poke.wait()
        finally:
            watcher.cancel()
            changes.close()
