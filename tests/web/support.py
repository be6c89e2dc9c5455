"""A real server in the test's process (uvicorn on 127.0.0.1, a free port, real SQLite) and a
real HTTP client for it."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from huskies.pipeline import read_items
from huskies.project import Project, init_project
from huskies.server import Running, running

DEADLINE_S = 10.0

SERVER_SUBSCRIBERS = 1
"""The server's own subscriptions to its event hub (the notifier's watch of item events)."""


def make_project(root: Path) -> Project:
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return init_project(root)


async def until(condition: Callable[[], object], what: str) -> Any:
    """Poll `condition` until it is true (returning it), or fail after the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)  # state another task reaches on its own; nothing to await
    return result


@contextlib.asynccontextmanager
async def served(
    project: Project, *, token: str | None = None, **options: Any
) -> AsyncIterator[tuple[Running, httpx.AsyncClient]]:
    """The server of `project`, up and quiet (its first presence change written), and a
    client of it (sending `token` if given)."""
    async with running(
        project,
        project.config(),
        "127.0.0.1",
        0,
        heartbeat_s=3600,
        verify_processes=0,
        **options,
    ) as server:
        replica = server.services.replica
        await until(lambda: replica.document.change_count > 0, "the first presence change")
        hub = server.services.hub
        await until(lambda: hub.subscribers == SERVER_SUBSCRIBERS, "the server's own listeners")
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{server.port}", headers=headers, timeout=DEADLINE_S
        ) as api:
            yield server, api


def stored(server: Running) -> tuple[int, list[tuple[str, object]]]:
    """What the server has stored: its change count and every item's raw map."""
    replica = server.services.replica
    return replica.document.change_count, read_items(replica.document)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error a response carries, having checked its status and shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "field"}
    error: dict[str, Any] = body["error"]
    return error
