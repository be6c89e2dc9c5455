"""Node identity: Ed25519 keys (PyNaCl). A node id is the lowercase hex of its public key.

Key generation takes its seed as an argument: this package never reads randomness itself.
"""

from __future__ import annotations

from typing import Protocol

from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32


class Signer(Protocol):
    """Anything that can sign change ids for one author."""

    @property
    def public_key(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


class NodeKey:
    """An Ed25519 key pair that signs this node's changes."""

    __slots__ = ("_public", "_secret")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError(f"an Ed25519 seed is {SEED_BYTES} bytes, got {len(seed)}")
        self._public, self._secret = crypto_sign_seed_keypair(seed)

    @property
    def public_key(self) -> bytes:
        return self._public

    @property
    def node_id(self) -> str:
        return node_id(self._public)

    @property
    def seed(self) -> bytes:
        """The 32-byte seed; libsodium's secret key is the seed followed by the public key."""
        return self._secret[:SEED_BYTES]

    def sign(self, message: bytes) -> bytes:
        signed: bytes = crypto_sign(message, self._secret)
        return signed[:SIGNATURE_BYTES]

    def __repr__(self) -> str:
        return f"NodeKey({self.node_id[:12]}…)"


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True if `signature` is `public_key`'s Ed25519 signature of `message`."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        crypto_sign_open(signature + message, public_key)
    except BadSignatureError:
        return False
    return True


def node_id(public_key: bytes) -> str:
    """The node id (lowercase hex) of a public key."""
    return public_key.hex()


def parse_node_id(text: str) -> bytes:
    """The public key named by a node id; raises ValueError saying what is wrong with it."""
    cleaned = text.strip()
    if len(cleaned) != 2 * PUBLIC_KEY_BYTES:
        raise ValueError(
            f"node id {text!r} must be {2 * PUBLIC_KEY_BYTES} hex characters, got {len(cleaned)}"
        )
    if cleaned != cleaned.lower():
        raise ValueError(f"node id {text!r} must be lowercase hex")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError(f"node id {text!r} is not hexadecimal") from None
