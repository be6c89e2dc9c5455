"""`/api/health` of a `huskies serve` node with no attack and under a flood of unauthenticated
`/crdt-sync` connections, side by side in one run; and how long a real peer takes to join in
each case.

Prints one JSON object. Three kinds of process, so that no one's event loop is another's:
node A is a real `huskies serve` on 127.0.0.1 (a fresh project in a temporary directory); the
attacker is a child process of this one, on its own event loop; the health probe and the clock
are this process, asking `GET /api/health` one request after another on one kept-alive HTTP
connection, each timed from sending it until its body has been read.

- health_*: requests one after another for --seconds (after 50 untimed ones), first with
  nothing else going on (no_attack), then with the attack in full swing (under_attack): p50,
  p99 and max in ms, and how many requests were made. The default 20 s spans two rounds of
  the server closing idle sockets at its 10 s handshake deadline and of refused ones retrying.
- The attack, the issue's: --idle-sockets WebSockets to /crdt-sync, opened at most
  --concurrency at a time from --idle-addresses loopback addresses (127.0.0.2, …), each sending
  a Ping every --ping-s and never authenticating; a socket the server closes is opened again at
  once, and one the server refuses (503) is tried again after --retry-s (default 10 s, the
  Retry-After the server asks for; a smaller value adds a flood of connections). Beside them,
  --senders senders, each from an address of its own, send 4 MiB frames (as large as a peer's
  frame may be) over and over: connect, send one, wait to be cut, again. The under_attack
  requests start once every idle socket has been tried and every sender has sent a frame.
- server_fds_max / server_rss_mb_max: node A's open file descriptors and resident memory,
  sampled every 10 requests during each phase. attack: what the attacker saw (sockets admitted
  into the handshake and refused, idle sockets the server closed, oversized frames sent).
- peer_join_s: a second node B (a fresh project, trusted by A and trusting A, with A in its
  sync.rendezvous) from the moment it prints that it serves until A lists it as a peer that is
  caught up; once before the attack, once (a fresh B) during it.

Usage: python bench/sync_flood.py [--seconds S] [--idle-sockets N] [--idle-addresses N]
                                  [--senders N] [--concurrency N] [--ping-s S] [--retry-s S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import psutil
from replica import percentile, positive
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from huskies.project import Project, init_project
from huskies.services.nodes import add_trusted_key, node_id
from huskies.sync.frames import Ping, encode_frame
from huskies.sync.protocol import Limits

WARMUP_REQUESTS = 50
SAMPLE_EVERY = 10  # requests between samples of the server's fds and memory
# A 4 MiB frame (as large as a peer's may be) of one array of four million empty arrays: the
# costliest thing to decode (over a second and 300 MB in cbor2), were anything to decode it.
_ITEMS = Limits().max_frame_bytes - 5
OVERSIZED = b"\x9a" + _ITEMS.to_bytes(4, "big") + b"\x80" * _ITEMS
# The attacker's counters, shared with this process: indexes into one array.
TRIED, ADMITTED, REFUSED, DROPPED, SENT, FAILED = range(6)
COUNTERS = ("tried", "admitted", "refused", "dropped_by_server", "oversized_sent", "errors")


# ---- nodes ------------------------------------------------------------------------------------


def make_project(root: Path) -> Project:
    """A fresh git repository with a huskies project in it."""
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return init_project(root)


def set_rendezvous(root: Path, url: str) -> None:
    toml = root / ".huskies" / "project.toml"
    lines = [
        f'rendezvous = ["{url}"]' if line.startswith("rendezvous =") else line
        for line in toml.read_text().splitlines()
    ]
    toml.write_text("\n".join(lines) + "\n")


@dataclass
class Served:
    process: subprocess.Popen[str]
    port: int

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def serve(root: Path) -> Served:
    """`huskies serve` on a free port; returns once it says it serves."""
    process = subprocess.Popen(
        [sys.executable, "-m", "huskies", "serve", "--port", "0"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=(root / "serve.log").open("a"),
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "serving http://" not in line:
        raise SystemExit(f"the server did not start: {(root / 'serve.log').read_text()}")
    return Served(process, int(line.rsplit(":", 1)[1]))


def health(connection: http.client.HTTPConnection) -> dict[str, Any]:
    connection.request("GET", "/api/health")
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise SystemExit(f"/api/health answered {response.status}: {body[:200]!r}")
    answer: dict[str, Any] = json.loads(body)
    return answer


def peer_join_s(a: Project, a_port: int, b_root: Path) -> float:
    """Seconds from a fresh node B serving until A lists it as a caught-up peer."""
    b = make_project(b_root)
    b_id = asyncio.run(node_id(b))
    add_trusted_key(a, b_id)  # A reads its trusted keys at each handshake
    add_trusted_key(b, asyncio.run(node_id(a)))
    set_rendezvous(b_root, f"ws://127.0.0.1:{a_port}/crdt-sync")
    b_server = serve(b_root)
    began = time.perf_counter()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", a_port, timeout=60)
        deadline = began + 120
        while True:
            peers = health(connection)["peers"]
            if any(peer["peer"] == b_id and peer["caught_up"] for peer in peers):
                return time.perf_counter() - began
            if time.perf_counter() > deadline:
                raise SystemExit("node B did not join within 120 s")
            time.sleep(0.01)  # polling another process's state
    finally:
        b_server.stop()


# ---- the probe --------------------------------------------------------------------------------


@dataclass
class Phase:
    latencies_ms: list[float]
    fds: list[int]
    rss: list[int]

    def figures(self, name: str) -> dict[str, float]:
        ordered = sorted(self.latencies_ms)
        return {
            f"health_requests_{name}": len(ordered),
            f"health_p50_ms_{name}": round(percentile(ordered, 0.50), 2),
            f"health_p99_ms_{name}": round(percentile(ordered, 0.99), 2),
            f"health_max_ms_{name}": round(ordered[-1], 2),
            f"server_fds_max_{name}": max(self.fds),
            f"server_rss_mb_max_{name}": round(max(self.rss) / (1 << 20), 1),
        }


def probe(port: int, server: psutil.Process, seconds: float) -> Phase:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(WARMUP_REQUESTS):
        health(connection)
    phase = Phase([], [], [])
    end = time.perf_counter() + seconds
    while (began := time.perf_counter()) < end:
        health(connection)
        phase.latencies_ms.append((time.perf_counter() - began) * 1000)
        if len(phase.latencies_ms) % SAMPLE_EVERY == 1:
            phase.fds.append(server.num_fds())
            phase.rss.append(server.memory_info().rss)
    connection.close()
    return phase


# ---- the attacker (a child process) -----------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    url: str
    idle_sockets: int
    idle_addresses: int
    senders: int
    concurrency: int
    ping_s: float
    retry_s: float


def run_attack(attack: Attack, counters: SynchronizedArray[int], stop: Event) -> None:
    """The child process: attack until `stop` is set."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of sockets
    asyncio.run(_attack(attack, counters, stop))


async def _attack(attack: Attack, counters: SynchronizedArray[int], stop: Event) -> None:
    gate = asyncio.Semaphore(attack.concurrency)

    def count(which: int) -> None:
        with counters.get_lock():
            counters[which] += 1

    async def stranger(source: str) -> ClientConnection:
        async with gate:
            return await connect(
                attack.url,
                max_size=None,
                compression=None,
                ping_interval=None,
                local_addr=(source, 0),
                open_timeout=60,
            )

    async def hold_idle(source: str) -> None:
        tried = False
        while True:
            try:
                ws = await stranger(source)
            except InvalidStatus:
                count(REFUSED)
                if not tried:
                    tried = True
                    count(TRIED)
                await asyncio.sleep(attack.retry_s)  # a refused stranger tries again later
                continue
            except OSError:
                count(FAILED)
                await asyncio.sleep(attack.retry_s)
                continue
            count(ADMITTED)
            if not tried:
                tried = True
                count(TRIED)
            with contextlib.suppress(ConnectionClosed):
                async with ws:
                    while True:  # only ever Ping, as the idle sockets did
                        await ws.send(encode_frame(Ping(0)))
                        with contextlib.suppress(TimeoutError):
                            while True:
                                async with asyncio.timeout(attack.ping_s):
                                    await ws.recv()
            count(DROPPED)

    async def send_oversized(source: str) -> None:
        while True:
            try:
                async with await stranger(source) as ws:
                    with contextlib.suppress(ConnectionClosed):  # cut before it was all sent
                        await ws.send(OVERSIZED)
                    count(SENT)
                    with contextlib.suppress(ConnectionClosed):
                        while True:
                            await ws.recv()  # until the server cuts us
            except InvalidStatus:
                count(REFUSED)
            except OSError:
                count(FAILED)

    idle = [f"127.0.0.{2 + n}" for n in range(attack.idle_addresses)]
    senders = [f"127.0.0.{2 + attack.idle_addresses + n}" for n in range(attack.senders)]
    tasks = [
        asyncio.create_task(hold_idle(idle[n % len(idle)])) for n in range(attack.idle_sockets)
    ]
    tasks += [asyncio.create_task(send_oversized(source)) for source in senders]
    while not stop.is_set():
        await asyncio.sleep(0.1)  # polling the parent's stop flag
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# ---- main -------------------------------------------------------------------------------------


def measure(root: Path, args: argparse.Namespace) -> dict[str, object]:
    a_root = root / "a"
    a_project = make_project(a_root)
    asyncio.run(node_id(a_project))  # made now, before A's server holds the database
    a = serve(a_root)
    server = psutil.Process(a.process.pid)
    context = multiprocessing.get_context("spawn")
    counters = context.Array("q", len(COUNTERS))
    stop = context.Event()
    attack = Attack(
        f"ws://127.0.0.1:{a.port}/crdt-sync",
        args.idle_sockets,
        args.idle_addresses,
        args.senders,
        args.concurrency,
        args.ping_s,
        args.retry_s,
    )
    attacker = context.Process(target=run_attack, args=(attack, counters, stop), name="attacker")
    try:
        quiet = probe(a.port, server, args.seconds)
        join_quiet = peer_join_s(a_project, a.port, root / "b-quiet")
        attacker.start()
        deadline = time.monotonic() + 300
        while counters[TRIED] < args.idle_sockets or counters[SENT] < args.senders:
            if not attacker.is_alive() or time.monotonic() > deadline:
                raise SystemExit(f"the attack did not get going: {counters[:]}")
            time.sleep(0.05)  # polling the attacker's progress
        loud = probe(a.port, server, args.seconds)
        join_loud = peer_join_s(a_project, a.port, root / "b-loud")
        handshaking = health(http.client.HTTPConnection("127.0.0.1", a.port, timeout=60))
    finally:
        stop.set()
        attacker.join(timeout=60)
        if attacker.is_alive():
            attacker.kill()
        a.stop()
    return {
        "seconds": args.seconds,
        **quiet.figures("no_attack"),
        **loud.figures("under_attack"),
        "peer_join_s_no_attack": round(join_quiet, 3),
        "peer_join_s_under_attack": round(join_loud, 3),
        "attack": {
            "idle_sockets": args.idle_sockets,
            "idle_addresses": args.idle_addresses,
            "senders": args.senders,
            "retry_s": args.retry_s,
            **dict(zip(COUNTERS, counters[:], strict=True)),
            # (None from a server older than these figures.)
            "server_handshaking_at_end": handshaking.get("handshaking"),
            "server_refused_total": handshaking.get("handshakes_refused"),
        },
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="of health requests a phase")
    parser.add_argument("--idle-sockets", type=positive, default=2000)
    parser.add_argument("--idle-addresses", type=positive, default=4)
    parser.add_argument("--senders", type=positive, default=4, help="senders of 4 MiB frames")
    parser.add_argument("--concurrency", type=positive, default=100, help="connects at once")
    parser.add_argument("--ping-s", type=float, default=1.0, help="between an idle socket's pings")
    parser.add_argument("--retry-s", type=float, default=10.0, help="before a refused one retries")
    args = parser.parse_args(argv)
    if args.idle_addresses + args.senders > 250:
        parser.error("--idle-addresses and --senders take one loopback address each: 250 at most")
    with tempfile.TemporaryDirectory(prefix="huskies-bench-flood-") as tmp:
        result = measure(Path(tmp), args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
