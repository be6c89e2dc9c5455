"""`/api/items/{n}/gates` over real HTTP: the reports real gate runs stored, newest first, and
the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from huskies.crdt import ObjKind
from huskies.pipeline.gates import gate_report_to_json
from huskies.project import Project
from huskies.services.gates import Gates
from huskies.store.replica import wall_clock_ms
from huskies.web.api_gates import GateReports

from .support import error_of, make_project, served, stored

COMPONENT = """
[[component]]
name = "app"
setup = ["echo ready"]

[component.gates.test]
command = "test -f fixed || { echo 'test_login FAILED'; exit 1; }"
timeout_secs = 30
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = make_project(tmp_path / "repo")
    with project.project_toml.open("a") as toml:
        toml.write(COMPONENT)
    return project


async def test_an_items_reports_come_newest_first_with_their_logs(project: Project, tmp_path: Path):
    tree = tmp_path / "worktree"
    tree.mkdir()
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Gated"})
        await api.post("/api/items", json={"title": "Not gated"})
        services = server.services
        gates = Gates(services.settings, services.replica, tmp_path / "logs", wall_clock_ms)
        item = services.board.get(1)
        failed = await gates.check(item, tree, "worktree")
        (tree / "fixed").write_text("")
        passed = await gates.check(item, tree, "merge")

        answer = await api.get("/api/items/1/gates")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        GateReports.model_validate(body)
        assert body == {
            "number": 1,
            "item_id": item.id,
            "reports": [gate_report_to_json(passed), gate_report_to_json(failed)],
            "problems": [],
        }
        assert [report["passed"] for report in body["reports"]] == [True, False]
        failing = body["reports"][1]["results"][1]
        assert (failing["name"], failing["exit_code"]) == ("test", 1)
        assert failing["output_tail"] == "test_login FAILED\n"
        assert "test_login FAILED" in Path(body["reports"][1]["log"]).read_text()

        other = (await api.get("/api/items/2/gates")).json()
        assert other == {
            "number": 2,
            "item_id": services.board.get(2).id,
            "reports": [],
            "problems": [],
        }


async def test_a_report_that_cannot_be_read_is_named(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Gated"})
        replica = server.services.replica
        tx = replica.transaction()
        tx.make((), "gate_reports", ObjKind.LIST)
        tx.insert(("gate_reports",), 0, {"item_id": server.services.board.get(1).id})
        await replica.change(tx)
        body = (await api.get("/api/items/1/gates")).json()
        assert body["reports"] == []
        assert body["problems"] == ["gate report 0: 'run' is missing"]


async def test_unknown_items_and_bad_numbers_are_refused(project: Project):
    async with served(project) as (server, api):
        before = stored(server)
        error = error_of(await api.get("/api/items/9/gates"), 404)
        assert error == {
            "message": "there is no item #9; `huskies story list` shows them all",
            "field": None,
        }
        error = error_of(await api.get("/api/items/nine/gates"), 400)
        assert error["field"] == "path.number"
        error_of(await api.post("/api/items/1/gates"), 405)
        assert stored(server) == before
        paths = (await api.get("/openapi.json")).json()["paths"]
        assert set(paths["/api/items/{number}/gates"]) == {"get"}
