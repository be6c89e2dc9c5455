"""MCP benchmark: how long a tool call takes through the official Python SDK's client, and
how much context the tools list costs an agent.

A real `huskies serve` process on 127.0.0.1 for a git repository made in a temporary directory,
with `--items` items in the backlog, driven over streamable HTTP by the SDK's client.

- tool_call_p50_ms / tool_call_p99_ms: `get_pipeline_status`, `--calls` times, one after
  another on one session (after a few warm-up calls).
- tools_list_tokens_estimate: the characters of the tools list as JSON (names, descriptions,
  input schemas), divided by 4.

Prints one JSON object. (Named mcp_tools.py, not mcp.py: a script named mcp.py beside the
other benchmarks would stand in for the MCP SDK when they import huskies.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from agents import fill, make_project, percentile, start_server
from mcp.client.client import Client
from replica import positive

WARM_UP = 5


async def measure(url: str, calls: int) -> dict[str, Any]:
    async with Client(f"{url}/mcp") as client:
        tools = (await client.list_tools()).tools
        listed = json.dumps([tool.model_dump(mode="json", exclude_none=True) for tool in tools])
        timings = []
        for n in range(WARM_UP + calls):
            began = time.perf_counter()
            result = await client.call_tool("get_pipeline_status", {})
            elapsed = (time.perf_counter() - began) * 1000
            if result.is_error:
                raise SystemExit(f"get_pipeline_status failed: {result.content}")
            if n >= WARM_UP:
                timings.append(elapsed)
        answer = result.content[0]
        status = json.loads(getattr(answer, "text", "{}"))
    return {
        "tools": len(tools),
        "tool_calls": calls,
        "tool_call_p50_ms": round(statistics.median(timings), 2),
        "tool_call_p99_ms": round(percentile(timings, 0.99), 2),
        "tools_list_chars": len(listed),
        "tools_list_tokens_estimate": len(listed) // 4,
        "items_in_answer": sum(len(items) for items in status.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=positive, default=1000)
    parser.add_argument("--calls", type=positive, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="huskies-bench-mcp-") as folder:
        root = make_project(Path(folder) / "project")
        asyncio.run(fill(root, args.items))
        server, url = start_server(root)
        try:
            figures = asyncio.run(measure(url, args.calls))
        finally:
            server.terminate()
            server.wait(timeout=60)
    if figures["items_in_answer"] != args.items:
        raise SystemExit(f"get_pipeline_status listed {figures['items_in_answer']} items")
    print(json.dumps({"items": args.items, **figures}, indent=2))


if __name__ == "__main__":
    main()
