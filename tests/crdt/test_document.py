"""Semantics of the document's node types, the builder and the views."""

from typing import Any

import pytest

from huskies.crdt import (
    Applied,
    ChangeRefused,
    Document,
    ObjKind,
    OpId,
    Transaction,
    signed_from_bytes,
)
from huskies.crdt.ops import ListSet, MapSet, Op, TextInsert

from .support import apply_all, edit, key, set_key, type_text

A, B, C = key(1), key(2), key(3)


def synced(*docs: Document) -> None:
    """Exchange changes between every pair until all have everything (over the wire form)."""
    for source in docs:
        for target in docs:
            if source is not target:
                for change in source.changes_since(target.clock()):
                    target.apply(signed_from_bytes(change.to_bytes()))


def test_empty_document_views_as_an_empty_map():
    doc = Document()
    assert doc.view() == {}
    assert doc.clock() == {}
    assert doc.changes_since({}) == []


def test_map_set_make_delete_and_nested_view():
    doc = Document()

    def build(tx: Transaction) -> None:
        items = tx.make((), "items", ObjKind.MAP)
        item = tx.make(items, "1", ObjKind.MAP)
        tx.set(item, "title", "Write the CRDT")
        tx.set(item, "estimate", 3)
        tx.set(item, "meta", {"labels": ["core"], "ok": True})
        tx.set((), "gone", "soon")
        tx.delete((), "gone")

    edit(doc, A, build)
    assert doc.view() == {
        "items": {
            "1": {
                "title": "Write the CRDT",
                "estimate": 3,
                "meta": {"labels": ["core"], "ok": True},
            }
        }
    }
    assert doc.get(("items", "1", "title")) == "Write the CRDT"
    with pytest.raises(KeyError):
        doc.get(("gone",))
    with pytest.raises(KeyError):
        doc.get(("items", "1", "title", "deeper"))


def test_views_are_copies():
    doc = Document()
    edit(doc, A, lambda tx: tx.set((), "list", [1, 2]))
    view = doc.view()
    view["list"].append(3)  # type: ignore[union-attr]
    assert doc.view() == {"list": [1, 2]}


def test_last_writer_wins_by_lamport_then_author_then_change_id():
    a, b = Document(), Document()
    edit(a, A, lambda tx: tx.set((), "k", "from A"))
    edit(b, B, lambda tx: tx.set((), "k", "from B"))
    synced(a, b)
    # Equal lamports: the greater author key wins, the same on both replicas.
    winner = "from A" if A.public_key > B.public_key else "from B"
    assert a.view() == b.view() == {"k": winner}
    # A later write (higher lamport) wins whoever makes it.
    loser = A if winner == "from B" else B
    later = a if loser is A else b
    edit(later, loser, lambda tx: tx.set((), "k", "later"))
    synced(a, b)
    assert a.view() == b.view() == {"k": "later"}


def test_ops_in_one_change_are_ordered_by_op_index():
    doc = Document()

    def build(tx: Transaction) -> None:
        tx.set((), "k", 1)
        tx.set((), "k", 2)

    edit(doc, A, build)
    assert doc.view() == {"k": 2}


def test_concurrent_creation_of_the_same_map_merges():
    a, b = Document(), Document()
    edit(a, A, lambda tx: tx.set(tx.make((), "items", ObjKind.MAP), "x", 1))
    edit(b, B, lambda tx: tx.set(tx.make((), "items", ObjKind.MAP), "y", 2))
    synced(a, b)
    assert a.view() == b.view() == {"items": {"x": 1, "y": 2}}


def test_register_versus_container_is_decided_by_the_same_order():
    a, b = Document(), Document()
    edit(a, A, lambda tx: tx.set((), "k", "plain"))
    edit(b, B, lambda tx: tx.insert_text(tx.make((), "k", ObjKind.TEXT), 0, "text"))
    synced(a, b)
    expected = "plain" if A.public_key > B.public_key else "text"
    assert a.view() == b.view() == {"k": expected}


def test_list_insert_replace_remove_and_containers_in_lists():
    doc = Document()
    lst = ("l",)
    first = Transaction(doc)
    first.make((), "l", ObjKind.LIST)
    first.insert(lst, 0, "a", "c")
    first.insert(lst, 1, "b")
    element = first.insert_container(lst, 3, ObjKind.MAP)
    first.set((*lst, element), "inside", True)
    first.commit(A, 1)
    assert doc.view() == {"l": ["a", "b", "c", {"inside": True}]}
    real = first.resolve(element)
    assert real.change != b""
    assert doc.get(("l", real, "inside")) is True

    def second(tx: Transaction) -> None:
        tx.replace(lst, 0, "A")
        tx.remove(lst, 1, 2)
        tx.insert(lst, 1, "middle")

    edit(doc, A, second)
    assert doc.view() == {"l": ["A", "middle", {"inside": True}]}


def test_text_insert_and_delete_with_several_ops_in_one_change():
    doc = Document()
    text = ("t",)

    def build(tx: Transaction) -> None:
        tx.make((), "t", ObjKind.TEXT)
        tx.insert_text(text, 0, "hello world")
        tx.delete_text(text, 0, 6)
        tx.insert_text(text, 5, "!")
        tx.insert_text(text, 0, "big ")

    edit(doc, A, build)
    assert doc.view() == {"t": "big world!"}
    edit(doc, A, lambda tx: tx.delete_text(text, 2, 5))
    assert doc.get(text) == "bild!"


def test_concurrent_inserts_at_one_place_do_not_interleave():
    a, b = Document(), Document()
    edit(a, A, lambda tx: tx.insert_text(tx.make((), "t", ObjKind.TEXT), 0, "[]"))
    synced(a, b)
    edit(a, A, lambda tx: tx.insert_text(("t",), 1, "alpha"))
    edit(b, B, lambda tx: tx.insert_text(("t",), 1, "beta"))
    synced(a, b)
    assert a.get(("t",)) == b.get(("t",))
    assert a.get(("t",)) in ("[alphabeta]", "[betaalpha]")


def test_sequential_typing_from_both_sides_converges():
    a, b = Document(), Document()
    edit(a, A, lambda tx: tx.make((), "t", ObjKind.TEXT))
    synced(a, b)
    for ch in "abc":
        type_text(a, A, len(str(a.get(("t",)))), ch)
    for ch in "xyz":
        type_text(b, B, 0, ch)
    synced(a, b)
    assert a.get(("t",)) == b.get(("t",))
    assert sorted(str(a.get(("t",)))) == sorted("abcxyz")
    assert "abc" in str(a.get(("t",)))


def test_delete_of_an_already_deleted_element_is_harmless():
    a, b = Document(), Document()
    edit(a, A, lambda tx: tx.insert_text(tx.make((), "t", ObjKind.TEXT), 0, "abc"))
    synced(a, b)
    edit(a, A, lambda tx: tx.delete_text(("t",), 1, 1))
    edit(b, B, lambda tx: tx.delete_text(("t",), 0, 2))
    synced(a, b)
    assert a.view() == b.view() == {"t": "c"}


def test_out_of_range_positions_raise_and_commit_nothing():
    doc = Document()
    edit(doc, A, lambda tx: tx.insert_text(tx.make((), "t", ObjKind.TEXT), 0, "abc"))
    before = doc.clock()
    tx = Transaction(doc)
    with pytest.raises(IndexError, match="outside"):
        tx.insert_text(("t",), 4, "x")
    with pytest.raises(IndexError, match="outside"):
        tx.delete_text(("t",), 2, 2)
    with pytest.raises(IndexError, match="outside"):
        tx.remove(("nothing",), 0)
    assert len(tx) == 0
    assert doc.clock() == before


def test_committing_twice_is_an_error():
    doc = Document()
    tx = Transaction(doc)
    tx.set((), "k", 1)
    tx.commit(A, 0)
    with pytest.raises(RuntimeError, match="already committed"):
        tx.commit(A, 0)
    with pytest.raises(RuntimeError, match="already committed"):
        tx.set((), "k", 2)


def test_local_ops_referring_to_unknown_elements_are_refused_and_change_nothing():
    doc = Document()
    edit(doc, A, lambda tx: tx.make((), "l", ObjKind.LIST))
    unknown = OpId(bytes(32), 0)
    with pytest.raises(ChangeRefused, match="has not applied"):
        doc.commit([ListSet(("l",), unknown, 1)], A, 0)
    existing = next(iter(doc.heads))
    with pytest.raises(ChangeRefused, match="not in the list"):
        doc.commit([ListSet(("l",), OpId(existing, 0), 1)], A, 0)
    with pytest.raises(ChangeRefused, match="not in the text"):
        doc.commit([TextInsert(("t",), OpId(existing, 5), "x")], A, 0)
    assert doc.change_count == 1
    assert doc.pending_count == 0
    # The refused attempts did not use up sequence numbers.
    assert doc.commit([MapSet((), "k", 1)], A, 0) is not None
    assert doc.clock()[A.public_key].seq == 2


def test_applied_result_lists_released_changes_in_order():
    a, b = Document(), Document()
    c1 = edit(a, A, lambda tx: tx.set((), "k", 1))
    c2 = edit(a, A, lambda tx: tx.set((), "k", 2))
    c3 = edit(a, A, lambda tx: tx.set((), "k", 3))
    assert apply_all(b, [c3, c2])[0].missing  # type: ignore[union-attr]
    assert b.apply(c1) == Applied((c1.id, c2.id, c3.id))
    assert b.view() == {"k": 3}


def test_next_seq_and_lamport_resume_from_what_was_applied():
    a = Document()
    for n in range(3):
        set_key(a, A, "k", n)
    fresh = Document()
    apply_all(fresh, a.changes_since({}))
    assert fresh.next_seq(A.public_key) == 4
    assert fresh.max_lamport == 3
    later = edit(fresh, A, lambda tx: tx.set((), "k", "after restart"))
    assert a.apply(later) == Applied((later.id,))
    assert a.view() == {"k": "after restart"}


def test_one_change_may_delete_what_several_of_its_own_ops_inserted():
    """Found by the property tests: a delete span across two inserts of the same change."""
    doc = Document()

    def build(tx: Transaction) -> None:
        tx.make((), "l", ObjKind.LIST)
        tx.insert(("l",), 0, "first")
        tx.insert(("l",), 1, "second")
        tx.remove(("l",), 0, 2)
        tx.make((), "t", ObjKind.TEXT)
        tx.insert_text(("t",), 0, "ab")
        tx.insert_text(("t",), 2, "cd")
        tx.delete_text(("t",), 1, 2)

    change = edit(doc, A, build)
    assert doc.view() == {"l": [], "t": "ad"}
    replica = Document()
    assert replica.apply(change) == Applied((change.id,))
    assert replica.view() == doc.view()


def test_raw_ops_a_remote_replica_would_refuse_are_refused_locally():
    doc = Document()
    not_a_path: Any = (1,)  # a path segment that is neither a map key nor an element id
    bad_ops: list[Op] = [
        MapSet(not_a_path, "k", 1),
        MapSet((), "k", float("nan")),
        TextInsert(("t",), None, ""),
    ]
    for op in bad_ops:
        with pytest.raises(ChangeRefused, match="malformed_op"):
            doc.commit([op], A, 0)
    assert doc.change_count == 0
    assert doc.view() == {}


@pytest.mark.parametrize("bad_path", [(1,), ([1],), ("a", b"raw"), ("x",) * 17, ["not", "a tuple"]])
def test_the_builder_refuses_bad_paths_before_anything_is_written(bad_path: Any):
    doc = Document()
    tx = Transaction(doc)
    for attempt in (
        lambda: tx.set(bad_path, "k", 1),
        lambda: tx.insert_text(bad_path, 0, "x"),
        lambda: tx.insert(bad_path, 0, 1),
    ):
        with pytest.raises(ValueError, match="path"):
            attempt()
    assert len(tx) == 0
