"""Where work items live in the replicated document, and how their ids are written.

The root key "items" holds a list whose elements are maps, one per item. A list rather than a
map keyed by number, because two nodes may mint the same number while apart: as list elements
both items survive, each under the id of the op that created it, and the number is just a field
(see `huskies.pipeline.view` for how clashes are resolved). Deleting an element leaves a
tombstone, so a purged item stays gone even when older edits to it arrive later.
"""

from __future__ import annotations

from huskies.crdt import Document, ObjKind, OpId, Path

ITEMS = "items"
ITEMS_PATH: Path = (ITEMS,)

# Fields of an item map. "body" is a text container; every other field holds a JSON value.
BODY = "body"
FIELDS = frozenset(
    {
        "number",
        "kind",
        "title",
        BODY,
        "stage",
        "agent",
        "qa",
        "depends_on",
        "retries",
        "blocked_reason",
        "claim",
        "created_at",
        "updated_at",
    }
)

_HASH_HEX = 64


def item_path(item: OpId) -> Path:
    return (ITEMS, item)


def item_key(op_id: OpId) -> str:
    """The item id as text: `<change id hex>.<index>`.

    Raises ValueError for an id still named "this change" (the id of an element a transaction
    created is known only once it commits; use `Transaction.resolve`).
    """
    if len(op_id.change) * 2 != _HASH_HEX:
        raise ValueError(
            "this element id is not resolved yet: commit the transaction and use "
            "Transaction.resolve"
        )
    return f"{op_id.change.hex()}.{op_id.idx}"


def parse_item_key(text: str) -> OpId:
    """The OpId an item id names, or ValueError saying what is wrong with the text."""
    change, dot, index = text.partition(".")
    if not dot:
        raise ValueError(f"item id {text!r} must look like <64 hex digits>.<index>")
    if len(change) != _HASH_HEX or not all(c in "0123456789abcdef" for c in change):
        raise ValueError(f"item id {text!r} must start with 64 lowercase hex digits")
    if not index.isascii() or not index.isdigit() or (len(index) > 1 and index[0] == "0"):
        raise ValueError(f"item id {text!r} must end with an index like .0 or .12")
    return OpId(bytes.fromhex(change), int(index))


def read_items(doc: Document) -> list[tuple[str, object]]:
    """Every live item as (id, raw map), in list order, ready for `project_items`."""
    sequence = doc.sequence(ITEMS_PATH, ObjKind.LIST)
    try:
        values = doc.get(ITEMS_PATH)
    except KeyError:
        return []
    # Something other than a list under "items" hides the list: nothing to read.
    if sequence is None or not isinstance(values, list):
        return []
    return [(item_key(element), raw) for element, raw in zip(sequence.ids(), values, strict=True)]
