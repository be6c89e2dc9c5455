"""A mergemaster agent that gives up: it reports the merge as failed through the huskies MCP
tool, with its run's own token, the way an agent that cannot resolve a conflict would."""

from __future__ import annotations

import asyncio
import os

import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

REASON = "both sides rewrite shared.txt; the author must choose"


async def main() -> None:
    headers = {"Authorization": f"Bearer {os.environ['HUSKIES_AGENT_TOKEN']}"}
    url = f"{os.environ['HUSKIES_SERVER']}/mcp"
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        number = int(os.environ["HUSKIES_NUMBER"])
        result = await client.call_tool(
            "report_merge_failure", {"number": number, "reason": REASON}
        )
        assert not result.is_error, result.content
        print("reported")


if __name__ == "__main__":
    asyncio.run(main())
