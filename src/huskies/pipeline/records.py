"""Append-only records in the replicated document: a root list of JSON values, one per event
(a run's cost, a gate report), written once and never edited."""

from __future__ import annotations

from huskies.crdt import Document, Json, ObjKind, Transaction
from huskies.pipeline.jsonvalues import describe


def append_record(tx: Transaction, key: str, value: Json) -> None:
    """Add `value` to the list at root `key`. The list is made every time: concurrent makes of
    one key share a single list, and the builder cannot look at the document."""
    tx.make((), key, ObjKind.LIST)
    tx.insert((key,), 0, value)


def stored_records(doc: Document, key: str) -> tuple[list[Json], list[str]]:
    """The values at root `key`, newest first (each is inserted at the front), or a problem
    line if something other than a list is there."""
    try:
        values = doc.get((key,))
    except KeyError:
        return [], []
    if not isinstance(values, list):
        return [], [f"{key} must be an array, got {describe(values)}"]
    return values, []
