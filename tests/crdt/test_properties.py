"""Property tests: replicas editing every node type converge whatever the network does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huskies.crdt import (
    Applied,
    Document,
    ObjKind,
    SignedChange,
    Transaction,
    sequence,
    signed_from_bytes,
)

from .support import key

KEYS = [key(n) for n in range(1, 6)]
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(-2, 2, width=32)
    | st.text("ab", max_size=3)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("xy"), inner, max_size=2)
    ),
    max_leaves=4,
)
small_text = st.text("abcxyz", min_size=1, max_size=4)

ROOT_KEYS = ["a", "b", "m", "l", "t"]


@pytest.fixture(scope="module", autouse=True, params=["normal-chunks", "tiny-chunks"])
def chunk_size(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run every property twice: tiny chunks put chunk boundaries everywhere."""
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "tiny-chunks":
            patch.setattr(sequence, "MAX_RUNS_PER_CHUNK", 2)
        yield


def length(doc: Document, path: tuple, kind: ObjKind, tx_offset: int) -> int:
    sequence = doc.sequence(path, kind)
    return (sequence.live if sequence is not None else 0) + tx_offset


def random_transaction(data: st.DataObject, doc: Document) -> Transaction:
    """1-3 random ops over a map register, a nested map, a list and a text."""
    tx = Transaction(doc)
    offsets = {("l",): 0, ("t",): 0}  # how this transaction changed each sequence's length
    for _ in range(data.draw(st.integers(1, 3))):
        choice = data.draw(st.integers(0, 9))
        if choice == 0:
            tx.set((), data.draw(st.sampled_from(["a", "b"])), data.draw(json_values))
        elif choice == 1:
            root_key = data.draw(st.sampled_from(ROOT_KEYS))
            kind = {"m": ObjKind.MAP, "l": ObjKind.LIST, "t": ObjKind.TEXT}.get(
                root_key, ObjKind.MAP
            )
            tx.make((), root_key, data.draw(st.sampled_from([kind, kind, ObjKind.MAP])))
        elif choice == 2:
            tx.delete((), data.draw(st.sampled_from(ROOT_KEYS)))
        elif choice == 3:
            tx.set(("m",), data.draw(st.sampled_from("xyz")), data.draw(json_values))
        elif choice in (4, 5):
            n = length(doc, ("l",), ObjKind.LIST, offsets[("l",)])
            values = data.draw(st.lists(json_leaves, min_size=1, max_size=3))
            tx.insert(("l",), data.draw(st.integers(0, n)), *values)
            offsets[("l",)] += len(values)
        elif choice == 6:
            n = length(doc, ("l",), ObjKind.LIST, offsets[("l",)])
            if n:
                pos = data.draw(st.integers(0, n - 1))
                if data.draw(st.booleans()):
                    tx.replace(("l",), pos, data.draw(json_leaves))
                else:
                    count = data.draw(st.integers(1, n - pos))
                    tx.remove(("l",), pos, count)
                    offsets[("l",)] -= count
        elif choice in (7, 8):
            n = length(doc, ("t",), ObjKind.TEXT, offsets[("t",)])
            text = data.draw(small_text)
            tx.insert_text(("t",), data.draw(st.integers(0, n)), text)
            offsets[("t",)] += len(text)
        else:
            n = length(doc, ("t",), ObjKind.TEXT, offsets[("t",)])
            if n:
                pos = data.draw(st.integers(0, n - 1))
                count = data.draw(st.integers(1, n - pos))
                tx.delete_text(("t",), pos, count)
                offsets[("t",)] -= count
    return tx


@dataclass
class Network:
    """Replicas plus, for each, the changes sent to it and not yet delivered."""

    docs: list[Document]
    inbox: list[list[SignedChange]] = field(default_factory=list)
    made: list[SignedChange] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.inbox = [[] for _ in self.docs]

    def deliver(self, data: st.DataObject, target: int) -> None:
        """Deliver some of the target's inbox, in a random order, with duplicates."""
        box = self.inbox[target]
        if not box:
            return
        chosen = data.draw(st.lists(st.integers(0, len(box) - 1), max_size=len(box) + 2))
        for i in chosen:
            change = box[i]
            if data.draw(st.booleans()):
                change = signed_from_bytes(change.to_bytes())
            self.docs[target].apply(change)
        keep = set(range(len(box))) - set(chosen)
        self.inbox[target] = [box[i] for i in sorted(keep)]


def converge_fully(data: st.DataObject, net: Network) -> None:
    """Heal every partition: deliver everything in a random order, then anti-entropy by clock."""
    for target, doc in enumerate(net.docs):
        for change in data.draw(st.permutations(net.inbox[target] + net.made)):
            doc.apply(change)
    for source in net.docs:
        for other in net.docs:
            for change in source.changes_since(other.clock()):
                other.apply(change)


def assert_converged(docs: list[Document]) -> None:
    first = docs[0]
    for doc in docs[1:]:
        assert doc.view() == first.view()
        assert doc.clock() == first.clock()
        assert doc.heads == first.heads
        assert doc.changes_since(first.clock()) == []
    for doc in docs:
        assert doc.pending_count == 0


@PROPERTY_SETTINGS
@given(st.data())
def test_replicas_converge_under_reordering_duplication_delay_and_partitions(data):
    n = data.draw(st.integers(2, 5), label="replicas")
    net = Network([Document() for _ in range(n)])
    for _ in range(data.draw(st.integers(1, 30), label="steps")):
        action = data.draw(st.sampled_from(["edit", "edit", "deliver", "sync"]))
        i = data.draw(st.integers(0, n - 1))
        if action == "edit":
            change = random_transaction(data, net.docs[i]).commit(KEYS[i], 0)
            net.made.append(change)
            for j in range(n):
                # A partition drops the message now; the final heal delivers it.
                if j != i and data.draw(st.booleans()):
                    net.inbox[j].append(change)
        elif action == "deliver":
            net.deliver(data, i)
        else:
            j = data.draw(st.integers(0, n - 1))
            for change in net.docs[i].changes_since(net.docs[j].clock()):
                net.docs[j].apply(change)
    converge_fully(data, net)
    assert_converged(net.docs)
    for doc in net.docs:
        assert doc.change_count == len(net.made)


@PROPERTY_SETTINGS
@given(st.data())
def test_apply_is_idempotent_and_commutative(data):
    """Any delivery order of the same set of changes, with repeats, gives the same replica."""
    n = data.draw(st.integers(2, 4))
    authors = [Document() for _ in range(n)]
    changes: list[SignedChange] = []
    for _ in range(data.draw(st.integers(1, 20))):
        i = data.draw(st.integers(0, n - 1))
        if data.draw(st.booleans()):
            j = data.draw(st.integers(0, n - 1))
            for change in authors[j].changes_since(authors[i].clock()):
                authors[i].apply(change)
        changes.append(random_transaction(data, authors[i]).commit(KEYS[i], 0))
    replicas = []
    for _ in range(3):
        doc = Document()
        order = data.draw(st.permutations(changes))
        repeats = data.draw(st.lists(st.sampled_from(changes), max_size=5))
        for change in [*order, *repeats]:
            doc.apply(change)
        replicas.append(doc)
    assert_converged(replicas)
    # Applying everything once more changes nothing.
    view = replicas[0].view()
    assert all(not isinstance(replicas[0].apply(c), Applied) for c in changes)
    assert replicas[0].view() == view


@PROPERTY_SETTINGS
@given(st.data())
def test_a_replica_edits_like_a_plain_string_and_list(data):
    """Positions mean what they say: after any edits (several per transaction), the text and
    list equal a Python str and list edited the same way."""
    doc = Document()
    setup = Transaction(doc)
    setup.make((), "t", ObjKind.TEXT)
    setup.make((), "l", ObjKind.LIST)
    setup.commit(KEYS[0], 0)
    text = ""
    items: list[int] = []
    for _ in range(data.draw(st.integers(1, 25))):
        tx = Transaction(doc)
        for _ in range(data.draw(st.integers(1, 4))):
            if data.draw(st.booleans()):
                if text and data.draw(st.booleans()):
                    pos = data.draw(st.integers(0, len(text) - 1))
                    count = data.draw(st.integers(1, len(text) - pos))
                    tx.delete_text(("t",), pos, count)
                    text = text[:pos] + text[pos + count :]
                else:
                    pos = data.draw(st.integers(0, len(text)))
                    new = data.draw(small_text)
                    tx.insert_text(("t",), pos, new)
                    text = text[:pos] + new + text[pos:]
            else:
                action = data.draw(st.sampled_from(["insert", "remove", "replace"]))
                if action == "insert" or not items:
                    pos = data.draw(st.integers(0, len(items)))
                    values = data.draw(st.lists(st.integers(0, 99), min_size=1, max_size=3))
                    tx.insert(("l",), pos, *values)
                    items[pos:pos] = values
                elif action == "remove":
                    pos = data.draw(st.integers(0, len(items) - 1))
                    count = data.draw(st.integers(1, len(items) - pos))
                    tx.remove(("l",), pos, count)
                    del items[pos : pos + count]
                else:
                    pos = data.draw(st.integers(0, len(items) - 1))
                    value = data.draw(st.integers(100, 199))
                    tx.replace(("l",), pos, value)
                    items[pos] = value
        tx.commit(KEYS[0], 0)
        assert doc.view() == {"t": text, "l": items}
    replica = Document()
    for change in data.draw(st.permutations(doc.changes_since({}))):
        replica.apply(change)
    assert replica.view() == doc.view()


@PROPERTY_SETTINGS
@given(st.data())
def test_concurrent_writes_to_the_same_registers_converge(data):
    """Every replica writes the same few map keys and list elements before anyone syncs."""
    n = data.draw(st.integers(2, 4))
    origin = Document()
    setup = Transaction(origin)
    setup.make((), "m", ObjKind.MAP)
    setup.make((), "l", ObjKind.LIST)
    setup.insert(("l",), 0, "first", "second")
    shared = setup.commit(KEYS[0], 0)
    docs = [Document() for _ in range(n)]
    for doc in docs:
        doc.apply(shared)
    made = []
    for i, doc in enumerate(docs):
        for _ in range(data.draw(st.integers(1, 3))):
            tx = Transaction(doc)
            if data.draw(st.booleans()):
                tx.replace(("l",), data.draw(st.integers(0, 1)), f"{i}")
            else:
                tx.set(("m",), data.draw(st.sampled_from("xy")), i)
            made.append(tx.commit(KEYS[i], 0))
    for doc in docs:
        for change in data.draw(st.permutations(made)):
            doc.apply(change)
    assert_converged(docs)
