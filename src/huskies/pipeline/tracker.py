"""The board kept current change by change, and what each change did to it.

Projecting the whole board reads every item, bodies included: about 25 ms at 1,000 items. The
server's live event stream needs the board after every change, so the tracker keeps each item's
projection and, for a change, reads again only the items its ops touched. Numbers are then
resolved over the kept projections (`view.resolve`: no document reads, about a millisecond at
1,000 items), since a new or renumbered item can move the numbers of others.

The result is the view `project_items(read_items(doc))` would give once every applied change has
been passed to `update` (the tests check exactly that).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from huskies.crdt import Document, ObjKind, OpId, VerifiedChange
from huskies.crdt.ops import THIS_CHANGE, ListSet, MapDelete, MapMake, MapSet
from huskies.pipeline.items import ItemError, WorkItem, project_item
from huskies.pipeline.schema import ITEMS, ITEMS_PATH, item_key, item_path, read_items
from huskies.pipeline.view import ItemsView, resolve


@dataclass(frozen=True, slots=True)
class BoardChanges:
    """`changed`: items new or different (number included); `removed`: items gone from the
    document, as they were last seen; `failed`: items that became unreadable (or unreadable in
    a new way), which a reader should stop showing as they were."""

    changed: list[WorkItem]
    removed: list[WorkItem]
    failed: list[ItemError]


@dataclass(slots=True)
class _Touched:
    """What a batch of changes may have changed: `elements` whose maps were edited, whether
    the list gained or lost elements (`membership`), or whether to re-read everything."""

    elements: set[OpId]
    membership: bool = False
    everything: bool = False


class ItemTracker:
    def __init__(self, doc: Document) -> None:
        self._projected: dict[str, WorkItem | ItemError] = {}
        self._listed = False
        self.view = ItemsView([], [], {})
        self.reload(doc)

    def reload(self, doc: Document) -> BoardChanges:
        """Read every item again (after missing changes, say) and report the difference."""
        self._projected = {key: project_item(key, raw) for key, raw in read_items(doc)}
        self._listed = _listed(doc)
        return self._resolve()

    def update(self, doc: Document, changes: Iterable[VerifiedChange]) -> BoardChanges:
        """Bring the board up to `doc`, which has applied `changes` (and maybe more)."""
        touched = _scan(changes, listed=self._listed)
        if touched.everything:
            return self.reload(doc)
        if not self._listed:  # edits inside a list no one sees change no item
            return self._resolve()
        if touched.membership:
            sequence = doc.sequence(ITEMS_PATH, ObjKind.LIST)
            live = {item_key(e): e for e in (sequence.ids() if sequence is not None else [])}
            for gone in self._projected.keys() - live.keys():
                del self._projected[gone]
            touched.elements.update(e for key, e in live.items() if key not in self._projected)
        for element in touched.elements:
            key = item_key(element)
            try:
                raw = doc.get(item_path(element))
            except KeyError:  # purged (a tombstone still takes late edits)
                self._projected.pop(key, None)
                continue
            self._projected[key] = project_item(key, raw)
        return self._resolve()

    def _resolve(self) -> BoardChanges:
        old, new = self.view, resolve(self._projected.values())
        self.view = new
        unreadable = {error.item_id for error in new.errors}
        before = set(old.errors)
        return BoardChanges(
            changed=[item for item in new.items if old.by_id(item.id) != item],
            removed=[
                item
                for item in old.items
                if new.by_id(item.id) is None and item.id not in unreadable
            ],
            failed=[error for error in new.errors if error not in before],
        )


def _listed(doc: Document) -> bool:
    """True if the items list is what the document shows under "items". It always is once an
    item was made, unless some node wrote another value over the key: only ops on the root key
    change that, and those make the tracker reload."""
    try:
        return isinstance(doc.get(ITEMS_PATH), list)
    except KeyError:
        return False


def _scan(changes: Iterable[VerifiedChange], *, listed: bool) -> _Touched:
    touched = _Touched(set())
    for verified in changes:
        for op in verified.change.ops:
            path = op.path
            if not path:
                if not (isinstance(op, MapSet | MapMake | MapDelete) and op.key == ITEMS):
                    continue
                # Making the list again is what every item creation does; while the list is
                # what "items" shows, that joins the one container and only adds elements.
                if isinstance(op, MapMake) and op.kind is ObjKind.LIST and listed:
                    touched.membership = True
                else:
                    touched.everything = True
            elif path[0] != ITEMS:
                continue
            elif len(path) == 1:
                touched.membership = True
                if isinstance(op, ListSet):
                    touched.elements.add(_resolved(op.element, verified.id))
            elif isinstance(path[1], OpId):
                touched.elements.add(_resolved(path[1], verified.id))
    return touched


def _resolved(element: OpId, change_id: bytes) -> OpId:
    """Ops name elements their own change made as "this change" (the id is not known yet)."""
    return OpId(change_id, element.idx) if element.change == THIS_CHANGE else element
