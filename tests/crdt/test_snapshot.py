"""Snapshots restore the same document, and `preview`/`prepare_local` predict what applying does."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huskies.crdt import (
    AlreadySeen,
    Applied,
    ChangeRefused,
    Document,
    ObjKind,
    Outcome,
    Pending,
    Rejected,
    SignedChange,
    SnapshotError,
    StoredChange,
    Transaction,
    decode_signed,
)

from .support import key
from .test_properties import KEYS, assert_converged, random_transaction

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def stored(doc: Document) -> list[StoredChange]:
    """A document's applied changes as a store would keep them, in apply order."""
    out = []
    for signed in doc.changes_since({}):
        verified = decode_signed(signed)
        assert not isinstance(verified, Rejected)
        change = verified.change
        out.append(
            StoredChange(
                signed.id, signed.body, signed.signature, change.author, change.seq, change.lamport
            )
        )
    return out


def random_history(data: st.DataObject, n: int, steps: int) -> list[Document]:
    docs = [Document() for _ in range(n)]
    for _ in range(data.draw(st.integers(1, steps))):
        i = data.draw(st.integers(0, n - 1))
        if data.draw(st.booleans()):
            j = data.draw(st.integers(0, n - 1))
            for change in docs[j].changes_since(docs[i].clock()):
                docs[i].apply(change)
        random_transaction(data, docs[i]).commit(KEYS[i], 0)
    return docs


@SETTINGS
@given(st.data())
def test_a_restored_snapshot_is_the_same_document_and_keeps_behaving_the_same(data):
    docs = random_history(data, 3, 20)
    original = docs[0]
    restored = Document.restore(original.snapshot(), stored(original))
    assert_converged([original, restored])
    assert restored.max_lamport == original.max_lamport
    for author in KEYS[:3]:
        assert restored.next_seq(author.public_key) == original.next_seq(author.public_key)
    # Both keep editing and receiving alike: the sequences' runs survived with their tombstones.
    later: list[SignedChange] = []
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(1, 2))
        later.append(random_transaction(data, docs[i]).commit(KEYS[i], 0))
    ops = random_transaction(data, original).ops
    for doc in (original, restored):
        doc.commit(ops, KEYS[0], 0, checked=True)
        for change in docs[1].changes_since(doc.clock()) + docs[2].changes_since(doc.clock()):
            doc.apply(change)
    assert_converged([original, restored])


def test_a_damaged_or_mismatched_snapshot_is_refused():
    doc = Document()
    tx = Transaction(doc)
    tx.insert_text(("t",), 0, "hello")
    tx.commit(key(1), 0)
    snap = doc.snapshot()
    with pytest.raises(SnapshotError, match="damaged"):
        Document.restore(snap[:-3], stored(doc))
    with pytest.raises(SnapshotError, match="not in the log"):
        Document.restore(snap, [])
    other = Document()
    tx = Transaction(other)
    tx.set((), "x", 1)
    tx.commit(key(2), 0)
    with pytest.raises(SnapshotError):
        Document.restore(snap, stored(doc) + stored(other))


@SETTINGS
@given(st.data())
def test_preview_predicts_what_applying_does(data):
    """For any delivery order of other replicas' changes, APPLY means applied now, HOLD means
    pending (or released by an earlier change of the batch), SEEN means nothing new: the promise
    a store relies on to file each change before applying it."""
    docs = random_history(data, 2, 15)
    changes = docs[0].changes_since({}) + docs[1].changes_since(docs[0].clock())
    target = Document()
    for change in data.draw(st.lists(st.sampled_from(changes), max_size=len(changes))):
        target.apply(change)
    batch = data.draw(st.lists(st.sampled_from(changes), max_size=len(changes) + 2))
    verified = []
    for change in batch:
        v = decode_signed(change)
        assert not isinstance(v, Rejected)
        verified.append(v)
    outcomes = target.preview(verified)
    for v, outcome in zip(verified, outcomes, strict=True):
        result = target.apply_verified(v)
        if outcome is Outcome.APPLY:
            assert isinstance(result, Applied)
            assert result.ids[0] == v.id
        elif outcome is Outcome.HOLD:
            # Waits, unless a change earlier in the batch released what it waited for.
            assert isinstance(result, Pending | Applied)
        else:
            assert outcome is Outcome.SEEN
            assert isinstance(result, AlreadySeen | Pending)


def test_preview_refuses_what_depends_on_a_rejected_change_and_a_full_pending_set():
    author = Document()
    first = Transaction(author)
    first.set((), "a", 1)
    one = first.commit(key(1), 0)
    second = Transaction(author)
    second.set((), "a", 2)
    two = second.commit(key(1), 0)
    target = Document(max_pending=0)
    v_two = decode_signed(two)
    assert not isinstance(v_two, Rejected)
    [outcome] = target.preview([v_two])
    assert isinstance(outcome, Rejected)
    assert "limit 0" in outcome.detail
    v_one = decode_signed(one)
    assert not isinstance(v_one, Rejected)
    assert target.preview([v_one, v_two, v_one]) == [Outcome.APPLY, Outcome.APPLY, Outcome.SEEN]


def test_prepare_local_chains_unapplied_changes_that_then_apply_in_order():
    doc = Document()
    tx = Transaction(doc)
    tx.make((), "t", ObjKind.TEXT)
    tx.commit(key(1), 0)
    author = key(1).public_key
    first = doc.prepare_local(Transaction(doc).ops, author, 1).sign(key(1))
    tx = Transaction(doc)
    tx.insert_text(("t",), 0, "hi")
    second = doc.prepare_local(tx.ops, author, 2, checked=True, after=first).sign(key(1))
    assert second.change.seq == first.change.seq + 1
    assert second.change.deps == (first.id,)
    assert doc.change_count == 1  # nothing applied yet
    assert doc.preview([first, second]) == [Outcome.APPLY, Outcome.APPLY]
    assert isinstance(doc.apply_verified(first), Applied)
    assert isinstance(doc.apply_verified(second), Applied)
    assert doc.view() == {"t": "hi"}
    with pytest.raises(ValueError, match="same author"):
        doc.prepare_local((), key(2).public_key, 3, after=second)


def test_prepare_local_refuses_a_reference_to_an_element_it_does_not_have():
    source = Document()
    tx = Transaction(source)
    tx.insert_text(("t",), 0, "abc")
    tx.commit(key(1), 0)
    edit = Transaction(source)
    edit.delete_text(("t",), 1, 1)
    with pytest.raises(ChangeRefused, match="not applied"):
        Document().prepare_local(edit.ops, key(2).public_key, 0, checked=True)
