"""How the CLI reads an item's gate reports, and how it shows one.

Through the running server's API when there is one (it holds the database), else from the
database directly; both ways yield the same `GateReport`s, so `huskies gates N` prints the same
either way.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from huskies.client import ApiError, connect
from huskies.config import ProjectConfig
from huskies.pipeline.gates import (
    GateReport,
    gate_report_from_json,
    outcome_text,
    read_gate_reports,
    step_label,
)
from huskies.pipeline.jsonvalues import WrongType
from huskies.project import Project
from huskies.render import when
from huskies.services.stories import Board
from huskies.store import Replica, Synchronous
from huskies.store.replica import wall_clock_ms

TAIL_LINES = 20
"""Lines of a failing step's output shown; its report keeps more, the log has it all."""


async def item_gate_reports(
    project: Project, config: ProjectConfig, number: int
) -> tuple[list[GateReport], list[str]]:
    """Item `number`'s reports, newest first, and the problems of those that cannot be read.
    Raises StoryError (no database) or ApiError (through the server) for an unknown item."""
    async with connect(project) as client:
        if client is not None:
            answer = await client.call("GET", f"/api/items/{number}/gates")
            try:
                reports = [gate_report_from_json(raw) for raw in answer["reports"]]
            except (WrongType, KeyError, TypeError) as exc:
                raise ApiError(
                    f"the server sent a gate report this huskies cannot read: {exc}"
                ) from None
            return reports, list(answer["problems"])
    replica = await Replica.open(
        project.db_path,
        synchronous=Synchronous(config.store.synchronous),
        snapshot_every=config.store.snapshot_every,
    )
    async with replica:
        item = Board(replica, wall_clock_ms).get(number)
        return read_gate_reports(replica.document, item.id)


def report_text(report: GateReport, zone: ZoneInfo) -> str:
    """A report as `huskies gates` prints it: one line per step, failing output indented."""
    verdict = "passed" if report.passed else "failed"
    took = _seconds(report.ended_at - report.started_at)
    lines = [
        f"#{report.number} · gates in the {report.where} · run {report.run} · {verdict} · "
        f"{when(report.started_at, zone)} ({took})"
    ]
    if not report.results:
        lines.append("  no components are configured, so there was nothing to check")
    width = max((len(step_label(result)) for result in report.results), default=0)
    for result in report.results:
        mark = "✓" if result.passed else "✗"
        note = " (a teardown: it fails nothing)" if result.step == "teardown" else ""
        lines.append(
            f"  {mark} {step_label(result):<{width}}  {outcome_text(result):<16} "
            f"{_seconds(result.duration_ms)}{note}"
        )
        if not result.passed:
            output = result.output_tail.rstrip("\n").splitlines()
            if len(output) > TAIL_LINES:
                lines.append("      …")
            lines += [f"      {line}" for line in output[-TAIL_LINES:]]
    lines.append(f"full log: {report.log}")
    return "\n".join(lines)


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.1f} s"
