"""Work-item use cases: create, list, show, edit, move, unblock, purge and renumber.

Each reads the board from the replica's document, decides with the pure pipeline, and writes
one change through the replica. A lock serialises the read-decide-write of this node's own
requests, so two requests never both act on the state the other is changing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from huskies.pipeline import (
    IllegalTransition,
    ItemKind,
    QaMode,
    Unblock,
    WorkItem,
    create_item,
    event_for_move,
    item_key,
    parse_item_key,
    purge,
    read_items,
    save_body,
    set_fields,
)
from huskies.pipeline.events import Event
from huskies.pipeline.stages import StageName
from huskies.pipeline.updates import apply_event
from huskies.pipeline.view import ItemsView, next_number, project_items, renumbering
from huskies.store import Replica

MAX_TITLE = 200


class StoryError(Exception):
    """A request about a work item that cannot be done; the message says why and what to do."""


class Board:
    """The work items of one replica."""

    def __init__(self, replica: Replica, clock: Callable[[], int]) -> None:
        self._replica = replica
        self._clock = clock
        self._lock = asyncio.Lock()

    def view(self) -> ItemsView:
        return project_items(read_items(self._replica.document))

    def get(self, number: int) -> WorkItem:
        item = self.view().by_number(number)
        if item is None:
            raise StoryError(f"there is no item #{number}; `huskies story list` shows them all")
        return item

    async def create(
        self,
        title: str,
        *,
        kind: ItemKind = ItemKind.STORY,
        body: str = "",
        depends_on: Iterable[int] = (),
        qa: QaMode | None = None,
    ) -> WorkItem:
        title = _check_title(title)
        async with self._lock:
            view = self.view()
            deps = tuple(dict.fromkeys(depends_on))
            for dep in deps:
                if view.by_number(dep) is None:
                    raise StoryError(f"--depends-on {dep}: there is no item #{dep}")
            number = next_number(view)
            tx = self._replica.transaction()
            element = create_item(
                tx,
                number=number,
                kind=kind,
                title=title,
                body=body,
                depends_on=deps,
                qa=qa,
                at=self._clock(),
            )
            await self._replica.change(tx)
            created = self.view().by_id(item_key(tx.resolve(element)))
        assert created is not None
        return created

    async def edit(self, number: int, *, title: str | None = None, body: str | None = None) -> bool:
        """Change an item's title and/or body; False if both were already so."""
        async with self._lock:
            item = self.get(number)
            tx = self._replica.transaction()
            element = parse_item_key(item.id)
            fields = {}
            if title is not None and _check_title(title) != item.title:
                fields["title"] = _check_title(title)
            if body is not None and body != item.body:
                save_body(tx, element, item.body, body)
            if not fields and not len(tx):
                return False
            set_fields(tx, element, fields, self._clock())
            await self._replica.change(tx)
        return True

    async def move(self, number: int, target: StageName) -> WorkItem:
        """A person's move to `target`: legal moves only."""
        async with self._lock:
            item = self.get(number)
            event = event_for_move(item.stage, target, self._clock())
            return await self._apply(item, event)

    async def unblock(self, number: int) -> WorkItem:
        async with self._lock:
            return await self._apply(self.get(number), Unblock())

    async def purge(self, number: int) -> WorkItem:
        """Delete an item for good: it never returns, even when older edits to it arrive."""
        async with self._lock:
            item = self.get(number)
            tx = self._replica.transaction()
            purge(tx, self._replica.document, parse_item_key(item.id))
            await self._replica.change(tx)
            return item

    async def settle_numbers(self) -> list[tuple[int, WorkItem]]:
        """Store the numbers that items minted concurrently elsewhere were given, so they stay
        put as more items arrive. Returns (number it claimed, item) for each one renumbered."""
        async with self._lock:
            view = self.view()
            moves = renumbering(view)
            if not moves:
                return []
            tx = self._replica.transaction()
            at = self._clock()
            for item_id, number in moves:
                set_fields(tx, parse_item_key(item_id), {"number": number}, at)
            await self._replica.change(tx)
            settled = []
            for item_id, _ in moves:
                item = view.by_id(item_id)
                assert item is not None
                settled.append((view.claimed[item_id], item))
            return settled

    async def _apply(self, item: WorkItem, event: Event | IllegalTransition) -> WorkItem:
        if isinstance(event, IllegalTransition):
            raise StoryError(f"cannot move #{item.number}: {event.reason}")
        update = apply_event(item, event, self._clock())
        if isinstance(update, IllegalTransition):
            raise StoryError(f"cannot move #{item.number}: {update.reason}")
        tx = self._replica.transaction()
        set_fields(tx, parse_item_key(item.id), update.fields, update.item.updated_at)
        await self._replica.change(tx)
        return update.item


def _check_title(title: str) -> str:
    title = title.strip()
    if not title:
        raise StoryError("the title is empty; give the item a short name")
    if "\n" in title:
        raise StoryError("the title must be one line; put the details in the body")
    if len(title) > MAX_TITLE:
        raise StoryError(f"the title is {len(title)} characters; keep it to {MAX_TITLE}")
    return title
