"""The change log's element index: which changes touched which item, kept by every commit (local,
remote, released from pending, refused after filing) and built for a log written before it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from huskies.crdt import Applied, Document, ObjKind, OpId, Pending, Rejected, Transaction
from huskies.crdt.ops import ListMake, MapMake
from huskies.pipeline import ItemKind, create_item, set_fields
from huskies.pipeline.edits import save_body
from huskies.store import Replica
from huskies.store.database import SCHEMA_VERSION

from ..crdt.support import craft, key


def new_item(tx: Transaction, number: int) -> OpId:
    return create_item(
        tx,
        number=number,
        kind=ItemKind.STORY,
        title=f"Item {number}",
        body="",
        depends_on=(),
        qa=None,
        at=1,
    )


async def make_items(replica: Replica, count: int) -> list[OpId]:
    elements = []
    for number in range(1, count + 1):
        tx = replica.transaction()
        element = new_item(tx, number)
        await replica.change(tx)
        elements.append(tx.resolve(element))
    return elements


async def edit(replica: Replica, element: OpId, title: str) -> bytes:
    tx = replica.transaction()
    set_fields(tx, element, {"title": title}, 2)
    signed = await replica.change(tx)
    assert signed is not None
    return signed.id


def index_rows(db: Path) -> int:
    connection = sqlite3.connect(db)
    try:
        return connection.execute("SELECT count(*) FROM element_changes").fetchone()[0]
    finally:
        connection.close()


async def test_an_items_changes_are_read_back_and_no_others(tmp_path: Path):
    db = tmp_path / "huskies.db"
    async with await Replica.open(db) as replica:
        first, second, third = await make_items(replica, 3)
        made = [first.change]
        made.append(await edit(replica, first, "One"))
        await edit(replica, second, "Two")
        made.append(await edit(replica, first, "Uno"))
        tx = replica.transaction()
        save_body(tx, first, "", "A body")
        set_fields(tx, third, {"retries": 1}, 3)  # one change touching two items
        both = await replica.change(tx)
        assert both is not None
        made.append(both.id)

        read = await replica.element_changes(first)
        assert [change.id for change in read] == made
        assert [c.id for c in await replica.element_changes(third)] == [third.change, both.id]
        assert await replica.element_changes(OpId(b"\x01" * 32, 0)) == []
    # One row per (element, change): three creations, four edits of one item, and the change
    # that touched two.
    assert index_rows(db) == 3 + 3 + 2


async def test_a_change_that_waited_for_its_dependency_is_indexed_when_it_applies(
    tmp_path: Path,
):
    db = tmp_path / "huskies.db"
    elsewhere = Document()
    tx = Transaction(elsewhere)
    element = new_item(tx, 1)
    created = tx.commit(key(3), 1)
    item = OpId(created.id, tx.resolve(element).idx)
    tx = Transaction(elsewhere)
    set_fields(tx, item, {"title": "Later"}, 2)
    edited = tx.commit(key(3), 2)
    async with await Replica.open(db) as replica:
        assert isinstance(await replica.ingest(edited), Pending)
        assert await replica.element_changes(item) == []
        assert isinstance(await replica.ingest(created), Applied)
        assert [c.id for c in await replica.element_changes(item)] == [created.id, edited.id]
    async with await Replica.open(db) as replica:
        assert [c.id for c in await replica.element_changes(item)] == [created.id, edited.id]


async def test_a_filed_change_the_document_refuses_leaves_no_index_rows(tmp_path: Path):
    db = tmp_path / "huskies.db"
    liar = key(5)
    # Makes an item, but its lamport lies: filed, then refused on applying.
    bad = craft(
        liar,
        1,
        7,
        [],
        [MapMake((), "items", ObjKind.LIST), ListMake(("items",), None, ObjKind.MAP)],
    )
    async with await Replica.open(db) as replica:
        result = await replica.ingest(bad)
        assert isinstance(result, Rejected)
        await make_items(replica, 1)  # the next commit also records the cleanup
        assert await replica.element_changes(OpId(bad.id, 1)) == []
    assert index_rows(db) == 1


async def test_a_log_written_before_the_index_is_indexed_when_opened(tmp_path: Path):
    db = tmp_path / "huskies.db"
    async with await Replica.open(db) as replica:
        elements = await make_items(replica, 4)
        await edit(replica, elements[2], "Three")
        before = [[c.id for c in await replica.element_changes(e)] for e in elements]
    connection = sqlite3.connect(db)
    connection.execute("DROP TABLE element_changes")
    connection.execute(f"PRAGMA user_version={SCHEMA_VERSION - 1}")
    connection.close()
    async with await Replica.open(db) as replica:
        after = [[c.id for c in await replica.element_changes(e)] for e in elements]
        stats = await replica.stats()
    assert after == before
    assert len(after[2]) == 2
    assert stats.schema_version == SCHEMA_VERSION
