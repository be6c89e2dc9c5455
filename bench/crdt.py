"""B4: replay the automerge-paper editing trace into a text node, one change per edit.

Prints one JSON object. Measures, in one run:
  (a) b4_unsigned_s: huskies' CRDT with every change encoded and hashed but not signed;
  (b) b4_signed_s: replica A (its own process, like another node) builds, signs and applies each
      change and streams it to replica B, which decodes, verifies and applies it, with
      signatures checked on worker processes (huskies.verify); wall time until B has them all;
  (c) b4_pycrdt_s: pycrdt (Yrs) applying the same edits.
  (a) and (c) are best of --repeat runs (default 3), run alternately so both see the same machine.
  local_changes_per_s: replica A alone (build + sign + apply).
  ingest_changes_per_s: replica B alone (decode + verify + apply), worker processes verifying;
  ingest_serial_changes_per_s: the same on the calling thread only (first 20,000 changes).

Usage: python bench/crdt.py [TRACE.json.gz] [--limit N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path

from huskies.crdt import (
    Document,
    NodeKey,
    ObjKind,
    Rejected,
    SignedChange,
    Transaction,
    signed_from_bytes,
)
from huskies.verify import BatchVerifier

DEFAULT_TRACE = Path(__file__).resolve().parents[2] / "shared/bench-data/automerge-paper.json.gz"
TEXT: tuple[str, ...] = ("text",)
BASE_TIME_MS = 1_700_000_000_000
STREAM_BATCH = 1024

Patch = tuple[int, int, str]


class UnsignedKey:
    """A signer that does not sign: for measuring the algorithm without Ed25519."""

    public_key = bytes(32)

    def sign(self, message: bytes) -> bytes:
        return bytes(64)


def load_trace(path: Path, limit: int | None) -> tuple[list[Patch], str, str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    patches = [
        (int(pos), int(ndel), str(ins)) for txn in data["txns"] for pos, ndel, ins in txn["patches"]
    ]
    if limit is not None:
        patches = patches[:limit]
    return patches, data.get("startContent", ""), data["endContent"]


def new_document(signer: UnsignedKey | NodeKey, start: str) -> Document:
    doc = Document()
    tx = Transaction(doc)
    tx.make((), "text", ObjKind.TEXT)
    tx.insert_text(TEXT, 0, start)
    tx.commit(signer, BASE_TIME_MS)
    return doc


def replay(
    doc: Document, signer: UnsignedKey | NodeKey, patches: list[Patch]
) -> Iterator[SignedChange]:
    for n, (pos, ndel, ins) in enumerate(patches):
        tx = Transaction(doc)
        if ndel:
            tx.delete_text(TEXT, pos, ndel)
        if ins:
            tx.insert_text(TEXT, pos, ins)
        yield tx.commit(signer, BASE_TIME_MS + n)


def text_of(doc: Document) -> str:
    value = doc.get(TEXT)
    assert isinstance(value, str)
    return value


def run_unsigned(patches: list[Patch], start: str) -> tuple[float, str]:
    signer = UnsignedKey()
    doc = new_document(signer, start)
    began = time.perf_counter()
    for _ in replay(doc, signer, patches):
        pass
    return time.perf_counter() - began, text_of(doc)


def run_local(patches: list[Patch], start: str) -> tuple[float, list[bytes], str]:
    """Replica A alone: build, sign and apply each change; returns the wire bytes too."""
    key = NodeKey(os.urandom(32))
    author = new_document(key, start)
    began = time.perf_counter()
    wire = [change.to_bytes() for change in replay(author, key, patches)]
    elapsed = time.perf_counter() - began
    return elapsed, [author.changes_since({})[0].to_bytes(), *wire], text_of(author)


def ingest(replica: Document, verifier: BatchVerifier, wire: Iterable[bytes]) -> None:
    for checked in verifier.verify(signed_from_bytes(raw) for raw in wire):
        if isinstance(checked, Rejected):
            raise SystemExit(f"replica rejected a change: {checked}")
        replica.apply_verified(checked)


def run_ingest(wire: list[bytes]) -> tuple[float, float, str]:
    """Replica B alone: decode, verify (worker processes) and apply; plus a serial sample."""
    replica = Document()
    with BatchVerifier() as verifier:
        began = time.perf_counter()
        ingest(replica, verifier, wire)
        elapsed = time.perf_counter() - began
    serial = Document()
    sample = wire[: min(len(wire), 20_000)]
    began = time.perf_counter()
    for raw in sample:
        serial.apply(signed_from_bytes(raw))
    serial_rate = len(sample) / (time.perf_counter() - began)
    return elapsed, serial_rate, text_of(replica)


def _author_process(conn: Connection, patches: list[Patch], start: str) -> None:
    key = NodeKey(os.urandom(32))
    author = new_document(key, start)
    conn.send([author.changes_since({})[0].to_bytes()])
    batch: list[bytes] = []
    for change in replay(author, key, patches):
        batch.append(change.to_bytes())
        if len(batch) == STREAM_BATCH:
            conn.send(batch)
            batch = []
    conn.send(batch)
    conn.send(None)
    conn.send(text_of(author))
    conn.close()


def _receive(conn: Connection) -> Iterator[bytes]:
    while (batch := conn.recv()) is not None:
        yield from batch


def run_two_replicas(patches: list[Patch], start: str) -> tuple[float, str, str]:
    """A (its own process) signs and streams every change to B, which verifies and applies."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe(duplex=False)
    replica = Document()
    with BatchVerifier() as verifier:
        author = context.Process(target=_author_process, args=(theirs, patches, start))
        began = time.perf_counter()
        author.start()
        theirs.close()
        ingest(replica, verifier, _receive(ours))
        elapsed = time.perf_counter() - began
        author_text = ours.recv()
        author.join()
    return elapsed, author_text, text_of(replica)


def run_pycrdt(patches: list[Patch], start: str) -> tuple[float, str]:
    import pycrdt

    doc: pycrdt.Doc = pycrdt.Doc()
    text = doc.get("text", type=pycrdt.Text)
    text += start
    began = time.perf_counter()
    for pos, ndel, ins in patches:
        if ndel:
            del text[pos : pos + ndel]
        if ins:
            text.insert(pos, ins)
    return time.perf_counter() - began, str(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("trace", nargs="?", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N edits")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="best of N for the unsigned and pycrdt replays, run alternately (default 3)",
    )
    args = parser.parse_args(argv)
    if not args.trace.exists():
        print(
            f"trace not found: {args.trace} (pass its path as the first argument)", file=sys.stderr
        )
        return 2
    patches, start, end = load_trace(args.trace, args.limit)

    unsigned_runs, pycrdt_runs = [], []
    for _ in range(max(1, args.repeat)):
        unsigned_runs.append(run_unsigned(patches, start))
        pycrdt_runs.append(run_pycrdt(patches, start))
    unsigned_s, unsigned_text = min(unsigned_runs)
    pycrdt_s = min(seconds for seconds, _ in pycrdt_runs)
    local_s, wire, local_text = run_local(patches, start)
    ingest_s, serial_rate, ingest_text = run_ingest(wire)
    del wire
    signed_s, author_text, replica_text = run_two_replicas(patches, start)
    texts = {text for _, text in unsigned_runs + pycrdt_runs}
    texts |= {local_text, ingest_text, author_text, replica_text}
    n = len(patches)
    result = {
        "edits": n,
        "b4_unsigned_s": round(unsigned_s, 3),
        "b4_signed_s": round(signed_s, 3),
        "b4_pycrdt_s": round(pycrdt_s, 3),
        "b4_repeats": max(1, args.repeat),
        "b4_final_text_ok": len(texts) == 1 and (args.limit is not None or unsigned_text == end),
        "ingest_changes_per_s": round(n / ingest_s),
        "ingest_serial_changes_per_s": round(serial_rate),
        "local_changes_per_s": round(n / local_s),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))
    return 0 if result["b4_final_text_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
