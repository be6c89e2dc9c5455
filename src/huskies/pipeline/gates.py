"""What the quality gates found: one report per gate run, kept in the replicated document under
"gate_reports".

huskies runs the gates itself (in an item's worktree when its coder finishes, and in the merge
workspace before a merge) and never takes an agent's word for them. A report is written once,
when its run ends, and never edited, so reports are plain JSON values in a list, as usage
records are. Each step keeps only the end of its output (`TAIL_CHARS`), so the document does
not grow with chatty test suites; the whole output is in the run's log file, whose path the
report names. Reading tolerates bad reports: each becomes a problem, the rest still read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from huskies.crdt import Document, Json, Transaction
from huskies.pipeline.jsonvalues import (
    WrongType,
    as_int,
    as_object,
    as_optional_int,
    as_str,
    describe,
    member,
)
from huskies.pipeline.records import append_record, stored_records

GATE_REPORTS = "gate_reports"

TAIL_CHARS = 4000
"""The most output one step keeps in its report."""

STEPS = ("setup", "gate", "teardown")
WHERE = ("worktree", "merge")


@dataclass(frozen=True, slots=True)
class GateResult:
    """One command of a gate run: a component's setup or teardown command, or one of its gates.

    `exit_code` is None when the command did not end on its own: it timed out (and was
    killed), or it could not run at all (its directory is missing, say; `output_tail` says
    why). A negative code means it was killed by that signal.
    """

    component: str
    step: str
    name: str
    command: str
    exit_code: int | None
    timed_out: bool
    duration_ms: int
    output_tail: str

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True, slots=True)
class GateReport:
    """One run of the gates on item `item_id` (#`number` then), in the item's `worktree` or
    in the `merge` workspace. `log` is the path of the run's full output on its node."""

    run: str
    item_id: str
    number: int
    where: str
    started_at: int
    ended_at: int
    passed: bool
    results: tuple[GateResult, ...]
    log: str


def output_tail(output: str, limit: int = TAIL_CHARS) -> str:
    """The end of `output`, at most `limit` characters; a cut tail starts with "…"."""
    if len(output) <= limit:
        return output
    return "…" + output[len(output) - limit + 1 :] if limit > 0 else ""


def outcome_text(result: GateResult) -> str:
    """How a step ended, in a few words: "passed", "exit code 1", "timed out", …"""
    if result.timed_out:
        return "timed out"
    if result.exit_code is None:
        return "could not run"
    if result.exit_code < 0:
        return f"killed by signal {-result.exit_code}"
    return "passed" if result.exit_code == 0 else f"exit code {result.exit_code}"


def step_label(result: GateResult) -> str:
    return f"{result.component}/{result.name}"


def failures(results: Iterable[GateResult]) -> list[GateResult]:
    """The steps that fail a report: a failing setup or gate. A failing teardown is recorded
    but fails nothing (the work was checked; only the cleaning up went wrong)."""
    return [result for result in results if result.step != "teardown" and not result.passed]


def failure_summary(report: GateReport, limit: int = TAIL_CHARS) -> str:
    """Which steps failed and the end of their output, in at most `limit` characters: the
    reason a GatesFailed event records, and what a coder is told to fix next.

    The list of failed steps comes first and is kept whole when it fits; the tails share the
    rest, each cut from its start, since a failure is usually explained at the end.
    """
    if report.passed:
        return _cut_end(f"The quality gates passed ({report.where}, run {report.run}).", limit)
    failed = failures(report.results)
    head = "\n".join(
        [
            f"The quality gates failed ({report.where}, run {report.run}; "
            f"full output in {report.log}):",
            *(f"- {step_label(r)}: {outcome_text(r)}" for r in failed),
        ]
    )
    if len(head) >= limit:
        return _cut_end(head, limit)
    parts, budget = [head], limit - len(head)
    for index, result in enumerate(failed):
        share = budget // (len(failed) - index)
        heading = f"\n\n--- {step_label(result)} ({outcome_text(result)}) ---\n"
        room = share - len(heading)
        if room <= 1:
            break  # no room left for any more output worth reading
        tail = output_tail(result.output_tail.rstrip("\n"), room)
        parts.append(heading + tail)
        budget -= len(heading) + len(tail)
    return "".join(parts)


def _cut_end(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…" if limit > 0 else ""


def gate_result_to_json(result: GateResult) -> dict[str, Json]:
    return {
        "component": result.component,
        "step": result.step,
        "name": result.name,
        "command": result.command,
        "exit_code": result.exit_code,
        "timed_out": result.timed_out,
        "duration_ms": result.duration_ms,
        "output_tail": result.output_tail,
    }


def gate_report_to_json(report: GateReport) -> dict[str, Json]:
    return {
        "run": report.run,
        "item_id": report.item_id,
        "number": report.number,
        "where": report.where,
        "started_at": report.started_at,
        "ended_at": report.ended_at,
        "passed": report.passed,
        "results": [gate_result_to_json(result) for result in report.results],
        "log": report.log,
    }


def record_gate_report(tx: Transaction, report: GateReport) -> None:
    """Append `report` (the list is made every time; concurrent makes share one list)."""
    append_record(tx, GATE_REPORTS, gate_report_to_json(report))


def gate_result_from_json(raw: object) -> GateResult:
    """The result `raw` holds, or WrongType naming the first bad field."""
    record = as_object(raw)
    return GateResult(
        component=member(record, "component", as_str),
        step=member(record, "step", _one_of(STEPS)),
        name=member(record, "name", as_str),
        command=member(record, "command", as_str),
        exit_code=member(record, "exit_code", as_optional_int),
        timed_out=member(record, "timed_out", _bool),
        duration_ms=member(record, "duration_ms", as_int),
        output_tail=member(record, "output_tail", as_str),
    )


def gate_report_from_json(raw: object) -> GateReport:
    """The report `raw` holds, or WrongType naming the first bad field."""
    record = as_object(raw)
    return GateReport(
        run=member(record, "run", as_str),
        item_id=member(record, "item_id", as_str),
        number=member(record, "number", as_int),
        where=member(record, "where", _one_of(WHERE)),
        started_at=member(record, "started_at", as_int),
        ended_at=member(record, "ended_at", as_int),
        passed=member(record, "passed", _bool),
        results=member(record, "results", _results),
        log=member(record, "log", as_str),
    )


def read_gate_reports(
    doc: Document, item_id: str | None = None
) -> tuple[list[GateReport], list[str]]:
    """The gate reports (of `item_id` only, if given), newest first, and a problem line for
    each malformed one. A malformed report that plainly belongs to another item is left out
    of one item's problems; one whose item cannot be told is always reported."""
    values, problems = stored_records(doc, GATE_REPORTS)
    reports = []
    # Position 0 is the latest this node has seen.
    for position, raw in enumerate(values):
        if item_id is not None and _other_item(raw, item_id):
            continue
        try:
            report = gate_report_from_json(raw)
        except WrongType as exc:
            problems.append(f"gate report {position}: {exc}")
            continue
        reports.append(report)
    # Concurrent appends on two nodes interleave by the CRDT's order, not by time: sort (the
    # sort is stable, so equal times keep the list's order).
    reports.sort(key=lambda report: report.ended_at, reverse=True)
    return reports, problems


def _other_item(raw: Json, item_id: str) -> bool:
    if not isinstance(raw, Mapping):
        return False
    owner = raw.get("item_id")
    return isinstance(owner, str) and owner != item_id


def _results(raw: object) -> tuple[GateResult, ...]:
    if not isinstance(raw, list | tuple):
        raise WrongType(f"must be an array, got {describe(raw)}")
    results = []
    for index, value in enumerate(raw):
        try:
            results.append(gate_result_from_json(value))
        except WrongType as exc:
            raise WrongType(f"[{index}]: {exc}") from None
    return tuple(results)


def _one_of(allowed: tuple[str, ...]) -> Callable[[object], str]:
    def read(raw: object) -> str:
        value = as_str(raw)
        if value not in allowed:
            raise WrongType(f"must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value

    return read


def _bool(raw: object) -> bool:
    if not isinstance(raw, bool):
        raise WrongType(f"must be a boolean, got {describe(raw)}")
    return raw
