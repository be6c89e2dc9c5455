"""Other MCP clients than the Python SDK over HTTP: the official TypeScript SDK (installed by
the test command into .venv/node), and stdio clients through `huskies mcp`."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from huskies.server import running

from .support import make_project, text

REPO = Path(__file__).resolve().parents[2]
TS_SDK = REPO / ".venv" / "node" / "node_modules" / "@modelcontextprotocol" / "sdk"
TS_CLIENT = Path(__file__).with_name("ts_client.mjs")


@pytest.fixture
def ts_sdk() -> Path:
    if not (TS_SDK / "package.json").is_file():
        pytest.fail(
            f"the TypeScript MCP SDK is not installed at {TS_SDK}; run the test command in the "
            "README (it installs @modelcontextprotocol/sdk into .venv/node)"
        )
    return TS_SDK


async def test_the_typescript_sdk_lists_tools_reads_status_and_creates_an_item(
    tmp_path: Path, ts_sdk: Path
):
    project = make_project(tmp_path / "repo")
    async with running(project, project.config(), "127.0.0.1", 0, heartbeat_s=3600) as server:
        node = await asyncio.create_subprocess_exec(
            "node",
            str(TS_CLIENT),
            str(ts_sdk),
            f"http://127.0.0.1:{server.port}/mcp",
            "From TypeScript",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            out, err = await node.communicate()
        assert node.returncode == 0, err.decode()
        seen = json.loads(out)
        assert {"get_pipeline_status", "create_item", "run_tests"} <= set(seen["tools"])
        assert not seen["status_error"], seen["status"]
        assert not seen["created_error"], seen["created"]
        created = server.services.board.get(1)
        assert created.title == "From TypeScript"


async def test_a_stdio_client_reaches_the_server_through_huskies_mcp(tmp_path: Path):
    project = make_project(tmp_path / "repo")
    async with running(project, project.config(), "127.0.0.1", 0, heartbeat_s=3600) as server:
        await server.services.board.create("Seen over stdio")
        parameters = StdioServerParameters(
            command=sys.executable, args=["-m", "huskies", "mcp"], cwd=str(project.root)
        )
        async with asyncio.timeout(60), Client(stdio_client(parameters)) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert {"get_pipeline_status", "get_item"} <= tools
            status = await client.call_tool("get_pipeline_status", {})
            assert not status.is_error
            assert "Seen over stdio" in text(status)


def test_huskies_mcp_without_a_server_says_what_to_do(tmp_path: Path):
    import subprocess

    project = make_project(tmp_path / "repo")
    done = subprocess.run(
        [sys.executable, "-m", "huskies", "mcp"],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: no huskies server is running for this project")
