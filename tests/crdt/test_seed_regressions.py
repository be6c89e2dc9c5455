"""Regression tests for the flaws of the Rust bft-json-crdt crate the seed system used.

Each test builds the attack or accident that crate allowed and shows that this design is immune.
"""

from huskies.crdt import Applied, Document, ObjKind, OpId, Pending, Rejected, RejectReason
from huskies.crdt.change import change_id
from huskies.crdt.ops import MapMake, MapSet, TextInsert

from .support import craft, edit, key, resign, tamper_body

A, B = key(1), key(2)


def test_ids_are_hashed_from_canonical_bytes_not_a_debug_print_of_an_unordered_map():
    """The crate hashed `format!("{:?}")` of ops holding hash maps, so two honest replicas could
    compute different ids for one op. Our id is SHA-256 over canonical CBOR."""
    one = craft(A, 1, 1, [], [MapSet((), "k", {"x": 1, "y": [1.5, None], "z": {"b": 2, "a": 1}})])
    two = craft(A, 1, 1, [], [MapSet((), "k", {"z": {"a": 1, "b": 2}, "y": [1.5, None], "x": 1})])
    assert one.body == two.body
    assert one.id == two.id == change_id(one.body)
    assert "{" not in one.body.decode("latin-1")[:2]  # binary CBOR, not a printed structure


def test_the_path_is_covered_by_the_id_and_signature():
    """The crate signed an op's content but not its path: a relay could re-target a signed op."""
    doc = Document()
    honest = craft(A, 1, 1, [], [MapSet(("items", "1"), "title", "hello")])

    def retarget(body: list) -> None:
        body[6][0][1] = ["items", "2"]

    for rehash, reason in ((False, RejectReason.BAD_ID), (True, RejectReason.BAD_SIGNATURE)):
        result = doc.apply(tamper_body(honest, retarget, rehash=rehash))
        assert isinstance(result, Rejected)
        assert result.reason is reason
    assert doc.view() == {}


def test_the_signer_is_bound_to_the_author():
    """The crate checked a signature but not that the signer was the op's author, so any trusted
    peer could write in another's name."""
    doc = Document()
    in_a_name = craft(A, 1, 1, [], [MapSet((), "k", "forged")])
    result = doc.apply(resign(in_a_name._replace(signer=B.public_key), B))
    assert isinstance(result, Rejected)
    assert result.reason is RejectReason.SIGNER_NOT_AUTHOR
    assert doc.change_count == 0


def test_ties_are_broken_by_the_change_id_not_arrival_order():
    """The crate broke ties on (sequence, author) only, so two different ops with the same pair
    (an equivocating author) resolved by arrival order and replicas diverged."""
    make_text = MapMake((), "t", ObjKind.TEXT)
    first = craft(A, 1, 1, [], [MapSet((), "k", "first"), make_text, TextInsert(("t",), None, "1")])
    second = craft(
        A, 1, 1, [], [MapSet((), "k", "second"), make_text, TextInsert(("t",), None, "2")]
    )
    x, y = Document(), Document()
    for change in (first, second):
        x.apply(change)
    for change in (second, first):
        y.apply(change)
    assert x.view() == y.view()
    higher = first if first.id > second.id else second
    assert x.view()["k"] == ("first" if higher is first else "second")
    # RGA siblings with equal (lamport, author) are ordered by change id as well.
    assert x.view()["t"] == ("12" if higher is first else "21")


def test_ops_on_a_list_element_that_has_not_arrived_are_held_not_dropped():
    """The crate dropped an insert whose origin element it had not seen yet. We hold it as
    pending, because the element's change id names what it waits for, and apply it later."""
    author = Document()
    make = edit(author, A, lambda tx: tx.insert_text(tx.make((), "t", ObjKind.TEXT), 0, "ab"))
    after = edit(author, A, lambda tx: tx.insert_text(("t",), 1, "X"))
    # B inserts behind "a" (slot 1 of `make`: slot 0 made the text) without listing any deps,
    # and its change reaches a replica before `make` does.
    behind_a = craft(B, 1, 2, [], [TextInsert(("t",), OpId(make.id, 1), "Y")])
    replica = Document()
    held = replica.apply(behind_a)
    assert isinstance(held, Pending)
    assert held.missing == {make.id}
    assert isinstance(replica.apply(after), Pending)
    applied = replica.apply(make)
    assert isinstance(applied, Applied)
    assert set(applied.ids) == {make.id, after.id, behind_a.id}
    assert replica.get(("t",)) in ("aYXb", "aXYb")
    author.apply(behind_a)
    assert author.view() == replica.view()
