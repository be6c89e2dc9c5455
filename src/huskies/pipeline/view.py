"""The board: every item projected, and item numbers made unique.

Numbers are minted locally (the next free number this node knows), so two nodes working apart
can give the same number to different items. Every replica resolves that the same way from the
document alone: among items claiming a number, the earliest `(created_at, id)` keeps it; the
others, in `(created_at, id)` order, take the numbers after the highest one claimed. A service
then writes those numbers back (`renumbering`), so they stay put when more items arrive.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from huskies.pipeline.items import ItemError, WorkItem, project_item


@dataclass(frozen=True, slots=True)
class ItemsView:
    """Valid items sorted by their (unique) number, the items that could not be read, and the
    number each valid item claims in the document (which differs from `number` for losers of a
    collision)."""

    items: list[WorkItem]
    errors: list[ItemError]
    claimed: dict[str, int]
    _by_number: dict[int, WorkItem] = field(init=False, repr=False, compare=False)
    _by_id: dict[str, WorkItem] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_number", {item.number: item for item in self.items})
        object.__setattr__(self, "_by_id", {item.id: item for item in self.items})

    def by_number(self, number: int) -> WorkItem | None:
        return self._by_number.get(number)

    def by_id(self, item_id: str) -> WorkItem | None:
        return self._by_id.get(item_id)


def project_items(raw: Iterable[tuple[str, object]]) -> ItemsView:
    """Project `(id, raw map)` pairs (as `schema.read_items` returns) into a view.

    The result does not depend on the order of `raw`.
    """
    return resolve(project_item(item_id, value) for item_id, value in raw)


def resolve(projected: Iterable[WorkItem | ItemError]) -> ItemsView:
    """The view of items already projected one by one (numbers as claimed): collisions
    resolved, items sorted. Cheap next to projecting, so a board kept up to date item by item
    (`huskies.pipeline.tracker`) runs this after every change."""
    valid: list[WorkItem] = []
    errors: list[ItemError] = []
    for one in projected:
        if isinstance(one, ItemError):
            errors.append(one)
        else:
            valid.append(one)
    valid.sort(key=lambda item: (item.created_at, item.id))
    claimed = {item.id: item.number for item in valid}
    taken: set[int] = set()
    losers: list[WorkItem] = []
    for item in valid:
        if item.number in taken:
            losers.append(item)
        else:
            taken.add(item.number)
    after = max(taken, default=0)
    renumbered = {loser.id: after + n for n, loser in enumerate(losers, start=1)}
    items = [
        dataclasses.replace(item, number=renumbered[item.id]) if item.id in renumbered else item
        for item in valid
    ]
    items.sort(key=lambda item: item.number)
    errors.sort(key=lambda error: error.item_id)
    return ItemsView(items, errors, claimed)


def renumbering(view: ItemsView) -> list[tuple[str, int]]:
    """(item id, number to store) for each item whose stored number lost a collision."""
    return [(item.id, item.number) for item in view.items if view.claimed[item.id] != item.number]


def next_number(view: ItemsView) -> int:
    """The number to give a new item: one past every number in use (1 for an empty board).

    Past the resolved numbers too, not only the claimed ones: a collision's loser already shows
    a number above every claimed one, and a new item must not take it.
    """
    return max((item.number for item in view.items), default=0) + 1
