"""`huskies serve`: the node's replica, its services, sync links and the HTTP app, in one task
group.

`running` starts everything and stops it when its block ends (tests use it in-process); `serve`
is the command: `running` until SIGINT or SIGTERM. Each background loop is a named child of the
task group, listed in `_loops`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import uvicorn

from huskies.config import ProjectConfig
from huskies.mcp.endpoint import McpEndpoint
from huskies.pipeline import WorkItem
from huskies.pipeline.gates import failure_summary
from huskies.processes import GroupLedger
from huskies.project import Project
from huskies.services.access_token import ensure_token, is_loopback, token_path
from huskies.services.agents import Agents
from huskies.services.archiver import Archiver
from huskies.services.events import EventHub
from huskies.services.gates import Gates
from huskies.services.item_events import publish_item_events
from huskies.services.merge import RETRY_AFTER_S, GateVerdict, MergeQueue, MergeWorkspace
from huskies.services.node import Node, configured_keys
from huskies.services.notifications import Notifier
from huskies.services.permissions import Permissions
from huskies.services.review import Review
from huskies.services.settings import Settings
from huskies.services.stories import Board
from huskies.services.timers import Timers
from huskies.services.worktrees import Worktrees
from huskies.store import Replica, Synchronous
from huskies.store.replica import wall_clock_ms
from huskies.sync.protocol import Limits
from huskies.sync.transports import max_message_bytes
from huskies.sync.trust import Trust, TrustStore, parse_token
from huskies.web.app import create_app
from huskies.web.guard import served_names
from huskies.web.services import Services
from huskies.web.websocket_protocol import LimitedWebSocketProtocol

log = logging.getLogger("huskies.server")


# Signature checks of a catch-up spread over this many processes (see Replica.open).
VERIFY_PROCESSES = max(1, min(4, os.cpu_count() or 1))

# How far past a taken port to look for a free one to suggest.
PORT_SEARCH = 100


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


@dataclass
class Running:
    """A started server. `new_token` is the access token if this start made it (it is shown
    once, then only kept in its file); `token_required` says whether requests need it."""

    services: Services
    host: str
    port: int
    token_required: bool
    new_token: str | None
    _uvicorn: _Server
    _http: asyncio.Task[None]

    def stop(self) -> None:
        self._uvicorn.should_exit = True

    async def wait(self) -> None:
        """Until the HTTP server has stopped (after `stop`). Shielded: a waiter that is
        cancelled stops waiting, not the server."""
        await asyncio.shield(self._http)


def _bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so a taken port gets a clear message."""
    try:
        sock = _listening(host, port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise ServeError(
                f"cannot listen on {host}:{port} ({exc.strerror}); check --host and --port"
            ) from None
        free = _free_port_after(host, port)
        suggestion = f"port {free} is free: try --port {free}, or" if free else "try"
        raise ServeError(
            f"cannot listen on {host}:{port}: the port is taken (is another huskies server or "
            f"another program using it?); {suggestion} --port 0 for any free port"
        ) from None
    sock.listen(128)  # connections wait in the backlog until the app is up
    return sock


def _listening(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP named, not 0: asyncio turns Nagle's algorithm off only on connections of a
    # socket made so, and with it on each answer on a kept-alive connection waits ~40 ms.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _free_port_after(host: str, port: int) -> int | None:
    """The first port after `port` that can be bound on `host` right now (by trying it)."""
    for candidate in range(port + 1, min(port + PORT_SEARCH, 65535) + 1):
        try:
            _listening(host, candidate).close()
        except OSError:
            continue
        return candidate
    return None


def _names(host: str) -> list[str]:
    """Names a client may reach a server listening on all addresses by: the machine's names
    and its interfaces' addresses."""
    if host not in ("", "0.0.0.0", "::"):
        return []
    names = [socket.gethostname(), socket.getfqdn()]
    for addresses in psutil.net_if_addrs().values():
        names += [
            found.address.split("%")[0]  # an IPv6 link-local address's zone is not in a Host
            for found in addresses
            if found.family in (socket.AF_INET, socket.AF_INET6)
        ]
    return list(dict.fromkeys(names))


def _write_port(path: Path, port: int) -> None:
    # Renamed into place, so a CLI call never reads a half-written number.
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(f"{port}\n")
    os.replace(temporary, path)


@contextlib.asynccontextmanager
async def running(
    project: Project,
    config: ProjectConfig,
    host: str,
    port: int,
    *,
    join: str | None = None,
    heartbeat_s: float = 30.0,
    require_token: bool = False,
    verify_processes: int = VERIFY_PROCESSES,
    merge_retry_s: float = RETRY_AFTER_S,
) -> AsyncIterator[Running]:
    """Serve until the block ends. The token is required beyond loopback, or if asked for."""
    if join is not None:
        parse_token(join)  # a malformed token stops here, with the reason
    settings = Settings(project, config, project.agents())  # a broken agents.toml stops here
    async with contextlib.AsyncExitStack() as stack:
        sock = _bind(host, port)
        stack.callback(sock.close)
        bound = sock.getsockname()[1]
        replica = await Replica.open(
            project.db_path,
            synchronous=Synchronous(config.store.synchronous),
            snapshot_every=config.store.snapshot_every,
            verify_processes=verify_processes,
        )
        stack.push_async_callback(replica.close)
        # The loaded document is most of the heap and lives as long as the server: keep it out
        # of the cyclic collector's full passes, which otherwise pause requests for tens of ms.
        gc.freeze()
        trust_store = TrustStore(project.db_path)
        stack.callback(trust_store.close)
        # Made while this process holds the database's lock, so no other server races it.
        token_required = require_token or not is_loopback(host)
        token, made = ensure_token(project) if token_required else (None, False)
        node = _node(project, config, replica, trust_store, f"ws://{host}:{bound}/crdt-sync")
        board = Board(
            replica, wall_clock_ms, lambda: [agent.name for agent in settings.agents.agents]
        )
        hub = EventHub()
        agent_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        agent_url = f"http://{f'[{agent_host}]' if ':' in agent_host else agent_host}:{bound}"
        # Agents and gates a crashed predecessor left running would work on beside the ones
        # about to be re-queued: end them first.
        for pgid in await GroupLedger(project.dir / "runs" / "live").end_leftovers():
            log.warning("ended process group %s left running by an earlier server", pgid)
        pipeline = _pipeline(project, settings, replica, board, node, hub, agent_url, merge_retry_s)
        services = pipeline.services
        mcp = McpEndpoint(services, access_token=token)
        names = served_names(host, [*_names(host), *config.server.hosts])
        server = _Server(
            uvicorn.Config(
                create_app(services, names=names, access_token=token, mcp=mcp),
                log_level="warning",
                lifespan="off",
                # Each connection takes small messages until its endpoint raises its limit (sync
                # peers once admitted), and none is buffered beyond what a sync frame may be.
                ws=LimitedWebSocketProtocol,
                ws_max_size=max_message_bytes(node.limits),
            )
        )
        _write_port(port_file(project), bound)
        stack.callback(port_file(project).unlink, missing_ok=True)
        async with asyncio.TaskGroup() as group:
            http = group.create_task(server.serve(sockets=[sock]), name="http")
            loops = [
                group.create_task(_logged(name, loop), name=name)
                for name, loop in _loops(pipeline, config, join, heartbeat_s).items()
            ]
            # The app runs without a lifespan: the MCP session manager runs here instead.
            loops.append(group.create_task(_logged("mcp", mcp.run_forever()), name="mcp"))
            handle = Running(
                services, host, bound, token_required, token if made else None, server, http
            )
            try:
                yield handle
            finally:
                handle.stop()
                await http
                for task in loops:
                    task.cancel()
                await pipeline.agents.close()  # no agent outlives the server
                pipeline.notifier.flush()


@dataclass(frozen=True)
class _Pipeline:
    """The services that move items along, and what the web app sees of them."""

    services: Services
    agents: Agents
    merge: MergeQueue
    timers: Timers
    archiver: Archiver
    notifier: Notifier


def _pipeline(
    project: Project,
    settings: Settings,
    replica: Replica,
    board: Board,
    node: Node,
    hub: EventHub,
    agent_url: str,
    merge_retry_s: float,
) -> _Pipeline:
    clock = wall_clock_ms
    notifier = Notifier(hub)
    ledger = GroupLedger(project.dir / "runs" / "live")
    worktrees = Worktrees(project.root, settings.config.base_branch)
    gates = Gates(settings, replica, project.dir / "runs" / "gates", clock, ledger=ledger)

    async def check(item: WorkItem, directory: Path, where: str) -> tuple[bool, str]:
        report = await gates.check(item, directory, where)
        return report.passed, failure_summary(report)

    async def check_merge(item: WorkItem, directory: Path) -> GateVerdict:
        passed, summary = await check(item, directory, "merge")
        return GateVerdict(passed, summary)

    agents: Agents | None = None

    def remember(item: WorkItem, text: str) -> None:
        if agents is not None:
            agents.remember_feedback(item, text)

    review = Review(board, worktrees, settings, clock, on_reject=remember)
    agents = Agents(
        settings=settings,
        replica=replica,
        board=board,
        worktrees=worktrees,
        hub=hub,
        runs_dir=project.dir / "runs",
        server_url=lambda: agent_url,
        clock=clock,
        gates=check,
        review=review,
        notify=notifier,
        ledger=ledger,
    )
    merge = MergeQueue(
        settings=settings,
        replica=replica,
        board=board,
        workspace=MergeWorkspace(worktrees),
        gates=check_merge,
        mergemaster=agents.run_mergemaster,
        boot_id=secrets.token_hex(8),
        clock=clock,
        notify=lambda kind, item, message: notifier.notify(kind, message, number=item.number),
        retry_after_s=merge_retry_s,
    )

    async def fire(number: int) -> None:
        await agents.start(number)

    timers = Timers(replica, board, settings, clock, fire, notify=notifier)
    permissions = Permissions(settings, hub, clock, notify=notifier)
    services = Services(
        project,
        settings,
        replica,
        board,
        node,
        hub,
        agents,
        review=review,
        timers=timers,
        notifier=notifier,
        gates=gates,
        worktrees=worktrees,
        permissions=permissions,
        merge=merge,
    )
    return _Pipeline(services, agents, merge, timers, Archiver(board, settings, clock), notifier)


def _loops(
    pipeline: _Pipeline, config: ProjectConfig, join: str | None, heartbeat_s: float
) -> dict[str, Coroutine[Any, Any, None]]:
    """The server's background loops by name; each runs for the server's life."""
    services = pipeline.services
    node = services.node
    return {
        "presence": node.heartbeat(heartbeat_s),
        "item events": publish_item_events(services.replica, services.board, services.hub),
        "auto-assign": pipeline.agents.run_forever(),
        "merge queue": pipeline.merge.run_forever(),
        "timers": pipeline.timers.run_forever(),
        "archiver": pipeline.archiver.run_forever(),
        "notifications": pipeline.notifier.watch_items(services.board),
        **{f"dial {url}": node.dial_forever(url, join) for url in config.sync.rendezvous},
    }


async def _logged(name: str, loop: Coroutine[Any, Any, None]) -> None:
    """A loop that fails says so in the log; the task group then stops the server."""
    try:
        await loop
    except Exception:
        log.exception("background loop %r failed", name)
        raise


def _node(
    project: Project, config: ProjectConfig, replica: Replica, trust_store: TrustStore, url: str
) -> Node:
    def trusted() -> set[bytes]:
        try:
            return configured_keys(project.config().sync.trusted_keys)
        except Exception as exc:  # a broken edit of project.toml must not stop the server
            log.warning("keeping the trusted keys loaded at start: %s", exc)
            return configured_keys(config.sync.trusted_keys)

    sync = config.sync
    return Node(
        replica,
        Trust(trusted, trust_store),
        trust_store,
        address=url,
        role="server",
        limits=Limits(
            ping_interval_s=sync.ping_interval_secs,
            ping_timeout_s=sync.ping_timeout_secs,
            handshake_timeout_s=sync.handshake_timeout_secs,
        ),
        wall_ms=wall_clock_ms,
    )


async def serve(
    project: Project,
    config: ProjectConfig,
    host: str,
    port: int,
    *,
    join: str | None = None,
    heartbeat_s: float = 30.0,
    require_token: bool = False,
) -> None:
    """Serve until SIGINT or SIGTERM."""
    async with running(
        project,
        config,
        host,
        port,
        join=join,
        heartbeat_s=heartbeat_s,
        require_token=require_token,
    ) as server:
        loop = asyncio.get_running_loop()
        for stop in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(stop, server.stop)
        shown = f"[{host}]" if ":" in host else host
        node_id = server.services.replica.node_id
        print(f"huskies node {node_id} serving http://{shown}:{server.port}", flush=True)
        if server.new_token is not None:
            print(
                f"access token: {server.new_token}\n"
                f"  (shown only now; kept in {token_path(project)}, where the CLI on this "
                "machine finds it)",
                flush=True,
            )
        elif server.token_required:
            print(f"requests need the access token in {token_path(project)}", flush=True)
        await server.wait()
