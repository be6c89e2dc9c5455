"""Archiving done items: a done item leaves the board `archive_after` (project.toml) after its
merge, archived as completed.

The delay keeps finished work in view for a while (people look at what just landed) without
letting done items pile up. The age runs from `merged_at`; a spike, which merges nothing, has
the time it was approved there, so it ages the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from huskies.config import duration_ms
from huskies.pipeline import Archive, ArchiveReason, Done, WorkItem
from huskies.services.settings import Settings
from huskies.services.stories import Board, StoryError

log = logging.getLogger("huskies.archiver")


class Archiver:
    """Archives the done items of `board` that are old enough; `clock` gives ms since the
    epoch."""

    def __init__(self, board: Board, settings: Settings, clock: Callable[[], int]) -> None:
        self._board = board
        self._settings = settings
        self._clock = clock

    async def sweep(self) -> list[WorkItem]:
        """Archive every done item merged at least `archive_after` ago; returns them as
        archived. An item someone moved (or purged) meanwhile is left alone."""
        now = self._clock()
        after = duration_ms(self._settings.config.archive_after)
        archived = []
        for item in self._board.view().items:
            if not isinstance(item.stage, Done) or now - item.stage.merged_at < after:
                continue
            current = self._board.view().by_id(item.id)
            if current is None:
                continue  # purged while earlier items were archived
            try:
                archived.append(
                    await self._board.apply(current.number, Archive(now, ArchiveReason.COMPLETED))
                )
            except StoryError as exc:  # moved, purged or renumbered by someone else meanwhile
                log.debug("#%s was not archived: %s", current.number, exc)
                continue
            log.info("#%s archived as completed", current.number)
        return archived

    async def run_forever(self, interval_s: float = 60.0) -> None:
        """Sweep every `interval_s`, for the server's life."""
        while True:
            try:
                await self.sweep()
            except Exception:  # one failed sweep (a write refused, say) must not end them
                log.exception("archiving done items failed; trying again in %s s", interval_s)
            await asyncio.sleep(interval_s)
