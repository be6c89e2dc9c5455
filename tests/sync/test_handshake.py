"""`/crdt-sync` before authentication, against a real `huskies serve` on loopback: the handshake's
deadline, its small frame limit, the CBOR structure limits, the caps on connections still in
the handshake, and a flood of strangers that the server must ride out while a real peer syncs.

Connections come from several loopback addresses (127.0.0.2, …: all of 127/8 is loopback on
Linux) so that the per-address and total caps can be told apart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from huskies.crdt import Document, NodeKey
from huskies.sync.frames import Bye, Changes, Hello, Ping, Pong, decode_frame, encode_frame
from huskies.sync.link import STRANGER_WARNINGS_EVERY_S
from huskies.sync.protocol import Limits
from huskies.web.websocket_protocol import INITIAL_MESSAGE_BYTES

from ..crdt.support import set_key
from .support import Hostile, Node, converged, new_node, until

LIMITS = Limits()


async def stranger(url: str, source: str = "127.0.0.1") -> ClientConnection:
    """A WebSocket to `url` from `source` that has not authenticated (and never will)."""
    return await connect(
        url, max_size=None, compression=None, ping_interval=None, local_addr=(source, 0)
    )


async def said_bye(ws: ClientConnection) -> str:
    """The reason in the server's Bye, after which it must drop the connection."""
    while True:
        frame = decode_frame(await ws.recv(), 1 << 30)  # type: ignore[arg-type]
        if isinstance(frame, Bye):
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return frame.reason


@dataclass
class Strict:
    node: Node
    liar: NodeKey  # a key the node trusts, for a peer that misbehaves once authenticated


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Strict]:
    """One node for the tests that need no other, where a handshake must finish within 2 s."""
    node = new_node(tmp_path_factory.mktemp("strict"), "strict")
    liar = NodeKey(os.urandom(32))
    assert node.cli("node", "trust", liar.node_id).returncode == 0
    node.set_sync("handshake_timeout_secs", "2")
    node.start()
    yield Strict(node, liar)
    node.stop(signal.SIGKILL)


async def test_a_socket_that_only_pings_is_closed_at_the_handshake_deadline(strict):
    node = strict.node
    began = time.monotonic()  # before connecting: the server's clock for it starts later
    async with await stranger(node.url) as ws:
        assert isinstance(decode_frame(await ws.recv(), 1 << 20), Hello)  # type: ignore[arg-type]
        pongs = 0
        while True:
            with contextlib.suppress(ConnectionClosed):  # closed already: its Bye is queued
                await ws.send(encode_frame(Ping(pongs)))
            frame = decode_frame(await ws.recv(), 1 << 20)  # type: ignore[arg-type]
            if not isinstance(frame, Pong):
                break
            pongs += 1
            await asyncio.sleep(0.05)  # pacing the pings, not waiting for anything
        assert frame == Bye("handshake not finished within 2 s of connecting")
        assert time.monotonic() - began >= 2  # the pings, all answered, did not extend it
        assert pongs > 2
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    await until(lambda: node.health()["handshaking"] == 0, "its place to free up")


async def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    """The code and reason the server closed `ws` with (1006: without a close frame), after
    any frames before it."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await ws.recv()
    return ws.close_code, ws.close_reason


async def test_frames_too_big_for_the_handshake_are_refused_but_fine_once_authenticated(strict):
    node, liar = strict.node, strict.liar
    doc = Document()
    small = set_key(doc, liar, "small", "x" * 5_000)
    large = set_key(doc, liar, "large", "y" * 500_000)  # over the first message limit
    frame, large_frame = encode_frame(Changes((small,))), encode_frame(Changes((large,)))
    # Over the handshake's limit: the session refuses it on its length, saying so.
    async with await stranger(node.url) as ws:
        await ws.send(frame)
        limit = LIMITS.max_handshake_frame_bytes
        expected = (
            f"before authentication: frame of {len(frame)} bytes is over the limit of {limit}"
        )
        assert expected in await said_bye(ws)
    # Far over it: the WebSocket layer cuts the connection on the message's header.
    async with await stranger(node.url) as ws:
        with contextlib.suppress(ConnectionClosed):  # cut before it was all sent, perhaps
            await ws.send(large_frame)
        code, reason = await closed_with(ws)
        assert code == 1009  # message too big
        assert f"{len(large_frame)} bytes" in str(reason)
        assert f"limit of {INITIAL_MESSAGE_BYTES} bytes" in str(reason)
    # Both are ordinary chunks of changes once the peer is authenticated.
    async with Hostile(liar, node.url) as peer:
        await peer.ws.send(frame)
        await peer.ws.send(large_frame)
        await until(lambda: asyncio.to_thread(holds, node, "small", "large"), "both changes")


def holds(node: Node, *keys: str) -> bool:
    """Whether the node's document has all of `keys` at its root."""
    url = f"http://127.0.0.1:{node.port}/api/state"
    with urllib.request.urlopen(url, timeout=30) as answer:
        return set(keys) <= set(json.load(answer)["document"])


HOSTILE_BEFORE_AUTH = [
    (b"\x81" * 3_000 + b"\x00", "frame nests arrays more than 4 deep"),
    (b"\x82\x01\x9b" + (1 << 32).to_bytes(8, "big"), "an array of 4294967296 items"),
    (b"\x82\x01\x5b" + (1 << 62).to_bytes(8, "big"), "a string of 4611686018427387904 bytes"),
    (b"\x9f" + b"\x01" * 10 + b"\xff", "indefinite-length array"),
    (encode_frame(Ping(0))[:-1] + b"\x96" + b"\x00" * 22, "frame holds more than 16 items"),
]


async def test_hostile_cbor_is_refused_with_the_reason_before_and_after_authentication(strict):
    node, liar = strict.node, strict.liar
    for data, problem in HOSTILE_BEFORE_AUTH:
        async with await stranger(node.url) as ws:
            await ws.send(data)
            assert problem in await said_bye(ws), problem
    hostile_after_auth = [
        (b"\x81" * 100_000 + b"\x00", "frame nests arrays more than 4 deep"),
        (b"\x82\x01\x9b" + (1 << 32).to_bytes(8, "big"), "an array of 4294967296 items"),
        (b"\x83\x01\x03\x9a" + (100_000).to_bytes(4, "big") + bytes(100_000), "65536 items"),
    ]
    for data, problem in hostile_after_auth:
        async with Hostile(liar, node.url) as peer:
            await peer.ws.send(data)
            assert problem in (await peer.expect(Bye)).reason, problem
    await until(lambda: node.health()["peers"] == [], "the cut peers to be gone")


@contextlib.asynccontextmanager
async def held(url: str, source: str, count: int) -> AsyncIterator[list[ClientConnection]]:
    sockets = [await stranger(url, source) for _ in range(count)]
    try:
        yield sockets
    finally:
        for ws in sockets:
            await ws.close()


async def refusal(url: str, source: str) -> str:
    """The body of the 503 a new connection from `source` gets."""
    with pytest.raises(InvalidStatus) as refused:
        await stranger(url, source)
    response = refused.value.response
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "10"
    return response.body.decode()


async def test_connections_beyond_the_handshake_caps_are_refused_and_places_free_up(make_node):
    node = make_node("a")
    node.set_sync("handshake_timeout_secs", "120")  # the strangers stay for the whole test
    node.start()
    per_address, total = LIMITS.max_handshakes_per_address, LIMITS.max_handshakes
    began = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(held(node.url, "127.0.0.1", per_address))
        assert "8 connections from 127.0.0.1 are in the handshake" in await refusal(
            node.url, "127.0.0.1"
        )
        for n in range(2, 2 + (total - per_address) // per_address):
            await stack.enter_async_context(held(node.url, f"127.0.0.{n}", per_address))
        for _ in range(20):
            assert "64 connections are in the handshake" in await refusal(node.url, "127.0.0.99")
        # Strangers are counted, never listed as peers.
        health = node.health()
        assert (health["handshaking"], health["peers"]) == (total, [])
        assert health["lag"]["catching_up"] == 0
        assert health["handshakes_refused"] == 21
        listing = node.cli("node", "peers").stdout
        assert "No peers connected." in listing
        assert f"handshaking: {total}" in listing
        # 21 refusals, a warning per STRANGER_WARNINGS_EVERY_S at most: the log is not flooded.
        warnings = node.log.read_text().count("connections to /crdt-sync refused")
        assert 1 <= warnings <= 1 + (time.monotonic() - began) / STRANGER_WARNINGS_EVERY_S
        # A place that frees up is taken again.
        await first.pop().close()
        await until(
            lambda: asyncio.to_thread(lambda: node.health()["handshaking"] == total - 1),
            "the closed stranger's place to free up",
        )
        first.append(await stranger(node.url, "127.0.0.99"))
        assert "64 connections" in await refusal(node.url, "127.0.0.1")


@contextlib.contextmanager
def as_many_files_as_allowed() -> Iterator[None]:
    """Raise this process's soft limit on open files to the hard one (2,000 sockets need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@dataclass
class Flood:
    """Strangers against one server: idle sockets held as long as it lets them, and senders
    that stream frames as large as a peer's may be, reconnecting each time they are cut."""

    url: str
    admitted: int = 0
    refused: int = 0
    oversized_sent: int = 0

    async def hold_idle(self, count: int, sources: list[str], stop: asyncio.Event) -> None:
        gate = asyncio.Semaphore(100)  # connecting at once: within the server's listen backlog

        async def one(source: str) -> None:
            async with gate:
                try:
                    ws = await stranger(self.url, source)
                except InvalidStatus:
                    self.refused += 1
                    return
            self.admitted += 1
            async with ws:
                with contextlib.suppress(ConnectionClosed):
                    await stop.wait()  # idle, until the server drops it or the test ends

        await asyncio.gather(*(one(sources[n % len(sources)]) for n in range(count)))

    async def send_oversized(self, source: str, stop: asyncio.Event) -> None:
        frame = b"\x00" * LIMITS.max_frame_bytes  # as large as a peer's frame may be
        while not stop.is_set():
            try:
                async with await stranger(self.url, source) as ws:
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send(frame)
                    self.oversized_sent += 1
                    assert (await closed_with(ws))[0] == 1009
            except InvalidStatus:
                self.refused += 1


async def test_a_flood_of_strangers_leaves_health_answering_and_a_real_peer_syncing(make_node):
    """The issue's scenario: 2,000 idle sockets and a few senders of 4 MiB frames, none of
    them authenticated. Only behaviour is asserted; bench/sync_flood.py measures latency."""
    a, b = make_node("a"), make_node("b")
    for node, other in ((a, b), (b, a)):
        assert node.cli("node", "trust", other.cli("node", "id").stdout.strip()).returncode == 0
    with as_many_files_as_allowed():
        a.start()
        began = time.monotonic()
        idle_fds = a.open_fds()
        flood, stop = Flood(a.url), asyncio.Event()
        fds: list[int] = []
        answered = 0

        async def ask_health() -> None:
            nonlocal answered
            while not stop.is_set():
                await asyncio.to_thread(a.health, 30)  # raises if it does not answer
                answered += 1
                fds.append(a.open_fds())

        idle_sources = [f"127.0.0.{n}" for n in range(2, 6)]
        async with asyncio.TaskGroup() as group:
            group.create_task(ask_health())
            for n in range(6, 9):
                group.create_task(flood.send_oversized(f"127.0.0.{n}", stop))
            group.create_task(flood.hold_idle(2_000, idle_sources, stop))
            await until(lambda: flood.admitted + flood.refused >= 2_000, "the idle sockets")
            b.set_rendezvous(a.url)
            await asyncio.to_thread(b.start)  # dials from 127.0.0.1 while the flood goes on

            def synced() -> bool:
                peers = a.health()["peers"]
                return converged(a, b) is not None and [p["caught_up"] for p in peers] == [True]

            await until(lambda: asyncio.to_thread(synced), "b to sync with a")
            stop.set()
    assert flood.admitted + flood.refused >= 2_000
    assert flood.refused >= 2_000 - LIMITS.max_handshakes
    assert flood.oversized_sent > 0
    assert answered > 0
    # Strangers hold at most their places in the handshake (and briefly, sockets closing).
    assert max(fds) < idle_fds + 4 * LIMITS.max_handshakes
    assert a.health()["handshakes_refused"] >= flood.refused
    # Thousands of strangers, a few lines of log.
    log = a.log.read_text()
    most = 1 + (time.monotonic() - began) / STRANGER_WARNINGS_EVERY_S
    for warning in ("connections to /crdt-sync refused", "cut before they authenticated"):
        assert 1 <= log.count(warning) <= most, warning
