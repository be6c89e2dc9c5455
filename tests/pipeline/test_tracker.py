"""The item tracker: kept current change by change, it shows what a full projection shows, and
what it reports is enough for a reader to keep its own copy of the board."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huskies.crdt import (
    Document,
    NodeKey,
    ObjKind,
    OpId,
    SignedChange,
    Transaction,
    VerifiedChange,
    decode_signed,
    signed_from_bytes,
)
from huskies.pipeline import (
    ItemKind,
    WorkItem,
    create_item,
    parse_item_key,
    project_items,
    purge,
    read_items,
    save_body,
    set_fields,
)
from huskies.pipeline.schema import ITEMS, ITEMS_PATH
from huskies.pipeline.tracker import BoardChanges, ItemTracker

from ..crdt.support import key

T = 1_700_000_000_000
SIGNERS = (key(1), key(2))


def verified(signed: SignedChange) -> VerifiedChange:
    result = decode_signed(signed, check_signature=False)
    assert isinstance(result, VerifiedChange)
    return result


class Node:
    """A document with a tracker fed every change the document applies, and a copy of the
    board kept only from what the tracker reports (as a reader of the event stream would)."""

    def __init__(self, signer: NodeKey) -> None:
        self.doc = Document()
        self.signer = signer
        self.tracker = ItemTracker(self.doc)
        self.copy: dict[str, WorkItem] = {}
        self.clock = T

    def edit(self, build: Callable[[Transaction], object]) -> None:
        tx = Transaction(self.doc)
        build(tx)
        self.commit(tx)

    def receive(self, changes: list[SignedChange]) -> None:
        for change in changes:
            self.doc.apply(signed_from_bytes(change.to_bytes()))
        self.follow(changes)

    def follow(self, changes: list[SignedChange]) -> None:
        reported = self.tracker.update(self.doc, [verified(c) for c in changes])
        self.keep(reported)
        self.check()

    def keep(self, reported: BoardChanges) -> None:
        for item in reported.changed:
            self.copy[item.id] = item
        for item in reported.removed:
            del self.copy[item.id]
        for error in reported.failed:
            self.copy.pop(error.item_id, None)

    def check(self) -> None:
        full = project_items(read_items(self.doc))
        assert self.tracker.view.items == full.items
        assert self.tracker.view.errors == full.errors
        assert self.tracker.view.claimed == full.claimed
        assert self.copy == {item.id: item for item in full.items}

    def element(self, pick: int) -> OpId | None:
        raw = read_items(self.doc)
        return parse_item_key(raw[pick % len(raw)][0]) if raw else None

    def step(self, step: tuple[Any, ...]) -> None:
        """One edit drawn by the test (see `actions`)."""
        tx = Transaction(self.doc)
        match step:
            case ("create", _, number):
                create_item(
                    tx,
                    number=number,
                    kind=ItemKind.STORY,
                    title=f"Item {number}",
                    body="",
                    depends_on=(),
                    qa=None,
                    at=self.clock,
                )
            case ("hide", _):
                tx.set((), ITEMS, 5)
            case (action, _, pick, *value):
                element = self.element(pick)
                if element is None:
                    return
                if action == "purge":
                    purge(tx, self.doc, element)
                elif action == "body":
                    current = self.doc.get((*ITEMS_PATH, element, "body"))
                    if not isinstance(current, str):
                        return
                    save_body(tx, element, current, value[0])
                else:
                    set_fields(tx, element, {action: value[0]}, self.clock)
        self.commit(tx)

    def commit(self, tx: Transaction) -> None:
        if len(tx):
            self.clock += 1
            self.follow([tx.commit(self.signer, self.clock)])


actions = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.integers(0, 1), st.integers(1, 4)),
        st.tuples(st.just("title"), st.integers(0, 1), st.integers(0, 9), st.text(max_size=5)),
        st.tuples(st.just("body"), st.integers(0, 1), st.integers(0, 9), st.text(max_size=5)),
        st.tuples(st.just("number"), st.integers(0, 1), st.integers(0, 9), st.integers(1, 4)),
        st.tuples(
            st.just("kind"), st.integers(0, 1), st.integers(0, 9), st.sampled_from(["bug", 7])
        ),
        st.tuples(st.just("purge"), st.integers(0, 1), st.integers(0, 9)),
        st.tuples(st.just("hide"), st.integers(0, 1)),
        st.tuples(st.just("sync")),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions)
def test_the_tracker_matches_a_full_projection_after_any_changes(steps):
    nodes = [Node(signer) for signer in SIGNERS]
    for step in steps:
        if step[0] == "sync":
            a, b = nodes
            to_b = a.doc.changes_since(b.doc.clock())
            to_a = b.doc.changes_since(a.doc.clock())
            b.receive(to_b)
            a.receive(to_a)
            continue
        nodes[step[1]].step(step)


def test_a_hidden_list_and_its_return_are_followed():
    node = Node(SIGNERS[0])
    node.edit(
        lambda tx: create_item(
            tx, number=1, kind=ItemKind.BUG, title="t", body="", depends_on=(), qa=None, at=T
        )
    )
    assert [item.number for item in node.tracker.view.items] == [1]
    node.edit(lambda tx: tx.set((), ITEMS, "not a list"))
    assert node.tracker.view.items == []
    node.edit(lambda tx: tx.make((), ITEMS, ObjKind.LIST))
    node.check()


def test_edits_of_other_parts_of_the_document_report_nothing():
    node = Node(SIGNERS[0])
    node.edit(
        lambda tx: create_item(
            tx, number=1, kind=ItemKind.BUG, title="t", body="", depends_on=(), qa=None, at=T
        )
    )
    tx = Transaction(node.doc)
    tx.make((), "nodes", ObjKind.MAP)
    reported = node.tracker.update(node.doc, [verified(tx.commit(node.signer, T + 5))])
    assert reported == BoardChanges([], [], [])
