"""bench/crdt.py runs end to end and checks its own result (timings are not asserted)."""

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "crdt.py"
REPLICA_BENCH = BENCH.with_name("replica.py")
SYNC_BENCH = BENCH.with_name("sync.py")


def run_bench(script: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


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
    result = run_bench(BENCH, str(trace), "--repeat", "1", timeout=300)
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
    result = run_bench(BENCH, str(tmp_path / "missing.json.gz"), timeout=60)
    assert result.returncode == 2
    assert "trace not found" in result.stderr


def test_replica_bench_prints_every_agreed_key_at_tiny_sizes(tmp_path):
    result = run_bench(
        REPLICA_BENCH,
        "--changes",
        "300",
        "--clients",
        "8",
        "--startup-changes",
        "2000",
        "--startup-repeat",
        "1",
        "--snapshot-every",
        "500",  # so the tiny startup run reopens from a snapshot too
        "--pycrdt-changes",
        "100",
        "--tmp-dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    numbers = (
        "write_changes_per_s",
        "write_p50_ms",
        "write_p99_ms",
        "write_full_changes_per_s",
        "write_full_p50_ms",
        "write_full_p99_ms",
        "startup_100k_snapshot_s",
        "startup_100k_cold_s",
        "startup_changes",
        "pycrdt_store_updates_per_s",
        "pycrdt_store_p99_ms",
        "cpus",
        "peak_rss_mb",
    )
    for name in numbers:
        assert isinstance(figures[name], int | float), name
        assert figures[name] > 0, name
    for name in ("pycrdt_store_mode", "python", "sqlite_version"):
        assert isinstance(figures[name], str)
        assert figures[name]
    assert figures["startup_view_ok"] is True
    assert figures["startup_changes"] == 2000
    # A snapshot was used: far fewer changes replayed than the log holds.
    assert 0 <= figures["startup_replayed_after_snapshot"] < figures["startup_log_changes"]
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone


def test_sync_bench_prints_every_agreed_key_at_tiny_sizes(tmp_path):
    result = run_bench(
        SYNC_BENCH,
        "--catchup-changes",
        "200",
        "--live-changes",
        "20",
        "--items",
        "50",
        "--repeat",
        "1",
        "--tmp-dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for name in (
        "catchup_10k_s",
        "catchup_wire_bytes_ratio",
        "catchup_first_change_s",
        "catchup_verify_share",
        "live_p50_ms",
        "live_p99_ms",
        "pycrdt_websocket_catchup_10k_s",
        "pycrdt_websocket_wire_bytes",
        "cpus",
    ):
        assert isinstance(figures[name], int | float), name
        assert figures[name] > 0, name
    assert figures["catchup_changes"] == 200
    assert figures["catchup_changes_sent"] > 200  # and the changes that made the items
    assert figures["live_changes"] == 20
    # Every change crossed the wire once, in frames that add little around it.
    assert figures["catchup_wire_bytes"] >= figures["catchup_change_bytes"]
    assert 1.0 <= figures["catchup_wire_bytes_ratio"] < 1.5
    assert figures["live_p50_ms"] <= figures["live_p99_ms"]
    assert isinstance(figures["python"], str)
    assert figures["python"]
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone


def test_sync_flood_bench_prints_both_phases_side_by_side():
    result = run_bench(
        SYNC_BENCH.with_name("sync_flood.py"),
        *("--seconds", "0.5", "--idle-sockets", "20", "--senders", "1", "--retry-s", "1"),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for phase in ("no_attack", "under_attack"):
        for name in ("health_p50_ms", "health_p99_ms", "server_fds_max", "peer_join_s"):
            assert figures[f"{name}_{phase}"] > 0, (name, phase)
        assert figures[f"health_p50_ms_{phase}"] <= figures[f"health_p99_ms_{phase}"]
    attack = figures["attack"]
    assert attack["tried"] >= 20
    assert attack["oversized_sent"] >= 1


def test_agents_bench_prints_the_agreed_keys():
    result = run_bench(
        BENCH.with_name("agents.py"),
        *("--items", "20", "--starts", "3", "--requests", "5", "--idle-seconds", "0.5"),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for name in (
        "start_to_running_ms_p50",
        "start_to_running_ms_p99",
        "idle_cpu_percent",
        "api_items_list_p99_ms",
    ):
        assert isinstance(figures[name], float | int), name
    assert (figures["items"], figures["starts"]) == (20, 3)
    assert figures["start_to_running_ms_p50"] > 0


def test_agents_bench_refuses_more_starts_than_items():
    result = run_bench(BENCH.with_name("agents.py"), "--items", "2", "--starts", "3")
    assert result.returncode == 2
    assert "--starts must not exceed --items" in result.stderr


def test_pipeline_bench_prints_the_agreed_keys():
    result = run_bench(BENCH.with_name("pipeline.py"), "--stories", "3", "--coders", "2")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert (figures["stories"], figures["max_coders"]) == (3, 2)
    for name in ("stories_per_min", "overhead_ms_per_story", "merge_queue_wait_ms_per_story"):
        assert isinstance(figures[name], float | int), name
    assert figures["stories_per_min"] > 0


def test_mcp_bench_prints_the_agreed_keys():
    script = BENCH.with_name("mcp_tools.py")
    result = run_bench(script, "--items", "20", "--calls", "5", timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for name in ("tool_call_p50_ms", "tool_call_p99_ms", "tools_list_tokens_estimate"):
        assert isinstance(figures[name], float | int), name
    assert figures["tool_call_p50_ms"] > 0
    assert figures["items_in_answer"] == 20
    assert figures["tools_list_tokens_estimate"] == figures["tools_list_chars"] // 4


def test_board_bench_prints_the_agreed_keys():
    script = BENCH.with_name("board.py")
    result = run_bench(script, "--items", "30", "--repeat", "1", "--samples", "3", timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for name in (
        "board_1000_items_load_ms",
        "event_to_dom_p50_ms",
        "event_to_dom_p99_ms",
        "api_edit_p50_ms",
    ):
        assert isinstance(figures[name], float | int), name
        assert figures[name] > 0, name
    # The board's own share can be below the browser's timer resolution.
    assert 0 <= figures["frame_to_dom_p50_ms"] <= figures["event_to_dom_p50_ms"]
    assert (figures["items"], figures["samples"]) == (30, 3)
