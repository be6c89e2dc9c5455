"""Gate reports in a real document (appended, read back newest first, bad ones named) and the
failure summary a coder is given, cut to its limit."""

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from huskies.crdt import Document, ObjKind, Transaction
from huskies.pipeline.gates import (
    TAIL_CHARS,
    GateReport,
    GateResult,
    failure_summary,
    gate_report_from_json,
    gate_report_to_json,
    outcome_text,
    output_tail,
    read_gate_reports,
    record_gate_report,
)

from ..crdt.support import key, set_key

A, B = key(1), key(2)
T = 1_700_000_000_000
ITEM = "ab" * 32 + ".0"
OTHER = "cd" * 32 + ".0"


def result(name: str, exit_code: int | None = 0, **fields: object) -> GateResult:
    values: dict[str, object] = {
        "component": "app",
        "step": "gate",
        "name": name,
        "command": f"run {name}",
        "exit_code": exit_code,
        "timed_out": False,
        "duration_ms": 120,
        "output_tail": f"{name} says hello\n",
        **fields,
    }
    return GateResult(**values)  # type: ignore[arg-type]


REPORT = GateReport(
    run="1700000000000-0a1b2c3d",
    item_id=ITEM,
    number=7,
    where="worktree",
    started_at=T,
    ended_at=T + 900,
    passed=False,
    results=(
        result("setup 1", step="setup"),
        result("test", 1, output_tail="FAILED test_login\n1 failed\n"),
        result("lint", None, timed_out=True, output_tail="checking…"),
        result("teardown 1", 2, step="teardown", output_tail="cleanup broke"),
    ),
    log="/srv/repo/.huskies/runs/gates/1700000000000-0a1b2c3d.log",
)


def append(doc: Document, report: GateReport, signer=A) -> None:
    tx = Transaction(doc)
    record_gate_report(tx, report)
    tx.commit(signer, report.ended_at)


def test_a_report_survives_json_and_the_document():
    assert gate_report_from_json(gate_report_to_json(REPORT)) == REPORT
    doc = Document()
    append(doc, REPORT)
    assert read_gate_reports(doc) == ([REPORT], [])


def test_reports_come_back_newest_first_and_by_item():
    doc = Document()
    older = dataclasses.replace(REPORT, run="r-old", ended_at=T + 10)
    newer = dataclasses.replace(REPORT, run="r-new", ended_at=T + 20, passed=True, results=())
    elsewhere = dataclasses.replace(REPORT, run="r-other", item_id=OTHER, ended_at=T + 15)
    # Written out of time order (as two nodes' concurrent appends may interleave).
    append(doc, newer)
    append(doc, elsewhere, signer=B)
    append(doc, older)
    assert read_gate_reports(doc) == ([newer, elsewhere, older], [])
    assert read_gate_reports(doc, ITEM) == ([newer, older], [])
    assert read_gate_reports(doc, "no-such-item") == ([], [])


def test_an_empty_document_has_no_reports():
    assert read_gate_reports(Document()) == ([], [])
    assert read_gate_reports(Document(), ITEM) == ([], [])


def test_bad_reports_are_named_and_the_rest_still_read():
    doc = Document()
    append(doc, REPORT)
    good = gate_report_to_json(REPORT)
    results = good["results"]
    assert isinstance(results, list)
    bad_values: list[object] = [
        {**good, "passed": "yes"},
        {**good, "where": "laptop"},
        {**good, "results": [results[0], {**results[0], "exit_code": "1"}]},  # type: ignore[dict-item]
        {**good, "results": [{**results[0], "step": "lunch"}]},  # type: ignore[dict-item]
        {**good, "results": "all fine"},
        {key_: value for key_, value in good.items() if key_ != "log"},
        "not a report",
    ]
    tx = Transaction(doc)
    for value in reversed(bad_values):  # each insert goes to the front
        tx.insert(("gate_reports",), 0, value)
    tx.commit(A, T + 1)
    reports, problems = read_gate_reports(doc)
    assert reports == [REPORT]
    assert problems == [
        "gate report 0: 'passed' must be a boolean, got a string",
        "gate report 1: 'where' must be one of 'worktree', 'merge', got 'laptop'",
        "gate report 2: 'results' [1]: 'exit_code' must be an integer, got a string",
        "gate report 3: 'results' [0]: 'step' must be one of 'setup', 'gate', 'teardown', "
        "got 'lunch'",
        "gate report 4: 'results' must be an array, got a string",
        "gate report 5: 'log' is missing",
        "gate report 6: must be an object, got a string",
    ]


def test_one_item_is_not_told_of_bad_reports_that_plainly_belong_to_another():
    doc = Document()
    tx = Transaction(doc)
    tx.make((), "gate_reports", ObjKind.LIST)
    tx.insert(("gate_reports",), 0, {**gate_report_to_json(REPORT), "item_id": OTHER, "run": 5})
    tx.insert(("gate_reports",), 0, {**gate_report_to_json(REPORT), "item_id": 5})
    tx.commit(A, T)
    _, problems = read_gate_reports(doc, ITEM)
    assert problems == ["gate report 0: 'item_id' must be a string, got a number"]
    _, everything = read_gate_reports(doc)
    assert len(everything) == 2


def test_reports_that_are_not_a_list_are_reported():
    doc = Document()
    set_key(doc, A, "gate_reports", {"run": "x"})
    assert read_gate_reports(doc) == ([], ["gate_reports must be an array, got an object"])


def test_a_step_passes_only_with_exit_code_zero_in_time():
    assert result("ok").passed
    assert not result("bad", 1).passed
    assert not result("slow", 0, timed_out=True).passed
    assert not result("never", None).passed
    assert [outcome_text(r) for r in REPORT.results] == [
        "passed",
        "exit code 1",
        "timed out",
        "exit code 2",
    ]
    assert outcome_text(result("killed", -9)) == "killed by signal 9"
    assert outcome_text(result("missing", None)) == "could not run"


def test_output_tails_keep_the_end():
    assert output_tail("short") == "short"
    assert output_tail("x" * TAIL_CHARS) == "x" * TAIL_CHARS
    cut = output_tail("a" + "x" * TAIL_CHARS)
    assert len(cut) == TAIL_CHARS
    assert cut == "…" + "x" * (TAIL_CHARS - 1)
    assert output_tail("abcdef", 3) == "…ef"
    assert output_tail("abcdef", 0) == ""


def test_the_summary_names_the_failed_steps_and_their_output():
    summary = failure_summary(REPORT)
    assert summary == (
        f"The quality gates failed (worktree, run {REPORT.run}; full output in {REPORT.log}):\n"
        "- app/test: exit code 1\n"
        "- app/lint: timed out\n"
        "\n--- app/test (exit code 1) ---\n"
        "FAILED test_login\n1 failed"
        "\n\n--- app/lint (timed out) ---\n"
        "checking…"
    )
    assert "teardown" not in summary  # a failing teardown fails nothing


def test_a_passed_report_says_so():
    passed = dataclasses.replace(REPORT, passed=True, results=(result("test"),))
    assert failure_summary(passed) == f"The quality gates passed (worktree, run {REPORT.run})."
    assert failure_summary(passed, 10) == "The quali…"


def test_long_output_is_cut_from_the_start_of_each_tail():
    first = "".join(f"first line {n}\n" for n in range(1000))
    second = "".join(f"second line {n}\n" for n in range(1000))
    report = dataclasses.replace(
        REPORT, results=(result("unit", 1, output_tail=first), result("e2e", 3, output_tail=second))
    )
    summary = failure_summary(report, 1000)
    assert len(summary) <= 1000
    assert "- app/unit: exit code 1\n- app/e2e: exit code 3" in summary
    assert "first line 999" in summary
    assert "second line 999" in summary
    assert "first line 0\n" not in summary
    # The two tails share the room fairly: neither crowds the other out.
    unit, e2e = summary.split("--- app/unit")[1].split("--- app/e2e")
    assert abs(len(unit) - len(e2e)) < 50


@given(
    limit=st.integers(min_value=0, max_value=3000),
    tails=st.lists(st.text(max_size=2000), min_size=1, max_size=6),
)
def test_the_summary_never_exceeds_its_limit(limit: int, tails: list[str]):
    report = dataclasses.replace(
        REPORT,
        results=tuple(result(f"g{n}", 1, output_tail=tail) for n, tail in enumerate(tails)),
    )
    summary = failure_summary(report, limit)
    assert len(summary) <= limit
    if limit >= 600:  # room for the list of failures: it comes whole
        assert all(f"- app/g{n}: exit code 1" in summary for n in range(len(tails)))
