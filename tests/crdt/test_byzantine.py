"""Changes from authors and peers that do not follow the rules."""

import pytest

from huskies.crdt import (
    AlreadySeen,
    Applied,
    Document,
    EncodingError,
    ObjKind,
    OpId,
    Pending,
    Rejected,
    RejectReason,
    SignedChange,
    signed_from_bytes,
)
from huskies.crdt.change import MAX_CHANGE_BYTES, change_id
from huskies.crdt.ops import ListInsert, MapMake, MapSet, TextInsert

from .support import apply_all, craft, edit, key, resign, set_key, tamper_body

A, B, C = key(1), key(2), key(3)


def base() -> tuple[Document, SignedChange]:
    doc = Document()
    change = edit(doc, A, lambda tx: tx.insert_text(tx.make((), "t", ObjKind.TEXT), 0, "hi"))
    return doc, change


def assert_untouched(doc: Document, before: dict, clock: dict) -> None:
    assert doc.view() == before
    assert doc.clock() == clock
    assert doc.pending_count == 0


def set_value(body: list) -> None:
    body[6][0][3] = "forged"


def set_seq(body: list) -> None:
    body[2] = 7


def set_path(body: list) -> None:
    body[6][0][1] = ["elsewhere"]


def set_deps(body: list) -> None:
    body[4] = [bytes(32)]


@pytest.mark.parametrize("mutate", [set_value, set_seq, set_path, set_deps])
@pytest.mark.parametrize(
    ("rehash", "reason"), [(False, RejectReason.BAD_ID), (True, RejectReason.BAD_SIGNATURE)]
)
def test_tampered_changes_are_rejected(mutate, rehash, reason):
    doc = Document()
    honest = craft(A, 1, 1, [], [MapSet((), "k", "honest")])
    forged = tamper_body(honest, mutate, rehash=rehash)
    result = doc.apply(forged)
    assert isinstance(result, Rejected)
    assert result.reason is reason
    assert_untouched(doc, {}, {})
    # The honest change is still accepted afterwards.
    assert doc.apply(honest) == Applied((honest.id,))


def test_a_change_signed_by_someone_else_is_rejected():
    doc, _ = base()
    before, clock = doc.view(), doc.clock()
    claims_a = craft(A, 2, 2, doc.heads, [MapSet((), "k", 1)])
    # B signs A's change and says so: the signer is not the author.
    by_b = resign(claims_a._replace(signer=B.public_key), B)
    result = doc.apply(by_b)
    assert isinstance(result, Rejected)
    assert result.reason is RejectReason.SIGNER_NOT_AUTHOR
    # B signs A's change but claims to be A: the signature does not verify with A's key.
    result = doc.apply(resign(claims_a, B))
    assert isinstance(result, Rejected)
    assert result.reason is RejectReason.BAD_SIGNATURE
    assert_untouched(doc, before, clock)


def test_a_replayed_change_is_already_seen():
    doc, change = base()
    assert doc.apply(change) == AlreadySeen(change.id)
    assert doc.apply(signed_from_bytes(change.to_bytes())) == AlreadySeen(change.id)
    assert doc.change_count == 1


def test_a_bad_signature_does_not_blacklist_the_good_change():
    _, change = base()
    doc = Document()
    garbled = change._replace(signature=bytes(64))
    result = doc.apply(garbled)
    assert isinstance(result, Rejected)
    assert result.reason is RejectReason.BAD_SIGNATURE
    assert doc.apply(change) == Applied((change.id,))


def test_unknown_deps_wait_as_pending_then_apply():
    author, first = base()
    second = edit(author, A, lambda tx: tx.insert_text(("t",), 2, "!"))
    doc = Document()
    result = doc.apply(second)
    assert result == Pending(second.id, frozenset({first.id}), 1)
    assert doc.pending_count == 1
    assert doc.apply(second) == result  # asking again changes nothing
    assert doc.pending_changes() == [second]
    assert doc.apply(first) == Applied((first.id, second.id))
    assert doc.pending_count == 0
    assert doc.view() == author.view() == {"t": "hi!"}


def test_a_change_waits_for_its_authors_previous_seq_even_if_it_does_not_name_it():
    doc = Document()
    one = craft(A, 1, 1, [], [MapSet((), "k", 1)])
    two = craft(A, 2, 1, [], [MapSet((), "k", 2)])  # honest-looking but names no deps
    result = doc.apply(two)
    assert result == Pending(two.id, frozenset(), 1)
    assert doc.apply(one) == Applied((one.id, two.id))


def test_the_pending_set_is_bounded_with_a_clear_result():
    author = Document()
    changes = [set_key(author, A, "k", n) for n in range(5)]
    doc = Document(max_pending=2)
    assert isinstance(doc.apply(changes[2]), Pending)
    assert isinstance(doc.apply(changes[3]), Pending)
    full = doc.apply(changes[4])
    assert isinstance(full, Rejected)
    assert full.reason is RejectReason.PENDING_FULL
    assert "limit 2" in full.detail
    assert doc.pending_count == 2
    assert doc.apply(changes[0]) == Applied((changes[0].id,))
    assert doc.apply(changes[1]) == Applied((changes[1].id, changes[2].id, changes[3].id))
    # Refusing for a full pending set is not a verdict on the change: it applies when resent.
    assert doc.apply(changes[4]) == Applied((changes[4].id,))
    assert doc.view() == author.view()


def test_a_lamport_that_does_not_follow_its_deps_is_rejected_and_remembered():
    doc = Document()
    jumped = craft(A, 1, 1_000_000, [], [MapSet((), "k", "I win every conflict")])
    result = doc.apply(jumped)
    assert isinstance(result, Rejected)
    assert result.reason is RejectReason.BAD_LAMPORT
    assert doc.apply(jumped) == result
    assert doc.max_lamport == 0
    stale = craft(B, 1, 1, [], [MapSet((), "k", 1)])
    doc.apply(stale)
    same = craft(B, 2, 1, [stale.id], [MapSet((), "k", 2)])
    assert doc.apply(same).reason is RejectReason.BAD_LAMPORT  # type: ignore[union-attr]


def test_changes_depending_on_a_rejected_change_are_rejected_too():
    doc = Document()
    bad = craft(A, 1, 9, [], [MapSet((), "k", 1)])
    child = craft(B, 1, 10, [bad.id], [MapSet((), "k", 2)])
    grandchild = craft(C, 1, 11, [child.id], [MapSet((), "k", 3)])
    assert isinstance(doc.apply(grandchild), Pending)
    assert isinstance(doc.apply(child), Pending)
    assert doc.apply(bad).reason is RejectReason.BAD_LAMPORT  # type: ignore[union-attr]
    assert doc.pending_count == 0
    for later in (child, grandchild):
        result = doc.apply(later)
        assert isinstance(result, Rejected)
        assert result.reason is RejectReason.DEPENDS_ON_REJECTED
    assert doc.view() == {}


def test_references_to_elements_that_are_not_in_the_target_are_rejected():
    doc, first = base()
    clock, before = doc.clock(), doc.view()
    cases = [
        TextInsert(("t",), OpId(first.id, 99), "x"),  # no such element
        TextInsert(("other",), OpId(first.id, 1), "x"),  # element of another text
        ListInsert(("t",), OpId(first.id, 1), (1,)),  # a text element used as a list element
        TextInsert(("t",), OpId(b"", 0), "x"),  # "this change" has not inserted anything
    ]
    for op in cases:
        bad = craft(B, 1, 2, [first.id], [op])
        result = doc.apply(bad)
        assert isinstance(result, Rejected), op
        assert result.reason is RejectReason.BAD_REFERENCE
        assert "refers to element" in result.detail
    assert_untouched(doc, before, clock)


def test_a_rejected_multi_op_change_applies_none_of_its_ops():
    doc, first = base()
    clock, before = doc.clock(), doc.view()
    bad = craft(
        B,
        1,
        2,
        [first.id],
        [
            MapSet((), "k", 1),
            MapMake((), "m", ObjKind.MAP),
            TextInsert(("t",), OpId(first.id, 50), "x"),
        ],
    )
    assert doc.apply(bad).reason is RejectReason.BAD_REFERENCE  # type: ignore[union-attr]
    assert_untouched(doc, before, clock)


@pytest.mark.parametrize(
    ("body", "reason", "text"),
    [
        (b"\xff\x00", RejectReason.MALFORMED, "not valid CBOR"),
        (b"\x80", RejectReason.MALFORMED, "body must be"),
        (None, RejectReason.MALFORMED_OP, "unknown op tag"),
        (b"\x40" * (MAX_CHANGE_BYTES + 1), RejectReason.TOO_LARGE, "max"),
    ],
)
def test_malformed_bodies_are_rejected_with_a_reason(body, reason, text):
    import cbor2

    if body is None:
        body = cbor2.dumps([1, A.public_key, 1, 1, [], 0, [[42, [], "x"]]], canonical=True)
    cid = change_id(body)
    forged = SignedChange(cid, body, A.public_key, A.sign(cid))
    doc = Document()
    result = doc.apply(forged)
    assert isinstance(result, Rejected)
    assert result.reason is reason
    assert text in result.detail
    assert doc.change_count == 0


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"\xff", "not valid CBOR"),
        (b"\x80", "signed change must be"),
        (bytes.fromhex("84") + b"\x41a" * 4, "signed change must be"),
    ],
)
def test_malformed_envelopes_raise_a_clear_error(raw, text):
    with pytest.raises(EncodingError, match=text):
        signed_from_bytes(raw)


def test_an_equivocating_author_does_not_split_honest_replicas():
    """A signs two different changes with seq 1 and sends one to each replica."""
    left = craft(A, 1, 1, [], [MapSet((), "k", "left"), MapSet((), "only_left", 1)])
    right = craft(A, 1, 1, [], [MapSet((), "k", "right"), MapSet((), "only_right", 1)])
    follow = craft(A, 2, 2, [left.id], [MapSet((), "after", True)])
    x, y, z = Document(), Document(), Document()
    apply_all(x, [left, follow])
    apply_all(y, [right])
    apply_all(z, [left])
    # Equal counts, different digests: the clocks show the disagreement.
    assert x.clock()[A.public_key].seq == 2
    assert y.clock()[A.public_key].seq == z.clock()[A.public_key].seq == 1
    assert y.clock()[A.public_key].digest != z.clock()[A.public_key].digest
    for _ in range(2):
        for source in (x, y, z):
            for target in (x, y, z):
                if source is not target:
                    apply_all(target, source.changes_since(target.clock()))
    assert x.view() == y.view() == z.view()
    assert x.clock() == y.clock() == z.clock()
    view = x.view()
    assert view["only_left"] == view["only_right"] == 1
    assert view["k"] == ("left" if left.id > right.id else "right")
    assert x.changes_since(y.clock()) == []


@pytest.mark.parametrize("good_sorts_first", [True, False])
def test_a_change_waiting_on_two_deps_is_rejected_when_one_of_them_is(good_sorts_first):
    """A held change waits on its missing deps in id order. Whichever it waits on first, if the
    other is refused meanwhile it must end up rejected, not held forever."""
    bad = craft(B, 1, 7, [], [MapSet((), "b", 1)])  # wrong lamport
    good = next(
        change
        for n in range(100)
        if ((change := craft(A, 1, 1, [], [MapSet((), "a", n)])).id < bad.id) == good_sorts_first
    )
    child = craft(C, 1, 8, [good.id, bad.id], [MapSet((), "c", 1)])
    doc = Document()
    assert isinstance(doc.apply(child), Pending)
    assert isinstance(doc.apply(bad), Rejected)
    assert isinstance(doc.apply(good), Applied)
    assert doc.pending_count == 0
    result = doc.apply(child)
    assert isinstance(result, Rejected)
    assert result.reason is RejectReason.DEPENDS_ON_REJECTED
    assert "a" in doc.view()
    assert "c" not in doc.view()
