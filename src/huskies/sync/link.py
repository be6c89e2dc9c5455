"""One sync connection, driven: a `Session` over a WebSocket, fed by the replica.

The same driver serves both ends: the server's `/crdt-sync` endpoint and the rendezvous
client hand it a `Transport`. Four child tasks share one task group: the reader feeds received
frames to the session, the writer sends from a bounded queue, the live task forwards what the
replica applies, and the ticker keeps the connection alive and enforces the handshake's
deadline. When the queue is full the session stops live sends and catches the peer up again
once it drains, so a slow peer costs bounded memory and is not dropped.

A connection is a peer only once it is authenticated and admitted; until then `Peers` counts it
as a handshake, and the listener refuses new connections while too many are in the handshake.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from huskies.crdt import Rejected, VerifiedChange
from huskies.store import Replica, SubscriptionLagged
from huskies.sync.protocol import (
    Action,
    CaughtUp,
    CheckPeer,
    Close,
    Deliver,
    Limits,
    Send,
    Session,
    State,
)
from huskies.sync.trust import Trust

log = logging.getLogger("huskies.sync")

SEND_QUEUE = 256  # frames waiting for a slow peer before live sends stop
TICK_S = 1.0
# Strangers can arrive faster than a log should grow: warnings about them are written at most
# once per this long, with a count of the ones held back.
STRANGER_WARNINGS_EVERY_S = 10.0


class Transport(Protocol):
    async def recv(self) -> bytes: ...
    async def send(self, data: bytes) -> None: ...
    def allow_frames_up_to(self, max_bytes: int) -> None:
        """The peer is admitted: its frames may be as large as `max_bytes` from now on (until
        then the connection may take no more than a handshake needs)."""
        ...

    async def close(self, reason: str, *, graceful: bool = True) -> None:
        """End the connection. Not graceful: drop it without waiting for the other side's part
        of the closing handshake (a stranger that never answers must not hold the socket)."""
        ...


class TransportClosed(Exception):
    """The connection ended underneath the session; `peer_fault`: because the WebSocket layer
    refused what the peer sent (a message too large, say)."""

    def __init__(self, reason: str, *, peer_fault: bool = False) -> None:
        super().__init__(reason)
        self.peer_fault = peer_fault


@dataclass
class PeerInfo:
    """What /health and `huskies node peers` show about one connection."""

    address: str
    direction: str  # "in" or "out"
    connected_at: float
    peer: str | None = None
    caught_up: bool = False
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    queued: int = 0
    fell_behind: int = 0  # times its send queue filled and live sends stopped


class HandshakeRefused(Exception):
    """Too many connections are in the handshake; the message says which limit."""


class ThrottledWarnings:
    """Warnings of one kind, written at most once per `every_s` however often they happen, each
    saying how many happened since the last; all are counted."""

    def __init__(self, what: str, every_s: float = STRANGER_WARNINGS_EVERY_S) -> None:
        self.what = what
        self.count = 0
        self._every_s = every_s
        self._held = 0
        self._next = float("-inf")  # when the next warning may be written (monotonic)

    def warn(self, latest: str, now: float) -> None:
        self.count += 1
        self._held += 1
        if now < self._next:
            return
        log.warning(
            "%s: %d since the last such warning (one at most every %.0f s); the latest: %s",
            self.what,
            self._held,
            self._every_s,
            latest,
        )
        self._held = 0
        self._next = now + self._every_s


@dataclass
class Peers:
    """The node's connections: admitted peers (authenticated and allowed), and connections
    still in the handshake, which are not peers yet."""

    links: dict[int, PeerInfo] = field(default_factory=dict)  # admitted peers
    # Connections in the handshake, with their address group (None: dialled by us, never
    # refused for the handshake limits).
    handshakes: dict[int, tuple[PeerInfo, str | None]] = field(default_factory=dict)
    refused: ThrottledWarnings = field(
        default_factory=lambda: ThrottledWarnings("connections to /crdt-sync refused")
    )
    strangers_cut: ThrottledWarnings = field(
        default_factory=lambda: ThrottledWarnings("connections cut before they authenticated")
    )

    def snapshot(self) -> list[PeerInfo]:
        """The admitted peers."""
        return list(self.links.values())

    def handshaking(self) -> int:
        return len(self.handshakes)

    def begin(self, info: PeerInfo, group: str | None = None) -> None:
        """A connection starts its handshake (nothing changes if it already has)."""
        self.handshakes.setdefault(id(info), (info, group))

    def begin_inbound(self, info: PeerInfo, group: str, limits: Limits, now: float) -> None:
        """An inbound connection from address `group` starts its handshake, or raises
        HandshakeRefused (and warns, sparingly) if that would pass `limits`."""
        try:
            self._check_room(group, limits)
        except HandshakeRefused as refused:
            self.refused.warn(f"{info.address}: {refused}", now)
            raise
        self.begin(info, group)

    def _check_room(self, group: str, limits: Limits) -> None:
        inbound = [g for _, g in self.handshakes.values() if g is not None]
        if len(inbound) >= limits.max_handshakes:
            raise HandshakeRefused(
                f"{len(inbound)} connections are in the handshake, the most this node allows"
            )
        from_group = inbound.count(group)
        if from_group >= limits.max_handshakes_per_address:
            raise HandshakeRefused(
                f"{from_group} connections from {group} are in the handshake, the most this "
                "node allows from one address"
            )

    def admit(self, info: PeerInfo) -> None:
        """The connection's handshake finished: it is a peer now."""
        self.handshakes.pop(id(info), None)
        self.links[id(info)] = info

    def end(self, info: PeerInfo) -> None:
        self.handshakes.pop(id(info), None)
        self.links.pop(id(info), None)

    def log_end(self, info: PeerInfo, reason: str, *, peer_fault: bool) -> None:
        """Log why a link ended. An inbound connection that never became a peer is a stranger,
        and strangers can come faster than the log should grow: a fault of theirs is a
        throttled warning, their leaving is only debug."""
        who = info.peer or info.address
        if info.direction == "in" and id(info) not in self.links:
            if peer_fault:
                self.strangers_cut.warn(f"{who}: {reason}", time.monotonic())
            else:
                log.debug("sync with %s ended before it authenticated: %s", who, reason)
            return
        level = logging.WARNING if peer_fault else logging.INFO
        log.log(level, "sync with %s ended: %s", who, reason)


def address_group(host: str) -> str:
    """What the per-address handshake limit counts by: the address itself, or for IPv6 its /64
    (one host is commonly given a whole /64)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class _Closed(Exception):
    def __init__(self, close: Close) -> None:
        super().__init__(close.reason)
        self.close = close


async def run_link(
    transport: Transport,
    replica: Replica,
    trust: Trust,
    peers: Peers,
    info: PeerInfo,
    *,
    token: str | None = None,
    limits: Limits | None = None,
    wall_ms: Callable[[], int],
) -> str:
    """Run one connection until it closes; returns why it closed."""
    clock = time.monotonic
    session = Session(replica.signer, os.urandom(32), clock(), token=token, limits=limits)
    outbox: asyncio.Queue[bytes] = asyncio.Queue(SEND_QUEUE)
    # Chunks of changes being checked, in arrival order; bounded so a fast sender waits.
    arriving: asyncio.Queue[asyncio.Future[list[VerifiedChange | Rejected]]] = asyncio.Queue(2)
    doc = replica.document
    peers.begin(info)

    async def act(actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Send(data):
                    try:
                        outbox.put_nowait(data)
                    except asyncio.QueueFull:
                        if session.sending_live:
                            info.fell_behind += 1
                        session.fell_behind()
                    info.queued = outbox.qsize()
                case CheckPeer(key, offered):
                    allowed, reason = trust.check(key, offered, wall_ms())
                    info.peer = key.hex()
                    answer = session.peer_checked(allowed, reason, doc)
                    if session.state is State.OPEN:
                        peers.admit(info)
                        transport.allow_frames_up_to(session.limits.max_frame_bytes)
                    await act(answer)
                case Deliver(changes):
                    # Checked on their way in, so checking the next chunk overlaps filing this.
                    await arriving.put(asyncio.ensure_future(replica.check(changes)))
                case CaughtUp():
                    info.caught_up = True
                case Close():
                    raise _Closed(action)

    async def reader() -> None:
        while True:
            data = await transport.recv()
            info.frames_in += 1
            info.bytes_in += len(data)
            await act(session.receive(data, clock(), doc))

    async def writer() -> None:
        while True:
            data = await outbox.get()
            await transport.send(data)
            info.frames_out += 1
            info.bytes_out += len(data)
            info.queued = outbox.qsize()
            if outbox.empty():
                await act(session.drained())

    async def live() -> None:
        while True:
            subscription = replica.subscribe(maxsize=SEND_QUEUE * 4)
            try:
                async for published in subscription:
                    await act(session.publish(published.change))
                return  # the replica closed
            except SubscriptionLagged:
                # We missed changes: stop live sends and, once nothing is queued, catch the
                # peer up from its clock instead.
                session.fell_behind()
                if outbox.empty():
                    await act(session.drained())
            finally:
                subscription.close()

    async def ingester() -> None:
        while True:
            checked = await (await arriving.get())
            await act(session.delivered(await replica.ingest_verified(checked)))

    async def ticker() -> None:
        while True:
            await asyncio.sleep(TICK_S)  # a timer: keepalive is about elapsed time
            await act(session.tick(clock()))

    reason = "connection ended"
    try:
        await act(session.start())
        async with asyncio.TaskGroup() as group:
            for work in (reader, writer, live, ingester, ticker):
                group.create_task(work())
    except* _Closed as closed:
        close = closed.exceptions[0]
        assert isinstance(close, _Closed)
        reason = close.close.reason
        peers.log_end(info, reason, peer_fault=close.close.peer_fault)
        await _flush(outbox, transport)
    except* TransportClosed as ended:
        cause = ended.exceptions[0]
        assert isinstance(cause, TransportClosed)
        reason = str(cause) or reason
        peers.log_end(info, reason, peer_fault=cause.peer_fault)
    finally:
        admitted = id(info) in peers.links
        peers.end(info)
        await transport.close(reason, graceful=admitted)
    return reason


async def _flush(outbox: asyncio.Queue[bytes], transport: Transport) -> None:
    """Send what is queued (the Bye saying why, above all) before closing."""
    try:
        async with asyncio.timeout(2):
            while not outbox.empty():
                await transport.send(outbox.get_nowait())
    except (TimeoutError, TransportClosed):
        pass
