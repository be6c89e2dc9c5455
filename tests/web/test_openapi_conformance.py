"""The API's schema is the truth: Schemathesis generates requests from `/openapi.json` (valid
ones, and ones the schema forbids) against a real server, and every check holds: no server
error, every valid request accepted, every invalid one refused, every answer as documented."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from huskies.project import Project

from ..services.agent_rig import COMMIT, agent_table, make_repo
from .support import served

SCHEMATHESIS = Path(sys.executable).with_name("st")
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = 200
SEED = 20261207
TIMEOUT_S = 600


def conformance_project(root: Path) -> Project:
    """Agents for every stage, so that starting, assigning and reviewing have someone to do it."""
    project = make_repo(root)
    project.agents_toml.write_text(
        agent_table("coder", COMMIT)
        + agent_table("reviewer", COMMIT, stage="qa")
        + agent_table("mergemaster", COMMIT, stage="mergemaster")
    )
    return project


async def test_every_operation_conforms_to_the_schema(tmp_path: Path):
    project = conformance_project(tmp_path / "repo")
    async with served(project) as (server, _):
        url = f"http://127.0.0.1:{server.port}"
        run = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            "--config-file",
            str(CONFIG),
            "--no-color",
            "run",
            f"{url}/openapi.json",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            str(SEED),
            "--report-dir",
            str(tmp_path / "report"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(run.communicate(), TIMEOUT_S)
    text = output.decode(errors="replace")
    assert run.returncode == 0, text
    print(text)  # shown with -s: what was generated, per phase
    assert "Tested: 30" in text, text


async def test_the_schema_names_the_agents_configured_now(tmp_path: Path):
    project = conformance_project(tmp_path / "repo")
    async with served(project) as (_, api):
        schema = (await api.get("/openapi.json")).json()
        assert schema["components"]["schemas"]["AgentName"]["enum"] == [
            "coder",
            "reviewer",
            "mergemaster",
        ]
        assign = schema["components"]["schemas"]["AssignRequest"]["properties"]["agent"]
        assert assign == {"$ref": "#/components/schemas/AgentName"}
        project.agents_toml.write_text(agent_table("solo", COMMIT))
        (await api.post("/api/config/reload")).raise_for_status()
        schema = (await api.get("/openapi.json")).json()
        assert schema["components"]["schemas"]["AgentName"]["enum"] == ["solo"]
        title = schema["components"]["schemas"]["NewItem"]["properties"]["title"]
        assert (title["minLength"], title["maxLength"]) == (1, 200)
