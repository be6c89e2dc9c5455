"""`huskies serve`: the node's replica, its sync links and the HTTP app, in one task group."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from huskies.config import ProjectConfig
from huskies.project import Project
from huskies.services.node import Node, configured_keys
from huskies.store import Replica, Synchronous
from huskies.store.replica import wall_clock_ms
from huskies.sync.protocol import Limits
from huskies.sync.trust import Trust, TrustStore, parse_token
from huskies.web.app import create_app

log = logging.getLogger("huskies.server")


# Signature checks of a catch-up spread over this many processes (see Replica.open).
VERIFY_PROCESSES = max(1, min(4, os.cpu_count() or 1))


class ServeError(Exception):
    """The server cannot start; the message says why and what to do."""


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM once it has stopped, which would end the process
    before the replica closes; `serve` handles those signals itself instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def port_file(project: Project) -> Path:
    return project.dir / "server.port"


def _bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so a taken port gets a clear message."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(
            f"cannot listen on {host}:{port} ({exc.strerror}); another program may be using "
            f"it: try --port {port + 1}, or --port 0 for any free port"
        ) from None
    sock.listen(128)  # connections wait in the backlog until the app is up
    return sock


async def serve(
    project: Project,
    config: ProjectConfig,
    host: str,
    port: int,
    *,
    join: str | None = None,
    heartbeat_s: float = 30.0,
) -> None:
    if join is not None:
        parse_token(join)  # a malformed token stops here, with the reason
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    replica = await Replica.open(
        project.db_path,
        synchronous=Synchronous(config.store.synchronous),
        snapshot_every=config.store.snapshot_every,
        verify_processes=VERIFY_PROCESSES,
    )
    trust_store = TrustStore(project.db_path)

    def trusted() -> set[bytes]:
        try:
            return configured_keys(project.config().sync.trusted_keys)
        except Exception as exc:  # a broken edit of project.toml must not stop the server
            log.warning("keeping the trusted keys loaded at start: %s", exc)
            return configured_keys(config.sync.trusted_keys)

    sync = config.sync
    node = Node(
        replica,
        Trust(trusted, trust_store),
        trust_store,
        address=f"ws://{host}:{bound}/crdt-sync",
        role="server",
        limits=Limits(
            ping_interval_s=sync.ping_interval_secs, ping_timeout_s=sync.ping_timeout_secs
        ),
        wall_ms=wall_clock_ms,
    )
    server = _Server(
        uvicorn.Config(
            create_app(node), log_level="warning", lifespan="off", ws="websockets-sansio"
        )
    )
    loop = asyncio.get_running_loop()
    for stop in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stop, setattr, server, "should_exit", True)
    port_file(project).write_text(f"{bound}\n")
    print(f"huskies node {replica.node_id} serving http://{host}:{bound}", flush=True)
    try:
        async with asyncio.TaskGroup() as group:
            web = group.create_task(server.serve(sockets=[sock]), name="http")
            background = [
                group.create_task(node.heartbeat(heartbeat_s), name="presence"),
                *(
                    group.create_task(node.dial_forever(url, join), name=f"dial {url}")
                    for url in sync.rendezvous
                ),
            ]
            await web  # returns on SIGINT/SIGTERM, which uvicorn handles
            for task in background:
                task.cancel()
    finally:
        with contextlib.suppress(FileNotFoundError):
            port_file(project).unlink()
        trust_store.close()
        await replica.close()
        sock.close()
