"""One sync connection, driven: a `Session` over a WebSocket, fed by the replica.

The same driver serves both ends: the server's `/crdt-sync` endpoint and the rendezvous
client hand it a `Transport`. Four child tasks share one task group: the reader feeds received
frames to the session, the writer sends from a bounded queue, the live task forwards what the
replica applies, and the ticker keeps the connection alive. When the queue is full the session
stops live sends and catches the peer up again once it drains, so a slow peer costs bounded
memory and is not dropped.
"""

from __future__ import annotations

import asyncio
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
)
from huskies.sync.trust import Trust

log = logging.getLogger("huskies.sync")

SEND_QUEUE = 256  # frames waiting for a slow peer before live sends stop
TICK_S = 1.0


class Transport(Protocol):
    async def recv(self) -> bytes: ...
    async def send(self, data: bytes) -> None: ...
    async def close(self, reason: str) -> None: ...


class TransportClosed(Exception):
    """The connection ended underneath the session."""


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


@dataclass
class Peers:
    """The node's open connections."""

    links: dict[int, PeerInfo] = field(default_factory=dict)

    def snapshot(self) -> list[PeerInfo]:
        return list(self.links.values())


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
    peers.links[id(info)] = info

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
                    await act(session.peer_checked(allowed, reason, doc))
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
        level = logging.WARNING if close.close.peer_fault else logging.INFO
        log.log(level, "sync with %s closed: %s", info.peer or info.address, reason)
        await _flush(outbox, transport)
    except* TransportClosed as ended:
        reason = str(ended.exceptions[0]) or reason
        log.info("sync with %s ended: %s", info.peer or info.address, reason)
    finally:
        peers.links.pop(id(info), None)
        await transport.close(reason)
    return reason


async def _flush(outbox: asyncio.Queue[bytes], transport: Transport) -> None:
    """Send what is queued (the Bye saying why, above all) before closing."""
    try:
        async with asyncio.timeout(2):
            while not outbox.empty():
                await transport.send(outbox.get_nowait())
    except (TimeoutError, TransportClosed):
        pass
