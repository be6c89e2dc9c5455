"""Configuration, state, health and the OpenAPI schema over real HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from huskies.project import Project

from .support import error_of, make_project, served


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "repo")


async def test_config_shows_both_files_and_reloads_them(project: Project):
    async with served(project) as (server, api):
        config = (await api.get("/api/config")).json()
        assert config["project"]["timezone"] == "UTC"
        assert config["project"]["sync"]["ping_interval_secs"] == 30
        assert [agent["name"] for agent in config["agents"]] == ["coder"]

        toml = project.project_toml
        toml.write_text(toml.read_text().replace('timezone = "UTC"', 'timezone = "Europe/Oslo"'))
        reloaded = await api.post("/api/config/reload")
        assert reloaded.status_code == 200
        assert reloaded.json()["project"]["timezone"] == "Europe/Oslo"
        assert server.services.settings.config.timezone == "Europe/Oslo"
        assert (await api.get("/api/config")).json() == reloaded.json()


async def test_a_broken_config_is_refused_and_the_old_one_stays(project: Project):
    async with served(project) as (server, api):
        before = (await api.get("/api/config")).json()
        agents = project.agents_toml
        agents.write_text(agents.read_text().replace('runtime = "claude-code"', "runtime = 5"))
        error = error_of(await api.post("/api/config/reload"), 409)
        assert "agents.toml" in error["message"]
        assert "runtime" in error["message"]
        assert "unchanged" in error["message"]
        assert (await api.get("/api/config")).json() == before
        assert server.services.settings.agent("coder") is not None


async def test_state_is_the_document_and_the_log(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Seen in the state"})
        state = (await api.get("/api/state")).json()
        assert set(state) == {"node", "log", "document"}
        replica = server.services.replica
        assert state["node"] == replica.node_id
        assert state["log"]["changes"] == replica.document.change_count
        assert [item["title"] for item in state["document"]["items"]] == ["Seen in the state"]


async def test_health_at_both_addresses(project: Project):
    async with served(project) as (server, api):
        for path in ("/api/health", "/health"):
            health = (await api.get(path)).json()
            assert health["node"] == server.services.replica.node_id
            assert health["role"] == "server"
            assert health["peers"] == []


async def test_the_openapi_schema_lists_the_routes_and_the_error_shape(project: Project):
    async with served(project) as (_, api):
        schema = (await api.get("/openapi.json")).json()
        paths = schema["paths"]
        assert set(paths) == {
            "/api/items",
            "/api/items/{number}",
            "/api/items/{number}/move",
            "/api/items/{number}/unblock",
            "/api/items/{number}/start",
            "/api/items/{number}/stop",
            "/api/items/{number}/assign",
            "/api/items/{number}/output",
            "/api/agents",
            "/api/items/{number}/approve",
            "/api/items/{number}/reject",
            "/api/items/{number}/gates",
            "/api/items/{number}/timer",
            "/api/timers",
            "/api/config",
            "/api/config/reload",
            "/api/state",
            "/api/health",
            "/api/permissions",
            "/api/permissions/{request_id}",
            "/api/items/{number}/history",
            "/api/items/{number}/runs",
            "/api/costs",
            "/api/nodes",
            "/api/commands",
            "/api/markdown",
        }
        assert set(paths["/api/items"]) == {"get", "post"}
        assert set(paths["/api/items/{number}"]) == {"get", "patch", "delete"}
        for operations in paths.values():
            for operation in operations.values():
                assert "422" not in operation["responses"]
        missing = paths["/api/items/{number}"]["get"]["responses"]["404"]
        assert missing["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
        schemas = schema["components"]["schemas"]
        assert {"Item", "ItemList", "NewItem", "ItemEdit", "ErrorBody"} <= set(schemas)
        assert "ValidationError" not in schemas
        assert set(schemas["Item"]["required"]) >= {"id", "number", "stage", "body"}
