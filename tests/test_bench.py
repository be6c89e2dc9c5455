"""bench/crdt.py runs end to end and checks its own result (timings are not asserted)."""

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "crdt.py"


def synthetic_trace(path: Path, edits: int, seed: int = 7) -> str:
    """A trace in the automerge-paper format, with endContent computed by plain string edits."""
    rng = random.Random(seed)
    text, txns = "", []
    for _ in range(edits):
        if text and rng.random() < 0.3:
            pos = rng.randrange(len(text))
            count = rng.randint(1, min(3, len(text) - pos))
            patch = [pos, count, ""]
            text = text[:pos] + text[pos + count :]
        else:
            pos = rng.randint(0, len(text))
            ins = rng.choice("abcdefgh \n")
            patch = [pos, 0, ins]
            text = text[:pos] + ins + text[pos:]
        txns.append({"time": "2026-01-01T00:00:00.000Z", "patches": [patch]})
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump({"startContent": "", "endContent": text, "txns": txns}, fh)
    return text


def test_bench_prints_the_agreed_keys_and_a_correct_final_text(tmp_path):
    trace = tmp_path / "trace.json.gz"
    synthetic_trace(trace, 3000)
    result = subprocess.run(
        [sys.executable, str(BENCH), str(trace), "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for name in (
        "b4_unsigned_s",
        "b4_signed_s",
        "b4_pycrdt_s",
        "b4_final_text_ok",
        "ingest_changes_per_s",
        "local_changes_per_s",
        "peak_rss_mb",
    ):
        assert name in figures
    assert figures["b4_final_text_ok"] is True
    assert figures["edits"] == 3000


def test_bench_says_where_the_trace_should_be(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCH), str(tmp_path / "missing.json.gz")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "trace not found" in result.stderr
