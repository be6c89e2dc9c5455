"""`huskies mcp`: the running server's MCP tools over stdio, for clients that only speak stdio.

A transport-level bridge: each JSON-RPC message read from stdin is sent to the server's `/mcp`
over streamable HTTP, and each message the server sends comes out on stdout, unchanged, so the
client's session is with the server itself (its tools, its errors, its notifications). The
server is found through `.huskies/server.port`, with the access token when the project has one.
"""

from __future__ import annotations

import logging

import anyio
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server
from mcp.shared._httpx_utils import create_mcp_http_client

from huskies.client import auth_headers, server_port
from huskies.project import Project

log = logging.getLogger("huskies.mcp.bridge")


class BridgeError(Exception):
    """No server to bridge to; the message says what to do."""


def server_url(project: Project) -> str:
    port = server_port(project)
    if port is None:
        raise BridgeError(
            "no huskies server is running for this project; start it with `huskies serve` "
            "(the MCP tools are served by it)"
        )
    return f"http://127.0.0.1:{port}/mcp"


async def bridge(project: Project) -> None:
    """Relay between stdio and the server until stdin closes or the server goes away."""
    url = server_url(project)
    http = create_mcp_http_client(headers=auth_headers(project))
    async with (
        http,
        stdio_server() as (from_client, to_client),
        streamable_http_client(url, http_client=http) as (from_server, to_server),
        anyio.create_task_group() as group,
    ):

        async def client_to_server() -> None:
            async with to_server:
                async for message in from_client:
                    if isinstance(message, Exception):
                        # Not JSON-RPC: nothing to forward; say so where the client's user sees.
                        log.warning("ignored a line from the client: %s", message)
                        continue
                    await to_server.send(message)
            group.cancel_scope.cancel()  # the client is gone: so is the bridge

        async def server_to_client() -> None:
            async with to_client:
                async for message in from_server:
                    if isinstance(message, Exception):
                        log.warning("the server sent something unreadable: %s", message)
                        continue
                    await to_client.send(message)

        group.start_soon(client_to_server)
        group.start_soon(server_to_client)
