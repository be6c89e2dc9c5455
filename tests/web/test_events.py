"""`/api/events` over a real websocket: item events after API changes and changes from peers,
the kinds filter, and numbers settled by the server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from huskies.pipeline import ItemError, parse_item_key, project_item, renumbering
from huskies.project import Project
from huskies.services.stories import Board
from huskies.store import Replica

from .support import DEADLINE_S, SERVER_SUBSCRIBERS, make_project, served, until


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "repo")


async def next_event(stream: ClientConnection) -> dict[str, Any]:
    frame = await asyncio.wait_for(stream.recv(), DEADLINE_S)
    assert isinstance(frame, str)
    event: dict[str, Any] = json.loads(frame)
    assert set(event) == {"seq", "kind", "data"}
    return event


async def subscribers(server: Any, count: int) -> None:
    """Until `count` streams are subscribed: an event published before is not theirs."""
    total = count + SERVER_SUBSCRIBERS
    await until(lambda: server.services.hub.subscribers == total, f"{count} subscribers")


async def test_an_api_change_arrives_as_an_item_event(project: Project):
    async with served(project) as (server, api):
        stream = await connect(f"ws://127.0.0.1:{server.port}/api/events")
        await subscribers(server, 1)
        created = (await api.post("/api/items", json={"title": "Live"})).json()
        event = await next_event(stream)
        assert event["kind"] == "item"
        assert event["data"] == {"item": created}
        item = project_item(created["id"], event["data"]["item"])
        assert not isinstance(item, ItemError)
        assert item == server.services.board.get(1)

        await api.patch("/api/items/1", json={"title": "Live, renamed"})
        renamed = await next_event(stream)
        assert renamed["data"]["item"]["title"] == "Live, renamed"
        assert renamed["seq"] > event["seq"]

        await api.delete("/api/items/1")
        removed = await next_event(stream)
        assert removed["kind"] == "item_removed"
        assert removed["data"] == {"id": created["id"], "number": 1}
        await stream.close()


async def test_the_kinds_filter_keeps_only_those_kinds(project: Project):
    async with served(project) as (server, api):
        url = f"ws://127.0.0.1:{server.port}/api/events"
        async with (
            connect(f"{url}?kinds=item_removed,agent_output") as chosen,
            connect(url) as everything,
        ):
            await subscribers(server, 2)
            await api.post("/api/items", json={"title": "Short-lived"})
            await api.delete("/api/items/1")
            server.services.hub.publish("agent_output", {"text": "hello"})
            assert [(await next_event(chosen))["kind"] for _ in range(2)] == [
                "item_removed",
                "agent_output",
            ]
            assert [(await next_event(everything))["kind"] for _ in range(3)] == [
                "item",
                "item_removed",
                "agent_output",
            ]


async def test_an_empty_kinds_filter_is_refused(project: Project):
    async with served(project) as (server, _):
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"ws://127.0.0.1:{server.port}/api/events?kinds=,")
        response = refused.value.response
        assert response.status_code == 400
        assert json.loads(response.body)["error"]["field"] == "query.kinds"
        assert server.services.hub.subscribers == SERVER_SUBSCRIBERS


async def test_a_closed_stream_unsubscribes(project: Project):
    async with served(project) as (server, _):
        async with connect(f"ws://127.0.0.1:{server.port}/api/events"):
            await subscribers(server, 1)
        await subscribers(server, 0)


async def test_numbers_minted_on_another_node_are_settled_and_announced(
    project: Project, tmp_path: Path
):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Made here first"})
        async with await Replica.open(tmp_path / "elsewhere.db") as elsewhere:
            await Board(elsewhere, lambda: 2**50).create("Made elsewhere, later")
            changes = elsewhere.document.changes_since(server.services.replica.document.clock())
        async with connect(f"ws://127.0.0.1:{server.port}/api/events?kinds=item") as stream:
            await subscribers(server, 1)
            await server.services.replica.ingest_many(changes)
            arrived = await next_event(stream)
            assert arrived["data"]["item"]["title"] == "Made elsewhere, later"
            assert arrived["data"]["item"]["number"] == 2  # resolved: #1 was taken first
            board = server.services.board
            await until(lambda: not renumbering(board.view()), "the number to be stored")
        titles = [(i["number"], i["title"]) for i in (await api.get("/api/items")).json()["items"]]
        assert titles == [(1, "Made here first"), (2, "Made elsewhere, later")]


async def test_an_item_that_becomes_unreadable_is_announced(project: Project):
    async with served(project) as (server, api):
        created = (await api.post("/api/items", json={"title": "Soon unreadable"})).json()
        async with connect(f"ws://127.0.0.1:{server.port}/api/events") as stream:
            await subscribers(server, 1)
            replica = server.services.replica
            tx = replica.transaction()
            tx.set(("items", parse_item_key(created["id"])), "kind", "epic")
            await replica.change(tx)
            event = await next_event(stream)
        assert event["kind"] == "item_error"
        assert event["data"]["error"]["item_id"] == created["id"]
        assert event["data"]["error"]["field"] == "kind"
