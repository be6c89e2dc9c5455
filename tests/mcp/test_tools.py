"""The MCP tools through the official Python SDK's client over streamable HTTP, against a real
server: each tool's effect, and bad arguments that give a clear tool error and change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from huskies.project import Project

from ..web.support import served, stored
from .support import BODY, call, connect, make_project, refused

TOOLS = {
    "get_pipeline_status",
    "get_item",
    "create_item",
    "update_item",
    "move_item",
    "get_todos",
    "check_criterion",
    "purge_item",
    "dump_state",
    "run_tests",
    "get_test_result",
    "git_status",
    "git_diff",
    "git_log",
    "start_agent",
    "stop_agent",
    "list_agents",
    "get_agent_output",
    "wait_for_agent",
    "approve_qa",
    "reject_qa",
    "get_merge_status",
    "report_merge_failure",
    "prompt_permission",
    "set_timer",
    "list_timers",
    "cancel_timer",
}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "repo")


async def test_initialise_and_list_the_tools(project: Project):
    async with served(project) as (server, _), connect(server) as client:
        assert client.server_info is not None
        assert client.server_info.name == "huskies"
        assert client.instructions
        assert "agent" in client.instructions
        tools = (await client.list_tools()).tools
        assert {tool.name for tool in tools} == TOOLS
        for tool in tools:
            assert tool.description
            assert len(tool.description) < 300, tool.name
            assert tool.input_schema["type"] == "object"


async def test_board_tools_act_on_the_board(project: Project):
    async with served(project) as (server, _), connect(server) as client:
        board = server.services.board
        created = await call(client, "create_item", title="First", body=BODY, qa="human")
        assert created["number"] == 1
        assert created["qa"] == "human"
        await call(client, "create_item", title="A bug", kind="bug")
        assert board.get(2).kind.value == "bug"

        status = await call(client, "get_pipeline_status")
        assert status == {
            "backlog": [{"n": 1, "title": "First"}, {"n": 2, "title": "A bug", "kind": "bug"}]
        }
        assert (await call(client, "get_item", number=1))["body"] == BODY

        edited = await call(client, "update_item", number=1, title="Renamed")
        assert edited["changed"] is True
        assert board.get(1).title == "Renamed"
        again = await call(client, "update_item", number=1, title="Renamed")
        assert again["changed"] is False

        assert await call(client, "get_todos", number=1) == [
            {"index": 0, "text": "it works", "done": False},
            {"index": 1, "text": "it is tested", "done": True},
            {"index": 2, "text": "it is documented", "done": False},
        ]
        await call(client, "check_criterion", number=1, index=0)
        listed = await call(client, "check_criterion", number=1, text="documented")
        assert [todo["done"] for todo in listed] == [True, True, True]
        await call(client, "check_criterion", number=1, text="it is tested", done=False)
        assert board.get(1).body == BODY.replace("- [ ] it", "- [x] it").replace(
            "- [x] it is tested", "- [ ] it is tested"
        )

        moved = await call(client, "move_item", number=2, stage="archived")
        assert moved["stage"]["name"] == "archived"

        dumped = await call(client, "dump_state")
        assert dumped["log"]["changes"] == server.services.replica.document.change_count

        purged = await call(client, "purge_item", number=2)
        assert purged["title"] == "A bug"
        assert [item.number for item in board.listing(include_archived=True).items] == [1]


async def test_bad_arguments_are_clear_tool_errors_that_change_nothing(project: Project):
    async with served(project) as (server, _), connect(server) as client:
        await call(client, "create_item", title="First", body=BODY)
        before = stored(server)
        assert "number" in await refused(client, "get_item", number="one")
        assert "number" in await refused(client, "get_item", number=0)
        assert "no item #9" in await refused(client, "get_item", number=9)
        assert "title" in await refused(client, "create_item", title="")
        assert "title" in await refused(client, "create_item", title="two\nlines")
        assert "U+0000" in await refused(client, "create_item", title="a\u0000b")
        assert "kind" in await refused(client, "create_item", title="X", kind="epic")
        assert "depends_on" in await refused(client, "create_item", title="X", depends_on=[7])
        assert "qa" in await refused(client, "update_item", number=1, qa="sometimes")
        assert "stage" in await refused(client, "move_item", number=1, stage="limbo")
        assert "cannot move #1" in await refused(client, "move_item", number=1, stage="done")
        assert "index 5" in await refused(client, "check_criterion", number=1, index=5)
        assert "exactly one" in await refused(client, "check_criterion", number=1)
        assert "no criterion" in await refused(client, "check_criterion", number=1, text="nope")
        assert "2 criteria" in await refused(client, "check_criterion", number=1, text="it is")
        assert "at" in await refused(client, "set_timer", number=1, at="25:99")
        assert "only items in qa" in await refused(client, "approve_qa", number=1)
        assert "reason" in await refused(client, "reject_qa", number=1, reason="")
        assert "run_id" in await refused(client, "get_test_result", run_id="nope")
        assert "no agent running" in await refused(client, "stop_agent", number=1)
        assert "limit" in await refused(client, "git_log", limit=0)
        no_merge = await refused(client, "report_merge_failure", number=1, reason="stuck")
        assert "no mergemaster is working on #1's merge now" in no_merge
        assert "reason" in await refused(client, "report_merge_failure", number=1, reason="")
        assert "tool_name" in await refused(client, "prompt_permission", tool_name="", input={})
        assert "input" in await refused(client, "prompt_permission", tool_name="Bash", input=3)
        assert stored(server) == before
