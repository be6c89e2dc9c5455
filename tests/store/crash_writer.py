"""A writer for the crash test: commits changes as fast as it can and prints each one it was
told is durable. Run as `python crash_writer.py DB SNAPSHOT_EVERY`; the test kills it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from huskies.crdt import Document, NodeKey, Transaction
from huskies.store import Replica

WRITERS = 8
REMOTE = NodeKey(b"\x09" * 32)


def waiting_changes() -> list:
    """Seqs 2-4 of another node, whose seq 1 never arrives: they stay pending."""
    doc = Document()
    made = []
    for i in range(4):
        tx = Transaction(doc)
        tx.set((), f"remote{i}", i)
        made.append(tx.commit(REMOTE, 0))
    return made[1:]


async def write(replica: Replica, writer: int) -> None:
    i = 0
    while True:
        tx = replica.transaction()
        tx.set((), f"w{writer}", i)
        signed = await replica.change(tx)
        assert signed is not None
        print(f"ACK {signed.id.hex()}", flush=True)
        i += 1


async def main(path: Path, snapshot_every: int) -> None:
    async with await Replica.open(path, snapshot_every=snapshot_every) as replica:
        if replica.document.change_count == 0 and replica.document.pending_count == 0:
            await replica.ingest_many(waiting_changes())
        print(f"READY {replica.document.pending_count}", flush=True)
        await asyncio.gather(*(write(replica, w) for w in range(WRITERS)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
