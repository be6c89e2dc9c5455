"""Agents benchmark: how fast a started story has a running agent, what an idle server costs,
and how fast the API lists a board of 1,000 items.

Everything runs for real: a `huskies serve` process on 127.0.0.1 for a git repository made in a
temporary directory, driven over HTTP. The agent is a `command` agent that waits until it is
stopped, so "running" means its process exists in its own worktree.

- start_to_running_ms: POST /api/items/N/start until it answers (the answer is sent once the
  item is in coding, its worktree exists and the agent process has been spawned), for
  `--starts` fresh items; each agent is stopped before the next start.
- idle_cpu_percent: the server's CPU time (user + system, its child processes included) over
  `--idle-seconds` with `--items` items in the backlog and nothing to do, as a percentage of one
  core.
- api_items_list_ms: GET /api/items?all=true with `--items` items, `--requests` times.

Prints one JSON object. Targets (issue 5): start p50 ≤ 250 ms, idle CPU ≤ 1 %, list p99 ≤ 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from replica import positive

from huskies.project import Project, init_project
from huskies.services.stories import Board
from huskies.store import Replica
from huskies.store.replica import wall_clock_ms

WAITING_AGENT = """
[[agent]]
name = "waiter"
stage = "coder"
runtime = "command"
argv = ["sh", "-c", "echo started; exec sleep 3600"]
prompt = "Work on {number}"
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def make_project(root: Path) -> Path:
    root.mkdir()
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.name", "Bench"],
        ["config", "user.email", "bench@example.com"],
    ):
        subprocess.run(["git", *args], cwd=root, check=True)
    # A small package, so each worktree checks out real files.
    package = root / "src" / "sample"
    package.mkdir(parents=True)
    for n in range(20):
        (package / f"module_{n}.py").write_text(f"def f{n}():\n    return {n}\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "start"], cwd=root, check=True)
    project = init_project(root)
    project.agents_toml.write_text(WAITING_AGENT)
    return root


async def fill(root: Path, items: int) -> None:
    project = Project(root)
    async with await Replica.open(project.db_path) as replica:
        board = Board(replica, wall_clock_ms)
        for n in range(items):
            await board.create(f"Backlog item {n}")


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = root / ".huskies" / "server.port"
    server = subprocess.Popen(
        [sys.executable, "-m", "huskies", "serve", "--port", "0"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not port_file.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port_file.read_text().strip()}"
    while True:
        try:
            if httpx.get(f"{url}/api/health", timeout=2).is_success:
                return server, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the server did not answer")
        time.sleep(0.05)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def measure(root: Path, args: argparse.Namespace) -> dict[str, object]:
    server, url = start_server(root)
    try:
        with httpx.Client(base_url=url, timeout=30) as api:
            # Measure idle from a settled state: not the first presence write or auto-assign
            # pass just after start.
            time.sleep(2)
            process = psutil.Process(server.pid)
            before, started = cpu_seconds(process), time.monotonic()
            time.sleep(args.idle_seconds)
            idle = 100 * (cpu_seconds(process) - before) / (time.monotonic() - started)

            listing = []
            for _ in range(args.requests):
                began = time.perf_counter()
                response = api.get("/api/items", params={"all": "true"})
                listing.append((time.perf_counter() - began) * 1000)
                assert len(response.json()["items"]) == args.items

            starts = []
            for n in range(1, args.starts + 1):
                began = time.perf_counter()
                answer = api.post(f"/api/items/{n}/start").json()
                starts.append((time.perf_counter() - began) * 1000)
                if answer["run"] is None or answer["run"]["state"] != "running":
                    raise SystemExit(f"#{n} did not start: {answer}")
                pid = answer["run"]["pid"]
                if not psutil.pid_exists(pid):
                    raise SystemExit(f"#{n}: no process {pid}")
                api.post(f"/api/items/{n}/stop").raise_for_status()
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {
        "items": args.items,
        "starts": args.starts,
        "start_to_running_ms_p50": round(statistics.median(starts), 1),
        "start_to_running_ms_p99": round(percentile(starts, 0.99), 1),
        "idle_seconds": args.idle_seconds,
        "idle_cpu_percent": round(idle, 2),
        "api_items_list_requests": args.requests,
        "api_items_list_p50_ms": round(statistics.median(listing), 2),
        "api_items_list_p99_ms": round(percentile(listing, 0.99), 2),
        "cpu_count": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=positive, default=1000)
    parser.add_argument("--starts", type=positive, default=50)
    parser.add_argument("--requests", type=positive, default=200)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()
    if args.starts > args.items:
        parser.error("--starts must not exceed --items")
    with tempfile.TemporaryDirectory(prefix="huskies-bench-agents-") as folder:
        root = make_project(Path(folder) / "project")
        asyncio.run(fill(root, args.items))
        print(json.dumps(measure(root, args), indent=2))


if __name__ == "__main__":
    main()
