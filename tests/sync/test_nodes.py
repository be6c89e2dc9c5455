"""`huskies serve` nodes as real processes on loopback: joining, trust, restarts, convergence."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from huskies.crdt import Document, NodeKey, parse_node_id
from huskies.store import Replica
from huskies.sync.frames import (
    Bye,
    Changes,
    encode_frame,
)
from huskies.sync.link import SEND_QUEUE, PeerInfo, Peers, run_link
from huskies.sync.transports import DialledTransport
from huskies.sync.trust import Trust, TrustStore

from ..crdt.support import set_key, tamper_body
from .support import Hostile, converged, wait_for


def test_a_join_token_enrols_once_and_the_nodes_converge(make_node):
    a, b, c = make_node("a"), make_node("b"), make_node("c")
    token = a.cli("node", "token", "--ttl", "10m").stdout.strip()
    a.start()
    b.set_rendezvous(a.url)
    b.start("--join", token)
    wait_for(lambda: converged(a, b) and len(a.health()["peers"]) == 1, "a and b to converge")
    [peer] = a.health()["peers"]
    assert peer["peer"] == b.cli("node", "id").stdout.strip()
    assert peer["caught_up"]
    assert a.health()["lag"]["catching_up"] == 0
    listing = a.cli("node", "peers").stdout
    assert peer["peer"][:16] in listing
    assert "caught up" in listing
    # The token is spent: c presenting it is refused, and told why.
    c.set_rendezvous(a.url)
    c.start("--join", token)
    wait_for(lambda: "already used" in c.log.read_text(), "c to be refused")
    assert [p["peer"] for p in a.health()["peers"]] == [peer["peer"]]
    # b stays trusted after a restart, without the token.
    b.stop()
    b.start()
    wait_for(lambda: converged(a, b) and len(a.health()["peers"]) == 1, "b to rejoin")


def test_node_commands_refuse_bad_input_with_the_reason(make_node):
    node = make_node("solo")
    bad = node.cli("node", "trust", "not-a-key")
    assert bad.returncode == 1
    assert "must be 64 hex characters" in bad.stderr
    assert "ttl" in node.cli("node", "token", "--ttl", "soon").stderr
    peers = node.cli("node", "peers")
    assert peers.returncode == 1
    assert "no huskies server is running" in peers.stderr
    node_id = node.cli("node", "id").stdout.strip()
    assert node.cli("node", "trust", node_id).returncode == 0
    assert "already trusted" in node.cli("node", "trust", node_id).stdout
    assert node_id in (node.root / ".huskies" / "project.toml").read_text()


def test_an_untrusted_node_is_refused(make_node):
    a, stranger = make_node("a"), make_node("stranger")
    a.start()
    stranger.set_rendezvous(a.url)
    stranger.start()
    wait_for(lambda: "not in trusted_keys" in stranger.log.read_text(), "the refusal")
    assert a.health()["peers"] == []
    assert a.health()["changes"] < 50  # none of the stranger's changes came in
    assert "not in trusted_keys" in a.log.read_text()


def test_three_nodes_converge_through_a_sigkill_and_a_late_joiner(make_node):
    hub, left, right = make_node("hub"), make_node("left"), make_node("right")
    ids = {n: n.cli("node", "id").stdout.strip() for n in (hub, left, right)}
    for node in (hub, left, right):
        for other, key in ids.items():
            if other is not node:
                assert node.cli("node", "trust", key).returncode == 0
    hub.start()
    left.set_rendezvous(hub.url)
    right.set_rendezvous(hub.url)
    left.start()
    wait_for(lambda: converged(hub, left), "hub and left")
    left.stop(signal.SIGKILL)
    right.start()  # joins late, with an empty database
    wait_for(lambda: converged(hub, right), "the late joiner to catch up")
    left.start()  # back after the kill; everyone kept writing presence meanwhile
    healths = wait_for(lambda: converged(hub, left, right), "all three to converge")
    assert len({health["changes"] for health in healths}) == 1
    assert all(health["pending"] == 0 for health in healths)
    # A partition: with the hub gone the spokes cannot reach each other, and both keep writing.
    hub.stop(signal.SIGKILL)
    split = {n: n.health()["changes"] for n in (left, right)}
    wait_for(
        lambda: all(n.health()["changes"] > split[n] + 5 for n in split), "both sides to write"
    )
    assert not converged(left, right)
    hub.start()  # the partition heals
    wait_for(lambda: converged(hub, left, right), "all three to converge after the partition")
    for node in (hub, left, right):
        node.stop()
        assert not (node.root / ".huskies" / "server.port").exists()
    # Each node's presence entry reached every node.
    present = json.loads(left.cli("state", "dump").stdout)["document"]["nodes"]
    assert set(present) == set(ids.values())
    assert all({"address", "role", "last_seen"} <= set(entry) for entry in present.values())
    assert os.path.exists(hub.root / ".huskies" / "huskies.db")


async def test_a_hostile_peer_is_absorbed_or_cut_as_the_rules_say(make_node):
    node = make_node("honest")
    liar = NodeKey(os.urandom(32))
    assert node.cli("node", "trust", liar.node_id).returncode == 0
    node.start()

    def stored() -> int:
        return node.health()["changes"]

    doc = Document()
    first = set_key(doc, liar, "x", "first")
    second = set_key(doc, liar, "y", "second")
    twin = set_key(Document(), liar, "x", "twin")  # equivocation: seq 1 again, other content
    async with Hostile(liar, node.url) as peer:
        before = stored()
        await peer.send(first, first, twin)  # a replay is absorbed; both seq-1 changes kept
        await peer.send(second)
        wait_for(lambda: stored() >= before + 3, "the hostile peer's valid changes")
        forged = tamper_body(second, lambda body: body.__setitem__(5, 1), rehash=True)
        await peer.send(forged)
        bye = await peer.expect(Bye)
        assert "bad_signature" in bye.reason
    async with Hostile(liar, node.url) as peer:
        await peer.ws.send(b"\xff" * 10)
        assert "malformed frame" in (await peer.expect(Bye)).reason
    async with Hostile(liar, node.url) as peer:
        # Just over the largest frame: the session refuses it, with the reason.
        await peer.ws.send(encode_frame(Changes((first._replace(body=b"x" * (4 << 20)),))))
        assert "over the limit of 4194304" in (await peer.expect(Bye)).reason
    async with Hostile(liar, node.url) as peer:
        # Far over: the WebSocket layer cuts it as soon as its header gives its size.
        with contextlib.suppress(ConnectionClosed):  # cut before it was all sent, perhaps
            await peer.ws.send(b"x" * (5 << 20))
        with pytest.raises(ConnectionClosed) as closed:
            await peer.expect(Bye)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
    health = node.health()
    assert health["pending"] == 0
    assert "bad_signature" in node.log.read_text()


class PausedTransport:
    """A dialled connection that reads only while `resume` is set: a slow peer."""

    def __init__(self, inner: DialledTransport, resume: asyncio.Event) -> None:
        self._inner = inner
        self._resume = resume

    async def recv(self) -> bytes:
        await self._resume.wait()
        return await self._inner.recv()

    async def send(self, data: bytes) -> None:
        await self._inner.send(data)

    def allow_frames_up_to(self, max_bytes: int) -> None:
        self._inner.allow_frames_up_to(max_bytes)

    async def close(self, reason: str, *, graceful: bool = True) -> None:
        await self._inner.close(reason, graceful=graceful)


async def test_a_slow_peer_costs_bounded_memory_and_catches_up_after(make_node, tmp_path):
    node = make_node("busy")
    slow_db = tmp_path / "slow.db"
    async with await Replica.open(slow_db) as probe:
        slow_id = probe.node_id
    assert node.cli("node", "trust", slow_id).returncode == 0
    node_id = node.cli("node", "id").stdout.strip()
    node.start("--heartbeat", "0")  # writes as fast as it can

    def the_peer() -> dict:
        peers = node.health()["peers"]
        return peers[0] if peers else {}

    resume = asyncio.Event()
    async with await Replica.open(slow_db) as slow:
        store = TrustStore(slow_db)
        trust = Trust(lambda: {parse_node_id(node_id)}, store)
        async with connect(node.url, compression=None, max_size=None) as connection:
            transport = PausedTransport(DialledTransport(connection), resume)
            info = PeerInfo(node.url, "out", 0)
            resume.set()
            link = asyncio.create_task(
                run_link(transport, slow, trust, Peers(), info, wall_ms=lambda: 0)
            )
            deadline = time.monotonic() + 30
            while not info.caught_up:
                assert time.monotonic() < deadline, "the first catch-up never finished"
                await asyncio.sleep(0.01)  # polling the link's state
            resume.clear()
            # Not reading: the busy node's queue for us fills, and it stops sending live.
            deadline = time.monotonic() + 60
            while not the_peer().get("fell_behind"):
                assert time.monotonic() < deadline, "the busy node never noticed the slow peer"
                assert the_peer().get("queued", 0) <= SEND_QUEUE  # bounded, however far behind
                await asyncio.sleep(0.05)  # polling another process's state
            resume.set()
            target = node.health()["changes"]
            deadline = time.monotonic() + 60
            while slow.document.change_count < target:
                assert time.monotonic() < deadline, "the slow peer never caught up"
                await asyncio.sleep(0.05)
            assert slow.document.pending_count == 0
            link.cancel()
        store.close()
