"""The replica against a real SQLite file: durability, restart, pending, snapshots, failures."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from huskies.crdt import (
    Applied,
    ChangeRefused,
    Document,
    ObjKind,
    Pending,
    Rejected,
    SignedChange,
    Transaction,
    decode_signed,
)
from huskies.crdt.ops import MapSet
from huskies.store import (
    LockedError,
    PersistError,
    Replica,
    StoreError,
    SubscriptionLagged,
)
from huskies.store import replica as replica_module
from huskies.store.database import SCHEMA_VERSION
from huskies.store.replica import _Request, _Staged

from ..crdt.support import craft, key, set_key


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "huskies.db"


async def put(replica: Replica, name: str, value: object) -> SignedChange:
    tx = replica.transaction()
    tx.set((), name, value)
    signed = await replica.change(tx)
    assert signed is not None
    return signed


def remote_history(count: int, author: int = 9, pad: int = 0) -> list[SignedChange]:
    """`count` changes by another node, each setting r<i> (to i, or to `pad` bytes of text)."""
    doc = Document()
    return [set_key(doc, key(author), f"r{i}", "x" * pad if pad else i) for i in range(count)]


async def test_a_change_is_durable_applied_and_published_in_order(db: Path):
    async with await Replica.open(db) as replica:
        feed = replica.subscribe()
        made = [await put(replica, f"k{i}", i) for i in range(5)]
        assert replica.document.view() == {f"k{i}": i for i in range(5)}
        seen = [(await anext(feed)) for _ in range(5)]
        assert [p.change for p in seen] == made
        assert all(p.local for p in seen)
        node = replica.node_id
    async with await Replica.open(db) as replica:
        assert replica.node_id == node  # the identity persists
        assert replica.document.view() == {f"k{i}": i for i in range(5)}
        assert [c.id for c in replica.document.changes_since({})] == [c.id for c in made]


async def test_concurrent_writers_share_commits_and_get_contiguous_seqs(db: Path):
    async with await Replica.open(db) as replica:
        made = await asyncio.gather(*(put(replica, f"k{i}", i) for i in range(300)))
        assert replica.document.clock()[replica.public_key].seq == 300
        assert len({c.id for c in made}) == 300
    connection = sqlite3.connect(db)
    rows = connection.execute("SELECT seq FROM changes ORDER BY apply_order").fetchall()
    assert [r[0] for r in rows] == list(range(1, 301))


async def test_writes_after_a_restart_win_over_older_writes_elsewhere(db: Path):
    """The seed's bug 511: after a restart its clock started again from zero, so new writes lost
    to old ones. Here seq and lamport resume from the log, with or without a snapshot."""
    other = Document()
    older = [set_key(other, key(7), "x", f"old {i}") for i in range(30)]
    for snapshot_every in (10_000, 5):
        path = db.with_name(f"{snapshot_every}.db")
        async with await Replica.open(path, snapshot_every=snapshot_every) as replica:
            await replica.ingest_many(older)
            first = await put(replica, "mine", 1)
        async with await Replica.open(path, snapshot_every=snapshot_every) as replica:
            newer = await put(replica, "x", "new")
            assert replica.document.clock()[replica.public_key].seq == 2
        assert newer.id != first.id
        # The other node receives the write and agrees it is the newest.
        for change in [first, newer]:
            other.apply(change)
        assert other.get(("x",)) == "new"


async def test_pending_changes_survive_a_restart_and_apply_when_their_dependency_arrives(db: Path):
    history = remote_history(4)
    async with await Replica.open(db) as replica:
        results = await replica.ingest_many(history[2:])
        assert all(isinstance(r, Pending) for r in results)
    async with await Replica.open(db) as replica:
        assert replica.document.pending_count == 2
        await replica.ingest(history[1])
        assert replica.document.pending_count == 3
        result = await replica.ingest(history[0])
        assert isinstance(result, Applied)
        assert set(result.ids) == {c.id for c in history}
        assert replica.document.view() == {f"r{i}": i for i in range(4)}
    async with await Replica.open(db) as replica:
        assert replica.document.pending_count == 0
        assert replica.document.view() == {f"r{i}": i for i in range(4)}
    connection = sqlite3.connect(db)
    assert connection.execute("SELECT count(*) FROM pending").fetchone()[0] == 0
    order = [r[0] for r in connection.execute("SELECT id FROM changes ORDER BY apply_order")]
    assert order == [c.id for c in history]  # a causal order: replay never waits


async def test_forged_and_duplicate_changes_are_refused_without_touching_the_store(db: Path):
    history = remote_history(2)
    forged = history[1]._replace(signature=bytes(64))
    async with await Replica.open(db) as replica:
        results = await replica.ingest_many([history[0], forged, history[0]])
        assert isinstance(results[0], Applied)
        assert isinstance(results[1], Rejected)
        assert results[1].reason.value == "bad_signature"
        assert not isinstance(results[2], Applied)
    connection = sqlite3.connect(db)
    assert connection.execute("SELECT count(*) FROM changes").fetchone()[0] == 1


async def test_a_signed_change_the_document_refuses_leaves_no_trace(db: Path):
    """A Byzantine author's change passes the signature check and is filed, but the document
    refuses it on applying (its lamport lies), and so does everything built on it. The store
    forgets them too, and a restart does not bring them back."""
    liar = key(5)
    bad = craft(liar, 1, 7, [], [MapSet((), "x", "forged")])
    follower = craft(liar, 2, 8, [bad.id], [MapSet((), "y", 1)])
    async with await Replica.open(db) as replica:
        [result] = await replica.ingest_many([follower])
        assert isinstance(result, Pending)
        [result] = await replica.ingest_many([bad])
        assert isinstance(result, Rejected)
        assert result.reason.value == "bad_lamport"
        assert replica.document.pending_count == 0
        await put(replica, "honest", 1)  # the next commit also records the cleanup
    connection = sqlite3.connect(db)
    assert connection.execute("SELECT count(*) FROM pending").fetchone()[0] == 0
    assert connection.execute("SELECT count(*) FROM changes").fetchone()[0] == 1
    async with await Replica.open(db) as replica:
        assert replica.document.view() == {"honest": 1}
        assert replica.document.pending_count == 0


@pytest.mark.parametrize(
    ("pragma", "message"),
    [("PRAGMA query_only=1", "readonly"), (None, "full")],
    ids=["read-only", "full"],
)
async def test_a_failed_commit_applies_and_publishes_nothing(db: Path, pragma, message):
    async with await Replica.open(db) as replica:
        await put(replica, "before", 1)
        feed = replica.subscribe()
        connection = replica._store.connection
        if pragma:
            connection.execute(pragma)
        else:
            pages = connection.execute("PRAGMA page_count").fetchone()[0]
            connection.execute(f"PRAGMA max_page_count={pages}")
        view, clock = replica.document.view(), replica.document.clock()
        big = "x" * 200_000  # needs new pages
        with pytest.raises(PersistError, match=message):
            await put(replica, "after", big)
        with pytest.raises(PersistError):
            await replica.ingest_many(remote_history(3, pad=100_000))
        assert replica.document.view() == view
        assert replica.document.clock() == clock
        assert replica.document.pending_count == 0
        connection.execute("PRAGMA query_only=0")
        connection.execute("PRAGMA max_page_count=4294967294")
        later = await put(replica, "later", 2)
        assert (await anext(feed)).change == later  # the failed ones were never published
    async with await Replica.open(db) as replica:
        assert replica.document.view() == {"before": 1, "later": 2}
        assert replica.document.clock()[replica.public_key].seq == 2


async def test_snapshots_are_taken_by_change_count_and_used_at_startup(db: Path):
    async with await Replica.open(db, snapshot_every=50) as replica:
        tx = replica.transaction()
        tx.make((), "t", ObjKind.TEXT)
        await replica.change(tx)
        for i in range(120):
            tx = replica.transaction()
            tx.insert_text(("t",), len(str(replica.document.get(("t",)))), "ab")
            if i % 3 == 0:
                tx.delete_text(("t",), 0, 1)
            await replica.change(tx)
        view = replica.document.view()
        stats = await replica.stats()
        assert stats.snapshot is not None
        assert stats.snapshot.change_count == 100
    async with await Replica.open(db, snapshot_every=50) as replica:
        assert replica.document.view() == view
        tx = replica.transaction()
        tx.insert_text(("t",), 0, "z")
        await replica.change(tx)
        assert replica.document.get(("t",)) == "z" + str(view["t"])


async def test_a_replica_that_replayed_a_long_log_leaves_a_snapshot_when_closed(db: Path):
    async with await Replica.open(db, snapshot_every=50) as replica:
        for i in range(60):
            await put(replica, f"k{i}", i)
    connection = sqlite3.connect(db)
    connection.execute("DELETE FROM snapshots")
    connection.commit()
    connection.close()
    async with await Replica.open(db, snapshot_every=50) as replica:
        assert (await replica.stats()).snapshot is None  # it replayed all 60
    async with await Replica.open(db, snapshot_every=50) as replica:
        snapshot = (await replica.stats()).snapshot
        assert snapshot is not None
        assert snapshot.change_count == 60
        assert replica.document.view() == {f"k{i}": i for i in range(60)}


async def test_a_damaged_snapshot_is_skipped_and_the_log_replayed(db: Path, caplog):
    async with await Replica.open(db, snapshot_every=10) as replica:
        for i in range(25):
            await put(replica, f"k{i}", i)
        view = replica.document.view()
    connection = sqlite3.connect(db)
    connection.execute("UPDATE snapshots SET state = substr(state, 2)")
    connection.commit()
    connection.close()
    with caplog.at_level(logging.WARNING, logger="huskies.store"):
        async with await Replica.open(db, snapshot_every=10) as replica:
            assert replica.document.view() == view
    assert "damaged" in caplog.text


async def test_a_refused_local_change_is_not_written(db: Path):
    async with await Replica.open(db) as replica:
        source = Document()
        tx = Transaction(source)
        tx.insert_text(("t",), 0, "abc")
        tx.commit(key(3), 0)
        # Ops built on another document name an element this replica does not have.
        stale = Transaction(source)
        stale.delete_text(("t",), 0, 1)
        with pytest.raises(ChangeRefused, match="not applied"):
            await replica.change(stale)
        assert await replica.change(replica.transaction()) is None
        assert replica.document.change_count == 0


async def test_a_second_writer_is_told_who_holds_the_database(db: Path):
    async with await Replica.open(db):
        with pytest.raises(LockedError, match=r"pid \d+"):
            await Replica.open(db, lock_timeout=0.1)


async def test_the_database_is_private_and_refuses_a_newer_schema(db: Path):
    async with await Replica.open(db) as replica:
        await put(replica, "a", 1)
        for path in (db, Path(f"{db}-wal")):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
    connection = sqlite3.connect(db)
    connection.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(StoreError, match="upgrade huskies"):
        await Replica.open(db)
    assert sqlite3.connect(db).execute("SELECT count(*) FROM changes").fetchone()[0] == 1


async def test_a_slow_subscriber_is_told_it_lagged(db: Path):
    async with await Replica.open(db) as replica:
        feed = replica.subscribe(maxsize=2)
        for i in range(4):
            await put(replica, f"k{i}", i)
        assert feed.lagged
        await anext(feed)
        await anext(feed)
        with pytest.raises(SubscriptionLagged):
            await anext(feed)


async def test_the_wal_is_checkpointed_in_the_background_and_then_cut(db: Path, monkeypatch):
    monkeypatch.setattr(replica_module, "WAL_CHECKPOINT_BYTES", 4 << 20)
    wal = db.with_name(db.name + "-wal")
    async with await Replica.open(db) as replica:
        for i in range(100):
            await put(replica, f"k{i}", "x" * 100_000)
            if (checkpointing := replica._checkpointing) is not None:
                break
        assert checkpointing is not None, "no background checkpoint started"
        await checkpointing
        assert db.stat().st_size > 3_000_000  # it copied the WAL's pages back
        grown = wal.stat().st_size
        await put(replica, "next", 1)  # then idle, the writer empties the WAL
        deadline = time.monotonic() + 30
        while wal.stat().st_size >= grown // 4:
            assert time.monotonic() < deadline, "the idle writer never emptied the WAL"
            await asyncio.sleep(0.01)
        view = replica.document.view()
    async with await Replica.open(db) as replica:
        assert replica.document.view() == view


async def test_a_runaway_wal_is_checkpointed_before_the_write_returns(db: Path, monkeypatch):
    monkeypatch.setattr(replica_module, "WAL_LIMIT_BYTES", 0)
    async with await Replica.open(db) as replica:
        before = db.stat().st_size
        await put(replica, "big", "y" * 1_000_000)
        assert db.stat().st_size > before + 900_000  # copied back inline
    async with await Replica.open(db) as replica:
        assert replica.document.get(("big",)) == "y" * 1_000_000


async def test_a_change_cancelled_before_its_write_is_not_written(db: Path):
    async with await Replica.open(db) as replica:
        first = asyncio.create_task(put(replica, "a", 1))
        doomed = asyncio.create_task(put(replica, "b", 2))
        last = asyncio.create_task(put(replica, "c", 3))
        await asyncio.sleep(0)  # all three are queued; none is written yet
        doomed.cancel()
        await asyncio.gather(first, last)
        assert doomed.cancelled()
        assert replica.document.view() == {"a": 1, "c": 3}
    async with await Replica.open(db) as replica:
        assert replica.document.view() == {"a": 1, "c": 3}


async def wait_for_helper(replica: Replica, not_pid: int | None = None) -> int:
    """Busy rounds of writes until the replica signs on a (new) helper process; its pid."""
    deadline = time.monotonic() + 60
    while (signer := replica._signer) is None or signer.pid == not_pid:
        assert time.monotonic() < deadline, "no signing helper started"
        await asyncio.gather(*(put(replica, f"w{i}", i) for i in range(64)))
    return signer.pid


def stored_signatures_verify(db: Path) -> int:
    """Every stored change checked again, signature included; how many there are."""
    connection = sqlite3.connect(db)
    rows = connection.execute("SELECT id, body, author, signature FROM changes").fetchall()
    checked = [decode_signed(SignedChange(*row)) for row in rows]
    assert not [c for c in checked if isinstance(c, Rejected)]
    return len(checked)


async def test_busy_writers_sign_on_a_helper_process_with_the_node_key(db: Path):
    async with await Replica.open(db) as replica:
        await wait_for_helper(replica)
        signer = replica._signer
        assert signer is not None
        received = 0
        receive = signer.receive

        async def counting(count: int, wait_s: float) -> list[bytes] | None:
            nonlocal received
            signatures = await receive(count, wait_s)
            received += len(signatures or ())
            return signatures

        signer.receive = counting  # type: ignore[method-assign]
        # Small batches, and any the helper was late for, are signed in the writer: write busy
        # rounds until the helper has signed some.
        deadline = time.monotonic() + 60
        while received == 0:
            assert time.monotonic() < deadline, "the helper signed nothing"
            await asyncio.gather(*(put(replica, f"k{i}", i) for i in range(64)))
        seq = replica.document.clock()[replica.public_key].seq
    assert stored_signatures_verify(db) == seq
    connection = sqlite3.connect(db)
    seqs = [r[0] for r in connection.execute("SELECT seq FROM changes ORDER BY apply_order")]
    assert seqs == list(range(1, seq + 1))


async def test_a_helper_that_dies_costs_no_write_and_is_replaced(db: Path):
    async with await Replica.open(db) as replica:
        first = await wait_for_helper(replica)
        os.kill(first, signal.SIGKILL)
        rounds = [
            await asyncio.gather(*(put(replica, f"k{i}", r) for i in range(64))) for r in range(3)
        ]
        assert replica.document.view()["k0"] == 2
        assert all(len(r) == 64 for r in rounds)
        assert await wait_for_helper(replica, not_pid=first) != first
        seq = replica.document.clock()[replica.public_key].seq
    assert stored_signatures_verify(db) == seq


async def test_a_late_helper_is_not_waited_for_and_a_stuck_one_is_replaced(db: Path, monkeypatch):
    monkeypatch.setattr(replica_module, "SIGNER_LATE_LIMIT", 3)
    async with await Replica.open(db) as replica:
        stuck = await wait_for_helper(replica)
        os.kill(stuck, signal.SIGSTOP)
        deadline = time.monotonic() + 60
        rounds = 0
        while replica._signer is not None and replica._signer.pid == stuck:
            assert time.monotonic() < deadline, "the stuck helper was never replaced"
            made = await asyncio.gather(*(put(replica, f"k{i}", i) for i in range(64)))
            assert len({c.id for c in made}) == 64  # signed in the writer meanwhile
            rounds += 1
        assert rounds >= 1
        with pytest.raises(ProcessLookupError):  # killed and reaped
            os.kill(stuck, 0)
        seq = replica.document.clock()[replica.public_key].seq
    assert stored_signatures_verify(db) == seq


async def test_changes_staged_behind_a_failed_commit_are_made_again_and_written(db: Path):
    """The writer prepares the next batch while the last one is signed, each change following
    the one before. When the last batch's commit fails, the next names changes that were never
    written: it is prepared again, on the document as it is, and written."""
    async with await Replica.open(db) as replica:
        await put(replica, "before", 1)
        connection = replica._store.connection
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count={pages + 8}")  # room for small writes only
        staged: list[int] = []
        stage = replica._stage

        async def counting(requests: list[_Request], after: _Staged | None) -> _Staged:
            staged.append(len(requests))
            return await stage(requests, after)

        replica._stage = counting  # type: ignore[method-assign]
        big = asyncio.create_task(put(replica, "big", "x" * 200_000))
        deadline = time.monotonic() + 30
        while not staged:  # the writer has taken the big change on its own
            assert time.monotonic() < deadline
            await asyncio.sleep(0)
        small = await put(replica, "small", 2)
        with pytest.raises(PersistError, match="full"):
            await big
        assert len(staged) == 3  # big; small after big; small again
        assert replica.document.view() == {"before": 1, "small": 2}
        checked = decode_signed(small)
        assert not isinstance(checked, Rejected)
        assert checked.change.seq == 2  # right after `before`: nothing names the failed one
    async with await Replica.open(db) as replica:
        assert replica.document.view() == {"before": 1, "small": 2}
