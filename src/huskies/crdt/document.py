"""The replicated document: one replica's changes, causal delivery, clocks, and its JSON tree.

Causal delivery: a change applies once every change it names (its deps, plus any change whose
elements its ops refer to) and its author's previous seq are applied. Until then it waits in a
bounded pending set. Whether a change is valid depends only on its own bytes and those
dependencies, so every honest replica accepts or rejects it alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import NamedTuple, TypeAlias

from huskies.crdt.change import (
    Change,
    EncodedChange,
    SignedChange,
    VerifiedChange,
    decode_signed,
    encode_for_signing,
)
from huskies.crdt.clock import AuthorClock, AuthorLog
from huskies.crdt.encoding import Json
from huskies.crdt.identity import Signer
from huskies.crdt.ops import (
    MAP_OPS,
    SEQUENCE_DELETES,
    SEQUENCE_INSERTS,
    ListSet,
    MalformedOp,
    ObjKind,
    Op,
    OpId,
    Path,
    Span,
    from_wire,
    to_wire,
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
from huskies.crdt.snapshot import SnapshotError, decode_snapshot, encode_snapshot
from huskies.crdt.tree import Tree

DEFAULT_MAX_PENDING = 10_000
REMEMBERED_REJECTIONS = 10_000

# An applied change, kept as a plain tuple (which the garbage collector stops tracking):
# (body, signature, stamp, apply order). The id is its key and the signer is stamp[1].
_Record: TypeAlias = tuple[bytes, bytes, Stamp, int]


def _signed(change_id: bytes, record: _Record) -> SignedChange:
    body, signature, stamp, _ = record
    return SignedChange(change_id, body, stamp[1], signature)


class Outcome(Enum):
    """What `Document.preview` expects applying a change to do."""

    APPLY = "apply"
    HOLD = "hold"
    SEEN = "seen"


class StoredChange(NamedTuple):
    """An applied change as a store keeps it: enough to rebuild the document's records
    without decoding or verifying the body again."""

    id: bytes
    body: bytes
    signature: bytes
    author: bytes
    seq: int
    lamport: int


# (sorted deps: the ones a change names plus the changes its ops' elements are in; its ops with
# "this change" replaced by its real id)
_Resolved: TypeAlias = tuple[tuple[bytes, ...], tuple[Op, ...]]
RESOLVED_CACHE = 4096


class _Held(NamedTuple):
    verified: VerifiedChange
    deps: tuple[bytes, ...]  # sorted: the deps it names plus the changes its ops' elements are in
    ops: tuple[Op, ...]  # its ops with "this change" replaced by its real id


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


def _resolve(own: bytes, change: Change) -> _Resolved:
    """Collect a change's implicit dependencies and resolve its references to itself."""
    deps = set(change.deps)
    ops: list[Op] = []
    for op in change.ops:
        path = _own_path(op.path, own)
        if path is not op.path:
            op = op._replace(path=path)
        if type(op) in MAP_OPS:
            pass
        elif isinstance(op, SEQUENCE_INSERTS):
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
        elif isinstance(op, SEQUENCE_DELETES):
            deps.update(span.change for span in op.spans if span.change)
            if not all(span.change for span in op.spans):
                spans = tuple(s if s.change else Span(own, s.start, s.length) for s in op.spans)
                op = op._replace(spans=spans)
        ops.append(op)
    return tuple(sorted(deps)), tuple(ops)


class Document:
    """One replica of the document. Not thread-safe: the shell serialises access."""

    def __init__(self, *, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if max_pending < 0:
            raise ValueError("max_pending must be ≥ 0")
        self.max_pending = max_pending
        self._tree = Tree()
        self._records: dict[bytes, _Record] = {}
        self._authors: dict[bytes, AuthorLog] = {}
        self._heads: set[bytes] = set()
        self._max_lamport = 0
        self._top_seq: dict[bytes, int] = {}  # highest seq seen per author, pending included
        self._pending: dict[bytes, _Held] = {}
        self._waiting_on_id: dict[bytes, list[bytes]] = {}
        self._waiting_on_seq: dict[tuple[bytes, int], list[bytes]] = {}
        self._rejected: dict[bytes, Rejected] = {}
        self._resolved: dict[bytes, _Resolved] = {}
        self._references_checked: set[bytes] = set()  # local changes prepare_local checked

    @classmethod
    def restore(
        cls,
        snapshot: bytes,
        changes: Iterable[StoredChange],
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> Document:
        """The document a snapshot was taken of, given the changes it covers in apply order.

        Raises SnapshotError if the snapshot is damaged or does not match `changes`.
        """
        doc = cls(max_pending=max_pending)
        records, authors, top_seq = doc._records, doc._authors, doc._top_seq
        for change in changes:
            stamp = (change.lamport, change.author, change.id)
            records[change.id] = (change.body, change.signature, stamp, len(records))
            log = authors.get(change.author)
            if log is None:
                log = authors[change.author] = AuthorLog()
            try:
                log.add(change.seq, change.id)
            except ValueError as exc:
                raise SnapshotError(f"change log out of order: {exc}") from None
            if change.seq > top_seq.get(change.author, 0):
                top_seq[change.author] = change.seq
            if change.lamport > doc._max_lamport:
                doc._max_lamport = change.lamport

        def stamp_of(change_id: bytes) -> Stamp:
            record = records.get(change_id)
            if record is None:
                raise SnapshotError(
                    f"snapshot names change {change_id.hex()[:16]}…, not in the log"
                )
            return record[2]

        tree, heads, count = decode_snapshot(snapshot, stamp_of)
        if count != len(records):
            raise SnapshotError(f"snapshot covers {count} changes, the log gave {len(records)}")
        for head in heads:
            stamp_of(head)
        doc._tree = tree
        doc._heads = set(heads)
        return doc

    def snapshot(self) -> bytes:
        """The tree and heads as bytes for `restore` (pending changes are not included)."""
        return encode_snapshot(self._tree, self.heads, len(self._records))

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

    def is_pending(self, change_id: bytes) -> bool:
        return change_id in self._pending

    def signed(self, change_id: bytes) -> SignedChange | None:
        """An applied change as it was signed (None if it is not applied here)."""
        record = self._records.get(change_id)
        return None if record is None else _signed(change_id, record)

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

    def commit(
        self, ops: Iterable[Op], signer: Signer, time: int, *, checked: bool = False
    ) -> SignedChange:
        """Make, sign and apply one local change holding `ops`.

        Raises ChangeRefused, with nothing applied, if the ops are not valid here.
        """
        encoded, resolved = self._make_local(ops, signer.public_key, time, checked, None)
        verified = encoded.sign(signer)
        result = self._apply_ready(_Held(verified, *resolved), references_checked=True)
        if isinstance(result, Rejected):
            raise ChangeRefused(result)
        return verified.signed

    def prepare_local(
        self,
        ops: Iterable[Op],
        author: bytes,
        time: int,
        *,
        checked: bool = False,
        after: EncodedChange | VerifiedChange | None = None,
    ) -> EncodedChange:
        """Make a local change holding `ops`, encoded and hashed, ready to sign; apply nothing.

        `after` is an earlier local change of the same author that is not applied yet (a store
        writing several changes in one commit): the new change follows it directly. Unless
        `checked` (the Transaction builder validates ops as it makes them), each op first goes
        through the check remote replicas make, so a local change is never one they refuse.
        Raises ChangeRefused if an op is malformed or refers to an element not applied here.
        """
        encoded, resolved = self._make_local(ops, author, time, checked, after)
        if len(self._resolved) >= RESOLVED_CACHE:
            self._resolved.clear()
            self._references_checked.clear()
        self._resolved[encoded.id] = resolved
        self._references_checked.add(encoded.id)
        return encoded

    def _make_local(
        self,
        ops: Iterable[Op],
        author: bytes,
        time: int,
        checked: bool,
        after: EncodedChange | VerifiedChange | None,
    ) -> tuple[EncodedChange, _Resolved]:
        try:
            valid = tuple(ops) if checked else tuple(from_wire(to_wire(op)) for op in ops)
        except (MalformedOp, TypeError, ValueError) as exc:
            raise ChangeRefused(Rejected(RejectReason.MALFORMED_OP, str(exc))) from None
        if after is None:
            change = Change(
                author,
                self.next_seq(author),
                self._max_lamport + 1,
                tuple(sorted(self._heads)),
                time,
                valid,
            )
        elif after.change.author != author:
            raise ValueError("`after` must be a change by the same author")
        else:
            previous = after.change
            change = Change(
                author, previous.seq + 1, previous.lamport + 1, (after.id,), time, valid
            )
        encoded = encode_for_signing(change)
        deps, resolved_ops = _resolve(encoded.id, change)
        staged = after.id if after is not None else None
        records = self._records
        missing = None
        for dep in deps:
            if dep not in records and dep != staged:
                missing = dep
                break
        if missing is not None:
            raise ChangeRefused(
                Rejected(
                    RejectReason.BAD_REFERENCE,
                    f"an op refers to change {_describe(missing)}, which this replica has not "
                    "applied",
                    encoded.id,
                )
            )
        log = self._authors.get(author)
        if after is None and change.seq > (log.seq if log else 0) + 1:
            # A change of ours from elsewhere (a restored backup, say) waits in pending.
            raise ChangeRefused(
                Rejected(
                    RejectReason.BAD_REFERENCE,
                    f"seq {change.seq - 1} of this author is not applied here",
                    encoded.id,
                )
            )
        problem = self._tree.check_references(resolved_ops, encoded.id)
        if problem:
            raise ChangeRefused(Rejected(RejectReason.BAD_REFERENCE, problem, encoded.id))
        return encoded, (deps, resolved_ops)

    def _resolution(self, change_id: bytes, change: Change) -> _Resolved:
        """A change's resolved deps and ops, computed once however often it is looked at
        (a store previews, then applies, what it just prepared)."""
        resolved = self._resolved.get(change_id)
        if resolved is None:
            if len(self._resolved) >= RESOLVED_CACHE:
                self._resolved.clear()
            resolved = self._resolved[change_id] = _resolve(change_id, change)
        return resolved

    def _held(self, verified: VerifiedChange) -> _Held:
        resolved = self._resolved.pop(verified.id, None)
        if resolved is None:
            resolved = _resolve(verified.id, verified.change)
        return _Held(verified, *resolved)

    def preview(self, changes: Iterable[VerifiedChange]) -> list[Outcome | Rejected]:
        """What applying `changes` in order would do, without changing anything.

        APPLY: every dependency is applied (or is an earlier APPLY in `changes`), so it applies
        now, unless a check that needs the tree refuses it. HOLD: it will wait in the pending
        set, unless an earlier change of `changes` releases what it waits for. SEEN: known
        already. A store uses this to write each change where it belongs in the
        same commit that precedes applying them.
        """
        staged: set[bytes] = set()  # the APPLYs so far
        held_here: set[bytes] = set()  # the HOLDs so far
        staged_seq: dict[bytes, int] = {}
        held_count = len(self._pending)
        out: list[Outcome | Rejected] = []
        for verified in changes:
            cid = verified.id
            known = self._known(cid)
            if known is not None and not isinstance(known, Rejected):
                out.append(Outcome.SEEN)
                continue
            if known is not None:
                out.append(known)
                continue
            if cid in staged or cid in held_here:
                out.append(Outcome.SEEN)
                continue
            deps, _ = self._resolution(cid, verified.change)
            refused = next((d for d in deps if d in self._rejected), None)
            if refused is not None:
                out.append(
                    Rejected(
                        RejectReason.DEPENDS_ON_REJECTED,
                        f"depends on rejected change {refused.hex()[:16]}…",
                        cid,
                    )
                )
                continue
            change = verified.change
            log = self._authors.get(change.author)
            applied_seq = staged_seq.get(change.author, log.seq if log else 0)
            ready = change.seq <= applied_seq + 1 and all(
                d in self._records or d in staged for d in deps
            )
            if ready:
                staged.add(cid)
                if change.seq == applied_seq + 1:
                    staged_seq[change.author] = change.seq
                out.append(Outcome.APPLY)
            elif held_count >= self.max_pending:
                out.append(
                    Rejected(
                        RejectReason.PENDING_FULL,
                        f"{held_count} changes already wait for missing dependencies "
                        f"(limit {self.max_pending}); send this change again once they arrive",
                        cid,
                    )
                )
            else:
                held_count += 1
                held_here.add(cid)
                out.append(Outcome.HOLD)
        return out

    def _admit(self, verified: VerifiedChange) -> ApplyResult:
        held = self._held(verified)
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
            if blocker in self._rejected:
                # Refused while this change waited for something else: it can never apply.
                self._pending.pop(held.verified.id, None)
                self._reject(
                    held.verified.id,
                    RejectReason.DEPENDS_ON_REJECTED,
                    f"depends on rejected change {blocker.hex()[:16]}…",
                )
                return
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

    def _apply_ready(self, first: _Held, *, references_checked: bool = False) -> ApplyResult:
        """Apply `first`, then every held change that this releases."""
        outcome = self._integrate(first, references_checked=references_checked)
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

    def _integrate(self, held: _Held, *, references_checked: bool = False) -> Rejected | None:
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
        # Elements never disappear, so a local change whose references prepare_local checked
        # needs no second look.
        if references_checked or cid in self._references_checked:
            self._references_checked.discard(cid)
            problem = None
        else:
            problem = self._tree.check_references(ops, cid)
        if problem:
            return self._reject(cid, RejectReason.BAD_REFERENCE, problem)
        stamp: Stamp = (change.lamport, change.author, cid)
        index = 0
        for op in ops:
            index += self._tree.apply(op, stamp, index)
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

    # ---- the tree ----------------------------------------------------------------------------

    def sequence(self, path: Path, kind: ObjKind) -> Sequence | None:
        """The element order of the list or text at `path` (None if nothing was ever put there)."""
        return self._tree.sequence(path, kind)

    def view(self) -> dict[str, Json]:
        """The whole document as plain Python values (a fresh copy)."""
        return self._tree.view()

    def get(self, path: Path) -> Json:
        """The plain value at `path`; raises KeyError if nothing visible is there."""
        return self._tree.get(path)


def _describe(blocker: bytes | tuple[bytes, int]) -> str:
    if isinstance(blocker, bytes):
        return f"{blocker.hex()[:16]}…"
    return f"seq {blocker[1]} of author {blocker[0].hex()[:16]}…"
