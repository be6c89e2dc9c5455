"""The replica: the single write path for the document, durable before anything sees a change.

Every change, local or remote, goes through one writer task. The writer takes every request
waiting for it (group commit), files each change in one SQLite transaction (applied changes in
the change log, changes waiting for a dependency in the pending table), and only when that
transaction is on disk applies them to the in-memory document, answers the callers and publishes
them. If the transaction fails, callers get `PersistError` and nothing is applied or published.

The document decides where a change belongs before it is applied (`Document.preview`); where the
apply turns out differently (a pending change released by another, a change the tree refuses),
the writer records the correction in its next transaction. Until then the database still holds
every change, and replaying it reaches the same document, so a crash in between loses nothing.

The writer works in two steps so that signing overlaps its other work. It stages a batch
(prepares and hashes its changes, each local one following the one before, even across batches)
and, while that batch's signatures are made, writes the batch staged before it. Under load the
signatures are made by a helper process (`huskies.signer`) on another core; a small batch is
signed right here. A batch staged behind one whose commit failed names changes that were never
written, so it is staged again from the document as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from huskies.crdt import (
    Applied,
    ApplyResult,
    ChangeRefused,
    Document,
    EncodedChange,
    NodeKey,
    OpId,
    Outcome,
    Pending,
    Rejected,
    RejectReason,
    SignedChange,
    Signer,
    SnapshotError,
    Transaction,
    VerifiedChange,
    decode_signed,
)
from huskies.signer import SignerGone, SignerProcess
from huskies.store.database import Batch, Snapshot, Store, StoreError, Synchronous
from huskies.store.elements import touched_elements
from huskies.store.lock import WriterLock
from huskies.verify import verify_batch

log = logging.getLogger("huskies.store")

DEFAULT_SNAPSHOT_EVERY = 10_000
SNAPSHOT_OVERDUE = 2  # times snapshot_every: a writer never idle snapshots inline past this
MAX_BATCH = 1024  # changes per transaction: bounds how long one commit keeps callers waiting
SIGNER_START_BATCH = 8  # local changes in one batch: concurrent writers, worth a signing helper
SIGNER_MIN_BATCH = 4  # fewer are signed here sooner than a round trip to the helper takes
SIGNER_LATE_S = 0.001  # a helper this late was not scheduled: sign here rather than wait
SIGNER_LATE_LIMIT = 100  # late this many batches in a row: stuck, so kill it
PARALLEL_VERIFY_MIN = 64  # changes in one ingest worth spreading over verifier processes
WAL_CHECKPOINT_BYTES = 16 << 20  # start a background checkpoint past this WAL size
WAL_LIMIT_BYTES = 64 << 20  # past this, background checkpoints fell behind: checkpoint inline


class PersistError(Exception):
    """A change could not be made durable. Nothing was applied or published."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Published:
    """A change applied to the document, in apply order."""

    change: SignedChange
    local: bool


class SubscriptionLagged(Exception):
    """The subscriber fell more than its queue size behind; it missed changes and should catch
    up from the document (for example with `changes_since`) before subscribing again."""


class Subscription:
    """Changes as the replica applies them. Iterate with `async for`; ends when the replica
    closes; raises SubscriptionLagged if the subscriber cannot keep up."""

    def __init__(self, maxsize: int, on_close: Callable[[Subscription], None]) -> None:
        self._queue: asyncio.Queue[Published | None] = asyncio.Queue(maxsize)
        self._on_close = on_close
        self.lagged = False

    def _offer(self, item: Published | None) -> None:
        if self.lagged:
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.lagged = True
            self._on_close(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Published:
        if self.lagged and self._queue.empty():
            raise SubscriptionLagged("the subscriber fell behind and missed changes")
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        self._on_close(self)


class _Signal(Enum):
    """What the writer's queue carries besides requests."""

    STOP = "stop"  # finish what is queued, then stop
    TIDY = "tidy"  # a background checkpoint is done: empty the WAL if idle


@dataclass(slots=True)
class _Request:
    future: asyncio.Future[object]
    local: Transaction | None = None
    remote: Sequence[VerifiedChange] = ()
    slots: range = range(0)


@dataclass
class _Staged:
    """A batch prepared and hashed, its local changes maybe still being signed by the helper
    process; nothing written or applied yet."""

    requests: list[_Request]
    entries: list[EncodedChange | VerifiedChange]  # in filing order; local ones until signed
    outcomes: list[Outcome | Rejected]
    last_local: EncodedChange | None  # what the next batch's first local change follows
    signing: list[int] = field(default_factory=list)  # entries the helper is signing
    signer: SignerProcess | None = None

    @property
    def remote(self) -> bool:
        return any(request.remote for request in self.requests)


@dataclass(frozen=True)
class ReplicaStats:
    node_id: str
    changes: int
    authors: dict[str, int]  # node id → highest contiguous seq applied
    pending: int
    heads: int
    max_lamport: int
    snapshot: Snapshot | None
    file_bytes: int
    schema_version: int
    opened_by: str


@dataclass
class _Loaded:
    store: Store
    key: NodeKey
    doc: Document
    snapshot_count: int
    released: list[bytes]
    dropped: list[bytes]
    pending_ids: set[bytes]


class Replica:
    """One node's copy of the document, backed by its SQLite change log.

    Open it with `async with await Replica.open(path) as replica:`. Read through `document`
    (never mutate it directly); write with `change` and `ingest`.
    """

    def __init__(
        self,
        loaded: _Loaded,
        lock: WriterLock,
        *,
        clock: Callable[[], int],
        snapshot_every: int,
        verify_processes: int = 0,
    ) -> None:
        self._store = loaded.store
        self._key = loaded.key
        self._doc = loaded.doc
        self._lock = lock
        self._clock = clock
        self.snapshot_every = snapshot_every
        self._snapshot_count = loaded.snapshot_count
        self._released = loaded.released  # pending-table ids the document has since applied
        self._dropped = loaded.dropped  # filed ids the document refused after all
        self._pending_ids = loaded.pending_ids  # ids in the pending table
        self._queue: asyncio.Queue[_Request | _Signal] = asyncio.Queue()
        self._subscribers: list[Subscription] = []
        # FULL commits wait for the disk on this thread (see _commit); the writer awaits each
        # one, so the connection is never used by two threads at once.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="huskies-store")
        self._checkpointing: asyncio.Task[None] | None = None
        self._verify_workers = verify_processes
        self._verify_pool = (
            ProcessPoolExecutor(verify_processes, mp_context=multiprocessing.get_context("spawn"))
            if verify_processes
            else None
        )
        self._signer: SignerProcess | None = None
        self._signer_start: asyncio.Task[None] | None = None
        self._signer_late = 0  # batches in a row the helper was late for
        self._closed = False
        self._writer = asyncio.create_task(self._run_writer(), name="replica-writer")

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        synchronous: Synchronous = Synchronous.NORMAL,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        clock: Callable[[], int] = wall_clock_ms,
        max_pending: int | None = None,
        lock_timeout: float = 5.0,
        verify_processes: int = 0,
    ) -> Replica:
        """Open (or create) the replica at `path`: load the newest snapshot and replay the rest
        of the log in apply order, then the pending changes in arrival order.

        `verify_processes` > 0 starts that many processes that check the signatures of large
        ingests (a sync catch-up) in parallel; a node that syncs wants one per core.
        """
        if snapshot_every < 1:
            raise ValueError("snapshot_every must be ≥ 1")
        lock = WriterLock(Path(f"{path}.lock"))
        await asyncio.to_thread(lock.acquire, lock_timeout)
        try:
            loaded = await asyncio.to_thread(_load, path, synchronous, clock, max_pending)
        except BaseException:
            lock.release()
            raise
        replica = cls(
            loaded,
            lock,
            clock=clock,
            snapshot_every=snapshot_every,
            verify_processes=verify_processes,
        )
        if replica._verify_pool is not None:  # start the processes now, not on the first sync
            loop = asyncio.get_running_loop()
            await asyncio.gather(
                *(
                    loop.run_in_executor(replica._verify_pool, verify_batch, [])
                    for _ in range(verify_processes)
                )
            )
        if loaded.released or loaded.dropped:
            await replica._flush_notes()
        return replica

    async def __aenter__(self) -> Replica:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Finish the writes already asked for, then release the database."""
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(_Signal.STOP)
        await self._writer
        await self._flush_notes()
        if self._unsnapshotted() >= self.snapshot_every:
            await self._snapshot()
        if self._checkpointing is not None:
            await asyncio.wait([self._checkpointing])
            _report(self._checkpointing)
        if self._signer_start is not None:
            await self._signer_start
        if self._signer is not None:
            await self._signer.close()
        for subscription in list(self._subscribers):
            subscription._offer(None)
        self._subscribers.clear()
        self._store.close()
        self._executor.shutdown()
        if self._verify_pool is not None:
            self._verify_pool.shutdown(cancel_futures=True)
        self._lock.release()

    # ---- reading ---------------------------------------------------------------------------

    @property
    def document(self) -> Document:
        """The applied document. Read it; never change it except through this replica."""
        return self._doc

    @property
    def public_key(self) -> bytes:
        return self._key.public_key

    @property
    def signer(self) -> Signer:
        """The node's key, to prove who this node is to a peer (it never leaves the process)."""
        return self._key

    @property
    def node_id(self) -> str:
        return self._key.node_id

    async def stats(self) -> ReplicaStats:
        stored = await asyncio.to_thread(self._store.stats)
        doc = self._doc
        return ReplicaStats(
            node_id=self.node_id,
            changes=doc.change_count,
            authors={author.hex(): clock.seq for author, clock in doc.clock().items()},
            pending=doc.pending_count,
            heads=len(doc.heads),
            max_lamport=doc.max_lamport,
            snapshot=stored.snapshot,
            file_bytes=stored.file_bytes,
            schema_version=stored.schema_version,
            opened_by=stored.opened_by,
        )

    async def element_changes(self, element: OpId) -> list[VerifiedChange]:
        """The applied changes that touch `element` of a root list (made it, or edited inside
        it: see `huskies.store.elements`), in apply order. Read from the log's index on a
        worker thread, so the history of one item costs its own changes, not the whole log's."""
        return await asyncio.to_thread(_touching, self._store, element)

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        subscription = Subscription(maxsize, self._unsubscribe)
        self._subscribers.append(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(subscription)

    # ---- writing ---------------------------------------------------------------------------

    def transaction(self) -> Transaction:
        return Transaction(self._doc)

    async def change(self, tx: Transaction) -> SignedChange | None:
        """Sign `tx` as this node's next change, make it durable, apply and publish it.

        Returns None (writing nothing) if `tx` holds no ops. Raises PersistError if the change
        could not be written and ChangeRefused if its ops are not valid here; in both cases
        nothing was applied. After it returns, `tx.resolve` names the elements it created.
        """
        if not len(tx):
            return None
        result = await self._enqueue(_Request(self._future(), local=tx))
        assert isinstance(result, SignedChange)
        tx.committed_as(result.id)
        return result

    async def ingest(self, signed: SignedChange) -> ApplyResult:
        """Verify a change from elsewhere and, unless refused, make it durable, then apply it."""
        [result] = await self.ingest_many([signed])
        return result

    async def ingest_many(self, changes: Sequence[SignedChange]) -> list[ApplyResult]:
        """Verify changes off the event loop, then file and apply them in one transaction.
        Results are in the same order as `changes`."""
        return await self.ingest_verified(await self.check(changes))

    async def check(self, changes: Sequence[SignedChange]) -> list[VerifiedChange | Rejected]:
        """`decode_signed` for each change, off the event loop; a caller can check the next
        batch while `ingest_verified` files the last."""
        pool = self._verify_pool
        if pool is None or len(changes) < PARALLEL_VERIFY_MIN:
            return await asyncio.to_thread(_decode_all, changes)
        # A catch-up: decode here on the event loop (decoding holds the GIL, so a thread would
        # only fight the loop for it: measured slower), and check the signatures on the
        # verifier processes in parallel.
        decoded = _decode_unchecked(changes)
        work = [
            (item.change.author, item.id, item.signed.signature)
            for item in decoded
            if isinstance(item, VerifiedChange)
        ]
        loop = asyncio.get_running_loop()
        parts = self._verify_workers
        slices = [work[i::parts] for i in range(parts)]
        verdict_slices = await asyncio.gather(
            *(loop.run_in_executor(pool, verify_batch, part) for part in slices)
        )
        verdicts = [verdict_slices[i % parts][i // parts] for i in range(len(work))]
        answers = iter(verdicts)
        return [
            item
            if isinstance(item, Rejected) or next(answers)
            else Rejected(RejectReason.BAD_SIGNATURE, "signature does not verify", item.id)
            for item in decoded
        ]

    async def ingest_verified(
        self, checked: Sequence[VerifiedChange | Rejected]
    ) -> list[ApplyResult]:
        """Like `ingest_many`, for changes already checked with `decode_signed`."""
        results: list[ApplyResult | None] = [
            c if isinstance(c, Rejected) else None for c in checked
        ]
        verified = [c for c in checked if not isinstance(c, Rejected)]
        if verified:
            outcome = await self._enqueue(_Request(self._future(), remote=verified))
            assert isinstance(outcome, list)
            answers = iter(outcome)
            results = [r if r is not None else next(answers) for r in results]
        return [r for r in results if r is not None]

    def _future(self) -> asyncio.Future[object]:
        return asyncio.get_running_loop().create_future()

    def _enqueue(self, request: _Request) -> asyncio.Future[object]:
        """Hand `request` to the writer; await the returned future for its outcome. (Not a
        coroutine: every change passes here, and a coroutine frame costs time.)"""
        if self._closed:
            raise PersistError("the replica is closed")
        self._queue.put_nowait(request)  # unbounded: it never waits
        return request.future

    # ---- the writer ------------------------------------------------------------------------

    async def _run_writer(self) -> None:
        staged: _Staged | None = None
        while True:
            if staged is None:
                first = await self._queue.get()
                if first is _Signal.STOP:
                    return
                if first is _Signal.TIDY:
                    if self._queue.empty():
                        await self._tidy()
                    continue
                requests, stopping = self._take([first], self._opening_limit())
            else:
                # Let the callers just answered queue their next changes: they are prepared
                # while the staged batch is signed, and written right after it.
                await asyncio.sleep(0)
                requests, stopping = self._take([], MAX_BATCH)
            try:
                staged = await self._advance(staged, requests)
                if stopping and staged is not None:
                    await self._settle(staged)
            except Exception as exc:  # a bug must not leave callers waiting forever
                log.exception("replica writer failed")
                _fail([*(staged.requests if staged else []), *requests], exc)
                staged = None
            if stopping:
                return
            if staged is None and self._queue.empty():
                await self._tidy()

    async def _tidy(self) -> None:
        """What the writer does when it goes idle, so no caller waits for it: record pending
        bookkeeping, take a snapshot that is due, empty the WAL."""
        await self._flush_notes()
        if self._unsnapshotted() >= self.snapshot_every:
            await self._snapshot()
        await self._finish_checkpoint()

    def _unsnapshotted(self) -> int:
        return self._doc.change_count - self._snapshot_count

    def _opening_limit(self) -> int:
        """How many changes an idle writer takes. With a signing helper, half of what waits:
        the other half is prepared while the first is signed, and from then on the callers
        of each batch queue their next changes while the batch after theirs is signed."""
        if self._signer is None:
            return MAX_BATCH
        return max(SIGNER_MIN_BATCH, min(MAX_BATCH, (self._queue.qsize() + 2) // 2))

    def _take(self, batch: list[_Request], limit: int) -> tuple[list[_Request], bool]:
        """Add waiting requests to `batch` up to `limit` changes; True if STOP was taken."""
        size = sum(len(r.remote) or 1 for r in batch)
        while size < limit and not self._queue.empty():
            request = self._queue.get_nowait()
            if request is _Signal.STOP:
                return batch, True
            if request is _Signal.TIDY:
                continue  # busy: the writer tidies when it next goes idle
            batch.append(request)
            size += len(request.remote) or 1
        return batch, False

    async def _advance(self, staged: _Staged | None, requests: list[_Request]) -> _Staged | None:
        """Stage `requests` and write the batch staged before them; returns what is staged now."""
        if staged is not None and (
            not requests or staged.remote or any(r.remote for r in requests)
        ):
            # Nothing to overlap with, or changes from elsewhere: those are previewed against,
            # and local changes prepared on, a document with everything before them applied.
            await self._settle(staged)
            staged = None
        if not requests:
            return None
        following = await self._stage(requests, after=staged)
        if staged is not None and not await self._settle(staged):
            # `following` was prepared to follow changes that were never written: its signed
            # ids name them. Prepare it again on the document as it is.
            if following.signer is not None:
                following.signer.skip(len(following.signing))
            following = await self._stage(following.requests, after=None)
        return following

    async def _stage(self, requests: list[_Request], after: _Staged | None) -> _Staged:
        """Prepare and hash a batch and start signing its local changes; write nothing.
        Local changes follow `after`'s, which are not applied yet."""
        doc, key = self._doc, self._key
        entries: list[EncodedChange | VerifiedChange] = []
        outcomes: list[Outcome | Rejected] = []
        previous = after.last_local if after is not None else None
        now = self._clock()
        for request in requests:
            if request.future.done():
                continue  # its caller was cancelled before the write began: write nothing
            if request.local is not None:
                try:
                    local = doc.prepare_local(
                        request.local.ops, key.public_key, now, checked=True, after=previous
                    )
                except ChangeRefused as exc:
                    request.future.set_exception(exc)
                    continue
                previous = local
                request.slots = range(len(entries), len(entries) + 1)
                entries.append(local)
                outcomes.append(Outcome.APPLY)  # prepare_local checked that it applies
            else:
                request.slots = range(len(entries), len(entries) + len(request.remote))
                entries.extend(request.remote)
                # No remote change can depend on unwritten local ones: nobody has them yet.
                outcomes.extend(doc.preview(request.remote))
        unsigned = [i for i, entry in enumerate(entries) if isinstance(entry, EncodedChange)]
        staged = _Staged(requests, entries, outcomes, previous)
        signer = self._signer_for(len(unsigned))
        if signer is not None:
            try:
                signer.send([entries[i].id for i in unsigned])
                staged.signing, staged.signer = unsigned, signer
                return staged
            except SignerGone:
                log.warning("the signing helper stopped; signing in the writer itself")
                await self._drop_signer(signer)
        self._sign_here(entries, unsigned)
        return staged

    def _signer_for(self, local_changes: int) -> SignerProcess | None:
        """The helper process to sign this many changes on, if it is worth the round trip;
        a batch big enough to show concurrent writers starts one."""
        if local_changes >= SIGNER_START_BATCH and self._signer_start is None:
            self._signer_start = asyncio.create_task(self._start_signer(), name="replica-signer")
        if local_changes >= SIGNER_MIN_BATCH:
            return self._signer
        return None

    async def _start_signer(self) -> None:
        try:
            self._signer = await SignerProcess.start(self._key.seed)
        except (SignerGone, OSError) as exc:  # never tried again: signing here still works
            log.warning("signing in the writer itself: %s", exc)

    async def _settle(self, staged: _Staged) -> bool:
        """Write a staged batch in one transaction, then apply it, answer its callers and
        publish it. False if the transaction failed (its callers get PersistError)."""
        if staged.signing:
            signatures = await self._signatures(staged)
            if signatures is None:
                self._sign_here(staged.entries, staged.signing)
            else:
                for i, signature in zip(staged.signing, signatures, strict=True):
                    staged.entries[i] = _encoded(staged.entries[i]).with_signature(signature)
        entries = [_verified(entry) for entry in staged.entries]
        outcomes, batch = staged.outcomes, staged.requests
        pairs = list(zip(entries, outcomes, strict=True))
        filed = Batch(
            applied=[v for v, o in pairs if o is Outcome.APPLY],
            held=[v for v, o in pairs if o is Outcome.HOLD],
            released=self._released,
            dropped=self._dropped,
        )
        if filed:
            try:
                await self._commit(filed)
            except StoreError as exc:
                _fail(batch, PersistError(str(exc)))
                return False
            self._released, self._dropped = [], []
        self._pending_ids.update(v.id for v in filed.held)
        results = self._apply(entries, outcomes)
        for request in batch:
            if request.future.done():
                continue
            if request.local is not None:
                slot = request.slots.start
                result = results[slot]
                if isinstance(result, Applied):
                    request.future.set_result(entries[slot].signed)
                else:
                    assert isinstance(result, Rejected), result
                    request.future.set_exception(ChangeRefused(result))
            else:
                request.future.set_result([results[i] for i in request.slots])
        if self._unsnapshotted() >= SNAPSHOT_OVERDUE * self.snapshot_every:
            await self._snapshot()  # never idle: take it now, so startup stays bounded
        return True

    def _sign_here(self, entries: list[EncodedChange | VerifiedChange], at: list[int]) -> None:
        for i in at:
            entries[i] = _encoded(entries[i]).sign(self._key)

    async def _signatures(self, staged: _Staged) -> list[bytes] | None:
        """What the helper signed for `staged`; None if it is late (then this batch is
        signed here: waiting would cost more) or has stopped."""
        signer = staged.signer
        assert signer is not None
        count = len(staged.signing)
        try:
            signatures = await signer.receive(count, SIGNER_LATE_S)
        except SignerGone as exc:
            log.warning("%s; signing in the writer itself", exc)
            await self._drop_signer(signer)
            return None
        if signatures is not None:
            self._signer_late = 0
            return signatures
        signer.skip(count)
        self._signer_late += 1
        if self._signer_late >= SIGNER_LATE_LIMIT:
            log.warning(
                "the signing helper was late %d batches in a row: replaced", SIGNER_LATE_LIMIT
            )
            await self._drop_signer(signer)
        return None

    async def _drop_signer(self, signer: SignerProcess | None) -> None:
        """Forget (and kill) a helper that stopped answering; the next busy batch starts a
        new one."""
        if signer is not None and signer is self._signer:
            self._signer, self._signer_start, self._signer_late = None, None, 0
            await signer.close(grace_s=0)

    async def _commit(self, batch: Batch) -> None:
        """Write a batch. With synchronous=NORMAL a commit only copies pages into the WAL (tens
        of microseconds), so it runs right here: handing it to a thread costs more, because
        every SQLite step gives up and retakes the GIL while this thread holds it. With FULL a
        commit waits for the disk, so it runs on the store's thread and the event loop keeps
        serving meanwhile."""
        if self._store.synchronous is Synchronous.FULL:
            await self._on_store_thread(functools.partial(self._store.commit, batch))
        else:
            self._store.commit(batch)
        await self._maybe_checkpoint()

    async def _maybe_checkpoint(self) -> None:
        """After a commit: copy the WAL back on another thread once it has grown (again and
        again while it keeps growing, each pass copying what is new); only if that cannot
        keep up, or the writer is never idle to finish, copy and empty it here."""
        checkpointing = self._checkpointing
        if checkpointing is not None and not checkpointing.done():
            return
        size = self._store.wal_bytes()
        if size > WAL_LIMIT_BYTES:
            await self._checkpoint_here()
        elif size > WAL_CHECKPOINT_BYTES:
            _report(checkpointing)
            self._checkpointing = asyncio.create_task(
                asyncio.to_thread(self._store.checkpoint), name="replica-checkpoint"
            )
            # Wake an idle writer to empty the WAL once the copying is done.
            self._checkpointing.add_done_callback(lambda _: self._queue.put_nowait(_Signal.TIDY))

    async def _finish_checkpoint(self) -> None:
        """When the writer is idle: copy back what was committed since the last background
        checkpoint and empty the WAL. Done here, on the writer's connection, because emptying
        it takes the write lock: from another connection, a commit that found the lock held
        slept in SQLite's busy handler (9 ms). Idle, no caller waits for it."""
        checkpointing = self._checkpointing
        if checkpointing is not None and checkpointing.done():
            await self._checkpoint_here()

    async def _checkpoint_here(self) -> None:
        _report(self._checkpointing)
        self._checkpointing = None
        try:
            await self._on_store_thread(self._store.checkpoint_here)
        except StoreError as exc:  # harmless: what was committed stays in the WAL
            log.warning("could not empty the WAL: %s", exc)

    async def _on_store_thread(self, work: Callable[[], None]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def _apply(
        self, verified: list[VerifiedChange], outcomes: list[Outcome | Rejected]
    ) -> list[ApplyResult]:
        """Apply filed changes in order, publish what applied, note what went otherwise."""
        doc = self._doc
        pending_ids = self._pending_ids
        results: list[ApplyResult] = []
        applied: list[bytes] = []
        for change, outcome in zip(verified, outcomes, strict=True):
            if isinstance(outcome, Rejected):
                results.append(outcome)
                continue
            result = doc.apply_verified(change)
            results.append(result)
            if isinstance(result, Applied):
                applied.extend(result.ids)
            elif isinstance(result, Rejected) and outcome is not Outcome.SEEN:
                self._dropped.append(change.id)
                pending_ids.discard(change.id)
        if pending_ids:
            for change_id in applied:
                if change_id in pending_ids:
                    pending_ids.remove(change_id)
                    self._released.append(change_id)
        if len(pending_ids) != doc.pending_count:
            # Some waiting change was refused because what it waited for was refused.
            for change_id in [c for c in pending_ids if not doc.is_pending(c)]:
                pending_ids.remove(change_id)
                self._dropped.append(change_id)
        if self._subscribers:
            own = self._key.public_key
            for change_id in applied:
                signed = doc.signed(change_id)
                assert signed is not None
                item = Published(signed, signed.signer == own)
                for subscription in list(self._subscribers):
                    subscription._offer(item)
        return results

    async def _flush_notes(self) -> None:
        """Record which pending changes have applied and which filed ones were refused."""
        notes = Batch(released=self._released, dropped=self._dropped)
        if not notes:
            return
        self._released, self._dropped = [], []
        try:
            await self._commit(notes)
        except StoreError as exc:
            # Harmless to leave: replaying the database reaches the same document.
            log.warning("could not record pending-change bookkeeping: %s", exc)
            self._released[:0], self._dropped[:0] = notes.released, notes.dropped

    async def _snapshot(self) -> None:
        """Snapshot the document between batches, when it holds exactly what is filed."""
        doc = self._doc
        count = doc.change_count
        filed = Batch(
            released=self._released,
            dropped=self._dropped,
            snapshot=(doc.snapshot(), count, self._clock()),
        )
        self._released, self._dropped = [], []
        try:
            await self._commit(filed)
        except StoreError as exc:
            log.warning("could not save a snapshot (startup will replay more): %s", exc)
            self._released[:0], self._dropped[:0] = filed.released, filed.dropped
            return
        self._snapshot_count = count


def _report(checkpointing: asyncio.Task[None] | None) -> None:
    """Log how a finished background checkpoint failed, if it did."""
    if checkpointing is not None and checkpointing.done() and checkpointing.exception():
        log.warning("a background checkpoint failed: %s", checkpointing.exception())


def _encoded(entry: EncodedChange | VerifiedChange) -> EncodedChange:
    assert isinstance(entry, EncodedChange), entry
    return entry


def _verified(entry: EncodedChange | VerifiedChange) -> VerifiedChange:
    assert isinstance(entry, VerifiedChange), entry
    return entry


def _decode_all(changes: Sequence[SignedChange]) -> list[VerifiedChange | Rejected]:
    return [decode_signed(change) for change in changes]


def _touching(store: Store, element: OpId) -> list[VerifiedChange]:
    touching = []
    for row in store.element_changes(element):
        # Verified at ingest, so only decoded here; a damaged row is replay's to report.
        checked = decode_signed(
            SignedChange(row.id, row.body, row.author, row.signature), check_signature=False
        )
        if not isinstance(checked, Rejected) and element in touched_elements(
            checked.id, checked.change.ops
        ):
            touching.append(checked)
    return touching


def _decode_unchecked(changes: Sequence[SignedChange]) -> list[VerifiedChange | Rejected]:
    return [decode_signed(change, check_signature=False) for change in changes]


def _fail(batch: list[_Request], error: Exception) -> None:
    for request in batch:
        if not request.future.done():
            request.future.set_exception(error)


def _load(
    path: Path, synchronous: Synchronous, clock: Callable[[], int], max_pending: int | None
) -> _Loaded:
    store = Store.open(path, synchronous)
    try:
        seed = store.identity_seed()
        if seed is None:
            seed = os.urandom(32)
            store.save_identity(seed, NodeKey(seed).public_key, clock())
        key = NodeKey(seed)
        limits = {} if max_pending is None else {"max_pending": max_pending}
        doc, start = _restore(store, limits)
        snapshot_count = doc.change_count
        dropped: list[bytes] = []
        for stored in store.changes(start):
            signed = SignedChange(stored.id, stored.body, stored.author, stored.signature)
            result = _replay(doc, signed, store.path)
            if isinstance(result, Rejected):
                dropped.append(stored.id)
        released: list[bytes] = []
        pending_ids: set[bytes] = set()
        for signed in store.pending():
            result = _replay(doc, signed, store.path)
            if isinstance(result, Applied):
                released.extend(result.ids)  # it and any pending change it released
            elif isinstance(result, Pending):
                pending_ids.add(signed.id)
            elif isinstance(result, Rejected):
                dropped.append(signed.id)
        pending_ids.difference_update(released)
        return _Loaded(store, key, doc, snapshot_count, released, dropped, pending_ids)
    except BaseException:
        store.close()
        raise


def _replay(doc: Document, signed: SignedChange, path: Path) -> ApplyResult:
    """Apply a stored change. Its signature was verified at ingest, so it is not checked again.
    The document may still refuse it for what it refers to (a Byzantine change filed before the
    tree could judge it); bytes that no longer decode mean a damaged file, which we never
    "repair" by deleting."""
    checked = decode_signed(signed, check_signature=False)
    if isinstance(checked, Rejected):
        raise StoreError(
            f"{path}: stored change {signed.id.hex()[:16]}… no longer decodes ({checked}); "
            "the file is damaged, and huskies will not change it"
        )
    return doc.apply_verified(checked)


def _restore(store: Store, limits: dict[str, int]) -> tuple[Document, int]:
    """The document from the newest usable snapshot, and the apply order replay starts at."""
    snapshot, problem = store.latest_snapshot()
    if problem:
        log.warning("%s: %s; using an older snapshot or replaying the log", store.path, problem)
    if snapshot is not None:
        try:
            doc = Document.restore(snapshot.state, store.changes(0, snapshot.upto), **limits)
            return doc, snapshot.upto
        except SnapshotError as exc:
            log.warning(
                "%s: cannot use its snapshot (%s); replaying the whole log", store.path, exc
            )
    return Document(**limits), 0
