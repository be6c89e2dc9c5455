"""The frames of the sync protocol and their wire form.

Every frame is one binary WebSocket message holding the CBOR array `[version, kind, fields…]`.
Decoding checks size, shape and types, and says what was wrong; it never trusts the peer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import cbor2

from huskies.crdt import AuthorClock, SignedChange
from huskies.crdt.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES
from huskies.crdt.ops import HASH_BYTES

VERSION = 1
PROTOCOL = "huskies-sync/1"
NONCE_BYTES = 32
MAX_TOKEN_CHARS = 256
MAX_REASON_CHARS = 512


class FrameError(ValueError):
    """Bytes that are not a valid frame; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Hello:
    """Opens the handshake: who I say I am, a fresh nonce for you to sign, and an optional join
    token (a dialer that is not trusted yet presents one)."""

    key: bytes
    nonce: bytes
    token: str | None = None


@dataclass(frozen=True, slots=True)
class Auth:
    """My signature over your nonce (see `auth_message`)."""

    signature: bytes


@dataclass(frozen=True, slots=True)
class Clock:
    """What I have: per author, the highest contiguous seq and a digest of those change ids."""

    entries: dict[bytes, AuthorClock]


@dataclass(frozen=True, slots=True)
class Changes:
    changes: tuple[SignedChange, ...]


@dataclass(frozen=True, slots=True)
class Ready:
    """Catch-up is complete: you now have everything I had when you sent your clock."""


@dataclass(frozen=True, slots=True)
class Ping:
    nonce: int


@dataclass(frozen=True, slots=True)
class Pong:
    nonce: int


@dataclass(frozen=True, slots=True)
class Resync:
    """I stopped sending you live changes (you fell behind): send me your clock again."""


@dataclass(frozen=True, slots=True)
class Bye:
    reason: str


Frame: TypeAlias = Hello | Auth | Clock | Changes | Ready | Ping | Pong | Resync | Bye
_KINDS: dict[type, int] = {
    Hello: 0,
    Auth: 1,
    Clock: 2,
    Changes: 3,
    Ready: 4,
    Ping: 5,
    Pong: 6,
    Resync: 7,
    Bye: 8,
}


def auth_message(nonce: bytes, signer: bytes, verifier: bytes) -> bytes:
    """What `signer` signs to prove itself to `verifier`, who chose `nonce`. Binding both keys
    and the protocol name means a signature can't be replayed elsewhere or in reverse."""
    return b"".join([PROTOCOL.encode(), b"\0auth\0", nonce, signer, verifier])


def encode_frame(frame: Frame) -> bytes:
    kind = _KINDS[type(frame)]
    fields: list[object]
    match frame:
        case Hello(key, nonce, token):
            fields = [PROTOCOL, key, nonce, token]
        case Auth(signature):
            fields = [signature]
        case Clock(entries):
            fields = [[[author, c.seq, c.digest] for author, c in entries.items()]]
        case Changes(changes):
            fields = [[[c.id, c.body, c.signer, c.signature] for c in changes]]
        case Ping(nonce) | Pong(nonce):
            fields = [nonce]
        case Bye(reason):
            fields = [reason[:MAX_REASON_CHARS]]
        case _:
            fields = []
    return cbor2.dumps([VERSION, kind, *fields])


def decode_frame(data: bytes, max_bytes: int) -> Frame:
    """The frame in `data`; raises FrameError saying what is wrong with it."""
    if len(data) > max_bytes:
        raise FrameError(f"frame of {len(data)} bytes is over the limit of {max_bytes}")
    try:
        raw = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise FrameError(f"frame is not valid CBOR: {exc}") from None
    if not isinstance(raw, list) or len(raw) < 2:
        raise FrameError("frame must be an array [version, kind, …]")
    version, kind, *fields = raw
    if version != VERSION:
        raise FrameError(f"frame version {version!r}; this node speaks version {VERSION}")
    try:
        return _parse(kind, fields)
    except (TypeError, ValueError, KeyError) as exc:
        raise FrameError(f"malformed frame of kind {kind!r}: {exc}") from None


def _parse(kind: object, fields: list[object]) -> Frame:
    if kind == 0:
        protocol, key, nonce, token = _exactly(fields, 4)
        if protocol != PROTOCOL:
            raise ValueError(f"protocol {protocol!r}; this node speaks {PROTOCOL}")
        if token is not None and (not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS):
            raise ValueError("token must be a string of at most 256 characters")
        return Hello(
            _bytes(key, PUBLIC_KEY_BYTES, "key"), _bytes(nonce, NONCE_BYTES, "nonce"), token
        )
    if kind == 1:
        (signature,) = _exactly(fields, 1)
        return Auth(_bytes(signature, SIGNATURE_BYTES, "signature"))
    if kind == 2:
        (entries,) = _exactly(fields, 1)
        clock: dict[bytes, AuthorClock] = {}
        for entry in _list(entries, "clock"):
            author, seq, digest = _exactly(_list(entry, "clock entry"), 3)
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
                raise ValueError("clock seq must be an integer ≥ 0")
            author = _bytes(author, PUBLIC_KEY_BYTES, "clock author")
            if author in clock:
                raise ValueError("clock names an author twice")
            clock[author] = AuthorClock(seq, _bytes(digest, HASH_BYTES, "clock digest"))
        return Clock(clock)
    if kind == 3:
        (changes,) = _exactly(fields, 1)
        out = []
        for entry in _list(changes, "changes"):
            cid, body, signer, signature = _exactly(_list(entry, "change"), 4)
            out.append(
                SignedChange(
                    _bytes(cid, HASH_BYTES, "change id"),
                    _bytes(body, None, "change body"),
                    _bytes(signer, PUBLIC_KEY_BYTES, "change signer"),
                    _bytes(signature, SIGNATURE_BYTES, "change signature"),
                )
            )
        return Changes(tuple(out))
    if kind in (5, 6):
        (nonce,) = _exactly(fields, 1)
        if not isinstance(nonce, int) or isinstance(nonce, bool):
            raise ValueError("ping nonce must be an integer")
        return Ping(nonce) if kind == 5 else Pong(nonce)
    if kind == 8:
        (reason,) = _exactly(fields, 1)
        if not isinstance(reason, str):
            raise ValueError("reason must be a string")
        return Bye(reason[:MAX_REASON_CHARS])
    if kind in (4, 7):
        _exactly(fields, 0)
        return Ready() if kind == 4 else Resync()
    raise ValueError(f"unknown frame kind {kind!r}")


def _exactly(fields: object, count: int) -> list[object]:
    items = _list(fields, "frame")
    if len(items) != count:
        raise ValueError(f"expected {count} fields, got {len(items)}")
    return items


def _list(value: object, what: str) -> list[object]:
    if not isinstance(value, list):
        raise TypeError(f"{what} must be an array")
    return value


def _bytes(value: object, size: int | None, what: str) -> bytes:
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        raise TypeError(f"{what} must be {size} bytes" if size else f"{what} must be bytes")
    return value
