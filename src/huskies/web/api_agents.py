"""`/api/agents` and the agent actions on an item: start, stop, assign, output."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from huskies.crdt import Json
from huskies.pipeline import item_to_json
from huskies.render import started_text
from huskies.services.agents import Agents
from huskies.web.errors import ERROR_RESPONSES
from huskies.web.fields import AgentName, AgentNameOrNull
from huskies.web.models import Item
from huskies.web.services import ServicesDep

router = APIRouter(prefix="/api", tags=["agents"], responses=ERROR_RESPONSES)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRequest(_Request):
    agent: AgentNameOrNull = Field(
        None, description="an agent from agents.toml; null: the item's preferred or first free"
    )


class AssignRequest(_Request):
    agent: AgentName


class AgentInfo(BaseModel):
    name: str
    stage: str
    runtime: str
    model: str
    running: dict[str, Any] | None


class AgentList(BaseModel):
    agents: list[AgentInfo]
    runs: list[dict[str, Any]] = Field(description="running runs, then ended ones, newest first")


class Started(BaseModel):
    run: dict[str, Any] | None = Field(description="null: waiting for a free agent")
    message: str


class Stopped(BaseModel):
    outcome: str
    exit_code: int | None
    message: str


class Output(BaseModel):
    run: dict[str, Any]
    log: str = Field(description="the run's full output on the server's disk")
    events: list[dict[str, Any]]


def _agents(services: ServicesDep) -> Agents:
    assert services.agents is not None, "huskies serve always runs the agents service"
    agents: Agents = services.agents
    return agents


@router.get("/agents", response_model=AgentList)
async def list_agents(services: ServicesDep) -> dict[str, Any]:
    """The configured agents (with what each is running) and this node's recent runs."""
    agents = _agents(services)
    return {"agents": agents.agents(), "runs": agents.runs()}


@router.post("/items/{number}/start", response_model=Started)
async def start(services: ServicesDep, number: int, request: StartRequest | None = None) -> Any:
    """Start an agent on the item now (a backlog item moves to coding first)."""
    run = await _agents(services).start(number, request.agent if request else None)
    if run is None:
        return {"run": None, "message": started_text(number, None, None)}
    ended = run.end.message if run.end is not None else None
    return {"run": run.to_json(), "message": started_text(number, run.agent, ended)}


@router.post("/items/{number}/stop", response_model=Stopped)
async def stop(services: ServicesDep, number: int) -> dict[str, Any]:
    """Stop the item's agent (its whole process group); the item is held on this node until
    it is started again."""
    end = await _agents(services).stop(number)
    return {"outcome": end.outcome.value, "exit_code": end.exit_code, "message": end.message}


@router.post("/items/{number}/assign", response_model=Item)
async def assign(services: ServicesDep, number: int, request: AssignRequest) -> dict[str, Json]:
    """Make `agent` the item's preferred agent, from its next run."""
    return item_to_json(await _agents(services).assign(number, request.agent))


@router.get("/items/{number}/output", response_model=Output)
async def output(
    services: ServicesDep,
    number: int,
    after: Annotated[int, Query(ge=0, description="only events after this seq")] = 0,
) -> dict[str, Any]:
    """The events of the item's current run, or its last one on this node."""
    return _agents(services).output(number, after)
