"""`GET /api/items/{n}/history` over real HTTP: an item's changes from the log, summarised."""

from __future__ import annotations

from pathlib import Path

import pytest

from huskies.pipeline import Claim
from huskies.project import Project

from .support import error_of, make_project, served


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "repo")


async def test_an_items_history_says_who_changed_what_oldest_first(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Add login", "body": "Make it so."})
        await api.post("/api/items", json={"title": "Other"})
        await api.patch("/api/items/1", json={"title": "Add a login", "body": "Make it so!\n"})
        await api.patch("/api/items/2", json={"title": "Another"})
        await api.patch("/api/items/1", json={"qa": "human"})
        await api.post("/api/items/1/move", json={"stage": "archived"})

        answered = await api.get("/api/items/1/history")
        assert answered.status_code == 200
        history = answered.json()
        item = (await api.get("/api/items/1")).json()
        assert (history["number"], history["item_id"]) == (1, item["id"])
        changes = history["changes"]
        assert [change["summary"] for change in changes] == [
            "created: story “Add login”",
            "title → “Add a login”, body edited (+2 -1)",
            "qa → human",
            "stage → archived (abandoned)",
        ]
        me = server.services.replica.node_id
        assert {change["author"] for change in changes} == {me}
        times = [change["at"] for change in changes]
        assert times == sorted(times)
        assert abs(times[0] - item["created_at"]) < 1000  # the writer's clock, a moment later
        assert changes[0]["fields"]["title"] == "Add login"
        assert changes[0]["fields"]["body"] == {"inserted": len("Make it so."), "deleted": 0}
        assert changes[1]["fields"] == {
            "title": "Add a login",
            "body": {"inserted": 2, "deleted": 1},
        }
        assert changes[2]["fields"] == {"qa": "human"}  # updated_at is bookkeeping
        assert changes[3]["fields"]["stage"]["reason"] == "abandoned"
        assert len({change["change"] for change in changes}) == 4


async def test_a_claim_renewed_by_its_holder_is_not_news(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Long run"})
        board = server.services.board
        item = board.get(1)
        node = server.services.replica.node_id
        for expires_at in (1000, 2000, 3000):
            await board.set_claim(item.id, Claim(node, expires_at))
        await board.set_claim(item.id, None)
        summaries = [
            c["summary"] for c in (await api.get("/api/items/1/history")).json()["changes"]
        ]
        assert summaries == [
            "created: story “Long run”",
            f"claimed by {node[:16]}…",
            "claim released",
        ]


async def test_history_of_an_unknown_item_is_a_404(project: Project):
    async with served(project) as (_, api):
        error = error_of(await api.get("/api/items/4/history"), 404)
        assert error["message"] == "there is no item #4; `huskies story list` shows them all"
        bad = error_of(await api.get("/api/items/four/history"), 400)
        assert bad["field"] == "path.number"
