"""Item edits against real documents: what they store, and how they merge."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huskies.crdt import Document, NodeKey, OpId, Transaction, signed_from_bytes
from huskies.crdt.ops import TextDelete, TextInsert
from huskies.pipeline import (
    Backlog,
    Claim,
    Coding,
    ItemKind,
    ItemsView,
    Merge,
    QaMode,
    WorkItem,
    create_item,
    item_key,
    project_items,
    purge,
    read_items,
    save_body,
    set_fields,
    set_stage,
)

from ..crdt.support import key

A, B = key(1), key(2)
T = 1_700_000_000_000


def synced(*docs: Document) -> None:
    """Give every document every change the others have (over the wire form)."""
    for source in docs:
        for target in docs:
            if source is not target:
                for change in source.changes_since(target.clock()):
                    target.apply(signed_from_bytes(change.to_bytes()))


def add(doc: Document, number: int = 1, body: str = "", at: int = T, signer: NodeKey = A) -> OpId:
    tx = Transaction(doc)
    item = create_item(
        tx,
        number=number,
        kind=ItemKind.STORY,
        title=f"Story {number}",
        body=body,
        depends_on=(),
        qa=None,
        at=at,
    )
    tx.commit(signer, at)
    return tx.resolve(item)


def board(doc: Document) -> ItemsView:
    view = project_items(read_items(doc))
    assert view.errors == []
    return view


def only(doc: Document) -> WorkItem:
    (item,) = board(doc).items
    return item


def body(doc: Document) -> str:
    return only(doc).body


def test_create_item_stores_a_complete_backlog_item():
    doc = Document()
    tx = Transaction(doc)
    item = create_item(
        tx,
        number=4,
        kind=ItemKind.BUG,
        title="Fix login",
        body="It fails.",
        depends_on=[1, 2],
        qa=QaMode.AGENT,
        at=T,
    )
    tx.commit(A, T)
    item_id = item_key(tx.resolve(item))
    assert board(doc).items == [
        WorkItem(
            id=item_id,
            number=4,
            kind=ItemKind.BUG,
            title="Fix login",
            body="It fails.",
            stage=Backlog(),
            agent=None,
            qa=QaMode.AGENT,
            depends_on=(1, 2),
            retries=0,
            blocked_reason=None,
            claim=None,
            created_at=T,
            updated_at=T,
        )
    ]


def test_create_item_refuses_a_number_below_one():
    with pytest.raises(ValueError, match="start at 1"):
        create_item(
            Transaction(Document()),
            number=0,
            kind=ItemKind.STORY,
            title="t",
            body="",
            depends_on=(),
            qa=None,
            at=T,
        )


def test_items_created_in_one_transaction_or_concurrently_all_survive():
    a, b = Document(), Document()
    tx = Transaction(a)
    for number in (1, 2):
        create_item(
            tx,
            number=number,
            kind=ItemKind.SPIKE,
            title="t",
            body="",
            depends_on=(),
            qa=None,
            at=T,
        )
    tx.commit(A, T)
    add(b, number=2, at=T + 1, signer=B)  # minted apart: the same number again
    synced(a, b)
    assert a.view() == b.view()
    view = board(a)
    assert [item.number for item in view.items] == [1, 2, 3]
    assert view == board(b)


def test_read_items_on_an_empty_document_or_when_items_is_not_a_list():
    doc = Document()
    assert read_items(doc) == []
    add(doc)
    tx = Transaction(doc)
    tx.set((), "items", "overwritten")
    tx.commit(B, T)
    assert read_items(doc) == []
    add(doc, number=2)  # making the list again brings every item back
    assert [item.number for item in board(doc).items] == [1, 2]


def test_set_fields_and_set_stage_bump_updated_at():
    doc = Document()
    item = add(doc)
    tx = Transaction(doc)
    set_fields(tx, item, {"agent": "coder-1", "claim": {"node": "n1", "expires_at": T + 9}}, T + 1)
    set_stage(tx, item, Merge("feature/story-1", 3), T + 2)
    tx.commit(A, T + 2)
    stored = only(doc)
    assert (stored.agent, stored.claim) == ("coder-1", Claim("n1", T + 9))
    assert stored.stage == Merge("feature/story-1", 3)
    assert (stored.created_at, stored.updated_at) == (T, T + 2)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("body", "edit it with save_body"),
        ("updated_at", "kept by the edits themselves"),
        ("created_at", "kept by the edits themselves"),
        ("labels", "unknown item field 'labels'"),
    ],
)
def test_set_fields_refuses_fields_it_must_not_set(name: str, problem: str):
    doc = Document()
    item = add(doc)
    tx = Transaction(doc)
    with pytest.raises(ValueError, match=problem):
        set_fields(tx, item, {"title": "new", name: 1}, T)
    assert len(tx) == 0


def test_concurrent_field_edits_each_keep_their_own_field():
    a, b = Document(), Document()
    item = add(a)
    synced(a, b)
    tx = Transaction(a)
    set_stage(tx, item, Coding(), T + 1)
    tx.commit(A, T + 1)
    tx = Transaction(b)
    set_fields(tx, item, {"title": "Renamed"}, T + 1)
    tx.commit(B, T + 1)
    synced(a, b)
    assert only(a) == only(b)
    assert (only(a).stage, only(a).title) == (Coding(), "Renamed")


def test_a_one_character_change_touches_only_that_character():
    doc = Document()
    item = add(doc, body="hello world, hello everyone")
    tx = Transaction(doc)
    save_body(tx, item, "hello world, hello everyone", "hello World, hello everyone")
    assert [type(op) for op in tx.ops] == [TextDelete, TextInsert]
    delete, insert = tx.ops
    assert isinstance(delete, TextDelete)
    assert isinstance(insert, TextInsert)
    assert sum(span.length for span in delete.spans) == 1
    assert insert.text == "W"
    tx.commit(A, T)
    assert body(doc) == "hello World, hello everyone"


def test_saving_an_unchanged_body_adds_no_ops():
    doc = Document()
    item = add(doc, body="same")
    tx = Transaction(doc)
    save_body(tx, item, "same", "same")
    assert len(tx) == 0


def test_concurrent_edits_of_different_parts_of_a_body_both_survive():
    original = "Goal: ship it.\nSteps: write, test, merge.\nNotes: none."
    a, b = Document(), Document()
    item = add(a, body=original)
    synced(a, b)
    tx = Transaction(a)
    save_body(tx, item, original, original.replace("ship it", "ship the board"))
    tx.commit(A, T + 1)
    tx = Transaction(b)
    save_body(tx, item, original, original.replace("Notes: none.", "Notes: ask Sam first."))
    tx.commit(B, T + 1)
    synced(a, b)
    expected = "Goal: ship the board.\nSteps: write, test, merge.\nNotes: ask Sam first."
    assert body(a) == body(b) == expected


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60), st.text(max_size=60))
def test_save_body_turns_old_into_new(old: str, new: str):
    doc = Document()
    item = add(doc, body=old)
    tx = Transaction(doc)
    save_body(tx, item, old, new)
    tx.commit(A, T + 1)
    assert body(doc) == new
    replica = Document()
    synced(doc, replica)
    assert body(replica) == new


@given(st.text(alphabet="ab€😀\n ", max_size=30), st.data())
def test_a_pure_insertion_or_deletion_is_one_op(old: str, data: st.DataObject):
    start = data.draw(st.integers(0, len(old)))
    inserted = data.draw(st.text(alphabet="ab€😀\n ", min_size=1, max_size=10))
    end = data.draw(st.integers(start, len(old)))
    doc = Document()
    item = add(doc, body=old)
    grow = Transaction(doc)
    save_body(grow, item, old, old[:start] + inserted + old[start:])
    assert [len(op.text) for op in grow.ops if isinstance(op, TextInsert)] == [len(inserted)]
    assert len(grow) == 1
    shrink = Transaction(doc)
    save_body(shrink, item, old, old[:start] + old[end:])
    assert len(shrink) == (1 if end > start else 0)
    assert all(
        isinstance(op, TextDelete) and sum(s.length for s in op.spans) == end - start
        for op in shrink.ops
    )


def test_a_purged_item_stays_gone_when_older_concurrent_edits_arrive():
    a, b = Document(), Document()
    item = add(a)
    keep = add(a, number=2)
    synced(a, b)
    tx = Transaction(b)
    set_fields(tx, item, {"title": "Edited while apart"}, T + 1)
    save_body(tx, item, "", "more detail")
    tx.commit(B, T + 1)
    tx = Transaction(a)
    purge(tx, a, item)
    tx.commit(A, T + 1)
    assert [i.id for i in board(a).items] == [item_key(keep)]
    synced(a, b)  # a now applies b's older edits to the purged item, b applies the purge
    assert a.view() == b.view()
    assert [i.id for i in board(a).items] == [item_key(keep)]
    assert board(a) == board(b)
    # Later edits to it apply, but still to nothing anyone sees.
    tx = Transaction(b)
    set_fields(tx, item, {"title": "Resurrected?"}, T + 2)
    tx.commit(B, T + 2)
    assert [i.id for i in board(b).items] == [item_key(keep)]


def test_purge_refuses_an_unknown_item_or_a_transaction_that_already_edited_the_list():
    doc = Document()
    item = add(doc)
    with pytest.raises(ValueError, match="no live item"):
        purge(Transaction(doc), doc, OpId(b"\x01" * 32, 0))
    tx = Transaction(doc)
    purge(tx, doc, item)
    tx.commit(A, T)
    with pytest.raises(ValueError, match="no live item"):
        purge(Transaction(doc), doc, item)
    other = add(doc, number=2)
    tx = Transaction(doc)
    create_item(tx, number=3, kind=ItemKind.STORY, title="t", body="", depends_on=(), qa=None, at=T)
    with pytest.raises(ValueError, match="no other change to the items list"):
        purge(tx, doc, other)
