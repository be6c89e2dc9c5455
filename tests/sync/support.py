"""Helpers shared by the sync tests: `huskies serve` nodes as real processes on loopback, a peer
that speaks the protocol by hand, and polling with a deadline."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from huskies.crdt import NodeKey, SignedChange
from huskies.sync.frames import (
    Auth,
    Changes,
    Clock,
    Hello,
    auth_message,
    decode_frame,
    encode_frame,
)

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
        """Start serving: on any free port the first time, then on the same one again."""
        self.process = subprocess.Popen(
            [*COMMAND, "serve", "--port", str(self.port), "--heartbeat", "0.2", *args],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=self.log.open("a"),
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert "serving http://" in line, self.log.read_text()
        self.port = int(line.rsplit(":", 1)[1])

    def health(self, timeout: float = 5) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=timeout) as r:
            return json.load(r)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/crdt-sync"

    def open_fds(self) -> int:
        """How many file descriptors the server process holds (Linux)."""
        assert self.process is not None
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def set_sync(self, key: str, value: str) -> None:
        """Set `key = value` (TOML) in the [sync] table of project.toml."""
        toml = self.root / ".huskies" / "project.toml"
        lines = [
            f"{key} = {value}" if line.startswith(f"{key} =") else line
            for line in toml.read_text().splitlines()
        ]
        toml.write_text("\n".join(lines) + "\n")

    def set_rendezvous(self, *urls: str) -> None:
        self.set_sync("rendezvous", "[" + ", ".join(f'"{u}"' for u in urls) + "]")


def new_node(tmp: Path, name: str) -> Node:
    """An initialised project in `tmp`/`name`, a node to start (its log beside it)."""
    root = tmp / name
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    node = Node(root, tmp / f"{name}.log")
    assert node.cli("init").returncode == 0
    return node


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # polling real processes for a state they reach on their own


async def until(condition: Callable[[], Any], what: str) -> Any:
    """`wait_for` for a test whose own event loop must keep running meanwhile; `condition` may
    return an awaitable (a check made in a thread, say)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)  # polling real processes for a state they reach on their own


def converged(*nodes: Node) -> list[dict[str, Any]] | None:
    """The nodes' health when their clocks agree (read once each, so what is asserted of them
    is what agreed: with presence written every 0.2 s, a second look may see a newer change)."""
    healths = [node.health() for node in nodes]
    return healths if len({health["clock"] for health in healths}) == 1 else None


class Hostile:
    """A peer that speaks the protocol by hand, to send what honest nodes never would."""

    def __init__(self, signer: NodeKey, url: str) -> None:
        self.key = signer
        self.url = url

    async def __aenter__(self) -> Hostile:
        self.ws = await connect(self.url, max_size=None, compression=None)
        nonce = os.urandom(32)
        await self.ws.send(encode_frame(Hello(self.key.public_key, nonce)))
        hello = await self.expect(Hello)
        message = auth_message(hello.nonce, self.key.public_key, hello.key)
        await self.ws.send(encode_frame(Auth(self.key.sign(message))))
        await self.expect(Auth)
        await self.expect(Clock)
        await self.ws.send(encode_frame(Clock({})))
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.ws.close()

    async def expect(self, kind: type) -> Any:
        """The next frame of `kind`, skipping catch-up and live traffic."""
        while True:
            frame = decode_frame(await self.ws.recv(), 1 << 30)  # type: ignore[arg-type]
            if isinstance(frame, kind):
                return frame

    async def send(self, *changes: SignedChange) -> None:
        await self.ws.send(encode_frame(Changes(changes)))
