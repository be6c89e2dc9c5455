"""Kill a writer with SIGKILL at random points, many times: nothing it acknowledged is lost."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from huskies.store import Replica

WRITER = Path(__file__).with_name("crash_writer.py")
ROUNDS = 12


def run_until_killed(db: Path, acks_before_kill: int, snapshot_every: int) -> list[bytes]:
    """Start the writer, read acknowledgements until `acks_before_kill`, then SIGKILL it."""
    process = subprocess.Popen(
        [sys.executable, str(WRITER), str(db), str(snapshot_every)],
        stdout=subprocess.PIPE,
        text=True,
    )
    acked: list[bytes] = []
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert ready.startswith("READY"), ready
        assert ready.split()[1] == "3"  # the pending changes came back after every restart
        while len(acked) < acks_before_kill:
            line = process.stdout.readline()
            assert line.startswith("ACK"), f"writer stopped: {line!r}"
            acked.append(bytes.fromhex(line.split()[1]))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    # Whatever was printed before the kill was acknowledged too.
    acked += [bytes.fromhex(line.split()[1]) for line in process.stdout if line.startswith("ACK")]
    return acked


async def test_acknowledged_changes_survive_sigkill_at_random_points(tmp_path: Path):
    db = tmp_path / "huskies.db"
    rng = random.Random(20261123)
    acked: list[bytes] = []
    for round_number in range(ROUNDS):
        acks = rng.choice([0, 1, rng.randint(2, 50), rng.randint(50, 600)])
        acked += run_until_killed(db, acks, snapshot_every=rng.choice([25, 100, 10_000]))
        connection = sqlite3.connect(db)
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        connection.close()
        async with await Replica.open(db) as replica:
            doc = replica.document
            missing = [a.hex()[:12] for a in acked if doc.signed(a) is None]
            assert not missing, f"round {round_number}: acknowledged changes lost: {missing}"
            assert doc.pending_count == 3
            # The writer signs as the database's node. Its seqs have no gaps and no forks: no
            # restart reused one.
            if doc.change_count:
                assert doc.clock()[replica.public_key].seq == doc.change_count
                assert {c.signer for c in doc.changes_since({})} == {replica.public_key}
    assert len(acked) > 200
