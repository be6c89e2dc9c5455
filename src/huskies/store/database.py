"""The SQLite file: schema and migrations, and every statement the replica runs against it.

One connection, used by one writer at a time (the replica serialises its commits). WAL mode lets
other connections read while it writes. Each `commit` is one transaction, so a batch of changes
is on disk entirely or not at all.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from huskies import __version__
from huskies.crdt import OpId, Rejected, SignedChange, StoredChange, VerifiedChange, decode_signed
from huskies.store.elements import element_key, touched_elements


class Synchronous(Enum):
    """SQLite's `synchronous` setting. NORMAL survives a crash of the process (every commit is
    in the WAL before it returns); FULL also survives power loss, at an fsync per commit."""

    NORMAL = "normal"
    FULL = "full"


class StoreError(Exception):
    """The database cannot be opened or written; the message says which file and why."""


# Which changes touch which element of a root list (see huskies.store.elements), so the history
# of one work item is read without decoding the whole log. Keyed by element first: the history
# of one element is one range of the index.
_ELEMENT_INDEX = """
    CREATE TABLE element_changes (
        element_prefix INTEGER NOT NULL,
        element_idx INTEGER NOT NULL,
        apply_order INTEGER NOT NULL,
        PRIMARY KEY (element_prefix, element_idx, apply_order)
    ) STRICT, WITHOUT ROWID
"""


def _index_elements(conn: sqlite3.Connection) -> None:
    """Add the element index and fill it from the log already stored."""
    conn.execute(_ELEMENT_INDEX)
    cursor = conn.execute("SELECT apply_order, id, body, author, signature FROM changes")
    while rows := cursor.fetchmany(4096):
        # Verified when they were ingested; bytes that no longer decode are for the replay to
        # report, with the file's name.
        decoded = [
            (order, decode_signed(SignedChange(*signed), check_signature=False))
            for order, *signed in rows
        ]
        _insert_elements(conn, [(o, c) for o, c in decoded if not isinstance(c, Rejected)])


# Each entry migrates the schema from version i to i + 1, inside one transaction: a script, or
# a function for a step SQL alone cannot do.
MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value ANY) STRICT;
    CREATE TABLE identity (
        only INTEGER PRIMARY KEY CHECK (only = 1),
        seed BLOB NOT NULL,
        public_key BLOB NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT;
    -- Every applied change, in the order this replica applied it (a causal order). No index on
    -- id: the document already refuses duplicates, and an index of random 32-byte keys would
    -- triple the cost of every insert. Only deleting a refused change looks rows up by id.
    CREATE TABLE changes (
        apply_order INTEGER PRIMARY KEY,
        id BLOB NOT NULL,
        author BLOB NOT NULL,
        seq INTEGER NOT NULL,
        lamport INTEGER NOT NULL,
        body BLOB NOT NULL,
        signature BLOB NOT NULL
    ) STRICT;
    -- Verified changes waiting for a dependency, in arrival order.
    CREATE TABLE pending (
        arrival INTEGER PRIMARY KEY,
        id BLOB NOT NULL UNIQUE,
        author BLOB NOT NULL,
        seq INTEGER NOT NULL,
        lamport INTEGER NOT NULL,
        body BLOB NOT NULL,
        signature BLOB NOT NULL
    ) STRICT;
    -- A snapshot covers the changes with apply_order < upto.
    CREATE TABLE snapshots (
        upto INTEGER PRIMARY KEY,
        change_count INTEGER NOT NULL,
        taken_at INTEGER NOT NULL,
        digest BLOB NOT NULL,
        state BLOB NOT NULL
    ) STRICT;
    """,
    """
    -- One-time join tokens this node issued; only a hash of the secret is kept.
    CREATE TABLE join_tokens (
        secret_hash BLOB PRIMARY KEY,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_by BLOB,
        used_at INTEGER
    ) STRICT;
    -- Peers enrolled with a join token, trusted besides project.toml's trusted_keys.
    CREATE TABLE enrolled_keys (
        key BLOB PRIMARY KEY,
        enrolled_at INTEGER NOT NULL
    ) STRICT;
    """,
    _index_elements,
)
SCHEMA_VERSION = len(MIGRATIONS)
SNAPSHOTS_KEPT = 2

_COLUMNS = "id, body, signature, author, seq, lamport"  # StoredChange's fields, in order


@dataclass
class Batch:
    """What one commit writes."""

    applied: list[VerifiedChange] = field(default_factory=list)  # appended in this order
    held: list[VerifiedChange] = field(default_factory=list)  # new pending changes
    released: list[bytes] = field(default_factory=list)  # pending ids that applied, in order
    dropped: list[bytes] = field(default_factory=list)  # ids the document refused after all
    snapshot: tuple[bytes, int, int] | None = None  # (state, change count, taken at)

    def __bool__(self) -> bool:
        return bool(self.applied or self.held or self.released or self.dropped or self.snapshot)


@dataclass(frozen=True)
class Snapshot:
    upto: int
    change_count: int
    taken_at: int
    state: bytes


@dataclass(frozen=True)
class StoreStats:
    changes: int
    pending: int
    snapshot: Snapshot | None
    file_bytes: int
    schema_version: int
    opened_by: str


def _row(change: VerifiedChange, number: int) -> tuple[int, bytes, bytes, bytes, bytes, int, int]:
    """A change's row; `number` is its apply order or arrival."""
    c, signed = change.change, change.signed
    return (number, change.id, signed.body, signed.signature, c.author, c.seq, c.lamport)


def _insert_elements(
    conn: sqlite3.Connection, numbered: Iterable[tuple[int, VerifiedChange]]
) -> None:
    """Index changes by the elements they touch; `numbered` pairs each with its apply order."""
    rows = [
        (*element_key(element), order)
        for order, change in numbered
        for element in touched_elements(change.id, change.change.ops)
    ]
    if rows:
        conn.executemany(
            # OR IGNORE: two elements whose keys are alike count once (see element_key).
            "INSERT OR IGNORE INTO element_changes (element_prefix, element_idx, apply_order) "
            "VALUES (?, ?, ?)",
            rows,
        )


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only (it holds the node's private key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


class Store:
    """The change log, pending set, identity and snapshots in one SQLite file."""

    def __init__(self, path: Path, conn: sqlite3.Connection, synchronous: Synchronous) -> None:
        self.path = path
        self._wal_path = f"{path}-wal"
        self.synchronous = synchronous
        self._conn = conn
        top = conn.execute("SELECT max(apply_order) FROM changes").fetchone()[0]
        self._next_order = 0 if top is None else top + 1
        top = conn.execute("SELECT max(arrival) FROM pending").fetchone()[0]
        self._next_arrival = 0 if top is None else top + 1

    @classmethod
    def open(cls, path: Path, synchronous: Synchronous = Synchronous.NORMAL) -> Store:
        try:
            _create_private(path)
            # The replica hands the connection to one worker thread at a time.
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the database {path}: {exc}") from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous.value.upper()}")
            # The replica checkpoints from another connection instead (see checkpoint), so a
            # commit never stalls to copy the WAL back into the database.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.execute("PRAGMA foreign_keys=ON")
            _migrate(conn, path)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('opened_by', ?)",
                (f"huskies {__version__}",),
            )
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot use the database {path}: {exc}") from None
        except StoreError:
            conn.close()
            raise
        return cls(path, conn, synchronous)

    def close(self) -> None:
        self._conn.close()

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    # ---- identity --------------------------------------------------------------------------

    def identity_seed(self) -> bytes | None:
        row = self._conn.execute("SELECT seed FROM identity").fetchone()
        return None if row is None else bytes(row[0])

    def save_identity(self, seed: bytes, public_key: bytes, created_at: int) -> None:
        self._conn.execute(
            "INSERT INTO identity (only, seed, public_key, created_at) VALUES (1, ?, ?, ?)",
            (seed, public_key, created_at),
        )

    # ---- reading the log -------------------------------------------------------------------

    def changes(self, start: int = 0, stop: int | None = None) -> Iterator[StoredChange]:
        """Applied changes with start ≤ apply_order < stop, in apply order."""
        sql = f"SELECT {_COLUMNS} FROM changes WHERE apply_order >= ?"
        args: tuple[int, ...] = (start,)
        if stop is not None:
            sql += " AND apply_order < ?"
            args = (start, stop)
        cursor = self._conn.execute(sql + " ORDER BY apply_order", args)
        while rows := cursor.fetchmany(4096):
            for row in rows:
                yield StoredChange(*row)

    def element_changes(self, element: OpId) -> list[StoredChange]:
        """The applied changes indexed under `element` (see huskies.store.elements), in apply
        order, read through a connection of their own like `stats`. A change of another element
        sharing its key's prefix may be among them; callers check what each one touches."""
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM changes WHERE apply_order IN (SELECT apply_order "
                "FROM element_changes WHERE element_prefix = ? AND element_idx = ?) "
                "ORDER BY apply_order",
                element_key(element),
            ).fetchall()
        finally:
            conn.close()
        return [StoredChange(*row) for row in rows]

    def pending(self) -> list[SignedChange]:
        rows = self._conn.execute(
            "SELECT id, body, author, signature FROM pending ORDER BY arrival"
        ).fetchall()
        return [SignedChange(*row) for row in rows]

    def latest_snapshot(self) -> tuple[Snapshot | None, str | None]:
        """The newest snapshot whose digest checks out, and why a newer one was skipped."""
        return _latest_snapshot(self._conn)

    def stats(self) -> StoreStats:
        """Statistics read through a connection of their own (WAL readers never wait for the
        writer, and never see half of its transaction)."""
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            return self._stats(conn)
        finally:
            conn.close()

    def _stats(self, conn: sqlite3.Connection) -> StoreStats:
        snapshot, _ = _latest_snapshot(conn)
        return StoreStats(
            changes=conn.execute("SELECT count(*) FROM changes").fetchone()[0],
            pending=conn.execute("SELECT count(*) FROM pending").fetchone()[0],
            snapshot=snapshot,
            file_bytes=sum(
                p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists()
            ),
            schema_version=conn.execute("PRAGMA user_version").fetchone()[0],
            opened_by=conn.execute("SELECT value FROM meta WHERE key = 'opened_by'").fetchone()[0],
        )

    # ---- the write-ahead log ---------------------------------------------------------------

    def wal_bytes(self) -> int:
        try:
            return os.stat(self._wal_path).st_size  # after every commit: no Path object
        except FileNotFoundError:
            return 0

    def checkpoint(self) -> None:
        """Copy the WAL back into the database through a connection of its own, so the writer
        keeps committing meanwhile (PASSIVE: it never waits for the writer or readers). Each
        call copies only what the calls before it have not."""
        # No TRUNCATE here: it takes the write lock, and a commit that finds it held sleeps in
        # SQLite's busy handler (measured: 9 ms stalls). The writer empties it when idle.
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def checkpoint_here(self) -> None:
        """Copy back what waits in the WAL and empty it, on the writer's own connection (so no
        lock is waited for), waiting for readers."""
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise StoreError(f"could not checkpoint {self.path}: {exc}") from None

    # ---- writing ---------------------------------------------------------------------------

    def commit(self, batch: Batch) -> None:
        """Write `batch` in one transaction: all of it, or (raising StoreError) none of it."""
        conn = self._conn
        order, arrival = self._next_order, self._next_arrival
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for change_id in batch.released:
                    conn.execute(
                        f"INSERT INTO changes (apply_order, {_COLUMNS}) "
                        f"SELECT ?, {_COLUMNS} FROM pending WHERE id = ?",
                        (order, change_id),
                    )
                    self._index_released(order)
                    conn.execute("DELETE FROM pending WHERE id = ?", (change_id,))
                    order += 1
                for change_id in batch.dropped:
                    conn.execute(
                        "DELETE FROM element_changes WHERE apply_order IN "
                        "(SELECT apply_order FROM changes WHERE id = ?)",
                        (change_id,),
                    )
                    conn.execute("DELETE FROM changes WHERE id = ?", (change_id,))
                    conn.execute("DELETE FROM pending WHERE id = ?", (change_id,))
                if batch.applied:
                    conn.executemany(
                        f"INSERT INTO changes (apply_order, {_COLUMNS}) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [_row(c, order + k) for k, c in enumerate(batch.applied)],
                    )
                    _insert_elements(conn, enumerate(batch.applied, order))
                    order += len(batch.applied)
                if batch.held:
                    conn.executemany(
                        f"INSERT INTO pending (arrival, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [_row(c, arrival + k) for k, c in enumerate(batch.held)],
                    )
                    arrival += len(batch.held)
                if batch.snapshot is not None:
                    self._write_snapshot(order, *batch.snapshot)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # some errors (a full disk) roll back by themselves
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"could not write to {self.path}: {exc}") from None
        self._next_order, self._next_arrival = order, arrival

    def _index_released(self, order: int) -> None:
        """Index a pending change that has just applied: filed before the document could apply
        it, it was decoded then but not kept, so it is decoded again from its stored bytes."""
        row = self._conn.execute(
            "SELECT id, body, author, signature FROM changes WHERE apply_order = ?", (order,)
        ).fetchone()
        if row is None:
            return  # not in the pending table after all: nothing was filed
        checked = decode_signed(SignedChange(*row), check_signature=False)
        if not isinstance(checked, Rejected):
            _insert_elements(self._conn, [(order, checked)])

    def _write_snapshot(self, upto: int, state: bytes, count: int, taken_at: int) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO snapshots (upto, change_count, taken_at, digest, state) "
            "VALUES (?, ?, ?, ?, ?)",
            (upto, count, taken_at, hashlib.sha256(state).digest(), state),
        )
        self._conn.execute(
            "DELETE FROM snapshots WHERE upto NOT IN "
            "(SELECT upto FROM snapshots ORDER BY upto DESC LIMIT ?)",
            (SNAPSHOTS_KEPT,),
        )


def _latest_snapshot(conn: sqlite3.Connection) -> tuple[Snapshot | None, str | None]:
    problem = None
    for upto, count, taken_at, digest, state in conn.execute(
        "SELECT upto, change_count, taken_at, digest, state FROM snapshots ORDER BY upto DESC"
    ):
        if hashlib.sha256(state).digest() == digest:
            return Snapshot(upto, count, taken_at, state), problem
        problem = f"the snapshot at change {upto} is damaged (digest mismatch)"
    return None, problem


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {version}, but this huskies knows only up to "
            f"{SCHEMA_VERSION}: upgrade huskies to open it"
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        # One transaction per step: a failed migration leaves the previous version intact.
        step = MIGRATIONS[target - 1]
        try:
            if isinstance(step, str):
                conn.executescript(
                    f"BEGIN IMMEDIATE; {step}; PRAGMA user_version={target}; COMMIT;"
                )
            else:
                conn.execute("BEGIN IMMEDIATE")
                step(conn)
                conn.execute(f"PRAGMA user_version={target}")
                conn.execute("COMMIT")
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
