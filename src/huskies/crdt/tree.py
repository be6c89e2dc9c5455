"""The document's JSON tree: maps, lists and texts addressed by path, and how ops change them.

A map key holds a last-writer-wins register whose value is a JSON value, a container of some
kind, or a deletion. The container at a path is a single object per kind: concurrent creations of
the same map key as a map merge into one map instead of one silently hiding the other. Ops may
target a container before any replica has made it visible; they are kept and appear when a make
op wins the key. Every conflict is decided by `(lamport, author, change id, op index)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TypeAlias

from huskies.crdt.encoding import Json, copy_json
from huskies.crdt.ops import (
    MAP_OPS,
    SEQUENCE_DELETES,
    SEQUENCE_INSERTS,
    TEXT_OPS,
    ListDelete,
    ListInsert,
    ListMake,
    ListSet,
    MapDelete,
    MapMake,
    MapSet,
    ObjKind,
    Op,
    OpId,
    Path,
    PathSegment,
    TextDelete,
    TextInsert,
    slots,
)
from huskies.crdt.sequence import Sequence, Stamp

# (lamport, author, change id, op index): the total order every conflict is decided by.
OpKey = tuple[int, bytes, bytes, int]


@dataclass(frozen=True, slots=True)
class Container:
    """Register value meaning "this key or element holds a container of this kind"."""

    kind: ObjKind


class _Deleted(Enum):
    DELETED = "deleted"


DELETED = _Deleted.DELETED

Slot: TypeAlias = tuple[OpKey, Json | Container | _Deleted]
MapState: TypeAlias = dict[str, Slot]


class ListState:
    __slots__ = ("sequence", "values")

    def __init__(self) -> None:
        self.sequence = Sequence()
        self.values: dict[OpId, Slot] = {}


Target: TypeAlias = tuple[Path, ObjKind]
ObjectState: TypeAlias = MapState | ListState | Sequence
ROOT: Path = ()


class Tree:
    """The containers of one replica. Ops reach it only after their change is validated."""

    def __init__(self, objects: dict[Target, ObjectState] | None = None) -> None:
        self._objects: dict[Target, ObjectState] = objects or {(ROOT, ObjKind.MAP): {}}

    def objects(self) -> Iterator[tuple[Target, ObjectState]]:
        """Every container state, keyed by (path, kind) (for snapshots)."""
        yield from self._objects.items()

    def check_references(self, ops: tuple[Op, ...], own: bytes) -> str | None:
        """Why some op refers to an element that is not in its target, or None if all are."""
        created: dict[Target, list[tuple[int, int]]] = {}  # id ranges this change inserts
        index = 0
        for number, op in enumerate(ops):
            if type(op) in MAP_OPS:
                index += 1
                continue
            width = slots(op)
            refs: tuple[tuple[bytes, int, int], ...] = ()
            if isinstance(op, SEQUENCE_INSERTS):
                if op.origin is not None:
                    refs = ((op.origin.change, op.origin.idx, 1),)
            elif isinstance(op, ListSet):
                refs = ((op.element.change, op.element.idx, 1),)
            elif isinstance(op, SEQUENCE_DELETES):
                refs = op.spans
            else:
                index += width
                continue
            kind = ObjKind.TEXT if isinstance(op, TEXT_OPS) else ObjKind.LIST
            target = (op.path, kind)
            for change, start, count in refs:
                if change == own:
                    found = _covered(created.get(target, []), start, start + count)
                else:
                    obj = self._objects.get(target)
                    sequence = obj.sequence if type(obj) is ListState else obj
                    found = type(sequence) is Sequence and sequence.has_span(change, start, count)
                if not found:
                    extra = f" (+{count - 1})" if count > 1 else ""
                    return (
                        f"op {number} refers to element {change.hex()[:16]}…/{start}{extra}, "
                        f"which is not in the {kind.name.lower()} at {_format_path(op.path)}"
                    )
            if isinstance(op, SEQUENCE_INSERTS):
                created.setdefault(target, []).append((index, index + width))
            index += width
        return None

    def apply(self, op: Op, stamp: Stamp, index: int) -> int:
        """Apply one op; returns how many op-id slots it used."""
        lamport, author, cid = stamp
        if type(op) is TextInsert:
            self._sequence(op.path).insert(op.origin, stamp, index, len(op.text), op.text)
            return len(op.text)
        if type(op) is TextDelete:
            sequence = self._sequence(op.path)
            for span in op.spans:
                sequence.delete(span)
            return 1
        if type(op) is MapSet or type(op) is MapMake or type(op) is MapDelete:
            state = self._map(op.path)
            key: OpKey = (lamport, author, cid, index)
            current = state.get(op.key)
            if current is None or key > current[0]:
                if type(op) is MapSet:
                    state[op.key] = (key, op.value)
                elif type(op) is MapMake:
                    state[op.key] = (key, Container(op.kind))
                else:
                    state[op.key] = (key, DELETED)
            return 1
        lst = self._list(op.path)
        if type(op) is ListInsert:
            lst.sequence.insert(op.origin, stamp, index, len(op.values), "")
            for offset, value in enumerate(op.values):
                lst.values[OpId(cid, index + offset)] = (
                    (lamport, author, cid, index + offset),
                    value,
                )
            return len(op.values)
        if type(op) is ListMake:
            lst.sequence.insert(op.origin, stamp, index, 1, "")
            lst.values[OpId(cid, index)] = ((lamport, author, cid, index), Container(op.kind))
            return 1
        if type(op) is ListSet:
            key = (lamport, author, cid, index)
            if key > lst.values[op.element][0]:
                lst.values[op.element] = (key, op.value)
            return 1
        assert type(op) is ListDelete
        for span in op.spans:
            lst.sequence.delete(span)
        return 1

    def _map(self, path: Path) -> MapState:
        state = self._objects.get((path, ObjKind.MAP))
        if state is None:
            state = self._objects[(path, ObjKind.MAP)] = {}
        assert isinstance(state, dict)
        return state

    def _list(self, path: Path) -> ListState:
        state = self._objects.get((path, ObjKind.LIST))
        if state is None:
            state = self._objects[(path, ObjKind.LIST)] = ListState()
        assert isinstance(state, ListState)
        return state

    def _sequence(self, path: Path) -> Sequence:
        state = self._objects.get((path, ObjKind.TEXT))
        if state is None:
            state = self._objects[(path, ObjKind.TEXT)] = Sequence()
        assert isinstance(state, Sequence)
        return state

    def sequence(self, path: Path, kind: ObjKind) -> Sequence | None:
        """The element order of the list or text at `path` (None if nothing was ever put there)."""
        obj = self._objects.get((path, kind))
        if isinstance(obj, ListState):
            return obj.sequence
        return obj if isinstance(obj, Sequence) else None

    # ---- views -------------------------------------------------------------------------------

    def view(self) -> dict[str, Json]:
        """The whole document as plain Python values (a fresh copy)."""
        return self._view_map(ROOT)

    def get(self, path: Path) -> Json:
        """The plain value at `path`; raises KeyError if nothing visible is there."""
        value: Json | Container = Container(ObjKind.MAP)
        parent: Path = ()
        for depth, segment in enumerate(path):
            if not isinstance(value, Container):
                raise KeyError(path[: depth + 1])
            value = self._child(parent, value.kind, segment)
            parent = path[: depth + 1]
        if isinstance(value, Container):
            return self._render(parent, value)
        return copy_json(value)

    def _child(self, path: Path, kind: ObjKind, segment: PathSegment) -> Json | Container:
        obj = self._objects.get((path, kind))
        slot: Slot | None = None
        if kind is ObjKind.MAP and isinstance(segment, str) and isinstance(obj, dict):
            slot = obj.get(segment)
        elif (
            kind is ObjKind.LIST
            and isinstance(segment, OpId)
            and isinstance(obj, ListState)
            and obj.sequence.is_visible(segment)
        ):
            slot = obj.values.get(segment)
        if slot is None or slot[1] is DELETED:
            raise KeyError((*path, segment))
        value = slot[1]
        assert not isinstance(value, _Deleted)
        return value

    def _render(self, path: Path, container: Container) -> Json:
        if container.kind is ObjKind.MAP:
            return self._view_map(path)
        if container.kind is ObjKind.LIST:
            return self._view_list(path)
        text = self._objects.get((path, ObjKind.TEXT))
        return text.text() if isinstance(text, Sequence) else ""

    def _view_value(self, path: Path, value: Json | Container) -> Json:
        if isinstance(value, Container):
            return self._render(path, value)
        return copy_json(value)

    def _view_map(self, path: Path) -> dict[str, Json]:
        state = self._objects.get((path, ObjKind.MAP))
        if not isinstance(state, dict):
            return {}
        return {
            key: self._view_value((*path, key), value)
            for key, (_, value) in sorted(state.items())
            if not isinstance(value, _Deleted)
        }

    def _view_list(self, path: Path) -> list[Json]:
        state = self._objects.get((path, ObjKind.LIST))
        if not isinstance(state, ListState):
            return []
        out: list[Json] = []
        for element in state.sequence.ids():
            value = state.values[element][1]
            assert not isinstance(value, _Deleted)
            out.append(self._view_value((*path, element), value))
        return out


def _covered(ranges: list[tuple[int, int]], start: int, end: int) -> bool:
    """True if the half-open ranges together cover [start, end)."""
    for lo, hi in sorted(ranges):
        if lo <= start < hi:
            start = hi
    return start >= end


def _format_path(path: Path) -> str:
    if not path:
        return "the root"
    return "/".join(
        seg if isinstance(seg, str) else f"{seg.change.hex()[:8]}…/{seg.idx}" for seg in path
    )
