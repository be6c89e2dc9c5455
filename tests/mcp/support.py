"""A real server with a git repository, a waiting `command` agent and one gate, and the MCP
Python SDK's client of it over streamable HTTP."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from huskies.project import Project
from huskies.server import Running

from ..services.agent_rig import agent_table, make_repo

GATE = """
[[component]]
name = "files"
path = "."

[component.gates.ready]
command = "test -f ready.txt"
timeout_secs = 60
"""


def make_project(root: Path) -> Project:
    """A repository whose coder waits for `release` beside it, and whose gate passes once
    `ready.txt` exists in the tree it runs in."""
    project = make_repo(root)
    release = root.parent / "release"
    project.agents_toml.write_text(
        agent_table("coder", f"echo working; while [ ! -f {release} ]; do sleep 0.05; done")
    )
    project.project_toml.write_text(project.project_toml.read_text() + GATE)
    return project


@contextlib.asynccontextmanager
async def connect(server: Running, token: str | None = None) -> AsyncIterator[Client]:
    """The SDK's client of the server's `/mcp`, sending `token` as the bearer if given."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(f"http://127.0.0.1:{server.port}/mcp", http_client=http)
        async with Client(transport) as client:
            yield client


def text(result: CallToolResult) -> str:
    assert len(result.content) == 1
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    """A tool's JSON answer, having checked that it is not an error."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    return json.loads(text(result))


async def call_text(client: Client, tool: str, **arguments: Any) -> str:
    """A tool's text answer, having checked that it is not an error."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    return text(result)


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    """The message of a tool error, having checked that the call was one."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, text(result)
    return text(result)


BODY = "Do it.\n\n- [ ] it works\n- [x] it is tested\n- [ ] it is documented\n"
