"""Talking to this project's running server over its HTTP API.

The server writes its port to `.huskies/server.port`; `connect` finds it there, checks that the
server answers and is this project's node, and sends the access token when the token file
exists. A port file whose server is gone (or is another program now) means "no server", and the
caller falls back to the database.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from huskies.project import Project
from huskies.services.access_token import read_token
from huskies.services.nodes import stored_node_id

PORT_FILE = "server.port"
PROBE_TIMEOUT_S = 2.0
REQUEST_TIMEOUT_S = 60.0


class ApiError(Exception):
    """The server refused a request, or could not be reached; the message says why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def server_port(project: Project) -> int | None:
    try:
        return int((project.dir / PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def auth_headers(project: Project) -> dict[str, str]:
    token = read_token(project)
    return {} if token is None else {"Authorization": f"Bearer {token}"}


class ApiClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """The decoded JSON of a 2xx answer; raises ApiError with the server's message."""
        try:
            response = await self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise ApiError(
                f"lost the connection to the server at {self._http.base_url}: {exc}"
            ) from None
        if response.is_success:
            return response.json()
        raise ApiError(_message(response), response.status_code)


@contextlib.asynccontextmanager
async def connect(project: Project) -> AsyncIterator[ApiClient | None]:
    """A client of this project's running server, or None if none runs."""
    port = server_port(project)
    node = stored_node_id(project) if port is not None else None
    if port is None or node is None:  # a server has always created its database
        yield None
        return
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers=auth_headers(project),
        timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=PROBE_TIMEOUT_S),
    ) as http:
        try:
            probe = await http.get("/api/health", timeout=PROBE_TIMEOUT_S)
        except httpx.HTTPError:
            yield None  # the port file outlived its server
            return
        if probe.status_code == 401:
            raise ApiError(_message(probe), 401)
        if not probe.is_success or _node_of(probe) != node:
            yield None  # something else listens there now
            return
        yield ApiClient(http)


def _node_of(response: httpx.Response) -> object:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("node") if isinstance(body, dict) else None


def _message(response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = None
    if isinstance(message, str):
        return message
    return f"the server answered {response.status_code} {response.reason_phrase}"
