"""The MCP endpoint at `/mcp`: the official SDK's server over streamable HTTP, with huskies'
tools and its own check of who is calling. Host and Origin are checked for the whole app, this
route included, by `huskies.web.guard`.

`run_forever()` runs the SDK's session manager; the server runs it as one of its loops (the
HTTP app runs without an ASGI lifespan).
"""

from __future__ import annotations

import asyncio
import logging

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from huskies import __version__
from huskies.mcp import agent_tools, board_tools, work_tools
from huskies.mcp.binding import bearer, identify
from huskies.mcp.scope import Scope as ToolScope
from huskies.mcp.test_runs import TestRuns
from huskies.web.errors import error_response
from huskies.web.services import Services

PATH = "/mcp"

INSTRUCTIONS = (
    "huskies moves work items through backlog → coding → qa → merge → done. With an agent's "
    "token, tools act only on that agent's item and worktree."
)


class McpEndpoint:
    """An ASGI app answering `/mcp`. A bearer token must be a running agent's (binding the
    tools to its item) or the server's access token; without one, only when the server needs
    no token."""

    def __init__(self, services: Services, *, access_token: str | None) -> None:
        self._services = services
        self._access_token = access_token
        self.tests = TestRuns()
        self.server = build_server(ToolScope(services, access_token, self.tests))
        # The app's guard checks Host and Origin for every route; a second, stricter list here
        # would refuse what the app allows (a tunnel's port, a proxy's name).
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        self.server.streamable_http_app(streamable_http_path=PATH, transport_security=security)
        self._manager = self.server.session_manager
        self._ready = asyncio.Event()

    async def run_forever(self) -> None:
        """Run the SDK's session manager until cancelled (a child of the server's task
        group: anyio wants it entered and left in one task). Requests wait until it is up."""
        async with self._manager.run():
            self._ready.set()
            try:
                await asyncio.Future()  # until the server stops
            finally:
                await self.tests.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = bearer(Headers(scope=scope))
        if identify(token, self._access_token, self._services.agents) is None:
            message = (
                "this token is neither a running agent's nor the server's access token"
                if token is not None
                else "this server needs its access token (in .huskies/access-token)"
            )
            response = error_response(401, message, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self._ready.wait()
        await self._manager.handle_request(scope, receive, send)


def build_server(scope: ToolScope) -> MCPServer:
    # MCPServer calls logging.basicConfig, which would install its handler on the root
    # logger of a process that has none yet: a placeholder handler makes that a no-op.
    root = logging.getLogger()
    placeholder = logging.NullHandler()
    root.addHandler(placeholder)
    try:
        server: MCPServer = MCPServer(
            name="huskies", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
        )
    finally:
        root.removeHandler(placeholder)
    board_tools.register(server, scope)
    work_tools.register(server, scope)
    agent_tools.register(server, scope)
    return server
