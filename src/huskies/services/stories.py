"""Work-item use cases: create, list, show, edit, move, unblock, purge and renumber.

Each reads the board from the replica's document, decides with the pure pipeline, and writes
one change through the replica. A lock serialises the read-decide-write of this node's own
requests, so two requests never both act on the state the other is changing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from enum import Enum

from huskies.crdt import Json
from huskies.pipeline import (
    Claim,
    IllegalTransition,
    ItemError,
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
from huskies.pipeline.lines import line_problem
from huskies.pipeline.stages import StageName
from huskies.pipeline.updates import apply_event
from huskies.pipeline.view import ItemsView, next_number, project_items, renumbering
from huskies.store import Replica

log = logging.getLogger("huskies.stories")

MAX_TITLE = 200


class StoryError(Exception):
    """A request about a work item that cannot be done; the message says why and what to do.

    The subclasses say which way it failed, so callers (the HTTP API) pick a status by type."""


class UnknownItem(StoryError):
    field: str | None = None  # the request's field that named it, if any

    def __init__(self, number: int, message: str | None = None) -> None:
        super().__init__(
            message or f"there is no item #{number}; `huskies story list` shows them all"
        )
        self.number = number


class UnknownDependency(UnknownItem):
    field = "depends_on"

    def __init__(self, number: int) -> None:
        super().__init__(number, f"there is no item #{number} to depend on")


class IllegalMove(StoryError):
    """The pipeline refuses the move; the message carries its reason."""


class BadField(StoryError):
    """A value given for `field` (the item field's name) is not acceptable."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Keep(Enum):
    """The default of edit arguments where None means "clear it": leave the field as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class Listing:
    """The items a list request selected, the items that could not be read, and how many
    readable items the board holds in all (so "no items" and "none match" can differ)."""

    items: list[WorkItem]
    errors: list[ItemError]
    total: int


class Board:
    """The work items of one replica. `agent_names` gives the configured agents' names, which
    an item's preferred agent must be one of."""

    def __init__(
        self,
        replica: Replica,
        clock: Callable[[], int],
        agent_names: Callable[[], Collection[str]] = tuple,
    ) -> None:
        self._replica = replica
        self._clock = clock
        self._agent_names = agent_names
        self._lock = asyncio.Lock()
        self._cached: tuple[int, ItemsView] | None = None

    def view(self) -> ItemsView:
        """The projected board, kept until the document changes: projecting reads every item
        (about 25 ms at 1,000 items), and most reads come between changes."""
        count = self._replica.document.change_count
        if self._cached is None or self._cached[0] != count:
            self._cached = (count, project_items(read_items(self._replica.document)))
        return self._cached[1]

    def listing(self, stage: StageName | None = None, include_archived: bool = False) -> Listing:
        """Items in `stage`, or else every item not archived (every item with
        `include_archived`), by number."""
        view = self.view()
        items = [
            item
            for item in view.items
            if (stage is None or item.stage.name is stage)
            and (include_archived or stage is not None or item.stage.name is not StageName.ARCHIVED)
        ]
        return Listing(items, view.errors, len(view.items))

    def get(self, number: int) -> WorkItem:
        item = self.view().by_number(number)
        if item is None:
            raise UnknownItem(number)
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
            archived = []
            for dep in deps:
                found = view.by_number(dep)
                if found is None:
                    raise UnknownDependency(dep)
                if found.stage.name is StageName.ARCHIVED:
                    archived.append(found)
            number = next_number(view)
            for dep_item in archived:
                # Allowed (the item is then ready at once), but often a mistake: say so.
                log.warning(
                    "new item #%s depends on #%s, which is already archived",
                    number,
                    dep_item.number,
                )
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

    async def edit(
        self,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        agent: str | Keep | None = KEEP,
        qa: QaMode | Keep | None = KEEP,
    ) -> bool:
        """Change an item's title, body, preferred agent (None: any) and QA mode (None: the
        project's default); False if all of them were already so."""
        async with self._lock:
            item = self.get(number)
            fields: dict[str, Json] = {}
            if title is not None and _check_title(title) != item.title:
                fields["title"] = _check_title(title)
            if not isinstance(agent, Keep) and agent != item.agent:
                if agent is not None and agent not in (names := self._agent_names()):
                    configured = ", ".join(sorted(names)) or "none"
                    raise BadField(
                        "agent",
                        f"there is no agent named {agent!r} in agents.toml (configured: "
                        f"{configured})",
                    )
                fields["agent"] = agent
            if not isinstance(qa, Keep) and qa != item.qa:
                fields["qa"] = None if qa is None else qa.value
            tx = self._replica.transaction()
            element = parse_item_key(item.id)
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

    async def apply(self, number: int, event: Event) -> WorkItem:
        """An event the server decided on (an agent's run failed, dependencies finished…)."""
        async with self._lock:
            return await self._apply(self.get(number), event)

    async def set_agent(self, number: int, agent: str | None) -> WorkItem:
        """Set the item's preferred agent (None: any free agent of its stage)."""
        async with self._lock:
            item = self.get(number)
            if item.agent == agent:
                return item
            at = self._clock()
            tx = self._replica.transaction()
            set_fields(tx, parse_item_key(item.id), {"agent": agent}, at)
            await self._replica.change(tx)
            return dataclasses.replace(item, agent=agent, updated_at=at)

    async def set_claim(self, item_id: str, claim: Claim | None) -> bool:
        """Record (or clear) which node works on the item, by its id (a number can change
        while an agent runs). False if the item is gone."""
        async with self._lock:
            item = self.view().by_id(item_id)
            if item is None:
                return False
            stored: Json = (
                None
                if claim is None
                else {
                    "node": claim.node,
                    "expires_at": claim.expires_at,
                }
            )
            tx = self._replica.transaction()
            set_fields(tx, parse_item_key(item_id), {"claim": stored}, self._clock())
            await self._replica.change(tx)
            return True

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
            raise IllegalMove(f"cannot move #{item.number}: {event.reason}")
        update = apply_event(item, event, self._clock())
        if isinstance(update, IllegalTransition):
            raise IllegalMove(f"cannot move #{item.number}: {update.reason}")
        tx = self._replica.transaction()
        set_fields(tx, parse_item_key(item.id), update.fields, update.item.updated_at)
        await self._replica.change(tx)
        return update.item


def _check_title(title: str) -> str:
    if len(title) > MAX_TITLE:  # as given: what the API's schema can say
        raise BadField("title", f"the title is {len(title)} characters; keep it to {MAX_TITLE}")
    title = title.strip()
    if not title:
        raise BadField("title", "the title is empty; give the item a short name")
    problem = line_problem(title)
    if problem is not None:
        raise BadField(
            "title", f"the title {problem}; make it one plain line (details go in the body)"
        )
    return title
