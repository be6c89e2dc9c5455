"""Snapshots of the document tree, so a replica can start without replaying its whole log.

A snapshot holds the tree's containers (register slots, sequence runs with their tombstones) and
the heads. Changes are named by an index into a table of change ids at the front, because the
same few ids recur in every stamp. Lamports and authors are not stored: they come back from the
change log, which the snapshot never replaces, so a snapshot cannot contradict the log it covers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cbor2

from huskies.crdt.ops import ObjKind, OpId, Path
from huskies.crdt.sequence import Run, Sequence, Stamp
from huskies.crdt.tree import DELETED, Container, ListState, ObjectState, Slot, Target, Tree

FORMAT = 1

_JSON, _CONTAINER, _DELETED = 0, 1, 2


class SnapshotError(ValueError):
    """A snapshot that cannot be restored (damaged, or from another format)."""


def encode_snapshot(tree: Tree, heads: frozenset[bytes], count: int) -> bytes:
    """The bytes of a snapshot of `tree` after `count` applied changes."""
    ids: list[bytes] = []
    index: dict[bytes, int] = {}

    def ref(change: bytes) -> int:
        at = index.get(change)
        if at is None:
            at = index[change] = len(ids)
            ids.append(change)
        return at

    objects = [
        [_encode_path(path, ref), kind.value, _encode_state(state, ref)]
        for (path, kind), state in tree.objects()
    ]
    return cbor2.dumps(
        {"format": FORMAT, "count": count, "heads": sorted(heads), "ids": ids, "objects": objects}
    )


def decode_snapshot(
    data: bytes, stamp_of: Callable[[bytes], Stamp]
) -> tuple[Tree, frozenset[bytes], int]:
    """(tree, heads, count) from snapshot bytes; `stamp_of` maps a change id to its stamp.

    Raises SnapshotError if the bytes are damaged or name a change `stamp_of` does not know.
    """
    try:
        raw = cbor2.loads(data)
        if raw["format"] != FORMAT:
            raise SnapshotError(f"snapshot format {raw['format']}, expected {FORMAT}")
        stamps = [stamp_of(change) for change in raw["ids"]]
        objects: dict[Target, ObjectState] = {}
        for path, kind_value, state in raw["objects"]:
            kind = ObjKind(kind_value)
            objects[(_decode_path(path, stamps), kind)] = _decode_state(kind, state, stamps)
        return Tree(objects), frozenset(raw["heads"]), int(raw["count"])
    except SnapshotError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, cbor2.CBORDecodeError) as exc:
        raise SnapshotError(f"damaged snapshot: {type(exc).__name__}: {exc}") from None


def _encode_path(path: Path, ref: Callable[[bytes], int]) -> list[Any]:
    return [seg if isinstance(seg, str) else [ref(seg.change), seg.idx] for seg in path]


def _decode_path(raw: list[Any], stamps: list[Stamp]) -> Path:
    return tuple(
        seg if isinstance(seg, str) else OpId(stamps[seg[0]][2], int(seg[1])) for seg in raw
    )


def _encode_slot(slot: Slot, ref: Callable[[bytes], int]) -> list[Any]:
    (_, _, change, index), value = slot
    if isinstance(value, Container):
        return [ref(change), index, _CONTAINER, value.kind.value]
    if value is DELETED:
        return [ref(change), index, _DELETED, None]
    return [ref(change), index, _JSON, value]


def _decode_slot(raw: list[Any], stamps: list[Stamp]) -> Slot:
    at, index, tag, value = raw
    lamport, author, change = stamps[at]
    key = (lamport, author, change, int(index))
    if tag == _CONTAINER:
        return key, Container(ObjKind(value))
    if tag == _DELETED:
        return key, DELETED
    if tag != _JSON:
        raise SnapshotError(f"unknown slot tag {tag!r}")
    return key, value


def _encode_runs(sequence: Sequence, ref: Callable[[bytes], int]) -> list[Any]:
    return [
        [ref(stamp[2]), start, length, text, alive]
        for stamp, start, length, text, alive in sequence.runs()
    ]


def _decode_runs(raw: list[Any], stamps: list[Stamp]) -> Sequence:
    runs: list[Run] = [
        (stamps[at], int(start), int(length), str(text), bool(alive))
        for at, start, length, text, alive in raw
    ]
    return Sequence.from_runs(runs)


def _encode_state(state: ObjectState, ref: Callable[[bytes], int]) -> Any:
    if isinstance(state, dict):
        return [[key, *_encode_slot(slot, ref)] for key, slot in state.items()]
    if isinstance(state, ListState):
        values = [
            [ref(element.change), element.idx, *_encode_slot(slot, ref)]
            for element, slot in state.values.items()
        ]
        return [_encode_runs(state.sequence, ref), values]
    return _encode_runs(state, ref)


def _decode_state(kind: ObjKind, raw: Any, stamps: list[Stamp]) -> ObjectState:
    if kind is ObjKind.MAP:
        return {str(entry[0]): _decode_slot(entry[1:], stamps) for entry in raw}
    if kind is ObjKind.LIST:
        runs, values = raw
        state = ListState()
        state.sequence = _decode_runs(runs, stamps)
        for entry in values:
            element = OpId(stamps[entry[0]][2], int(entry[1]))
            state.values[element] = _decode_slot(entry[2:], stamps)
        return state
    return _decode_runs(raw, stamps)
