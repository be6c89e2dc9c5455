"""What agent runs cost: `/api/costs` adds up every run, `/api/items/{n}/runs` lists an item's
runs. Both read the usage records in the replicated document, so runs on every node count."""

from __future__ import annotations

import dataclasses
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from pydantic import BaseModel, Field

from huskies.costs import add_up
from huskies.pipeline.usage import read_usage, usage_to_json
from huskies.web.errors import ERROR_RESPONSES
from huskies.web.services import ServicesDep

router = APIRouter(prefix="/api", tags=["costs"], responses=ERROR_RESPONSES)


class DayCost(BaseModel):
    day: str = Field(description="YYYY-MM-DD in the project's time zone (when runs ended)")
    usd: float
    runs: int


class ItemCost(BaseModel):
    number: int
    item_id: str
    title: str = Field(description="the item's title now; '(purged)' if it is gone")
    usd: float
    runs: int


class AgentCost(BaseModel):
    agent: str
    usd: float
    runs: int
    input_tokens: int
    output_tokens: int


class Costs(BaseModel):
    total_usd: float
    runs: int
    unpriced_runs: int = Field(description="runs whose runtime reported no cost (counted as 0)")
    by_day: list[DayCost] = Field(description="oldest first")
    by_item: list[ItemCost] = Field(description="costliest first")
    by_agent: list[AgentCost] = Field(description="costliest first")
    problems: list[str] = Field(description="usage records that could not be read (not counted)")


class RunOut(BaseModel):
    run: str
    item_id: str
    number: int = Field(description="the item's number when it ran")
    agent: str
    outcome: str = Field(description="completed, failed, crashed, stopped, timed_out, …")
    cost_usd: float | None = Field(description="null: the runtime does not report cost")
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    turns: int | None
    started_at: int = Field(description="ms since the epoch")
    ended_at: int = Field(description="ms since the epoch")


class ItemRuns(BaseModel):
    number: int
    item_id: str
    runs: list[RunOut] = Field(description="newest first")
    problems: list[str] = Field(description="usage records that could not be read")


@router.get("/costs", response_model=Costs)
async def costs(services: ServicesDep) -> dict[str, Any]:
    """Spend so far: in all, per day, per item and per agent."""
    records, problems = read_usage(services.replica.document)
    zone = ZoneInfo(services.settings.config.timezone)
    spend = add_up(records, services.board.view(), zone)
    return {**dataclasses.asdict(spend), "problems": problems}


@router.get("/items/{number}/runs", response_model=ItemRuns)
async def item_runs(services: ServicesDep, number: int) -> dict[str, Any]:
    """The item's finished agent runs, on every node, newest first."""
    item = services.board.get(number)
    records, problems = read_usage(services.replica.document)
    runs = sorted(
        (record for record in records if record.item_id == item.id),
        key=lambda record: (record.started_at, record.ended_at),
        reverse=True,
    )
    return {
        "number": item.number,
        "item_id": item.id,
        "runs": [usage_to_json(record) for record in runs],
        "problems": problems,
    }
