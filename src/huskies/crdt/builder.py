"""The typed builder for local edits: one transaction becomes one signed change.

Positions are visible indices as the caller sees the document, including the effect of earlier
ops in the same transaction. Elements the transaction itself inserts are named with the
"this change" id (`b""`) until it commits; `Transaction.resolve` turns them into real ids.
"""

from __future__ import annotations

from huskies.crdt.change import SignedChange
from huskies.crdt.document import Document
from huskies.crdt.encoding import EncodingError, Json, check_json
from huskies.crdt.identity import Signer
from huskies.crdt.ops import (
    THIS_CHANGE,
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
    Span,
    TextDelete,
    TextInsert,
    check_path,
    slots,
)
from huskies.crdt.sequence import Sequence

# (position, elements removed there, first slot of the elements inserted there, how many)
_Effect = tuple[int, int, int, int]


class Transaction:
    """Collects ops for one change. Nothing touches the document until `commit`.

    Every input is checked as it is given (paths, keys, JSON values, positions), with the same
    rules remote replicas apply when they decode the change.
    """

    def __init__(self, doc: Document) -> None:
        self._doc = doc
        self._ops: list[Op] = []
        self._next_slot = 0
        self._committed: bytes | None = None
        # Per sequence: effects of this transaction, replayed onto a copy of the visible ids
        # once a second op needs positions that account for the first.
        self._effects: dict[tuple[Path, ObjKind], list[_Effect]] = {}
        self._overlays: dict[tuple[Path, ObjKind], list[OpId]] = {}

    @property
    def ops(self) -> tuple[Op, ...]:
        return tuple(self._ops)

    def __len__(self) -> int:
        return len(self._ops)

    # ---- maps ----------------------------------------------------------------------------

    def set(self, path: Path, key: str, value: object) -> None:
        """Set `key` of the map at `path` to a JSON value."""
        check_path(path)
        self._add(MapSet(path, _key(key), _json(value, path, key)))

    def make(self, path: Path, key: str, kind: ObjKind) -> Path:
        """Make `key` of the map at `path` hold a container; returns the container's path."""
        check_path(path)
        self._add(MapMake(path, _key(key), ObjKind(kind)))
        return (*path, key)

    def delete(self, path: Path, key: str) -> None:
        """Delete `key` from the map at `path`."""
        check_path(path)
        self._add(MapDelete(path, _key(key)))

    # ---- lists ---------------------------------------------------------------------------

    def insert(self, path: Path, index: int, *values: object) -> OpId:
        """Insert JSON values at `index` of the list at `path`; returns the first one's id."""
        check_path(path)
        if not values:
            raise ValueError("insert needs at least one value")
        checked = tuple(_json(v, path, f"[{index}]") for v in values)
        target = (path, ObjKind.LIST)
        origin = self._origin(target, index)
        first = self._add(ListInsert(path, origin, checked))
        self._record(
            target,
            (index, 0, first.idx, len(values)),
        )
        return first

    def insert_container(self, path: Path, index: int, kind: ObjKind) -> OpId:
        """Insert a new container at `index` of the list at `path`; its path is `(*path, id)`."""
        check_path(path)
        target = (path, ObjKind.LIST)
        origin = self._origin(target, index)
        element = self._add(ListMake(path, origin, ObjKind(kind)))
        self._record(target, (index, 0, element.idx, 1))
        return element

    def replace(self, path: Path, index: int, value: object) -> None:
        """Replace the value at `index` of the list at `path`."""
        check_path(path)
        element = self._element_at((path, ObjKind.LIST), index)
        self._add(ListSet(path, element, _json(value, path, f"[{index}]")))

    def remove(self, path: Path, index: int, count: int = 1) -> None:
        """Remove `count` values from `index` of the list at `path`."""
        check_path(path)
        target = (path, ObjKind.LIST)
        self._add(ListDelete(path, self._spans(target, index, count)))
        self._record(target, (index, count, 0, 0))

    # ---- text ----------------------------------------------------------------------------

    def insert_text(self, path: Path, pos: int, text: str) -> None:
        """Insert `text` at character `pos` of the text at `path`."""
        check_path(path)
        if not isinstance(text, str):
            raise TypeError(f"text at {path!r} must be a str, got {type(text).__name__}")
        if not text:
            return
        target = (path, ObjKind.TEXT)
        origin = self._origin(target, pos)
        first = self._add(TextInsert(path, origin, text))
        self._record(target, (pos, 0, first.idx, len(text)))

    def delete_text(self, path: Path, pos: int, count: int) -> None:
        """Delete `count` characters from `pos` of the text at `path`."""
        check_path(path)
        if count == 0:
            return
        target = (path, ObjKind.TEXT)
        self._add(TextDelete(path, self._spans(target, pos, count)))
        self._record(target, (pos, count, 0, 0))

    # ---- committing ----------------------------------------------------------------------

    def commit(self, signer: Signer, time: int) -> SignedChange:
        """Sign and apply the transaction as one change (time: ms since the epoch)."""
        if self._committed is not None:
            raise RuntimeError("this transaction was already committed")
        signed = self._doc.commit(self._ops, signer, time, checked=True)
        self._committed = signed.id
        return signed

    def committed_as(self, change_id: bytes) -> None:
        """Record that a store committed this transaction's ops as change `change_id`, so
        `resolve` can name the elements it created."""
        if self._committed is not None:
            raise RuntimeError("this transaction was already committed")
        self._committed = change_id

    def resolve(self, op_id: OpId) -> OpId:
        """The real id of an element this transaction created (after commit)."""
        if op_id.change != THIS_CHANGE:
            return op_id
        if self._committed is None:
            raise RuntimeError("ids of new elements are known only after commit")
        return OpId(self._committed, op_id.idx)

    # ---- internals -----------------------------------------------------------------------

    def _add(self, op: Op) -> OpId:
        if self._committed is not None:
            raise RuntimeError("this transaction was already committed")
        op_id = OpId(THIS_CHANGE, self._next_slot)
        self._ops.append(op)
        self._next_slot += slots(op)
        return op_id

    def _record(self, target: tuple[Path, ObjKind], effect: _Effect) -> None:
        overlay = self._overlays.get(target)
        if overlay is not None:
            _replay(overlay, effect)
        else:
            self._effects.setdefault(target, []).append(effect)

    def _visible(self, target: tuple[Path, ObjKind]) -> list[OpId] | Sequence | None:
        """What positions in `target` refer to: the document's own sequence until this
        transaction edits it, then a list of the ids this transaction sees. None: empty."""
        overlay = self._overlays.get(target)
        if overlay is not None:
            return overlay
        effects = self._effects.pop(target, None)
        sequence = self._doc.sequence(*target)
        if effects is None:
            return sequence
        overlay = sequence.ids() if sequence is not None else []
        for effect in effects:
            _replay(overlay, effect)
        self._overlays[target] = overlay
        return overlay

    def _origin(self, target: tuple[Path, ObjKind], pos: int) -> OpId | None:
        """The element a new element at `pos` goes after (None: the start)."""
        visible = self._visible(target)
        length = _length(visible)
        if not 0 <= pos <= length:
            raise IndexError(f"position {pos} is outside 0..{length} at {target[0]!r}")
        if pos == 0:
            return None
        assert visible is not None
        return visible[pos - 1] if isinstance(visible, list) else visible.id_at(pos - 1)

    def _element_at(self, target: tuple[Path, ObjKind], pos: int) -> OpId:
        visible = self._visible(target)
        _check_range(target, _length(visible), pos, 1)
        assert visible is not None
        return visible[pos] if isinstance(visible, list) else visible.id_at(pos)

    def _spans(self, target: tuple[Path, ObjKind], pos: int, count: int) -> tuple[Span, ...]:
        visible = self._visible(target)
        _check_range(target, _length(visible), pos, count)
        assert visible is not None
        if isinstance(visible, Sequence):
            return tuple(visible.spans_at(pos, count))
        spans: list[Span] = []
        for element in visible[pos : pos + count]:
            last = spans[-1] if spans else None
            if last and last.change == element.change and last.start + last.length == element.idx:
                spans[-1] = Span(last.change, last.start, last.length + 1)
            else:
                spans.append(Span(element.change, element.idx, 1))
        return tuple(spans)


def _length(visible: list[OpId] | Sequence | None) -> int:
    if visible is None:
        return 0
    return len(visible) if isinstance(visible, list) else visible.live


def _check_range(target: tuple[Path, ObjKind], length: int, pos: int, count: int) -> None:
    if count < 1 or not 0 <= pos <= pos + count <= length:
        raise IndexError(
            f"range {pos}..{pos + count - 1} is outside 0..{length - 1} at {target[0]!r}"
        )


def _replay(overlay: list[OpId], effect: _Effect) -> None:
    pos, removed, first_slot, inserted = effect
    overlay[pos : pos + removed] = [OpId(THIS_CHANGE, first_slot + k) for k in range(inserted)]


def _key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"map keys are strings, got {type(key).__name__}")
    return key


def _json(value: object, path: Path, key: str) -> Json:
    try:
        return check_json(value, lambda: f"{'/'.join(map(str, path)) or 'root'}:{key}")
    except EncodingError as exc:
        raise ValueError(str(exc)) from None
