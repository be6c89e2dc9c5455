"""Who may sync with this node: trusted keys from project.toml, and keys enrolled once with a
join token this node issued.

A token is `<issuer node id>.<secret>`. The issuer keeps only a hash of the secret, with an
expiry; redeeming it marks it used and enrols the presenting key, in one transaction. The
joiner learns the issuer's key from the token, so it authenticates the issuer too.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path

from huskies.crdt import parse_node_id

SECRET_BYTES = 32


class TokenError(ValueError):
    """A join token that is not well formed."""


def mint_token(issuer: bytes) -> tuple[str, bytes]:
    """A new token text and the hash of its secret (what the issuer stores)."""
    secret = secrets.token_bytes(SECRET_BYTES)
    return f"{issuer.hex()}.{secret.hex()}", _hash(secret)


def parse_token(text: str) -> tuple[bytes, bytes]:
    """(issuer key, secret hash) of a token; raises TokenError saying what is wrong."""
    issuer, dot, secret = text.partition(".")
    try:
        key = parse_node_id(issuer)
        raw = bytes.fromhex(secret)
    except ValueError:
        raise TokenError("a join token looks like <64 hex digits>.<64 hex digits>") from None
    if not dot or len(raw) != SECRET_BYTES:
        raise TokenError("a join token looks like <64 hex digits>.<64 hex digits>")
    return key, _hash(raw)


def _hash(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()


class TrustStore:
    """Join tokens and enrolled keys in the node's database, through a connection of its own
    (it writes a row now and then, beside the replica's writer)."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=5000")

    def close(self) -> None:
        self._conn.close()

    def add_token(self, secret_hash: bytes, now_ms: int, ttl_ms: int) -> None:
        self._conn.execute(
            "INSERT INTO join_tokens (secret_hash, created_at, expires_at) VALUES (?, ?, ?)",
            (secret_hash, now_ms, now_ms + ttl_ms),
        )

    def redeem(self, secret_hash: bytes, key: bytes, now_ms: int) -> str | None:
        """Enrol `key` with the token; None if it worked, else why not."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT expires_at, used_by FROM join_tokens WHERE secret_hash = ?",
                (secret_hash,),
            ).fetchone()
            if row is None:
                problem: str | None = "the join token is not one this node issued"
            elif row[1] is not None:
                problem = "the join token was already used"
            elif row[0] <= now_ms:
                problem = "the join token has expired"
            else:
                problem = None
                conn.execute(
                    "UPDATE join_tokens SET used_by = ?, used_at = ? WHERE secret_hash = ?",
                    (key, now_ms, secret_hash),
                )
                conn.execute(
                    "INSERT OR IGNORE INTO enrolled_keys (key, enrolled_at) VALUES (?, ?)",
                    (key, now_ms),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return problem

    def enrol(self, key: bytes, now_ms: int) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO enrolled_keys (key, enrolled_at) VALUES (?, ?)", (key, now_ms)
        )

    def enrolled(self) -> set[bytes]:
        return {bytes(row[0]) for row in self._conn.execute("SELECT key FROM enrolled_keys")}


class Trust:
    """The verdict on a peer that proved its key. `configured` is read at every handshake, so
    a key added to project.toml counts without a restart."""

    def __init__(self, configured: Callable[[], set[bytes]], store: TrustStore) -> None:
        self._configured = configured
        self._store = store
        self._expected: set[bytes] = set()

    def expect(self, key: bytes) -> None:
        """Trust the issuer of a join token we present: it is the node we mean to join."""
        self._expected.add(key)

    def is_trusted(self, key: bytes) -> bool:
        return key in self._configured() or key in self._store.enrolled()

    def check(self, key: bytes, token: str | None, now_ms: int) -> tuple[bool, str]:
        if key in self._expected:
            self._store.enrol(key, now_ms)  # joined: trusted from now on, token or not
            return True, ""
        if self.is_trusted(key):
            return True, ""
        if token is None:
            return False, f"{key.hex()[:16]}… is not in trusted_keys and holds no join token"
        try:
            _, secret_hash = parse_token(token)
        except TokenError as exc:
            return False, str(exc)
        problem = self._store.redeem(secret_hash, key, now_ms)
        return (False, problem) if problem else (True, "")
