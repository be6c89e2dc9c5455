"""Timers over HTTP: set, cancel and list the times at which items' agents start."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from huskies.pipeline.timers import Timer
from huskies.render import timer_cancelled_text
from huskies.services.timers import Timers
from huskies.web.errors import ERROR_RESPONSES
from huskies.web.fields import TimeOfDay
from huskies.web.services import ServicesDep

router = APIRouter(prefix="/api", tags=["timers"], responses=ERROR_RESPONSES)


class TimerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: TimeOfDay


class TimerOut(BaseModel):
    item_id: str
    number: int
    at: int = Field(description="when it fires, ms since the epoch")
    local: str = Field(description="when it fires, in the project's time zone")
    set_at: int = Field(description="when it was set, ms since the epoch")
    node: str | None = Field(description="the node that fires it (null: any node)")


class TimerList(BaseModel):
    timers: list[TimerOut] = Field(description="soonest first")


class Cancelled(BaseModel):
    cancelled: bool = Field(description="false: the item had no timer")
    message: str


def _timers(services: ServicesDep) -> Timers:
    assert services.timers is not None, "huskies serve always runs the timers service"
    timers: Timers = services.timers
    return timers


def _out(timers: Timers, timer: Timer) -> dict[str, Any]:
    return {
        "item_id": timer.item_id,
        "number": timer.number,
        "at": timer.at,
        "local": timers.local_time(timer),
        "set_at": timer.set_at,
        "node": timer.node,
    }


@router.post("/items/{number}/timer", response_model=TimerOut)
async def set_timer(services: ServicesDep, number: int, request: TimerRequest) -> dict[str, Any]:
    """Start the item's agent at the next `at` (HH:MM) in the project's time zone, once.
    Replaces the item's timer if it has one."""
    timers = _timers(services)
    return _out(timers, await timers.set(number, request.at))


@router.delete("/items/{number}/timer", response_model=Cancelled)
async def cancel_timer(services: ServicesDep, number: int) -> dict[str, Any]:
    """Cancel the item's timer."""
    cancelled = await _timers(services).cancel(number)
    return {"cancelled": cancelled, "message": timer_cancelled_text(number, cancelled)}


@router.get("/timers", response_model=TimerList)
async def list_timers(services: ServicesDep) -> dict[str, Any]:
    """Every timer, soonest first."""
    timers = _timers(services)
    return {"timers": [_out(timers, timer) for timer in timers.list()]}
