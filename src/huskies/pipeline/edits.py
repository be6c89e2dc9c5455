"""Item edits as document ops: each function adds ops to a Transaction and never commits.

The caller decides what goes into one change (an event's stage and retry count together, say)
and signs it through the store's single write path. Every field is its own register, so two
nodes editing different fields of one item never overwrite each other; a body is a text, edited
by a minimal diff, so two people editing different parts of it both keep their work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from diff_match_patch import diff_match_patch

from huskies.crdt import Document, Json, ObjKind, OpId, Transaction
from huskies.crdt.ops import ListDelete, ListInsert, ListMake
from huskies.pipeline.items import ItemKind, QaMode
from huskies.pipeline.schema import BODY, FIELDS, ITEMS, ITEMS_PATH, item_path
from huskies.pipeline.stages import Backlog, Stage, stage_to_json

# Set once, by create_item; every other edit bumps updated_at itself.
_FIXED = frozenset({"created_at", "updated_at"})


def create_item(
    tx: Transaction,
    *,
    number: int,
    kind: ItemKind,
    title: str,
    body: str,
    depends_on: Iterable[int],
    qa: QaMode | None,
    at: int,
) -> OpId:
    """Add a new item in the backlog; returns its element id (resolve it after commit).

    The items list is made every time rather than only when missing: concurrent makes of one
    key as the same kind share a single container, so this never hides existing items, and it
    needs no look at the document (which the builder does not expose).
    """
    if number < 1:
        raise ValueError(f"item numbers start at 1, got {number}")
    tx.make((), ITEMS, ObjKind.LIST)
    # Position 0: order in the list means nothing (the board sorts by number), and the start is
    # the one position known without reading the document.
    item = tx.insert_container(ITEMS_PATH, 0, ObjKind.MAP)
    path = item_path(item)
    values: dict[str, Json] = {
        "number": number,
        "kind": kind.value,
        "title": title,
        "stage": stage_to_json(Backlog()),
        "agent": None,
        "qa": None if qa is None else qa.value,
        "depends_on": list(depends_on),
        "retries": 0,
        "blocked_reason": None,
        "claim": None,
        "created_at": at,
        "updated_at": at,
    }
    for name, value in values.items():
        tx.set(path, name, value)
    tx.insert_text(tx.make(path, BODY, ObjKind.TEXT), 0, body)
    return item


def set_fields(tx: Transaction, item: OpId, fields: Mapping[str, Json], at: int) -> None:
    """Set item fields (JSON values in their stored form) and bump `updated_at` to `at`."""
    for name in fields:
        if name == BODY:
            raise ValueError("the body is a text: edit it with save_body")
        if name in _FIXED:
            raise ValueError(f"{name} is kept by the edits themselves and is not set directly")
        if name not in FIELDS:
            raise ValueError(f"unknown item field {name!r} (known: {', '.join(sorted(FIELDS))})")
    path = item_path(item)
    for name, value in fields.items():
        tx.set(path, name, value)
    tx.set(path, "updated_at", at)


def set_stage(tx: Transaction, item: OpId, stage: Stage, at: int) -> None:
    set_fields(tx, item, {"stage": stage_to_json(stage)}, at)


def save_body(tx: Transaction, item: OpId, old: str, new: str) -> None:
    """Turn the body from `old` into `new` with the fewest character edits.

    `old` must be the body as the transaction's document holds it, since the edits are made at
    positions in it. Only the characters that changed are touched, so a concurrent edit
    elsewhere in the body survives the merge instead of being overwritten by a whole new text.
    """
    path = (*item_path(item), BODY)
    pos = 0
    for op, text in _diff(old, new):
        if op == diff_match_patch.DIFF_INSERT:
            tx.insert_text(path, pos, text)
            pos += len(text)
        elif op == diff_match_patch.DIFF_DELETE:
            tx.delete_text(path, pos, len(text))
        else:
            pos += len(text)


def _diff(old: str, new: str) -> list[tuple[int, str]]:
    dmp = diff_match_patch()
    # No deadline, so the diff depends only on the texts, not on how fast this machine is.
    dmp.Diff_Timeout = 0
    diffs = dmp.diff_main(old, new)
    # Fold tiny unchanged runs between edits into them: fewer ops, at a few characters' cost.
    dmp.diff_cleanupEfficiency(diffs)
    return [(int(op), str(text)) for op, text in diffs]


def purge(tx: Transaction, doc: Document, item: OpId) -> None:
    """Delete the item for good.

    Its list element is removed, which leaves a tombstone: edits to the item made concurrently
    or earlier and delivered later still apply, but to an element no view shows, so it never
    comes back. The builder deletes by position, so this needs the document the transaction is
    built on to find the item, and refuses a transaction that already changed the items list
    (the positions would no longer match the document's).
    """
    for op in tx.ops:
        if isinstance(op, ListMake | ListInsert | ListDelete) and op.path == ITEMS_PATH:
            raise ValueError(
                "purge an item in a transaction that makes no other change to the items list"
            )
    sequence = doc.sequence(ITEMS_PATH, ObjKind.LIST)
    if sequence is None or not sequence.is_visible(item):
        raise ValueError(f"there is no live item {item.change.hex()}.{item.idx} to purge")
    tx.remove(ITEMS_PATH, sequence.ids().index(item))
