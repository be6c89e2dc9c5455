"""`huskies serve` nodes as real processes on loopback: joining, trust, restarts, convergence."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HUSKIES = shutil.which("huskies")
COMMAND = [HUSKIES] if HUSKIES else [sys.executable, "-m", "huskies"]
DEADLINE_S = 30


@dataclass(eq=False)
class Node:
    root: Path
    log: Path
    process: subprocess.Popen[str] | None = None
    port: int = 0

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*COMMAND, *args], cwd=self.root, capture_output=True, text=True, timeout=60
        )

    def start(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [*COMMAND, "serve", "--port", "0", "--heartbeat", "0.2", *args],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=self.log.open("a"),
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert "serving http://" in line, self.log.read_text()
        self.port = int(line.rsplit(":", 1)[1])

    def health(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as r:
            return json.load(r)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/crdt-sync"

    def set_rendezvous(self, *urls: str) -> None:
        toml = self.root / ".huskies" / "project.toml"
        listed = ", ".join(f'"{u}"' for u in urls)
        lines = [
            f"rendezvous = [{listed}]" if line.startswith("rendezvous =") else line
            for line in toml.read_text().splitlines()
        ]
        toml.write_text("\n".join(lines) + "\n")


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator:
    made: list[Node] = []

    def make(name: str) -> Node:
        root = tmp_path / name
        root.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        node = Node(root, tmp_path / f"{name}.log")
        assert node.cli("init").returncode == 0
        made.append(node)
        return node

    yield make
    for node in made:
        node.stop(signal.SIGKILL)


def wait_for(condition, what: str):
    deadline = time.monotonic() + DEADLINE_S
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # polling real processes for a state they reach on their own


def converged(*nodes: Node) -> bool:
    clocks = {node.health()["clock"] for node in nodes}
    return len(clocks) == 1


def test_a_join_token_enrols_once_and_the_nodes_converge(make_node):
    a, b, c = make_node("a"), make_node("b"), make_node("c")
    token = a.cli("node", "token", "--ttl", "10m").stdout.strip()
    a.start()
    b.set_rendezvous(a.url)
    b.start("--join", token)
    wait_for(lambda: converged(a, b) and len(a.health()["peers"]) == 1, "a and b to converge")
    [peer] = a.health()["peers"]
    assert peer["peer"] == b.cli("node", "id").stdout.strip()
    assert peer["caught_up"]
    # The token is spent: c presenting it is refused, and told why.
    c.set_rendezvous(a.url)
    c.start("--join", token)
    wait_for(lambda: "already used" in c.log.read_text(), "c to be refused")
    assert [p["peer"] for p in a.health()["peers"]] == [peer["peer"]]
    # b stays trusted after a restart, without the token.
    b.stop()
    b.start()
    wait_for(lambda: converged(a, b) and len(a.health()["peers"]) == 1, "b to rejoin")


def test_an_untrusted_node_is_refused(make_node):
    a, stranger = make_node("a"), make_node("stranger")
    a.start()
    stranger.set_rendezvous(a.url)
    stranger.start()
    wait_for(lambda: "not in trusted_keys" in stranger.log.read_text(), "the refusal")
    assert a.health()["peers"] == []
    assert a.health()["changes"] < 50  # none of the stranger's changes came in
    assert "not in trusted_keys" in a.log.read_text()


def test_three_nodes_converge_through_a_sigkill_and_a_late_joiner(make_node):
    hub, left, right = make_node("hub"), make_node("left"), make_node("right")
    ids = {n: n.cli("node", "id").stdout.strip() for n in (hub, left, right)}
    for node in (hub, left, right):
        for other, key in ids.items():
            if other is not node:
                assert node.cli("node", "trust", key).returncode == 0
    hub.start()
    left.set_rendezvous(hub.url)
    right.set_rendezvous(hub.url)
    left.start()
    wait_for(lambda: converged(hub, left), "hub and left")
    left.stop(signal.SIGKILL)
    right.start()  # joins late, with an empty database
    wait_for(lambda: converged(hub, right), "the late joiner to catch up")
    left.start()  # back after the kill; everyone kept writing presence meanwhile
    wait_for(lambda: converged(hub, left, right), "all three to converge")
    nodes = {n: n.health() for n in (hub, left, right)}
    assert len({h["changes"] for h in nodes.values()}) == 1
    assert all(h["pending"] == 0 for h in nodes.values())
    for node in (hub, left, right):
        node.stop()
        assert not (node.root / ".huskies" / "server.port").exists()
    assert os.path.exists(hub.root / ".huskies" / "huskies.db")
