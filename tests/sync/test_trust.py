"""Join tokens and trusted keys against a real database."""

from __future__ import annotations

from pathlib import Path

import pytest

from huskies.store.database import Store
from huskies.sync.trust import TokenError, Trust, TrustStore, mint_token, parse_token

from ..crdt.support import key

HOUR_MS = 3_600_000


@pytest.fixture
def store(tmp_path: Path):
    path = tmp_path / "huskies.db"
    Store.open(path).close()
    trust_store = TrustStore(path)
    yield trust_store
    trust_store.close()


def test_a_token_enrols_one_key_once_before_it_expires(store: TrustStore):
    issuer, joiner, latecomer = key(1), key(2), key(3)
    token, secret_hash = mint_token(issuer.public_key)
    assert parse_token(token) == (issuer.public_key, secret_hash)
    store.add_token(secret_hash, now_ms=0, ttl_ms=HOUR_MS)
    trust = Trust(lambda: set(), store)
    assert trust.check(joiner.public_key, None, 10) == (
        False,
        f"{joiner.public_key.hex()[:16]}… is not in trusted_keys and holds no join token",
    )
    assert trust.check(joiner.public_key, token, 10) == (True, "")
    assert trust.is_trusted(joiner.public_key)
    assert trust.check(joiner.public_key, None, 20) == (True, "")  # enrolled: no token needed
    assert trust.check(latecomer.public_key, token, 30) == (
        False,
        "the join token was already used",
    )
    assert not trust.is_trusted(latecomer.public_key)


def test_expired_unknown_and_malformed_tokens_are_refused(store: TrustStore):
    issuer, joiner = key(1), key(2)
    token, secret_hash = mint_token(issuer.public_key)
    store.add_token(secret_hash, now_ms=0, ttl_ms=HOUR_MS)
    trust = Trust(lambda: set(), store)
    assert trust.check(joiner.public_key, token, HOUR_MS) == (False, "the join token has expired")
    stranger_token, _ = mint_token(issuer.public_key)
    assert trust.check(joiner.public_key, stranger_token, 1) == (
        False,
        "the join token is not one this node issued",
    )
    for bad in ("", "abc", f"{issuer.public_key.hex()}.zz", f"{issuer.public_key.hex()}"):
        allowed, reason = trust.check(joiner.public_key, bad, 1)
        assert not allowed
        assert "looks like" in reason
        with pytest.raises(TokenError):
            parse_token(bad)
    assert store.enrolled() == set()


def test_configured_keys_are_read_at_every_check(store: TrustStore):
    configured: set[bytes] = set()
    trust = Trust(lambda: configured, store)
    peer = key(4).public_key
    assert not trust.check(peer, None, 0)[0]
    configured.add(peer)
    assert trust.check(peer, None, 0) == (True, "")


def test_the_issuer_of_a_token_we_present_is_trusted_and_remembered(store: TrustStore):
    issuer = key(5).public_key
    trust = Trust(lambda: set(), store)
    trust.expect(issuer)
    assert trust.check(issuer, None, 0) == (True, "")
    assert Trust(lambda: set(), store).is_trusted(issuer)  # enrolled, so it survives restarts
