"""Sync catch-up and live latency of huskies nodes, side by side with pycrdt-websocket.

Prints one JSON object. Every connection is a real WebSocket on 127.0.0.1: the serving node is
huskies' own `/crdt-sync` endpoint (`sync_route` around a `Node`, as `huskies serve` mounts it)
under uvicorn with huskies' WebSocket protocol and message limit, as `huskies serve` runs it
(small messages until a peer is admitted); the dialling nodes use
`websockets.asyncio.client.connect` and `run_link`, as `Node.dial_forever` does. The workload is
bench/replica.py's: ~1000 item maps (made first, untimed), and each change sets 2-3 fields of one
item.

A, B, C and the pycrdt-websocket server and client all run in this one process, on one
event loop (B's signature checks on a worker thread, as `Replica.ingest_many` does them). That
is the chosen arrangement rather than a `huskies serve` subprocess for A: A's whole part of a
catch-up (catchup_answer_s: finding and encoding the changes) is a few per cent of it, done
before B's first chunk arrives either way, and B's ingest is serial (verify a chunk, file and
apply it, then read the next), so a core of A's own would change little; in-process also
makes the breakdown below possible, lets the live run time A's changes against B's and C's
subscriptions directly, and puts pycrdt-websocket in exactly the same arrangement. The live
latencies include all three nodes' work on the one loop (a pessimistic choice).

  catchup_10k_s: node A holds --catchup-changes (default 10,000) workload changes, built before
      the clock starts. Node B, with an empty database (its schema created, untimed), dials A;
      the time runs from B starting to dial until B's document holds every change A has (B
      verifies every signature on ingest). Median of --repeat runs (default 3; the lower middle
      one for an even count), a fresh B each time; catchup_runs_s lists them all. B receives
      the changes that made the items too (catchup_changes_sent).
  catchup_wire_bytes_ratio: the bytes B received (PeerInfo.bytes_in, every frame of the link)
      / the sum of len(SignedChange.to_bytes()) over the changes it received.
  catchup_first_change_s: from the dial until B applied its first change (connection,
      handshake, and A encoding its whole answer before sending the first chunk).
  catchup_answer_s: A's `changes_since` plus encoding the chunks, timed separately.
  catchup_verify_s / catchup_verify_share: `decode_signed` (hash, decode, canonical check and
      signature) over the same changes on one thread, measured separately after the run, and
      its share of catchup_10k_s; catchup_signature_s the Ed25519 checks alone.
  live_p50_ms, live_p99_ms: A, and B and C dialling A, all caught up; then --live-changes
      (default 500) changes made on A one after another with `replica.change`, each timed from
      building it until both B and C applied it (seen through `replica.subscribe()`).
  pycrdt_websocket_catchup_10k_s: pycrdt-websocket's server (WebsocketServer behind its
      ASGIServer, under the same uvicorn) holds a room whose Doc got the same number of workload
      updates, one transaction each; a second, empty Doc connects through pycrdt's Provider
      over a `websockets` client, and the time runs until the Provider is synced (the server's
      SYNC_STEP2, one merged update, applied). Nothing is signed or verified. Median of
      --repeat runs, a fresh Doc each time.

(The keys say 10k whatever --catchup-changes is.) Databases go in one fresh temporary
directory (inside --tmp-dir if given).

Usage: python bench/sync.py [--catchup-changes N] [--live-changes N] [--items N]
                            [--repeat N] [--tmp-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from replica import (
    ITEMS,
    Workload,
    drive,
    edit_fields,
    item_names,
    make_items,
    percentile,
    positive,
    replica_writer,
)
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from huskies.crdt import Document, SignedChange, decode_signed, verify_signature
from huskies.server import VERIFY_PROCESSES
from huskies.services.node import Node
from huskies.store import Replica
from huskies.store.replica import Subscription, wall_clock_ms
from huskies.sync.frames import Changes, encode_frame
from huskies.sync.link import PeerInfo, Peers, run_link
from huskies.sync.protocol import Limits
from huskies.sync.transports import DialledTransport, max_message_bytes
from huskies.sync.trust import Trust, TrustStore
from huskies.web.sync_ws import sync_route
from huskies.web.websocket_protocol import LimitedWebSocketProtocol

LIMITS = Limits()
BUILD_CLIENTS = 32  # concurrent writers while A's log is built (untimed)
PYCRDT_ROOM = "/bench"
# Fixed, so update sizes repeat from run to run; a 32-bit id like the random ones Yjs draws
# (most of which take 5 bytes as a varint, as this one does).
PYCRDT_CLIENT_ID = 3_141_592_653


# ---- serving over uvicorn ---------------------------------------------------------------------


class _Server(uvicorn.Server):
    """Leaves signals alone (as `huskies serve` does): this process is not a server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: Any, *, huskies: bool) -> AsyncIterator[int]:
    """Serve `app` on 127.0.0.1 on a free port (yielded) until the block ends; a huskies app
    with the WebSocket settings `huskies serve` uses, others with uvicorn's own."""
    sock = socket.socket(socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = _Server(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            ws=LimitedWebSocketProtocol if huskies else "websockets-sansio",
            ws_max_size=max_message_bytes(LIMITS) if huskies else 16 << 20,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    try:
        while not server.started:
            if task.done():
                task.result()  # it failed to start: say why
            await asyncio.sleep(0.01)  # polling uvicorn's start flag, once per server
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


# ---- huskies nodes ----------------------------------------------------------------------------


@dataclass
class Member:
    """A replica with the trust a node gives it."""

    replica: Replica
    store: TrustStore
    trust: Trust
    trusted: set[bytes]  # what Trust reads as the configured keys

    @classmethod
    async def open(cls, path: Path) -> Member:
        # As `huskies serve` opens it: catch-up signatures checked on verifier processes.
        replica = await Replica.open(path, verify_processes=VERIFY_PROCESSES)
        store = TrustStore(path)
        trusted: set[bytes] = set()
        return cls(replica, store, Trust(lambda: trusted, store), trusted)

    def trusts(self, *others: Member) -> None:
        self.trusted.update(other.replica.public_key for other in others)

    async def close(self) -> None:
        self.store.close()
        await self.replica.close()


@dataclass
class Dialled:
    """A link from a member to a served node, running in a task."""

    info: PeerInfo
    task: asyncio.Task[str]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def dial(member: Member, port: int) -> Dialled:
    url = f"ws://127.0.0.1:{port}/crdt-sync"
    connection = await connect(
        url, max_size=LIMITS.max_frame_bytes, compression=None, ping_interval=None
    )
    info = PeerInfo(url, "out", wall_clock_ms() / 1000)
    task = asyncio.create_task(
        run_link(
            DialledTransport(connection),
            member.replica,
            member.trust,
            Peers(),
            info,
            limits=LIMITS,
            wall_ms=wall_clock_ms,
        )
    )
    return Dialled(info, task)


def node_of(member: Member) -> Node:
    return Node(
        member.replica,
        member.trust,
        member.store,
        address="ws://127.0.0.1/crdt-sync",
        role="server",
        limits=LIMITS,
        wall_ms=wall_clock_ms,
    )


async def holds(replica: Replica, count: int) -> float:
    """Wait until `replica` has applied `count` changes; returns when its first change applied
    (perf_counter)."""
    doc = replica.document
    subscription = replica.subscribe(maxsize=count + 1)
    first = 0.0
    try:
        if doc.change_count >= count:
            return time.perf_counter()
        async for _ in subscription:
            first = first or time.perf_counter()
            if doc.change_count >= count:
                break
    finally:
        subscription.close()
    return first


# ---- catch-up ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Catchup:
    seconds: float
    first_s: float
    bytes_in: int
    frames_in: int


async def catch_up_once(a: Member, port: int, path: Path) -> Catchup:
    b = await Member.open(path)
    try:
        a.trusts(b)
        b.trusts(a)
        target = a.replica.document.change_count
        waiter = asyncio.create_task(holds(b.replica, target))
        await asyncio.sleep(0)  # the waiter subscribes before anything can arrive
        began = time.perf_counter()
        link = await dial(b, port)
        await asyncio.wait({waiter, link.task}, return_when=asyncio.FIRST_COMPLETED)
        seconds = time.perf_counter() - began
        bytes_in, frames_in = link.info.bytes_in, link.info.frames_in
        if not waiter.done():
            waiter.cancel()
            raise SystemExit(f"catch-up: the link closed early: {link.task.result()}")
        first = waiter.result()
        await link.stop()
        if b.replica.document.clock() != a.replica.document.clock():
            raise SystemExit("catch-up: B's clock differs from A's")
        if b.replica.document.view() != a.replica.document.view():
            raise SystemExit("catch-up: B's document differs from A's")
        return Catchup(seconds, first - began, bytes_in, frames_in)
    finally:
        await b.close()


def answer_cost(doc: Document) -> float:
    """Seconds for what A does to answer an empty clock: find the changes, encode the chunks
    (chunked by count only; the workload's changes are far under the byte limit)."""
    began = time.perf_counter()
    missing = doc.changes_since({})
    step = LIMITS.max_chunk_changes
    for start in range(0, len(missing), step):
        encode_frame(Changes(tuple(missing[start : start + step])))
    return time.perf_counter() - began


def verify_costs(changes: list[SignedChange]) -> tuple[float, float]:
    """Seconds for `decode_signed` over `changes`, and for their signature checks alone."""
    began = time.perf_counter()
    for change in changes:
        decode_signed(change)
    decoded = time.perf_counter() - began
    began = time.perf_counter()
    for change in changes:
        verify_signature(change.signer, change.id, change.signature)
    return decoded, time.perf_counter() - began


async def bench_catchup(root: Path, changes: int, items: int, repeat: int) -> dict[str, object]:
    a = await Member.open(root / "a.db")
    try:
        await make_items(a.replica, items)
        await drive(changes, BUILD_CLIENTS, 11, items, replica_writer(a.replica))
        sent = a.replica.document.changes_since({})
        change_bytes = sum(len(change.to_bytes()) for change in sent)
        runs: list[Catchup] = []
        async with serving(Starlette(routes=[sync_route(node_of(a))]), huskies=True) as port:
            for run in range(repeat):
                runs.append(await catch_up_once(a, port, root / f"b{run}.db"))
        answer_s = answer_cost(a.replica.document)
    finally:
        await a.close()
    verify_s, signature_s = verify_costs(sent)
    middle = sorted(runs, key=lambda r: r.seconds)[(len(runs) - 1) // 2]
    return {
        "catchup_changes": changes,
        "catchup_changes_sent": len(sent),  # the workload's, and the ones that made the items
        "catchup_10k_s": round(middle.seconds, 3),
        "catchup_runs_s": [round(r.seconds, 3) for r in runs],
        "catchup_changes_per_s": round(len(sent) / middle.seconds),
        "catchup_first_change_s": round(middle.first_s, 3),
        "catchup_wire_bytes": middle.bytes_in,
        "catchup_change_bytes": change_bytes,
        "catchup_wire_bytes_ratio": round(middle.bytes_in / change_bytes, 4),
        "catchup_frames": middle.frames_in,
        "catchup_answer_s": round(answer_s, 4),
        "catchup_verify_s": round(verify_s, 4),
        "catchup_signature_s": round(signature_s, 4),
        "catchup_verify_share": round(verify_s / middle.seconds, 3),
    }


# ---- live -------------------------------------------------------------------------------------


async def caught_up(links: list[Dialled], replicas: list[Replica], count: int) -> None:
    while not (
        all(link.info.caught_up for link in links)
        and all(r.document.change_count >= count for r in replicas)
    ):
        for link in links:
            if link.task.done():
                raise SystemExit(f"live: a link closed: {link.task.result()}")
        await asyncio.sleep(0.01)  # setup only, before the clock runs


async def applied(subscription: Subscription, change_id: bytes) -> float:
    """perf_counter when `change_id` comes out of `subscription`."""
    async for published in subscription:
        if published.change.id == change_id:
            return time.perf_counter()
    raise SystemExit("live: a replica closed before the change arrived")


async def time_live(source: Replica, sinks: list[Replica], changes: int, items: int) -> list[float]:
    """Milliseconds from building each change on `source` until every sink applied it."""
    watched = [sink.subscribe() for sink in sinks]
    edits = Workload(items, 21)
    latencies: list[float] = []
    try:
        for _ in range(changes):
            edit = edits.next()
            began = time.perf_counter()
            tx = source.transaction()
            for key, value in edit_fields(edit):
                tx.set((*ITEMS, edit[0]), key, value)
            made = await source.change(tx)
            assert made is not None
            seen = await asyncio.gather(*(applied(s, made.id) for s in watched))
            latencies.append((max(seen) - began) * 1000)
    finally:
        for subscription in watched:
            subscription.close()
    return latencies


async def bench_live(root: Path, changes: int, items: int) -> dict[str, object]:
    a = await Member.open(root / "live-a.db")
    b = await Member.open(root / "live-b.db")
    c = await Member.open(root / "live-c.db")
    a.trusts(b, c)
    b.trusts(a)
    c.trusts(a)
    latencies: list[float] = []
    try:
        await make_items(a.replica, items)
        async with serving(Starlette(routes=[sync_route(node_of(a))]), huskies=True) as port:
            links = [await dial(b, port), await dial(c, port)]
            try:
                await caught_up(links, [b.replica, c.replica], a.replica.document.change_count)
                latencies = await time_live(a.replica, [b.replica, c.replica], changes, items)
            finally:
                for link in links:
                    await link.stop()
        if not b.replica.document.view() == c.replica.document.view() == a.replica.document.view():
            raise SystemExit("live: the three documents differ")
    finally:
        for member in (c, b, a):
            await member.close()
    latencies.sort()
    return {
        "live_changes": changes,
        "live_p50_ms": round(percentile(latencies, 0.50), 3),
        "live_p99_ms": round(percentile(latencies, 0.99), 3),
        "live_max_ms": round(latencies[-1], 3),
    }


# ---- pycrdt-websocket -------------------------------------------------------------------------


class WebsocketChannel:
    """A pycrdt `Channel` over a `websockets` client connection, counting bytes received."""

    def __init__(self, connection: ClientConnection, path: str) -> None:
        self._connection = connection
        self._path = path
        self.bytes_in = 0

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WebsocketChannel:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def send(self, message: bytes) -> None:
        await self._connection.send(message)

    async def recv(self) -> bytes:
        data = await self._connection.recv()
        message = data if isinstance(data, bytes) else data.encode()
        self.bytes_in += len(message)
        return message


def pycrdt_doc(changes: int, items: int) -> tuple[Any, int]:
    """A pycrdt Doc holding the items and `changes` workload updates, one transaction each;
    and the total size of those updates."""
    from pycrdt import Doc, Map, TransactionEvent

    doc: Doc = Doc(client_id=PYCRDT_CLIENT_ID)
    root = doc.get(ITEMS[0], type=Map)
    sizes: list[int] = []

    def count(event: TransactionEvent) -> None:
        sizes.append(len(event.update))

    subscription = doc.observe(count)
    with doc.transaction():
        for name in item_names(items):
            root[name] = Map()
    maps = {name: root[name] for name in item_names(items)}
    edits = Workload(items, 11)
    for _ in range(changes):
        edit = edits.next()
        target = maps[edit[0]]
        with doc.transaction():
            for key, value in edit_fields(edit):
                target[key] = value
    doc.unobserve(subscription)
    return doc, sum(sizes)


async def pycrdt_catch_up_once(port: int, expected: Any) -> tuple[float, int]:
    from pycrdt import Doc, Map, Provider

    doc: Doc = Doc()
    began = time.perf_counter()
    async with connect(
        f"ws://127.0.0.1:{port}{PYCRDT_ROOM}", max_size=None, compression=None, ping_interval=None
    ) as connection:
        channel = WebsocketChannel(connection, PYCRDT_ROOM)
        async with Provider(doc, channel) as provider:
            await provider.synced.wait()
            seconds = time.perf_counter() - began
    if doc.get(ITEMS[0], type=Map).to_py() != expected:
        raise SystemExit("pycrdt-websocket: the second Doc differs from the first")
    return seconds, channel.bytes_in


async def bench_pycrdt(changes: int, items: int, repeat: int) -> dict[str, object]:
    from pycrdt import Map
    from pycrdt.websocket import ASGIServer, WebsocketServer, YRoom

    doc, update_bytes = pycrdt_doc(changes, items)
    expected = doc.get(ITEMS[0], type=Map).to_py()
    runs: list[tuple[float, int]] = []
    async with WebsocketServer(auto_clean_rooms=False) as websocket_server:
        websocket_server.rooms[PYCRDT_ROOM] = YRoom(ready=True, ydoc=doc)
        async with serving(ASGIServer(websocket_server), huskies=False) as port:
            for _ in range(repeat):
                runs.append(await pycrdt_catch_up_once(port, expected))
    seconds = sorted(r[0] for r in runs)[(len(runs) - 1) // 2]
    return {
        "pycrdt_websocket_catchup_10k_s": round(seconds, 3),
        "pycrdt_websocket_runs_s": [round(r[0], 3) for r in runs],
        "pycrdt_websocket_wire_bytes": runs[0][1],
        "pycrdt_update_bytes": update_bytes,
        "pycrdt_websocket_wire_bytes_ratio": round(runs[0][1] / update_bytes, 4),
    }


# ---- main -------------------------------------------------------------------------------------


async def run_all(args: argparse.Namespace, root: Path) -> dict[str, object]:
    result: dict[str, object] = {}
    result |= await bench_catchup(root, args.catchup_changes, args.items, args.repeat)
    result |= await bench_live(root, args.live_changes, args.items)
    result |= await bench_pycrdt(args.catchup_changes, args.items, args.repeat)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--catchup-changes", type=positive, default=10_000)
    parser.add_argument("--live-changes", type=positive, default=500)
    parser.add_argument("--items", type=positive, default=1000, help="item maps in the document")
    parser.add_argument("--repeat", type=positive, default=3, help="catch-up runs (median)")
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where to make the temp dir")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="huskies-bench-", dir=args.tmp_dir) as tmp:
        result = asyncio.run(run_all(args, Path(tmp)))
    result |= {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
