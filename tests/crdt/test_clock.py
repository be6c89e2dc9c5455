"""Clocks, digests and `changes_since`."""

import hashlib

import pytest

from huskies.crdt import AuthorClock, Document
from huskies.crdt.clock import AuthorLog
from huskies.crdt.ops import MapSet

from .support import apply_all, craft, key, set_key

A, B = key(1), key(2)


def test_digest_is_sha256_over_ids_in_seq_order():
    log = AuthorLog()
    ids = [bytes([n]) * 32 for n in range(1, 5)]
    for seq, cid in enumerate(ids, 1):
        log.add(seq, cid)
    assert log.clock() == AuthorClock(4, hashlib.sha256(b"".join(ids)).digest())
    assert log.digest(2) == hashlib.sha256(b"".join(ids[:2])).digest()
    assert log.digest(0) == hashlib.sha256().digest()


def test_digest_with_a_fork_orders_ids_at_one_seq_by_bytes():
    log = AuthorLog()
    one, fork_low, fork_high = bytes([9]) * 32, bytes([1]) * 32, bytes([5]) * 32
    log.add(1, one)
    log.add(2, fork_high)
    log.add(2, fork_low)
    assert log.seq == 2
    assert log.ids_at(2) == [fork_low, fork_high]
    assert log.digest(2) == hashlib.sha256(one + fork_low + fork_high).digest()
    assert sorted(log.ids_after(0)) == sorted([one, fork_low, fork_high])
    assert sorted(log.ids_after(1)) == sorted([fork_low, fork_high])
    assert sorted(log.fork_ids()) == sorted([fork_low, fork_high])


def test_a_seq_beyond_the_next_is_refused():
    log = AuthorLog()
    with pytest.raises(ValueError, match="seq 2 applied before seq 1"):
        log.add(2, bytes(32))


def test_clock_counts_only_applied_changes_per_author():
    doc = Document()
    a1 = set_key(doc, A, "k", 1)
    set_key(doc, A, "k", 2)
    b2 = craft(B, 2, 3, [], [MapSet((), "x", 1)])  # waits for B's seq 1
    doc.apply(b2)
    clock = doc.clock()
    assert set(clock) == {A.public_key}
    assert clock[A.public_key].seq == 2
    assert doc.pending_count == 1
    assert a1.id in doc


def test_changes_since_sends_exactly_what_the_other_lacks_in_applicable_order():
    ahead, behind = Document(), Document()
    changes = [set_key(ahead, A, "k", n) for n in range(5)]
    apply_all(behind, changes[:2])
    missing = ahead.changes_since(behind.clock())
    assert missing == changes[2:]
    assert ahead.changes_since(ahead.clock()) == []
    assert behind.changes_since(ahead.clock()) == []
    assert ahead.changes_since({}) == changes


def test_changes_since_with_a_forged_digest_resends_that_author():
    ahead = Document()
    changes = [set_key(ahead, A, "k", n) for n in range(3)]
    wrong = {A.public_key: AuthorClock(2, bytes(32))}
    assert ahead.changes_since(wrong) == changes
