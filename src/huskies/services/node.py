"""A running node: its replica, the sync links in and out, and its presence in the document."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict

import websockets
from websockets.asyncio.client import connect

from huskies.crdt import ObjKind, parse_node_id
from huskies.store import PersistError, Replica
from huskies.sync.link import (
    PeerInfo,
    Peers,
    Transport,
    address_group,
    run_link,
)
from huskies.sync.protocol import Limits
from huskies.sync.transports import DialledTransport
from huskies.sync.trust import Trust, TrustStore, parse_token

log = logging.getLogger("huskies.node")

NODES = "nodes"
BACKOFF_START_S = 1.0
BACKOFF_CAP_S = 30.0
FAILURES_BEFORE_ERROR = 10


class Node:
    def __init__(
        self,
        replica: Replica,
        trust: Trust,
        trust_store: TrustStore,
        *,
        address: str,
        role: str,
        limits: Limits,
        wall_ms: Callable[[], int],
    ) -> None:
        self.replica = replica
        self.trust = trust
        self.trust_store = trust_store
        self.address = address
        self.role = role
        self.limits = limits
        self.peers = Peers()
        self._wall_ms = wall_ms

    @contextlib.contextmanager
    def handshake(self, host: str, port: int) -> Iterator[PeerInfo]:
        """A place in the handshake for a connection from `host`, taken before it is accepted
        and given back when the block ends (or when the link is admitted); raises
        HandshakeRefused, logged at a bounded rate, when too many are in the handshake."""
        info = PeerInfo(f"{host}:{port}", "in", self._wall_ms() / 1000)
        self.peers.begin_inbound(info, address_group(host), self.limits, time.monotonic())
        try:
            yield info
        finally:
            self.peers.end(info)

    async def accept(self, transport: Transport, info: PeerInfo) -> str:
        """Run the sync link of a connection `handshake` let in, until it closes."""
        return await run_link(
            transport, self.replica, self.trust, self.peers, info,
            limits=self.limits, wall_ms=self._wall_ms,
        )  # fmt: skip

    async def dial_forever(self, url: str, token: str | None) -> None:
        """Keep a link to `url`: reconnect with backoff from 1 s, doubling to 30 s; WARN on each
        failure, ERROR from the tenth in a row."""
        if token is not None:
            issuer, _ = parse_token(token)
            self.trust.expect(issuer)  # the token names the node we are joining
        delay, failures = BACKOFF_START_S, 0
        while True:
            try:
                async with connect(
                    url, max_size=self.limits.max_frame_bytes, compression=None, ping_interval=None
                ) as connection:
                    delay, failures = BACKOFF_START_S, 0
                    info = PeerInfo(url, "out", self._wall_ms() / 1000)
                    reason = await run_link(
                        DialledTransport(connection), self.replica, self.trust, self.peers,
                        info, token=token, limits=self.limits, wall_ms=self._wall_ms,
                    )  # fmt: skip
                    log.info("link to %s closed (%s); reconnecting", url, reason)
            except (OSError, websockets.exceptions.WebSocketException, TimeoutError) as exc:
                failures += 1
                level = logging.ERROR if failures >= FAILURES_BEFORE_ERROR else logging.WARNING
                log.log(level, "cannot reach %s (%d in a row): %s", url, failures, exc)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # backoff, with jitter
            delay = min(delay * 2, BACKOFF_CAP_S)

    async def heartbeat(self, interval_s: float) -> None:
        """Keep this node's entry in `nodes` (address, role, last seen) fresh."""
        node_id = self.replica.node_id
        while True:
            tx = self.replica.transaction()
            doc = self.replica.document
            try:
                doc.get((NODES, node_id))
            except KeyError:
                try:
                    doc.get((NODES,))
                except KeyError:
                    tx.make((), NODES, ObjKind.MAP)
                tx.make((NODES,), node_id, ObjKind.MAP)
            path = (NODES, node_id)
            tx.set(path, "address", self.address)
            tx.set(path, "role", self.role)
            tx.set(path, "last_seen", self._wall_ms())
            try:
                await self.replica.change(tx)
            except PersistError as exc:
                log.warning("could not record this node's presence: %s", exc)
            await asyncio.sleep(interval_s)  # a timer: presence is about elapsed time

    def health(self) -> dict[str, object]:
        doc = self.replica.document
        clock = doc.clock()
        digest = hashlib.sha256(
            b"".join(
                author + c.seq.to_bytes(8, "big") + c.digest for author, c in sorted(clock.items())
            )
        ).hexdigest()
        peers = self.peers.snapshot()
        return {
            "node": self.replica.node_id,
            "role": self.role,
            "changes": doc.change_count,
            "pending": doc.pending_count,
            "clock": digest,
            # Frames waiting to go out to the slowest peer, and peers still catching up.
            "lag": {
                "queued": max((peer.queued for peer in peers), default=0),
                "catching_up": sum(not peer.caught_up for peer in peers),
            },
            # Only admitted peers: a connection in the handshake is not one, it is only counted.
            "peers": [asdict(peer) for peer in peers],
            "handshaking": self.peers.handshaking(),
            "handshakes_refused": self.peers.refused.count,
        }


def configured_keys(texts: tuple[str, ...]) -> set[bytes]:
    return {parse_node_id(text) for text in texts}
