"""`/api/costs` and `/api/items/{n}/runs` over real HTTP, from usage records in the document."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from huskies.pipeline.records import append_record
from huskies.pipeline.usage import USAGE, UsageRecord, record_usage
from huskies.project import Project
from huskies.server import Running
from huskies.web.api_costs import Costs, ItemRuns

from .support import error_of, make_project, served


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = make_project(tmp_path / "repo")
    toml = project.project_toml.read_text().replace('timezone = "UTC"', 'timezone = "Asia/Tokyo"')
    project.project_toml.write_text(toml)
    return project


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def run(item_id: str, number: int, agent: str, cost: float | None, ended: str) -> UsageRecord:
    return usage(item_id, number, agent, cost, utc(ended))


def usage(item_id: str, number: int, agent: str, cost: float | None, ended_at: int) -> UsageRecord:
    """A completed run's usage record: 1,000 tokens in and 100 out over 4 turns."""
    return UsageRecord(
        run=f"{agent}-{ended_at}",
        item_id=item_id,
        number=number,
        agent=agent,
        outcome="completed",
        cost_usd=cost,
        input_tokens=1000,
        output_tokens=100,
        cache_read_input_tokens=10,
        cache_creation_input_tokens=1,
        turns=4,
        started_at=ended_at - 600_000,
        ended_at=ended_at,
    )


async def spend(server: Running) -> tuple[str, str]:
    """Three items (the third purged) and what their runs cost, plus one unreadable record."""
    board = server.services.board
    login = await board.create("Add login")
    crash = await board.create("Crash on save")
    gone = await board.create("Gone")
    replica = server.services.replica
    tx = replica.transaction()
    for record in [
        run(login.id, 1, "coder", 1.25, "2025-01-01T20:00:00"),  # Tokyo: 2 January
        run(login.id, 1, "reviewer", 0.5, "2025-01-01T10:00:00"),  # Tokyo: 1 January
        run(crash.id, 2, "coder", 0.125, "2025-01-02T01:00:00"),
        run(crash.id, 2, "scripted", None, "2025-01-02T02:00:00"),
        run(gone.id, 3, "coder", 2.0, "2025-01-03T00:00:00"),
    ]:
        record_usage(tx, record)
    append_record(tx, USAGE, {"run": 5})
    await replica.change(tx)
    await board.purge(3)
    return login.id, crash.id


async def test_costs_add_up_by_day_item_and_agent(project: Project):
    async with served(project) as (server, api):
        empty = (await api.get("/api/costs")).json()
        assert (empty["total_usd"], empty["by_day"], empty["by_item"]) == (0.0, [], [])
        login, crash = await spend(server)
        answered = await api.get("/api/costs")
        assert answered.status_code == 200
        costs = answered.json()
        Costs.model_validate(costs)
        assert (costs["total_usd"], costs["runs"], costs["unpriced_runs"]) == (3.875, 5, 1)
        assert costs["by_day"] == [
            {"day": "2025-01-01", "usd": 0.5, "runs": 1},
            {"day": "2025-01-02", "usd": 1.375, "runs": 3},
            {"day": "2025-01-03", "usd": 2.0, "runs": 1},
        ]
        assert [(i["number"], i["title"], i["usd"], i["runs"]) for i in costs["by_item"]] == [
            (3, "(purged)", 2.0, 1),
            (1, "Add login", 1.75, 2),
            (2, "Crash on save", 0.125, 2),
        ]
        assert [i["item_id"] for i in costs["by_item"][1:]] == [login, crash]
        assert costs["by_agent"] == [
            {
                "agent": "coder",
                "usd": 3.375,
                "runs": 3,
                "input_tokens": 3000,
                "output_tokens": 300,
            },
            {
                "agent": "reviewer",
                "usd": 0.5,
                "runs": 1,
                "input_tokens": 1000,
                "output_tokens": 100,
            },
            {
                "agent": "scripted",
                "usd": 0.0,
                "runs": 1,
                "input_tokens": 1000,
                "output_tokens": 100,
            },
        ]
        [problem] = costs["problems"]
        assert problem.startswith("usage record 5: ")


async def test_an_items_runs_come_newest_first(project: Project):
    async with served(project) as (server, api):
        login, _ = await spend(server)
        answered = await api.get("/api/items/1/runs")
        assert answered.status_code == 200
        body = answered.json()
        ItemRuns.model_validate(body)
        assert (body["number"], body["item_id"]) == (1, login)
        assert [(r["agent"], r["cost_usd"]) for r in body["runs"]] == [
            ("coder", 1.25),
            ("reviewer", 0.5),
        ]
        first = body["runs"][0]
        assert {
            key: first[key] for key in ("outcome", "input_tokens", "output_tokens", "turns")
        } == {
            "outcome": "completed",
            "input_tokens": 1000,
            "output_tokens": 100,
            "turns": 4,
        }
        assert first["ended_at"] - first["started_at"] == 600_000
        crash_runs = (await api.get("/api/items/2/runs")).json()["runs"]
        assert [(r["agent"], r["cost_usd"]) for r in crash_runs] == [
            ("scripted", None),
            ("coder", 0.125),
        ]


async def test_runs_of_an_unknown_item_are_a_404(project: Project):
    async with served(project) as (server, api):
        await spend(server)
        error = error_of(await api.get("/api/items/3/runs"), 404)  # purged
        assert error["message"].startswith("there is no item #3")
