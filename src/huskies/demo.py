"""`huskies demo`: what huskies can show today, offline and in a few seconds.

Until the pipeline lands, the demo exercises the replicated document every later part is built
on: two nodes with their own Ed25519 keys keep a sample backlog, edit it concurrently while
apart, exchange only the changes the other lacks (as wire bytes), and converge. A third node
that forges and tampers with changes is refused, and nothing it sent is stored.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from huskies.crdt import (
    Applied,
    Document,
    NodeKey,
    ObjKind,
    Rejected,
    SignedChange,
    Transaction,
    signed_from_bytes,
)
from huskies.crdt.change import change_id

ITEMS = ("items",)
SAMPLE_BACKLOG = [
    ("1", "story", "Show the pipeline on a board", "As a developer I can see every item by stage."),
    ("2", "bug", "Merge refuses empty branches", "A branch with no commits ahead must not merge."),
    ("3", "spike", "Measure sync catch-up", "How long does a node take to catch up 100k changes?"),
]


class _Node:
    def __init__(self, name: str) -> None:
        self.name = name
        self.key = NodeKey(os.urandom(32))
        self.doc = Document()

    def edit(self, build: Callable[[Transaction], object]) -> SignedChange:
        tx = Transaction(self.doc)
        build(tx)
        return tx.commit(self.key, int(time.time() * 1000))

    def receive_from(self, other: _Node) -> int:
        """Take every change `other` has that we lack, over the wire format; returns how many."""
        wire = [change.to_bytes() for change in other.doc.changes_since(self.doc.clock())]
        for raw in wire:
            result = self.doc.apply(signed_from_bytes(raw))
            if not isinstance(result, Applied):
                raise RuntimeError(
                    f"{self.name} could not apply a change from {other.name}: {result}"
                )
        return len(wire)


def _backlog(tx: Transaction) -> None:
    tx.make((), "items", ObjKind.MAP)
    for number, kind, title, body in SAMPLE_BACKLOG:
        item = tx.make(ITEMS, number, ObjKind.MAP)
        tx.set(item, "kind", kind)
        tx.set(item, "title", title)
        tx.set(item, "stage", "Backlog")
        tx.insert_text(tx.make(item, "body", ObjKind.TEXT), 0, body)


def _board(doc: Document) -> list[str]:
    items = doc.get(ITEMS)
    assert isinstance(items, dict)
    lines = []
    for number, fields in sorted(items.items()):
        assert isinstance(fields, dict)
        lines.append(
            f"    #{number} {fields['kind']:<6} {fields['stage']:<8} {fields['title']}\n"
            f"       {fields['body']}"
        )
    return lines


def run_demo(say: Callable[[str], None]) -> bool:
    """Run the demo, reporting through `say`; True if every check held."""
    main, agent, intruder = _Node("main"), _Node("build-agent"), _Node("intruder")
    say("huskies demo: the replicated document that holds all pipeline state")
    say(f"  node main        {main.key.node_id[:16]}…")
    say(f"  node build-agent {agent.key.node_id[:16]}…")

    main.edit(_backlog)
    say(f"\n1. main creates a backlog of {len(SAMPLE_BACKLOG)} items; build-agent catches up:")
    say(f"   {agent.receive_from(main)} change(s) sent, signed by main and verified by build-agent")

    say("\n2. Apart from each other, both edit item #1 and its body at the same time:")
    main.edit(lambda tx: tx.set((*ITEMS, "1"), "stage", "Coding"))
    main.edit(lambda tx: tx.insert_text((*ITEMS, "1", "body"), 0, "[main] "))
    agent.edit(lambda tx: tx.set((*ITEMS, "1"), "agent", "coder-1"))
    body = agent.doc.get((*ITEMS, "1", "body"))
    assert isinstance(body, str)
    agent.edit(lambda tx: tx.insert_text((*ITEMS, "1", "body"), len(body), " [agent]"))
    agent.edit(lambda tx: tx.set((*ITEMS, "2"), "stage", "Qa"))
    sent = main.receive_from(agent) + agent.receive_from(main)
    converged = main.doc.view() == agent.doc.view() and main.doc.clock() == agent.doc.clock()
    say(f"   they exchange {sent} change(s) and {'converge' if converged else 'DIVERGE'}:")
    for line in _board(main.doc):
        say(line)

    say("\n3. An intruder tries to rewrite history:")
    honest = main.edit(lambda tx: tx.set((*ITEMS, "3"), "stage", "Coding"))
    before = agent.doc.view()
    forged_body = honest.body.replace(b"Coding", b"Done!!")
    attempts = {
        "a change claiming to be main's, signed by the intruder": honest._replace(
            signer=intruder.key.public_key, signature=intruder.key.sign(honest.id)
        ),
        "main's change with its content altered": honest._replace(body=forged_body),
        "the altered change re-hashed": honest._replace(
            id=change_id(forged_body), body=forged_body
        ),
    }
    refused = 0
    for what, forged in attempts.items():
        result = agent.doc.apply(forged)
        if isinstance(result, Rejected):
            refused += 1
        say(f"   {what}: {result}")
    untouched = agent.doc.view() == before
    say(f"   nothing was stored: {'yes' if untouched else 'NO'}")
    agent.receive_from(main)
    final = agent.doc.view() == main.doc.view()

    ok = converged and refused == len(attempts) and untouched and final
    say("\nAll checks passed." if ok else "\nA check FAILED (see above).")
    say("This release has the replicated document only; the agent pipeline comes next.")
    return ok
