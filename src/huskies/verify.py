"""Checking signed changes in bulk: decoding in the caller, Ed25519 on worker processes.

Verifying a signature costs about three times as much as decoding and applying the change, so a
catch-up of many changes is bound by it. Threads help less than one would hope (each verify
re-takes the GIL), so signatures are checked in batches on a process pool while the caller
decodes the next batch and applies the last. Results come back in input order and are exactly
what `decode_signed` would return.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from types import TracebackType

from huskies.crdt import Rejected, RejectReason, SignedChange, VerifiedChange, decode_signed
from huskies.crdt.identity import verify_signature

DEFAULT_BATCH = 512
BATCHES_IN_FLIGHT = 4

Checked = VerifiedChange | Rejected


def verify_batch(items: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """(key, message, signature) → does it verify; runs on a worker process."""
    return [verify_signature(key, message, signature) for key, message, signature in items]


class BatchVerifier:
    """Verifies streams of signed changes, using `workers` processes (0: the calling thread)."""

    def __init__(self, workers: int | None = None, batch_size: int = DEFAULT_BATCH) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        if self.workers < 0:
            raise ValueError("workers must be ≥ 0")
        self.batch_size = batch_size
        self._pool: ProcessPoolExecutor | None = None
        if self.workers:
            # spawn, not fork: the caller may be a threaded asyncio server.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)

    def __enter__(self) -> BatchVerifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def verify(self, changes: Iterable[SignedChange]) -> Iterator[Checked]:
        """Yield the checked form of each change, in order, as batches complete."""
        if self._pool is None:
            yield from (decode_signed(change) for change in changes)
            return
        in_flight: deque[tuple[list[Checked], Future[list[bool]]]] = deque()
        batch: list[SignedChange] = []
        for change in changes:
            batch.append(change)
            if len(batch) == self.batch_size:
                in_flight.append(self._submit(batch))
                batch = []
                if len(in_flight) > BATCHES_IN_FLIGHT:
                    yield from _finish(*in_flight.popleft())
        if batch:
            in_flight.append(self._submit(batch))
        while in_flight:
            yield from _finish(*in_flight.popleft())

    def _submit(self, batch: list[SignedChange]) -> tuple[list[Checked], Future[list[bool]]]:
        assert self._pool is not None
        decoded = [decode_signed(change, check_signature=False) for change in batch]
        work = [
            (item.change.author, item.id, item.signed.signature)
            for item in decoded
            if isinstance(item, VerifiedChange)
        ]
        return decoded, self._pool.submit(verify_batch, work)


def _finish(decoded: list[Checked], future: Future[list[bool]]) -> Iterator[Checked]:
    verdicts = iter(future.result())
    for item in decoded:
        if isinstance(item, Rejected) or next(verdicts):
            yield item
        else:
            yield Rejected(RejectReason.BAD_SIGNATURE, "signature does not verify", item.id)
