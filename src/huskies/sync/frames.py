"""The frames of the sync protocol and their wire form.

Every frame is one binary WebSocket message holding the CBOR array `[version, kind, fields…]`.
Decoding checks size, shape and types, and says what was wrong; it never trusts the peer. Before
the CBOR decoder sees a frame, `check_structure` walks its headers alone, so a frame that nests
too deep, claims more items or bytes than it holds, or uses CBOR that no frame needs is refused
without anything being built from it.
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
# The deepest frames (Clock, Changes) nest arrays three deep: frame, list, entry. One level
# more lets a frame of a later version still get as far as its version check.
MAX_NESTING = 4
# Data items in one frame: a full Changes chunk (512 changes) is about 2,600, a Clock four per
# author, so this allows 16,000 authors; it keeps a 4 MiB frame of one-byte items (four
# million Python objects, over 300 MB) from ever reaching the decoder.
MAX_ITEMS = 1 << 16


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


def decode_frame(data: bytes, max_bytes: int, max_items: int = MAX_ITEMS) -> Frame:
    """The frame in `data`; raises FrameError saying what is wrong with it."""
    if len(data) > max_bytes:
        raise FrameError(f"frame of {len(data)} bytes is over the limit of {max_bytes}")
    check_structure(data, max_items)
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


# CBOR's major types (RFC 8949, section 3.1) and the simple values frames use.
_UNSIGNED, _NEGATIVE, _BYTES, _TEXT, _ARRAY, _MAP, _TAG, _SIMPLE = range(8)
_FALSE_TRUE_NULL = (20, 21, 22)
_INDEFINITE = 31


def check_structure(data: bytes, max_items: int = MAX_ITEMS) -> None:
    """Walk the CBOR headers of `data` without building anything from them; raise FrameError if
    it is not one definite-length array nesting at most MAX_NESTING deep and holding at most
    `max_items` items of the kinds frames use (integers, byte and text strings, arrays, false,
    true, null), every length within the bytes that follow."""
    if not data:
        raise FrameError("frame is empty")
    position, end = 0, len(data)
    unread: list[int] = []  # items still to come in each array we are inside, innermost last
    items = 0
    while True:
        if position < end and data[position] & 0x1F < 24:  # the common short header, inline
            major, argument = data[position] >> 5, data[position] & 0x1F
            position += 1
        else:
            major, argument, position = _header(data, position)
        if items == 0 and major != _ARRAY:
            raise FrameError("frame must be an array [version, kind, …]")
        items += 1
        if items > max_items:
            raise FrameError(f"frame holds more than {max_items} items")
        if major in (_BYTES, _TEXT):
            if argument > end - position:
                raise FrameError(
                    f"frame is not valid CBOR: a string of {argument} bytes "
                    f"with {end - position} left in the frame"
                )
            position += argument
        elif major == _ARRAY:
            if argument > end - position:
                raise FrameError(
                    f"frame is not valid CBOR: an array of {argument} items "
                    f"with {end - position} bytes left in the frame"
                )
            if items + argument > max_items:
                raise FrameError(
                    f"frame holds more than {max_items} items: item {items} is an array of "
                    f"{argument}"
                )
            if argument:
                if len(unread) == MAX_NESTING:
                    raise FrameError(f"frame nests arrays more than {MAX_NESTING} deep")
                unread.append(argument)
                continue  # the array ends with its last item
        elif major == _SIMPLE and argument not in _FALSE_TRUE_NULL:
            raise FrameError(f"frame holds the CBOR simple value {argument}, which no frame uses")
        elif major in (_MAP, _TAG):
            raise FrameError(f"frame holds a CBOR {_NAMES[major]}, which no frame uses")
        if _item_done(unread):
            break
    if position != end:
        raise FrameError(f"frame has {end - position} bytes after its end")


_NAMES = {_BYTES: "byte string", _TEXT: "text string", _ARRAY: "array", _MAP: "map", _TAG: "tag"}


def _header(data: bytes, position: int) -> tuple[int, int, int]:
    """The major type and argument of the item header at `position`, and where the item's
    content starts."""
    if position >= len(data):
        raise FrameError("frame is not valid CBOR: it ends inside an array")
    initial = data[position]
    major, info = initial >> 5, initial & 0x1F
    position += 1
    if info < 24:
        return major, info, position
    if info == _INDEFINITE:
        if major == _SIMPLE:
            raise FrameError("frame is not valid CBOR: a break code outside an indefinite item")
        what = _NAMES.get(major, "item")
        raise FrameError(f"frame holds an indefinite-length {what}; frames use definite lengths")
    if info > 27:
        raise FrameError(f"frame is not valid CBOR: reserved header byte 0x{initial:02x}")
    if major == _SIMPLE:
        raise FrameError("frame holds a CBOR float or simple value, which no frame uses")
    size = 1 << (info - 24)
    if position + size > len(data):
        raise FrameError("frame is not valid CBOR: it ends inside an item header")
    return major, int.from_bytes(data[position : position + size], "big"), position + size


def _item_done(unread: list[int]) -> bool:
    """One item ended: count it off its array, and the array off its parent when that was its
    last item. True when the outermost array ended."""
    while unread:
        unread[-1] -= 1
        if unread[-1]:
            return False
        unread.pop()
    return True


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
