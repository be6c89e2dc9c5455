"""Operations: the edits inside a change, and their wire form.

Every op names its target by its full path from the document root. A path segment is a map key
(`str`) or a list element id (`OpId`). Because the ops are part of the change body, the path is
covered by the change id and so by the author's signature.

Op ids are `(change id, index)`. Indices count id slots within a change: each op takes one slot,
except inserts, which take one per inserted character or list value, so every element of a
sequence has its own id. Inside a change, an op that refers to something the same change created
uses the empty change id `b""` ("this change"), since a change cannot name its own hash.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple, TypeAlias

from huskies.crdt.encoding import EncodingError, Json, check_json

HASH_BYTES = 32
THIS_CHANGE = b""


class OpId(NamedTuple):
    """The id of an op or of a sequence element: the change that made it and its slot index."""

    change: bytes
    idx: int


PathSegment: TypeAlias = str | OpId
Path: TypeAlias = tuple[PathSegment, ...]


class ObjKind(IntEnum):
    """The kinds of container a map key or list element can hold."""

    MAP = 0
    LIST = 1
    TEXT = 2


class Span(NamedTuple):
    """Consecutive element ids `change/start … change/start+length-1` (used by deletes)."""

    change: bytes
    start: int
    length: int


class MapSet(NamedTuple):
    path: Path
    key: str
    value: Json


class MapMake(NamedTuple):
    path: Path
    key: str
    kind: ObjKind


class MapDelete(NamedTuple):
    path: Path
    key: str


class ListInsert(NamedTuple):
    path: Path
    origin: OpId | None
    values: tuple[Json, ...]


class ListMake(NamedTuple):
    path: Path
    origin: OpId | None
    kind: ObjKind


class ListSet(NamedTuple):
    path: Path
    element: OpId
    value: Json


class ListDelete(NamedTuple):
    path: Path
    spans: tuple[Span, ...]


class TextInsert(NamedTuple):
    path: Path
    origin: OpId | None
    text: str


class TextDelete(NamedTuple):
    path: Path
    spans: tuple[Span, ...]


Op: TypeAlias = (
    MapSet
    | MapMake
    | MapDelete
    | ListInsert
    | ListMake
    | ListSet
    | ListDelete
    | TextInsert
    | TextDelete
)

SEQUENCE_INSERTS = (TextInsert, ListInsert, ListMake)
SEQUENCE_DELETES = (TextDelete, ListDelete)
TEXT_OPS = (TextInsert, TextDelete)
# Ops on maps name no element: the common case, which hot loops test first, by exact type.
MAP_OPS = frozenset({MapSet, MapMake, MapDelete})

# Wire tags. They are part of the hashed encoding: never renumber.
TAGS: dict[type, int] = {
    MapSet: 0,
    MapMake: 1,
    MapDelete: 2,
    ListInsert: 3,
    ListMake: 4,
    ListSet: 5,
    ListDelete: 6,
    TextInsert: 7,
    TextDelete: 8,
}

MAX_PATH_DEPTH = 16


def slots(op: Op) -> int:
    """How many op-id slots `op` takes in its change."""
    if type(op) is TextInsert:
        return len(op.text)
    if type(op) is ListInsert:
        return len(op.values)
    return 1


def _wire_path(path: Path) -> list[object]:
    return [seg if type(seg) is str else [seg[0], seg[1]] for seg in path]


def _wire_id(op_id: OpId | None) -> list[object] | None:
    return None if op_id is None else [op_id.change, op_id.idx]


def to_wire(op: Op) -> list[object]:
    """The encodable form of an op, `[tag, field, …]`, built from builtin types only (cbor2
    encodes exact builtin types fastest and would treat our named tuples as subclasses)."""
    path = _wire_path(op.path)
    if isinstance(op, MapSet):  # the common case first
        return [0, path, op.key, op.value]
    if isinstance(op, TextInsert):
        return [7, path, _wire_id(op.origin), op.text]
    if isinstance(op, TextDelete | ListDelete):
        return [TAGS[type(op)], path, [[s.change, s.start, s.length] for s in op.spans]]
    if isinstance(op, MapMake):
        return [1, path, op.key, int(op.kind)]
    if isinstance(op, MapDelete):
        return [2, path, op.key]
    if isinstance(op, ListInsert):
        return [3, path, _wire_id(op.origin), list(op.values)]
    if isinstance(op, ListMake):
        return [4, path, _wire_id(op.origin), int(op.kind)]
    return [5, path, _wire_id(op.element), op.value]


class MalformedOp(ValueError):
    """An op from the wire that does not have the shape its tag requires."""


def check_path(path: Path) -> Path:
    """Return `path` if each segment is a map key or an element id, else raise MalformedOp."""
    if type(path) is not tuple or len(path) > MAX_PATH_DEPTH:
        raise MalformedOp(f"a path is a tuple of at most {MAX_PATH_DEPTH} segments")
    for segment in path:
        if type(segment) is not str and not (
            isinstance(segment, OpId)
            and type(segment.change) is bytes
            and len(segment.change) in (0, HASH_BYTES)
            and type(segment.idx) is int
            and segment.idx >= 0
        ):
            raise MalformedOp(f"path segment {segment!r} is neither a map key nor an element id")
    return path


def _path(raw: object) -> Path:
    if not isinstance(raw, list):
        raise MalformedOp("path must be an array")
    if len(raw) > MAX_PATH_DEPTH:
        raise MalformedOp(f"path is deeper than {MAX_PATH_DEPTH} segments")
    return tuple(seg if isinstance(seg, str) else _op_id(seg, "path segment") for seg in raw)


def _op_id(raw: object, what: str) -> OpId:
    if (
        isinstance(raw, list)
        and len(raw) == 2
        and isinstance(raw[0], bytes)
        and len(raw[0]) in (0, HASH_BYTES)
        and type(raw[1]) is int
        and raw[1] >= 0
    ):
        return OpId(raw[0], raw[1])
    raise MalformedOp(f"{what} must be [change id (32 bytes or empty), index ≥ 0]")


def _origin(raw: object) -> OpId | None:
    return None if raw is None else _op_id(raw, "origin")


def _key(raw: object) -> str:
    if not isinstance(raw, str):
        raise MalformedOp("map key must be a string")
    return raw


def _kind(raw: object) -> ObjKind:
    if type(raw) is not int or raw not in ObjKind._value2member_map_:
        raise MalformedOp(f"container kind must be one of {[k.value for k in ObjKind]}")
    return ObjKind(raw)


def _value(raw: object) -> Json:
    try:
        return check_json(raw, "value")
    except EncodingError as exc:
        raise MalformedOp(str(exc)) from None


def _spans(raw: object) -> tuple[Span, ...]:
    if not isinstance(raw, list) or not raw:
        raise MalformedOp("spans must be a non-empty array")
    spans = []
    for item in raw:
        if (
            isinstance(item, list)
            and len(item) == 3
            and isinstance(item[0], bytes)
            and len(item[0]) in (0, HASH_BYTES)
            and type(item[1]) is int
            and type(item[2]) is int
            and item[1] >= 0
            and item[2] >= 1
        ):
            spans.append(Span(item[0], item[1], item[2]))
        else:
            raise MalformedOp("span must be [change id, start ≥ 0, count ≥ 1]")
    return tuple(spans)


def _arity(raw: list[object], n: int, name: str) -> None:
    if len(raw) != n + 1:
        raise MalformedOp(f"{name} takes {n} fields, got {len(raw) - 1}")


def from_wire(raw: object) -> Op:
    """Build a typed op from its decoded wire form, or raise MalformedOp saying what is wrong."""
    if not isinstance(raw, list) or not raw or type(raw[0]) is not int:
        raise MalformedOp("op must be an array starting with an integer tag")
    tag = raw[0]
    if tag == 7:
        _arity(raw, 3, "TextInsert")
        if not isinstance(raw[3], str) or not raw[3]:
            raise MalformedOp("TextInsert text must be a non-empty string")
        return TextInsert(_path(raw[1]), _origin(raw[2]), raw[3])
    if tag == 8:
        _arity(raw, 2, "TextDelete")
        return TextDelete(_path(raw[1]), _spans(raw[2]))
    if tag == 0:
        _arity(raw, 3, "MapSet")
        return MapSet(_path(raw[1]), _key(raw[2]), _value(raw[3]))
    if tag == 1:
        _arity(raw, 3, "MapMake")
        return MapMake(_path(raw[1]), _key(raw[2]), _kind(raw[3]))
    if tag == 2:
        _arity(raw, 2, "MapDelete")
        return MapDelete(_path(raw[1]), _key(raw[2]))
    if tag == 3:
        _arity(raw, 3, "ListInsert")
        if not isinstance(raw[3], list) or not raw[3]:
            raise MalformedOp("ListInsert values must be a non-empty array")
        return ListInsert(_path(raw[1]), _origin(raw[2]), tuple(_value(v) for v in raw[3]))
    if tag == 4:
        _arity(raw, 3, "ListMake")
        return ListMake(_path(raw[1]), _origin(raw[2]), _kind(raw[3]))
    if tag == 5:
        _arity(raw, 3, "ListSet")
        return ListSet(_path(raw[1]), _op_id(raw[2], "element"), _value(raw[3]))
    if tag == 6:
        _arity(raw, 2, "ListDelete")
        return ListDelete(_path(raw[1]), _spans(raw[2]))
    raise MalformedOp(f"unknown op tag {tag}")
