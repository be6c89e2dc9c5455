"""The sync protocol as a sans-I/O state machine: frames in, frames and actions out.

One `Session` per connection, the same on both ends. The driver (the server's WebSocket
endpoint or the rendezvous client) feeds it received bytes, the document, and the time, and
carries out the actions it returns: send bytes, ask whether a peer may join, hand changes to the
replica, close. Nothing here touches a socket, a clock or a random source.

1. Handshake. Each side sends `Hello` (its key and a fresh nonce), then `Auth`: its signature of
   the other's nonce (`frames.auth_message`). A bad signature closes the connection; a good one
   asks the driver, through `CheckPeer`, whether that key may join (trusted, or holding a valid
   join token). Until the peer is admitted its frames are held to the handshake's small limits,
   checked on their length before anything is decoded, and the handshake must finish within a
   deadline counted from the connection's start, which no frame extends.
2. Catch-up. Each side sends its `Clock`; each answers the other's with the changes it lacks, in
   bounded chunks, then `Ready`.
3. Live. Each change the replica applies goes out with `publish`. If the driver's send queue
   for this peer fills (a slow reader), `fell_behind` stops live sends, and once the queue
   drains `drained` asks the peer for its clock again (`Resync`) instead of dropping it.
4. Keepalive: `tick` sends `Ping` every interval and closes a peer silent past the timeout, or one
   whose handshake is past its deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TypeAlias

from huskies.crdt import (
    ApplyResult,
    AuthorClock,
    Document,
    Rejected,
    RejectReason,
    SignedChange,
    Signer,
)
from huskies.crdt.identity import verify_signature
from huskies.sync.frames import (
    MAX_ITEMS,
    Auth,
    Bye,
    Changes,
    Clock,
    Frame,
    FrameError,
    Hello,
    Ping,
    Pong,
    Ready,
    Resync,
    auth_message,
    decode_frame,
    encode_frame,
)


@dataclass(frozen=True)
class Limits:
    max_frame_bytes: int = 4 << 20
    max_chunk_changes: int = 512
    max_chunk_bytes: int = 1 << 20
    ping_interval_s: float = 30.0
    ping_timeout_s: float = 60.0
    # Before the peer is admitted. A Hello with the longest join token and a Bye with the longest
    # reason take under 2.1 KiB, so 4 KiB fits any honest handshake frame, and a stranger
    # cannot make this node decode more than that at a time.
    max_handshake_frame_bytes: int = 4 << 10
    # Hello, the largest handshake frame, holds six CBOR items.
    max_handshake_frame_items: int = 16
    # An honest handshake is two round trips; ten seconds allow a slow link, and a socket that
    # never authenticates is closed then however many Pings it sends.
    handshake_timeout_s: float = 10.0
    # Inbound connections still in the handshake (each holds a socket and a task): in all, and
    # from one address (one IPv6 /64), so one host cannot take every place. Over either, a new
    # connection is refused before it is accepted; admitted peers never count.
    max_handshakes: int = 64
    max_handshakes_per_address: int = 8


# ---- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class CheckPeer:
    """The peer proved it holds `key`; may it join? Answer with `Session.peer_checked`."""

    key: bytes
    token: str | None


@dataclass(frozen=True)
class Deliver:
    """Changes from the peer, for the replica; report the results with `Session.delivered`."""

    changes: tuple[SignedChange, ...]


@dataclass(frozen=True)
class CaughtUp:
    """The peer sent everything it had when it answered our clock."""


@dataclass(frozen=True)
class Close:
    reason: str
    peer_fault: bool  # True: the peer broke the rules (log it as such)


Action: TypeAlias = Send | CheckPeer | Deliver | CaughtUp | Close


class State(Enum):
    HANDSHAKE = "handshake"  # waiting for the peer's Hello and Auth
    CHECKING = "checking"  # authenticated; waiting for the driver's verdict
    OPEN = "open"  # catch-up and live
    CLOSED = "closed"


# Refusals that mean the peer sent something no honest node would: it is cut. PENDING_FULL is
# ours (we are full), not the peer's fault.
_FORGIVEN = frozenset({RejectReason.PENDING_FULL})


class Session:
    """One end of one sync connection."""

    def __init__(
        self,
        key: Signer,
        nonce: bytes,
        now: float,
        *,
        token: str | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.state = State.HANDSHAKE
        self.peer: bytes | None = None  # the peer's key, once it proved it holds it
        self.caught_up = False  # we have what the peer had when it answered our clock
        self.sending_live = False  # the peer has our catch-up; new changes go out as made
        self._key = key
        self._nonce = nonce
        self._token = token
        self._hello: Hello | None = None
        self._started = now
        self._last_heard = now
        self._last_ping = now
        self._pings = 0
        self._behind = False

    # ---- driver input -------------------------------------------------------------------

    def start(self) -> list[Action]:
        return [self._send(Hello(self._key.public_key, self._nonce, self._token))]

    def receive(self, data: bytes, now: float, doc: Document) -> list[Action]:
        """Handle one received message."""
        if self.state is State.CLOSED:
            return []
        self._last_heard = now
        limits = self.limits
        if self.state is State.OPEN:
            max_bytes, max_items, when = limits.max_frame_bytes, MAX_ITEMS, ""
        else:
            max_bytes = min(limits.max_handshake_frame_bytes, limits.max_frame_bytes)
            max_items, when = limits.max_handshake_frame_items, " before authentication"
        try:
            frame = decode_frame(data, max_bytes, max_items)
        except FrameError as exc:
            return self._fail(f"malformed frame{when}: {exc}")
        return self._handle(frame, doc)

    def peer_checked(self, allowed: bool, reason: str, doc: Document) -> list[Action]:
        """The driver's answer to `CheckPeer`."""
        if self.state is not State.CHECKING:
            return []
        if not allowed:
            return self._close(f"peer not allowed: {reason}", peer_fault=True, tell=True)
        self.state = State.OPEN
        return [self._send(Clock(doc.clock()))]

    def delivered(self, results: Sequence[ApplyResult]) -> list[Action]:
        """The replica's results for a `Deliver`: a refused change cuts the peer."""
        for result in results:
            if isinstance(result, Rejected) and result.reason not in _FORGIVEN:
                return self._fail(f"sent a change the rules refuse: {result}")
        return []

    def publish(self, change: SignedChange) -> list[Action]:
        """A change the replica just applied; it goes out if the peer is live."""
        if self.state is not State.OPEN or not self.sending_live or change.signer == self.peer:
            return []
        return [self._send(Changes((change,)))]

    def fell_behind(self) -> None:
        """The driver's send queue for this peer is full: stop live sends until `drained`."""
        if self.sending_live:
            self.sending_live = False
            self._behind = True

    def drained(self) -> list[Action]:
        """The driver's send queue emptied: if live sends stopped, catch the peer up again."""
        if not self._behind or self.state is not State.OPEN:
            return []
        self._behind = False
        return [self._send(Resync())]

    def tick(self, now: float) -> list[Action]:
        """Keepalive and the handshake's deadline: call it periodically."""
        if self.state is State.CLOSED:
            return []
        timeout = self.limits.handshake_timeout_s
        if self.state is not State.OPEN and now - self._started >= timeout:
            reason = f"handshake not finished within {timeout:g} s of connecting"
            return self._close(reason, peer_fault=True, tell=True)
        if now - self._last_heard >= self.limits.ping_timeout_s:
            silent = now - self._last_heard
            return self._close(f"peer silent for {silent:.0f} s", peer_fault=True, tell=False)
        if now - self._last_ping >= self.limits.ping_interval_s:
            self._last_ping = now
            self._pings += 1
            return [self._send(Ping(self._pings))]
        return []

    def close(self, reason: str) -> list[Action]:
        """Close from our side (shutting down, say), telling the peer why."""
        return self._close(reason, peer_fault=False, tell=True)

    # ---- frames -------------------------------------------------------------------------

    def _handle(self, frame: Frame, doc: Document) -> list[Action]:
        match frame:
            case Hello():
                return self._on_hello(frame)
            case Auth(signature):
                return self._on_auth(signature)
            case Ping(nonce):
                return [self._send(Pong(nonce))]
            case Pong():
                return []
            case Bye(reason):
                return self._close(f"peer closed: {reason}", peer_fault=False, tell=False)
        if self.state is not State.OPEN:
            return self._fail(f"{type(frame).__name__} before the handshake finished")
        match frame:
            case Clock(entries):
                return self._catch_up(entries, doc)
            case Changes(changes):
                return [Deliver(changes)] if changes else []
            case Ready():
                self.caught_up = True
                return [CaughtUp()]
            case Resync():
                return [self._send(Clock(doc.clock()))]
        raise AssertionError(f"unhandled frame {frame!r}")

    def _on_hello(self, hello: Hello) -> list[Action]:
        if self._hello is not None or self.state is not State.HANDSHAKE:
            return self._fail("a second Hello")
        if hello.key == self._key.public_key:
            return self._fail("the peer claims this node's own key")
        self._hello = hello
        message = auth_message(hello.nonce, self._key.public_key, hello.key)
        return [self._send(Auth(self._key.sign(message)))]

    def _on_auth(self, signature: bytes) -> list[Action]:
        hello = self._hello
        if hello is None or self.state is not State.HANDSHAKE:
            return self._fail("Auth out of order")
        message = auth_message(self._nonce, hello.key, self._key.public_key)
        if not verify_signature(hello.key, message, signature):
            return self._fail("authentication failed: the signature of our nonce does not verify")
        self.peer = hello.key
        self.state = State.CHECKING
        return [CheckPeer(hello.key, hello.token)]

    def _catch_up(self, clock: dict[bytes, AuthorClock], doc: Document) -> list[Action]:
        """Answer a clock with what the peer lacks, in bounded chunks, then Ready; live sends
        start from here (the chunks hold everything applied so far)."""
        missing = doc.changes_since(clock)
        actions: list[Action] = []
        limits = self.limits
        chunk: list[SignedChange] = []
        size = 0
        for change in missing:
            weight = len(change.body) + 160  # id, signer, signature and framing
            full = len(chunk) >= limits.max_chunk_changes or size + weight > limits.max_chunk_bytes
            if chunk and full:
                actions.append(self._send(Changes(tuple(chunk))))
                chunk, size = [], 0
            chunk.append(change)
            size += weight
        if chunk:
            actions.append(self._send(Changes(tuple(chunk))))
        actions.append(self._send(Ready()))
        self.sending_live = True
        self._behind = False
        return actions

    # ---- helpers ------------------------------------------------------------------------

    def _send(self, frame: Frame) -> Send:
        return Send(encode_frame(frame))

    def _fail(self, reason: str) -> list[Action]:
        return self._close(reason, peer_fault=True, tell=True)

    def _close(self, reason: str, *, peer_fault: bool, tell: bool) -> list[Action]:
        if self.state is State.CLOSED:
            return []
        self.state = State.CLOSED
        self.sending_live = False
        actions: list[Action] = [self._send(Bye(reason))] if tell else []
        return [*actions, Close(reason, peer_fault)]
