"""The replicated document: a JSON tree of maps, lists, texts and registers, built from changes.

Containers are addressed by path. A map key holds a last-writer-wins register whose value is a JSON
value, a container of some kind, or a deletion. The container at a path is a single object per
kind: concurrent creations of the same map key as a map merge into one map instead of one
silently hiding the other. Ops may target a container before any replica has made it visible;
they are kept and appear when a make op wins the key.

Every conflict is decided by the key `(lamport, author, change id, op index)`, which never ties.

Causal delivery: a change applies once every change it names (its deps, plus any change whose
elements its ops refer to) and its author's previous seq are applied. Until then it waits in a
bounded pending set. Whether a change is valid depends only on its own bytes and those
dependencies, so every honest replica accepts or rejects it alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple, TypeAlias

from huskies.crdt.change import (
    Change,
    SignedChange,
    VerifiedChange,
    decode_signed,
    sign_change,
)
from huskies.crdt.clock import AuthorClock, AuthorLog
from huskies.crdt.encoding import Json, copy_json
from huskies.crdt.identity import Signer
from huskies.crdt.ops import (
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
    Span,
    TextDelete,
    TextInsert,
    slots,
)
from huskies.crdt.results import (
    INTRINSIC_REASONS,
    AlreadySeen,
    Applied,
    ApplyResult,
    Pending,
    Rejected,
    RejectReason,
)
from huskies.crdt.sequence import Sequence, Stamp

DEFAULT_MAX_PENDING = 10_000
REMEMBERED_REJECTIONS = 10_000

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


# An applied change, kept as a plain tuple (which the garbage collector stops tracking):
# (body, signature, stamp, apply order). The id is its key and the signer is stamp[1].
_Record: TypeAlias = tuple[bytes, bytes, Stamp, int]


def _signed(change_id: bytes, record: _Record) -> SignedChange:
    body, signature, stamp, _ = record
    return SignedChange(change_id, body, stamp[1], signature)


class _Held(NamedTuple):
    verified: VerifiedChange
    deps: frozenset[bytes]  # the deps it names plus the changes whose elements its ops use
    ops: tuple[Op, ...]  # its ops with "this change" replaced by its real id


_SEQUENCE_INSERTS = (TextInsert, ListInsert, ListMake)
_SEQUENCE_DELETES = (TextDelete, ListDelete)
_TEXT_OPS = (TextInsert, TextDelete)


class ChangeRefused(ValueError):
    """A local transaction produced a change this document refuses (for example, an op refers to
    an element id that does not exist). Nothing was applied."""

    def __init__(self, rejected: Rejected) -> None:
        super().__init__(str(rejected))
        self.rejected = rejected


def _own_path(path: Path, own: bytes) -> Path:
    for segment in path:
        if type(segment) is not str and not segment[0]:
            return tuple(
                OpId(own, seg.idx) if isinstance(seg, OpId) and not seg.change else seg
                for seg in path
            )
    return path


def _prepare(verified: VerifiedChange) -> _Held:
    """Collect a change's implicit dependencies and resolve its references to itself."""
    own = verified.id
    deps = set(verified.change.deps)
    ops: list[Op] = []
    for op in verified.change.ops:
        path = _own_path(op.path, own)
        if path is not op.path:
            op = op._replace(path=path)
        if isinstance(op, _SEQUENCE_INSERTS):
            origin = op.origin
            if origin is not None:
                if origin.change:
                    deps.add(origin.change)
                else:
                    op = op._replace(origin=OpId(own, origin.idx))
        elif isinstance(op, ListSet):
            if op.element.change:
                deps.add(op.element.change)
            else:
                op = op._replace(element=OpId(own, op.element.idx))
        elif isinstance(op, _SEQUENCE_DELETES):
            deps.update(span.change for span in op.spans if span.change)
            if not all(span.change for span in op.spans):
                spans = tuple(s if s.change else Span(own, s.start, s.length) for s in op.spans)
                op = op._replace(spans=spans)
        ops.append(op)
    return _Held(verified, frozenset(deps), tuple(ops))


class Document:
    """One replica of the document. Not thread-safe: the shell serialises access."""

    def __init__(self, *, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if max_pending < 0:
            raise ValueError("max_pending must be ≥ 0")
        self.max_pending = max_pending
        self._objects: dict[Target, ObjectState] = {(ROOT, ObjKind.MAP): {}}
        self._records: dict[bytes, _Record] = {}
        self._authors: dict[bytes, AuthorLog] = {}
        self._heads: set[bytes] = set()
        self._max_lamport = 0
        self._top_seq: dict[bytes, int] = {}  # highest seq seen per author, pending included
        self._pending: dict[bytes, _Held] = {}
        self._waiting_on_id: dict[bytes, list[bytes]] = {}
        self._waiting_on_seq: dict[tuple[bytes, int], list[bytes]] = {}
        self._rejected: dict[bytes, Rejected] = {}

    # ---- state ---------------------------------------------------------------------------

    @property
    def heads(self) -> frozenset[bytes]:
        return frozenset(self._heads)

    @property
    def max_lamport(self) -> int:
        return self._max_lamport

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def change_count(self) -> int:
        return len(self._records)

    def __contains__(self, change_id: object) -> bool:
        return change_id in self._records

    def get_change(self, change_id: bytes) -> SignedChange | None:
        record = self._records.get(change_id)
        return _signed(change_id, record) if record else None

    def pending_changes(self) -> list[SignedChange]:
        return [held.verified.signed for held in self._pending.values()]

    def next_seq(self, author: bytes) -> int:
        return self._top_seq.get(author, 0) + 1

    def clock(self) -> dict[bytes, AuthorClock]:
        """author → (highest contiguous seq applied, digest of that author's change ids)."""
        return {author: log.clock() for author, log in self._authors.items()}

    def changes_since(self, clock: Mapping[bytes, AuthorClock]) -> list[SignedChange]:
        """The applied changes a replica with `clock` lacks, in an order it can apply them."""
        wanted: list[bytes] = []
        for author, log in self._authors.items():
            theirs = clock.get(author)
            if theirs is None:
                wanted.extend(log.ids_after(0))
            elif theirs.seq <= log.seq and log.digest(theirs.seq) == theirs.digest:
                wanted.extend(log.ids_after(theirs.seq))
            elif theirs.seq <= log.seq:
                # Same count, different ids: the author equivocated, and we cannot tell which of
                # its changes they lack, so we send all of them up to their count (rare: only a
                # Byzantine author causes it, and the protocol can narrow it by exchanging ids).
                wanted.extend(log.ids_after(0))
            else:
                # They are ahead. If they lack one of ours, it is at a seq we hold several
                # changes for (else they would detect the difference from our clock).
                wanted.extend(log.fork_ids())
        records = self._records
        wanted.sort(key=lambda cid: records[cid][3])
        return [_signed(cid, records[cid]) for cid in wanted]

    # ---- applying changes ------------------------------------------------------------------

    def apply(self, signed: SignedChange) -> ApplyResult:
        """Verify and apply a change from anywhere."""
        known = self._known(signed.id)
        if known is not None:
            return known
        verified = decode_signed(signed)
        if isinstance(verified, Rejected):
            return verified
        return self._admit(verified)

    def apply_verified(self, verified: VerifiedChange) -> ApplyResult:
        """Apply a change already checked by `decode_signed` (for example on a worker thread)."""
        known = self._known(verified.id)
        if known is not None:
            return known
        return self._admit(verified)

    def _known(self, change_id: bytes) -> ApplyResult | None:
        if change_id in self._records:
            return AlreadySeen(change_id)
        held = self._pending.get(change_id)
        if held is not None:
            return self._pending_result(held)
        return self._rejected.get(change_id)

    def commit(self, ops: Iterable[Op], signer: Signer, time: int) -> SignedChange:
        """Make, sign and apply one local change holding `ops`.

        Raises ChangeRefused, with nothing applied, if the ops are not valid here.
        """
        author = signer.public_key
        change = Change(
            author,
            self.next_seq(author),
            self._max_lamport + 1,
            tuple(sorted(self._heads)),
            time,
            tuple(ops),
        )
        held = _prepare(sign_change(change, signer))
        missing = self._blocker(held)
        if missing is not None:
            raise ChangeRefused(
                Rejected(
                    RejectReason.BAD_REFERENCE,
                    f"an op refers to change {_describe(missing)}, which this replica has not "
                    "applied",
                    held.verified.id,
                )
            )
        result = self._apply_ready(held)
        if isinstance(result, Rejected):
            raise ChangeRefused(result)
        return held.verified.signed

    def _admit(self, verified: VerifiedChange) -> ApplyResult:
        held = _prepare(verified)
        for dep in held.deps:
            if dep in self._rejected:
                return self._reject(
                    verified.id,
                    RejectReason.DEPENDS_ON_REJECTED,
                    f"depends on rejected change {dep.hex()[:16]}…",
                )
        if self._blocker(held) is None:
            return self._apply_ready(held)
        if len(self._pending) >= self.max_pending:
            return Rejected(
                RejectReason.PENDING_FULL,
                f"{len(self._pending)} changes already wait for missing dependencies "
                f"(limit {self.max_pending}); send this change again once they arrive",
                verified.id,
            )
        self._hold(held)
        return self._pending_result(held)

    def _blocker(self, held: _Held) -> bytes | tuple[bytes, int] | None:
        """Something `held` still waits for: a missing change id or (author, previous seq)."""
        records = self._records
        for dep in held.deps:
            if dep not in records:
                return dep
        change = held.verified.change
        log = self._authors.get(change.author)
        applied_seq = log.seq if log else 0
        if change.seq > applied_seq + 1:
            return (change.author, change.seq - 1)
        return None

    def _hold(self, held: _Held) -> None:
        change = held.verified.change
        self._pending[held.verified.id] = held
        if change.seq > self._top_seq.get(change.author, 0):
            self._top_seq[change.author] = change.seq
        self._wait_for(held)

    def _wait_for(self, held: _Held) -> None:
        blocker = self._blocker(held)
        if isinstance(blocker, bytes):
            self._waiting_on_id.setdefault(blocker, []).append(held.verified.id)
        elif blocker is not None:
            self._waiting_on_seq.setdefault(blocker, []).append(held.verified.id)

    def _pending_result(self, held: _Held) -> Pending:
        change = held.verified.change
        log = self._authors.get(change.author)
        waits_for_seq = change.seq > (log.seq if log else 0) + 1
        return Pending(
            held.verified.id,
            frozenset(d for d in held.deps if d not in self._records),
            change.seq - 1 if waits_for_seq else None,
        )

    def _apply_ready(self, first: _Held) -> ApplyResult:
        """Apply `first`, then every held change that this releases."""
        outcome = self._integrate(first)
        if isinstance(outcome, Rejected):
            return outcome
        applied = [first.verified.id]
        released = self._release(first.verified.change.author, first.verified.change.seq, first)
        while released:
            held = self._pending.pop(released.pop())
            if self._blocker(held) is not None:
                self._pending[held.verified.id] = held
                self._wait_for(held)
                continue
            if isinstance(self._integrate(held), Rejected):
                continue
            applied.append(held.verified.id)
            released.extend(
                self._release(held.verified.change.author, held.verified.change.seq, held)
            )
        return Applied(tuple(applied))

    def _release(self, author: bytes, seq: int, held: _Held) -> list[bytes]:
        if not self._pending:
            return []
        waiting = self._waiting_on_id.pop(held.verified.id, [])
        waiting += self._waiting_on_seq.pop((author, seq), [])
        return [w for w in waiting if w in self._pending]

    def _reject(self, change_id: bytes, reason: RejectReason, detail: str) -> Rejected:
        """Refuse a change for a reason fixed by its content, and everything waiting on it."""
        rejected = Rejected(reason, detail, change_id)
        assert reason not in INTRINSIC_REASONS
        cascade = [rejected]
        while cascade:
            current = cascade.pop()
            self._remember(current)
            for waiter in self._waiting_on_id.pop(current.id, []):
                if self._pending.pop(waiter, None) is not None:
                    cascade.append(
                        Rejected(
                            RejectReason.DEPENDS_ON_REJECTED,
                            f"depends on rejected change {current.id.hex()[:16]}…",
                            waiter,
                        )
                    )
        return rejected

    def _remember(self, rejected: Rejected) -> None:
        if len(self._rejected) >= REMEMBERED_REJECTIONS:
            del self._rejected[next(iter(self._rejected))]
        self._rejected[rejected.id] = rejected

    def _integrate(self, held: _Held) -> Rejected | None:
        """Check a change whose dependencies are all applied, and apply it."""
        verified = held.verified
        change, cid = verified.change, verified.id
        records = self._records
        # The lamport is fixed by the deps, so a Byzantine author can neither jump ahead to win
        # every conflict nor push honest clocks towards overflow.
        highest = max([records[d][2][0] for d in held.deps], default=0)
        if change.lamport != highest + 1:
            return self._reject(
                cid,
                RejectReason.BAD_LAMPORT,
                f"lamport {change.lamport} must be one more than its dependencies' highest "
                f"({highest})",
            )
        ops = held.ops
        problem = self._check_references(ops, cid)
        if problem:
            return self._reject(cid, RejectReason.BAD_REFERENCE, problem)
        stamp: Stamp = (change.lamport, change.author, cid)
        index = 0
        for op in ops:
            index += self._apply_op(op, stamp, index)
        self._pending.pop(cid, None)
        signed = verified.signed
        records[cid] = (signed.body, signed.signature, stamp, len(records))
        log = self._authors.get(change.author)
        if log is None:
            log = self._authors[change.author] = AuthorLog()
        log.add(change.seq, cid)
        self._heads.difference_update(change.deps)
        self._heads.add(cid)
        if change.lamport > self._max_lamport:
            self._max_lamport = change.lamport
        if change.seq > self._top_seq.get(change.author, 0):
            self._top_seq[change.author] = change.seq
        return None

    def _check_references(self, ops: tuple[Op, ...], own: bytes) -> str | None:
        """Why some op refers to an element that is not in its target, or None if all are."""
        created: dict[Target, list[tuple[int, int]]] = {}  # id ranges this change inserts
        index = 0
        for number, op in enumerate(ops):
            width = slots(op)
            refs: tuple[tuple[bytes, int, int], ...] = ()
            if isinstance(op, _SEQUENCE_INSERTS):
                if op.origin is not None:
                    refs = ((op.origin.change, op.origin.idx, 1),)
            elif isinstance(op, ListSet):
                refs = ((op.element.change, op.element.idx, 1),)
            elif isinstance(op, _SEQUENCE_DELETES):
                refs = op.spans
            else:
                index += width
                continue
            kind = ObjKind.TEXT if isinstance(op, _TEXT_OPS) else ObjKind.LIST
            target = (op.path, kind)
            for change, start, count in refs:
                if change == own:
                    found = _covered(created.get(target, []), start, start + count)
                else:
                    obj = self._objects.get(target)
                    sequence = obj.sequence if isinstance(obj, ListState) else obj
                    found = isinstance(sequence, Sequence) and sequence.has_span(
                        change, start, count
                    )
                if not found:
                    extra = f" (+{count - 1})" if count > 1 else ""
                    return (
                        f"op {number} refers to element {change.hex()[:16]}…/{start}{extra}, "
                        f"which is not in the {kind.name.lower()} at {_format_path(op.path)}"
                    )
            if isinstance(op, _SEQUENCE_INSERTS):
                created.setdefault(target, []).append((index, index + width))
            index += width
        return None

    def _apply_op(self, op: Op, stamp: Stamp, index: int) -> int:
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

    # ---- containers ------------------------------------------------------------------------

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
            if value is not DELETED and not isinstance(value, _Deleted)
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


def _describe(blocker: bytes | tuple[bytes, int]) -> str:
    if isinstance(blocker, bytes):
        return f"{blocker.hex()[:16]}…"
    return f"seq {blocker[1]} of author {blocker[0].hex()[:16]}…"


def _format_path(path: Path) -> str:
    if not path:
        return "the root"
    return "/".join(
        seg if isinstance(seg, str) else f"{seg.change.hex()[:8]}…/{seg.idx}" for seg in path
    )
