"""Changes: the unit of hashing, signing, storage and sync.

A change body is the canonical CBOR array `[format, author, seq, lamport, deps, time, ops]`. Its id
is the SHA-256 of those bytes and its signature is the author's Ed25519 signature of the id.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import NamedTuple

from huskies.crdt.encoding import INT_MAX, EncodingError, decode, encode
from huskies.crdt.identity import (
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    Signer,
    verify_signature,
)
from huskies.crdt.ops import HASH_BYTES, MalformedOp, Op, from_wire, to_wire
from huskies.crdt.results import Rejected, RejectReason

FORMAT = 1
MAX_CHANGE_BYTES = 1 << 20
MAX_DEPS = 4096


class Change(NamedTuple):
    """An unsigned change. `time` is milliseconds since the Unix epoch, supplied by the caller."""

    author: bytes
    seq: int
    lamport: int
    deps: tuple[bytes, ...]
    time: int
    ops: tuple[Op, ...]


class SignedChange(NamedTuple):
    """A change as it is stored and sent: its id, canonical body, signer key and signature."""

    id: bytes
    body: bytes
    signer: bytes
    signature: bytes

    def to_bytes(self) -> bytes:
        return encode([self.id, self.body, self.signer, self.signature])


class VerifiedChange(NamedTuple):
    """A signed change whose bytes have been checked and decoded."""

    id: bytes
    change: Change
    signed: SignedChange


def change_id(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


def encode_change(change: Change) -> bytes:
    """The canonical body bytes of a change (this is what the id hashes)."""
    return encode(
        [
            FORMAT,
            change.author,
            change.seq,
            change.lamport,
            list(change.deps),
            change.time,
            [to_wire(op) for op in change.ops],
        ]
    )


class EncodedChange(NamedTuple):
    """A change encoded and hashed but not signed yet: its id is final, so later changes can
    name it while the signature is made elsewhere (for example on a worker thread)."""

    id: bytes
    change: Change
    body: bytes

    def sign(self, signer: Signer) -> VerifiedChange:
        if self.change.author != signer.public_key:
            raise ValueError("a change must be signed by its author")
        return self.with_signature(signer.sign(self.id))

    def with_signature(self, signature: bytes) -> VerifiedChange:
        """The change with its author's signature of its id, made elsewhere (a helper process
        holding the same key); the caller vouches that it is the author's."""
        signed = SignedChange(self.id, self.body, self.change.author, signature)
        return VerifiedChange(self.id, self.change, signed)


def encode_for_signing(change: Change) -> EncodedChange:
    body = encode_change(change)
    return EncodedChange(change_id(body), change, body)


def sign_change(change: Change, signer: Signer) -> VerifiedChange:
    """Encode, hash and sign a change made by `signer`."""
    return encode_for_signing(change).sign(signer)


def signed_from_bytes(data: bytes) -> SignedChange:
    """Parse the wire envelope of a signed change; raises EncodingError saying what is wrong."""
    raw = decode(data)
    if not (
        isinstance(raw, list)
        and len(raw) == 4
        and isinstance(raw[0], bytes)
        and len(raw[0]) == HASH_BYTES
        and isinstance(raw[1], bytes)
        and isinstance(raw[2], bytes)
        and len(raw[2]) == PUBLIC_KEY_BYTES
        and isinstance(raw[3], bytes)
        and len(raw[3]) == SIGNATURE_BYTES
    ):
        raise EncodingError(
            "signed change must be [id (32 bytes), body, signer (32 bytes), signature (64 bytes)]"
        )
    return SignedChange(raw[0], raw[1], raw[2], raw[3])


def _int_field(value: object, name: str, minimum: int) -> int:
    if type(value) is not int or not minimum <= value <= INT_MAX:
        raise ValueError(f"{name} must be an integer from {minimum} to 2^63-1, got {value!r}")
    return value


def _parse_body(raw: object) -> Change:
    if not isinstance(raw, list) or len(raw) != 7:
        raise ValueError("body must be [format, author, seq, lamport, deps, time, ops]")
    fmt, author, seq, lamport, deps, time, ops = raw
    if fmt != FORMAT or type(fmt) is not int:
        raise ValueError(f"unknown change format {fmt!r} (this build reads format {FORMAT})")
    if not isinstance(author, bytes) or len(author) != PUBLIC_KEY_BYTES:
        raise ValueError("author must be a 32-byte Ed25519 public key")
    if not isinstance(deps, list) or len(deps) > MAX_DEPS:
        raise ValueError(f"deps must be an array of at most {MAX_DEPS} change ids")
    for dep in deps:
        if not isinstance(dep, bytes) or len(dep) != HASH_BYTES:
            raise ValueError("each dep must be a 32-byte change id")
    if any(a >= b for a, b in itertools.pairwise(deps)):
        raise ValueError("deps must be sorted and distinct")
    if not isinstance(ops, list):
        raise ValueError("ops must be an array")
    return Change(
        author,
        _int_field(seq, "seq", 1),
        _int_field(lamport, "lamport", 1),
        tuple(deps),
        _int_field(time, "time", 0),
        tuple(_parse_ops(ops)),
    )


def _parse_ops(raw_ops: list[object]) -> list[Op]:
    ops = []
    for index, raw in enumerate(raw_ops):
        try:
            ops.append(from_wire(raw))
        except MalformedOp as exc:
            raise MalformedOp(f"op {index}: {exc}") from None
    return ops


def decode_signed(
    signed: SignedChange, *, check_signature: bool = True
) -> VerifiedChange | Rejected:
    """Check a signed change completely and decode it.

    Pure and thread-safe, so callers may run it on a pool: PyNaCl releases the GIL while it
    verifies. `check_signature=False` is only for changes read back from this node's own store,
    which were verified when they were first ingested.
    """
    cid = signed.id
    if len(signed.body) > MAX_CHANGE_BYTES:
        return Rejected(
            RejectReason.TOO_LARGE,
            f"body is {len(signed.body)} bytes (max {MAX_CHANGE_BYTES})",
            cid,
        )
    if change_id(signed.body) != cid:
        return Rejected(RejectReason.BAD_ID, "id is not the SHA-256 of the body", cid)
    try:
        raw = decode(signed.body)
        change = _parse_body(raw)
    except MalformedOp as exc:
        return Rejected(RejectReason.MALFORMED_OP, str(exc), cid)
    except (EncodingError, ValueError) as exc:
        return Rejected(RejectReason.MALFORMED, str(exc), cid)
    # _parse_body accepted exactly the shapes encode_change produces, so re-encoding the raw
    # decoded value is equivalent to re-encoding the typed change, and cheaper.
    if encode(raw) != signed.body:
        return Rejected(RejectReason.NON_CANONICAL, "body is not in canonical CBOR form", cid)
    if signed.signer != change.author:
        return Rejected(
            RejectReason.SIGNER_NOT_AUTHOR,
            f"signed by {signed.signer.hex()[:16]}… but authored by {change.author.hex()[:16]}…",
            cid,
        )
    if check_signature and not verify_signature(change.author, cid, signed.signature):
        return Rejected(RejectReason.BAD_SIGNATURE, "signature does not verify", cid)
    return VerifiedChange(cid, change, signed)
