"""`/api/items/{n}/gates`: what the quality gates found on an item, newest run first.

The reports are read from the replicated document, so an item's runs on every node show, not
only this node's; each names the log file (on the node that ran it) with the full output.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from huskies.pipeline.gates import gate_report_to_json, read_gate_reports
from huskies.web.errors import ERROR_RESPONSES
from huskies.web.services import ServicesDep

router = APIRouter(prefix="/api", tags=["gates"], responses=ERROR_RESPONSES)


class GateResultOut(BaseModel):
    component: str
    step: str = Field(description="setup, gate or teardown")
    name: str = Field(description="the gate's name, or 'setup 1', 'teardown 2', …")
    command: str
    exit_code: int | None = Field(description="null: it timed out, or could not run")
    timed_out: bool
    duration_ms: int
    output_tail: str = Field(description="the end of its output (stdout and stderr)")


class GateReportOut(BaseModel):
    run: str
    item_id: str
    number: int = Field(description="the item's number when the gates ran")
    where: str = Field(description="worktree (after a coder) or merge (before a merge)")
    started_at: int = Field(description="ms since the epoch")
    ended_at: int = Field(description="ms since the epoch")
    passed: bool = Field(description="every setup command and gate passed (teardowns aside)")
    results: list[GateResultOut]
    log: str = Field(description="the run's full output, on the disk of the node that ran it")


class GateReports(BaseModel):
    number: int
    item_id: str
    reports: list[GateReportOut] = Field(description="newest first")
    problems: list[str] = Field(description="reports of this item that could not be read")


@router.get("/items/{number}/gates", response_model=GateReports)
async def gates(services: ServicesDep, number: int) -> dict[str, Any]:
    """The item's quality-gate reports, newest first."""
    item = services.board.get(number)
    reports, problems = read_gate_reports(services.replica.document, item.id)
    return {
        "number": item.number,
        "item_id": item.id,
        "reports": [gate_report_to_json(report) for report in reports],
        "problems": problems,
    }
