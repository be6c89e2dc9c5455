"""The timer endpoints over real HTTP against a real server: set, replace, list, cancel, and
every refusal as a clear 4xx that changes nothing."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from huskies.pipeline.timers import next_occurrence
from huskies.project import Project

from .support import error_of, make_project, served, stored


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = make_project(tmp_path / "repo")
    text = project.project_toml.read_text().replace('timezone = "UTC"', 'timezone = "Asia/Tokyo"')
    project.project_toml.write_text(text)
    return project


async def test_a_timer_is_set_replaced_listed_and_cancelled(project: Project):
    async with served(project) as (server, api):
        created = (await api.post("/api/items", json={"title": "Overnight"})).json()
        answer = await api.post("/api/items/1/timer", json={"at": "09:30"})
        assert answer.status_code == 200, answer.text
        timer = answer.json()
        tokyo = ZoneInfo("Asia/Tokyo")
        assert timer["at"] == next_occurrence("09:30", tokyo, timer["set_at"])
        assert timer["local"].endswith(" 09:30 Asia/Tokyo")
        assert timer["item_id"] == created["id"]
        assert timer["number"] == 1
        assert timer["node"] == server.services.replica.node_id
        assert (await api.get("/api/timers")).json() == {"timers": [timer]}

        replaced = (await api.post("/api/items/1/timer", json={"at": "23:05"})).json()
        assert replaced["local"].endswith(" 23:05 Asia/Tokyo")
        assert (await api.get("/api/timers")).json() == {"timers": [replaced]}

        cancelled = await api.delete("/api/items/1/timer")
        assert cancelled.json() == {"cancelled": True, "message": "Cancelled the timer of #1."}
        assert (await api.get("/api/timers")).json() == {"timers": []}
        again = await api.delete("/api/items/1/timer")
        assert again.json() == {"cancelled": False, "message": "#1 has no timer."}


async def test_bad_timer_requests_are_refused_and_change_nothing(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Timed"})
        await api.post("/api/items", json={"title": "Dropped"})
        await api.post("/api/items/2/move", json={"stage": "archived"})
        await api.post("/api/items/1/timer", json={"at": "07:00"})
        before = stored(server)
        listed = (await api.get("/api/timers")).json()

        for bad in ("25:00", "9:30", "09:30 ", "noon"):
            error = error_of(await api.post("/api/items/1/timer", json={"at": bad}), 400)
            assert error["field"] == "body.at"
            assert error["message"].startswith(f"'{bad}' is not a time of day")
        error = error_of(await api.post("/api/items/1/timer", json={"at": 930}), 400)
        assert error["field"] == "body.at"
        assert error["message"] == "body.at: Input should be a valid string, got 930"
        error = error_of(await api.post("/api/items/1/timer", json={"when": "09:30"}), 400)
        assert error["field"] == "body.at"
        error = error_of(await api.post("/api/items/1/timer"), 400)
        assert error["field"] == "body"
        error = error_of(await api.post("/api/items/one/timer", json={"at": "09:30"}), 400)
        assert error["field"] == "path.number"

        for method in ("POST", "DELETE"):
            response = await api.request(method, "/api/items/9/timer", json={"at": "09:30"})
            error = error_of(response, 404)
            assert error["message"] == "there is no item #9; `huskies story list` shows them all"
        error = error_of(await api.post("/api/items/2/timer", json={"at": "09:30"}), 409)
        assert error["message"].startswith("#2 is archived; a timer starts an agent")

        assert stored(server) == before
        assert (await api.get("/api/timers")).json() == listed
