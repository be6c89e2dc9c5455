"""Durable writes and startup of huskies' Replica, side by side with pycrdt-store's SQLiteYStore.

Prints one JSON object. The workload is pipeline-like: ~1000 item maps (made first, untimed),
and one change sets 2-3 fields of one item: a `stage` object, an `updated_at` int and, on
every third change, a `note` string.

  write_*: --clients concurrent tasks (default 32), each awaiting `replica.change(tx)` in a
      loop until --changes (default 20,000) are acknowledged, with synchronous=NORMAL; then
      write_full_* the same with synchronous=FULL. Latency runs from building the transaction
      to the awaited acknowledgement, per change; rates are changes / wall time.
  startup_*: a database of --startup-changes (default 100,000) changes of the same workload
      (a snapshot every 10,000 changes, the replica's default; --snapshot-every changes it for
      smoke tests) is closed and reopened:
      startup_100k_snapshot_s times Replica.open + close from the newest snapshot;
      startup_100k_cold_s the same on a fresh copy with its snapshots deleted (the whole log
      replayed).
      Best of --startup-repeat (default 3). startup_view_ok: both reopened documents equal the
      document as it was before closing. (The keys say 100k whatever --startup-changes is.)
  pycrdt_store_*: pycrdt-store's SQLiteYStore (default settings: rollback journal, SQLite's
      default synchronous=FULL, a checkpoint every 100 updates) storing each change of the same
      workload on a pycrdt Doc, a Map per item, as one `await store.write(update)`;
      --pycrdt-changes (default 3000) updates, sequentially and with --clients concurrent tasks;
      the faster mode is reported (pycrdt_store_mode; its p99 too), both modes are listed.

Everything is written under one fresh temporary directory (inside --tmp-dir if given).

Usage: python bench/replica.py [--changes N] [--clients C] [--startup-changes N]
                               [--pycrdt-changes N] [--items N] [--startup-repeat N]
                               [--snapshot-every N] [--tmp-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huskies.crdt import ObjKind, Transaction
from huskies.store import Replica, Synchronous
from huskies.store.replica import DEFAULT_SNAPSHOT_EVERY

ITEMS: tuple[str, ...] = ("items",)
STAGES = ("backlog", "current", "qa", "merge", "done")
MAKE_CHUNK = 100  # item maps made per setup change


# One change of the workload, drawn ahead: (item, stage, agent, attempt, updated_at, note or
# None). A plain tuple of atoms, which Python's collector stops tracking, so 20,000 edits held
# by the harness add no collector pauses to the latencies measured (as objects they did: a
# 20 ms pause mid-run).
Edit = tuple[str, str, str, int, int, str | None]


def edit_fields(edit: Edit) -> list[tuple[str, Any]]:
    """The 2-3 fields one edit sets on its item."""
    _, stage, agent, attempt, updated_at, note = edit
    fields: list[tuple[str, Any]] = [
        ("stage", {"name": stage, "agent": agent, "attempt": attempt}),
        ("updated_at", updated_at),
    ]
    if note is not None:
        fields.append(("note", note))
    return fields


class Workload:
    """Deterministic edits for each client: which item, which 2-3 fields."""

    def __init__(self, items: int, seed: int) -> None:
        self.items = items
        self._rng = random.Random(seed)
        self._n = 0

    def next(self) -> Edit:
        rng, self._n = self._rng, self._n + 1
        stage = rng.choice(STAGES)
        agent = f"agent-{rng.randrange(8)}"
        note = f"moved to {stage} by run {rng.randrange(1_000_000)}" if self._n % 3 == 0 else None
        return (
            f"i{rng.randrange(self.items)}",
            stage,
            agent,
            self._n,
            1_700_000_000_000 + self._n,
            note,
        )


def item_names(items: int) -> list[str]:
    return [f"i{n}" for n in range(items)]


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * fraction // 1))  # ceil(n * fraction), at least 1
    return sorted_values[int(rank) - 1]


@dataclass(frozen=True)
class Run:
    """What one timed drive of the workload measured."""

    count: int
    seconds: float
    latencies_ms: list[float]  # ascending

    @property
    def per_s(self) -> float:
        return self.count / self.seconds

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 0.50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 0.99)


async def drive(
    total: int, clients: int, seed: int, items: int, one: Callable[[Edit], Awaitable[None]]
) -> Run:
    """`clients` tasks each run `one` for their next edit until `total` have been issued."""
    issued = 0
    latencies: list[float] = []

    # Edits are drawn before the clock starts (the harness's random numbers are not the store's
    # cost), and handed out in the order clients ask for them.
    plans = [Workload(items, seed * 1000 + index) for index in range(clients)]
    edits = [plans[n % clients].next() for n in range(total)]

    async def client() -> None:
        nonlocal issued
        clock = time.perf_counter
        while issued < total:
            edit = edits[issued]
            issued += 1
            began = clock()
            await one(edit)
            latencies.append((clock() - began) * 1000)

    began = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(clients):
            group.create_task(client())
    seconds = time.perf_counter() - began
    latencies.sort()
    return Run(len(latencies), seconds, latencies)


# ---- huskies ----------------------------------------------------------------------------------


async def make_items(replica: Replica, items: int) -> None:
    tx = replica.transaction()
    tx.make((), ITEMS[0], ObjKind.MAP)
    await replica.change(tx)
    names = item_names(items)
    for start in range(0, len(names), MAKE_CHUNK):
        tx = replica.transaction()
        for name in names[start : start + MAKE_CHUNK]:
            tx.make(ITEMS, name, ObjKind.MAP)
        await replica.change(tx)


def replica_writer(replica: Replica) -> Callable[[Edit], Awaitable[None]]:
    async def one(edit: Edit) -> None:
        tx: Transaction = replica.transaction()
        path = (*ITEMS, edit[0])
        for key, value in edit_fields(edit):
            tx.set(path, key, value)
        await replica.change(tx)

    return one


async def bench_writes(
    path: Path, synchronous: Synchronous, changes: int, clients: int, items: int, every: int
) -> Run:
    async with await Replica.open(path, synchronous=synchronous, snapshot_every=every) as replica:
        await make_items(replica, items)
        return await drive(changes, clients, 1, items, replica_writer(replica))


async def build_log(
    path: Path, changes: int, clients: int, items: int, every: int
) -> tuple[Run, object]:
    """A closed database of `changes` workload changes; returns the run and the final view."""
    async with await Replica.open(path, snapshot_every=every) as replica:
        await make_items(replica, items)
        run = await drive(changes, clients, 2, items, replica_writer(replica))
        view = replica.document.view()
    return run, view


async def time_open(path: Path) -> tuple[float, object]:
    began = time.perf_counter()
    replica = await Replica.open(path)
    view_after = replica.document.view  # read below, outside the timing
    await replica.close()
    seconds = time.perf_counter() - began
    return seconds, view_after()


def checkpoint(path: Path) -> None:
    """Fold the WAL back into the main file so the file alone is the whole database."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def cold_copy(source: Path, target: Path) -> tuple[int, int]:
    """Copy `source` (checkpointed) to `target` without its snapshots.
    Returns (changes in the log, changes after the newest snapshot of `source`)."""
    checkpoint(source)
    shutil.copyfile(source, target)
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        logged = conn.execute("SELECT count(*) FROM changes").fetchone()[0]
        upto = conn.execute("SELECT coalesce(max(upto), 0) FROM snapshots").fetchone()[0]
        conn.execute("DELETE FROM snapshots")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return logged, logged - upto


async def bench_startup(
    root: Path, changes: int, clients: int, items: int, repeat: int, every: int
) -> dict[str, object]:
    path, cold = root / "startup.db", root / "startup-cold.db"
    build, view = await build_log(path, changes, clients, items, every)
    logged, tail = cold_copy(path, cold)
    warm_runs, cold_runs, ok = [], [], True
    for attempt in range(max(1, repeat)):
        seconds, reopened = await time_open(path)
        warm_runs.append(seconds)
        ok = ok and reopened == view
        # A fresh copy each time: closing a replica that replayed a long log snapshots it.
        fresh = root / f"startup-cold-{attempt}.db"
        shutil.copyfile(cold, fresh)
        seconds, reopened = await time_open(fresh)
        cold_runs.append(seconds)
        ok = ok and reopened == view
    return {
        "startup_changes": changes,
        "startup_log_changes": logged,
        "startup_replayed_after_snapshot": tail,
        "startup_build_changes_per_s": round(build.per_s),
        "startup_100k_snapshot_s": round(min(warm_runs), 3),
        "startup_100k_cold_s": round(min(cold_runs), 3),
        "startup_view_ok": ok,
    }


# ---- pycrdt-store -----------------------------------------------------------------------------


async def bench_pycrdt_store(path: Path, changes: int, clients: int, items: int) -> Run:
    from pycrdt import Doc, Map, TransactionEvent
    from pycrdt.store import SQLiteYStore

    doc: Doc = Doc()
    root = doc.get(ITEMS[0], type=Map)
    updates: list[bytes] = []

    def collect(event: TransactionEvent) -> None:
        updates.append(event.update)

    doc.observe(collect)
    with doc.transaction():
        for name in item_names(items):
            root[name] = Map()
    maps = {name: root[name] for name in item_names(items)}

    def change(edit: Edit) -> bytes:
        target = maps[edit[0]]
        with doc.transaction():
            for key, value in edit_fields(edit):
                target[key] = value
        return updates.pop()

    store = SQLiteYStore("bench")
    store.db_path = str(path)
    async with store:
        for update in updates:
            await store.write(update)
        updates.clear()

        async def one(edit: Edit) -> None:
            await store.write(change(edit))

        run = await drive(changes, clients, 3, items, one)
    # Its connection logs and swallows SQLite errors: check every update reached the file.
    conn = sqlite3.connect(path)
    try:
        stored = conn.execute("SELECT count(*) FROM yupdates").fetchone()[0]
    finally:
        conn.close()
    if stored < changes + 1:
        raise SystemExit(f"SQLiteYStore stored {stored} updates, expected {changes + 1}")
    return run


# ---- main -------------------------------------------------------------------------------------


def write_keys(prefix: str, run: Run) -> dict[str, object]:
    return {
        f"{prefix}_changes_per_s": round(run.per_s),
        f"{prefix}_p50_ms": round(run.p50_ms, 3),
        f"{prefix}_p99_ms": round(run.p99_ms, 3),
    }


async def run_all(args: argparse.Namespace, root: Path) -> dict[str, object]:
    result: dict[str, object] = {
        "changes": args.changes,
        "clients": args.clients,
        "snapshot_every": args.snapshot_every,
    }
    for prefix, synchronous in (("write", Synchronous.NORMAL), ("write_full", Synchronous.FULL)):
        run = await bench_writes(
            root / f"{prefix}.db",
            synchronous,
            args.changes,
            args.clients,
            args.items,
            args.snapshot_every,
        )
        result |= write_keys(prefix, run)
    result |= await bench_startup(
        root,
        args.startup_changes,
        args.clients,
        args.items,
        args.startup_repeat,
        args.snapshot_every,
    )
    sequential = await bench_pycrdt_store(
        root / "ystore-sequential.db", args.pycrdt_changes, 1, args.items
    )
    concurrent = await bench_pycrdt_store(
        root / "ystore-concurrent.db", args.pycrdt_changes, args.clients, args.items
    )
    best, mode = (
        (sequential, "sequential")
        if sequential.per_s >= concurrent.per_s
        else (concurrent, f"concurrent-{args.clients}")
    )
    result |= {
        "pycrdt_changes": args.pycrdt_changes,
        "pycrdt_store_updates_per_s": round(best.per_s),
        "pycrdt_store_p50_ms": round(best.p50_ms, 3),
        "pycrdt_store_p99_ms": round(best.p99_ms, 3),
        "pycrdt_store_mode": mode,
        "pycrdt_store_sequential_updates_per_s": round(sequential.per_s),
        "pycrdt_store_concurrent_updates_per_s": round(concurrent.per_s),
        "pycrdt_store_sequential_p99_ms": round(sequential.p99_ms, 3),
        "pycrdt_store_concurrent_p99_ms": round(concurrent.p99_ms, 3),
    }
    return result


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be ≥ 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--changes", type=positive, default=20_000, help="per write run")
    parser.add_argument("--clients", type=positive, default=32, help="concurrent writer tasks")
    parser.add_argument("--startup-changes", type=positive, default=100_000)
    parser.add_argument("--startup-repeat", type=positive, default=3, help="best of N opens")
    parser.add_argument("--pycrdt-changes", type=positive, default=3000)
    parser.add_argument("--items", type=positive, default=1000, help="item maps in the document")
    parser.add_argument(
        "--snapshot-every",
        type=positive,
        default=DEFAULT_SNAPSHOT_EVERY,
        help=f"the replica's snapshot interval (default {DEFAULT_SNAPSHOT_EVERY}, its own)",
    )
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where to make the temp dir")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="huskies-bench-", dir=args.tmp_dir) as tmp:
        result = asyncio.run(run_all(args, Path(tmp)))
    result |= {
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "sqlite_version": sqlite3.sqlite_version,
    }
    print(json.dumps(result))
    return 0 if result["startup_view_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
