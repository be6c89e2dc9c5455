"""The quality gates with real shell commands, real process groups and a real replica: what
passes and fails, what is skipped, that nothing a gate started outlives it, and what is kept."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from huskies.pipeline import WorkItem
from huskies.pipeline.gates import TAIL_CHARS, GateReport, read_gate_reports
from huskies.project import Project
from huskies.services.gates import DRAIN_S, Gates
from huskies.services.settings import Settings
from huskies.services.stories import Board
from huskies.store import Replica
from huskies.store.replica import wall_clock_ms

GRACE_S = 0.3


def component(
    name: str,
    *,
    path: str = ".",
    setup: tuple[str, ...] = (),
    teardown: tuple[str, ...] = (),
    setup_timeout_secs: int = 60,
    gates: dict[str, str | tuple[str, int]] | None = None,
) -> str:
    """A [[component]] table of project.toml (JSON strings and arrays are valid TOML)."""
    lines = [
        "[[component]]",
        f"name = {json.dumps(name)}",
        f"path = {json.dumps(path)}",
        f"setup = {json.dumps(list(setup))}",
        f"teardown = {json.dumps(list(teardown))}",
        f"setup_timeout_secs = {setup_timeout_secs}",
    ]
    for gate, spec in (gates or {}).items():
        command, timeout = (spec, 60) if isinstance(spec, str) else spec
        lines += [
            f"[component.gates.{json.dumps(gate)}]",
            f"command = {json.dumps(command)}",
            f"timeout_secs = {timeout}",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class Rig:
    project: Project
    replica: Replica
    item: WorkItem
    tree: Path
    logs: Path
    started: list[int] = field(default_factory=list)
    """Processes a test made escape the gates' reach, ended by the rig."""

    def gates(self, *components: str) -> Gates:
        self.project.project_toml.write_text("".join(components))
        settings = Settings.load(self.project)  # the real loader checks the tables
        return Gates(settings, self.replica, self.logs, wall_clock_ms, kill_grace_s=GRACE_S)

    async def check(self, *components: str) -> GateReport:
        return await self.gates(*components).check(self.item, self.tree, "worktree")

    def pid(self, name: str) -> int:
        return int((self.tree / name).read_text())


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    project = Project(tmp_path / "repo")
    project.dir.mkdir(parents=True)
    project.agents_toml.write_text("")
    tree = tmp_path / "worktree"
    tree.mkdir()
    async with await Replica.open(project.db_path) as replica:
        item = await Board(replica, wall_clock_ms).create("Check me")
        rig = Rig(project, replica, item, tree, tmp_path / "logs")
        try:
            yield rig
        finally:
            for pid in rig.started:
                end_process(pid)


def end_process(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def gone(pid: int) -> bool:
    """Whether the process has ended (a zombie has: it only waits to be reaped)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def steps(report: GateReport) -> list[tuple[str, str, int | None, bool]]:
    return [(r.step, f"{r.component}/{r.name}", r.exit_code, r.timed_out) for r in report.results]


async def test_gates_run_in_the_component_directory_and_report_each_result(rig: Rig):
    (rig.tree / "backend").mkdir()
    report = await rig.check(
        component(
            "backend",
            path="backend",
            setup=("echo set up > ready",),
            gates={
                "where": 'pwd; echo "$HUSKIES_NUMBER $HUSKIES_ITEM_ID $HUSKIES_GATE_DIR"',
                "both streams": "echo out; echo err >&2; echo out again",
                "no input": "cat",  # stdin is closed, so this ends at once
                "test": "cat ready; echo 2 failed; exit 3",
            },
        )
    )
    assert not report.passed
    assert steps(report) == [
        ("setup", "backend/setup 1", 0, False),
        ("gate", "backend/where", 0, False),
        ("gate", "backend/both streams", 0, False),
        ("gate", "backend/no input", 0, False),
        ("gate", "backend/test", 3, False),
    ]
    where, both, _, test = (r.output_tail for r in report.results[1:])
    assert where == f"{rig.tree / 'backend'}\n{rig.item.number} {rig.item.id} {rig.tree}\n"
    assert both == "out\nerr\nout again\n"
    assert test == "set up\n2 failed\n"
    assert (report.item_id, report.number, report.where) == (rig.item.id, 1, "worktree")
    assert report.started_at <= report.ended_at
    assert all(r.duration_ms >= 0 for r in report.results)


async def test_a_passing_run_passes(rig: Rig):
    report = await rig.check(component("app", gates={"test": "true", "lint": "echo clean"}))
    assert report.passed
    assert steps(report) == [("gate", "app/test", 0, False), ("gate", "app/lint", 0, False)]


async def test_a_failing_setup_skips_the_gates_but_not_the_teardown(rig: Rig):
    report = await rig.check(
        component(
            "api",
            setup=("echo installing", "echo no network >&2; exit 7", "touch never"),
            gates={"test": "touch tested"},
            teardown=("touch torn-down",),
        ),
        component("web", gates={"test": "true"}),
    )
    assert not report.passed
    assert steps(report) == [
        ("setup", "api/setup 1", 0, False),
        ("setup", "api/setup 2", 7, False),
        ("teardown", "api/teardown 1", 0, False),
        ("gate", "web/test", 0, False),  # another component is still checked
    ]
    assert report.results[1].output_tail == "no network\n"
    assert (rig.tree / "torn-down").exists()
    assert not (rig.tree / "never").exists()
    assert not (rig.tree / "tested").exists()
    assert "api: setup failed, so its gates are skipped" in Path(report.log).read_text()


async def test_teardown_runs_after_a_failed_gate_and_its_failure_fails_nothing(rig: Rig):
    report = await rig.check(
        component("app", gates={"test": "exit 1"}, teardown=("touch cleaned",)),
        component("docs", gates={"build": "true"}, teardown=("echo cannot clean; exit 4",)),
    )
    assert (rig.tree / "cleaned").exists()
    assert steps(report) == [
        ("gate", "app/test", 1, False),
        ("teardown", "app/teardown 1", 0, False),
        ("gate", "docs/build", 0, False),
        ("teardown", "docs/teardown 1", 4, False),
    ]
    assert not report.passed  # because of app/test alone:
    passing = await rig.check(
        component("docs", gates={"build": "true"}, teardown=("echo cannot clean; exit 4",))
    )
    assert passing.passed
    assert passing.results[-1].exit_code == 4
    assert passing.results[-1].output_tail == "cannot clean\n"


async def test_a_timeout_ends_the_whole_group(rig: Rig):
    began = time.monotonic()
    report = await rig.check(
        component(
            "app",
            gates={
                # The child in the background is in the gate's group, so it goes too.
                "hangs": ("sleep 300 & echo $! > child.pid; echo started; sleep 300", 1),
                # Ignoring SIGTERM (children inherit that) only earns the SIGKILL.
                "stubborn": (
                    "trap '' TERM; sleep 300 & echo $! > stubborn.pid; echo $$ > leader.pid; "
                    "sleep 300",
                    1,
                ),
                "after": "echo still checked",
            },
        )
    )
    assert steps(report) == [
        ("gate", "app/hangs", None, True),
        ("gate", "app/stubborn", None, True),
        ("gate", "app/after", 0, False),
    ]
    assert not report.passed
    assert report.results[0].output_tail == "started\n"
    for pid in (rig.pid("child.pid"), rig.pid("stubborn.pid"), rig.pid("leader.pid")):
        assert gone(pid), psutil.Process(pid)
    assert time.monotonic() - began < 2 * (1 + GRACE_S) + 5
    assert "<== app/hangs: timed out after 1 s" in Path(report.log).read_text()


async def test_a_child_left_holding_the_output_does_not_hold_up_the_gates(rig: Rig):
    began = time.monotonic()
    report = await rig.check(
        component("app", gates={"test": "sleep 300 & echo $! > child.pid; echo ok"})
    )
    assert time.monotonic() - began < 5  # nowhere near the sleep, nor the gate's timeout
    assert steps(report) == [("gate", "app/test", 0, False)]
    assert report.passed
    assert report.results[0].output_tail == "ok\n"
    assert gone(rig.pid("child.pid"))  # ended with its group when the gate ended


async def test_a_process_that_left_the_group_is_waited_for_only_briefly(rig: Rig):
    # `setsid` puts the sleep in a session of its own, out of the group's reach, still
    # holding the output pipe: the gates read for a bounded while, then go on.
    command = "setsid sleep 300 & echo $! > escaped.pid; echo left it"
    began = time.monotonic()
    try:
        report = await rig.check(component("app", gates={"test": command}))
    finally:
        with_pid = rig.tree / "escaped.pid"
        if with_pid.exists():
            rig.started.append(rig.pid("escaped.pid"))
    assert time.monotonic() - began < DRAIN_S + 5
    assert report.passed
    assert report.results[0].output_tail == "left it\n"


async def test_a_missing_component_directory_is_a_failed_setup(rig: Rig):
    report = await rig.check(
        component("ghost", path="not/here", gates={"test": "touch ran"}, teardown=("touch td",)),
        component("app", gates={"test": "true"}),
    )
    assert not report.passed
    assert steps(report) == [
        ("setup", "ghost/directory", None, False),
        ("gate", "app/test", 0, False),
    ]
    message = report.results[0].output_tail
    assert message == (
        f"the directory {rig.tree / 'not/here'} of component 'ghost' does not exist; check its "
        "path ('not/here') in .huskies/project.toml"
    )
    assert not (rig.tree / "ran").exists()
    assert not (rig.tree / "td").exists()
    assert message in Path(report.log).read_text()


async def test_no_components_is_a_passed_report_with_nothing_in_it(rig: Rig):
    report = await rig.check()
    assert report.passed
    assert report.results == ()
    assert "no [[component]] is configured" in Path(report.log).read_text()
    assert read_gate_reports(rig.replica.document, rig.item.id) == ([report], [])


async def test_the_tail_is_bounded_and_the_log_has_everything(rig: Rig):
    lines = 20_000
    report = await rig.check(
        component(
            "app",
            gates={
                "chatty": f"seq 1 {lines}; exit 1",
                "wide": "for i in $(seq 1 3000); do printf 'é€'; done; printf 'end'",
            },
        )
    )
    chatty, wide = (r.output_tail for r in report.results)
    assert len(chatty) == TAIL_CHARS
    assert chatty.startswith("…")
    assert chatty.endswith(f"\n{lines - 1}\n{lines}\n")
    assert len(wide) == TAIL_CHARS
    assert wide.endswith("é€end")
    assert "\ufffd" not in wide  # cut on characters, not inside one
    log = Path(report.log)
    assert log == rig.logs / f"{report.run}.log"
    text = log.read_text()
    numbers = [int(line) for line in text.splitlines() if line.isdigit()]
    assert numbers == list(range(1, lines + 1))
    assert f"==> app/chatty in {rig.tree}: seq 1 {lines}; exit 1\n" in text
    assert "\n<== app/chatty: exit code 1 in " in text
    assert "é€end\n<== app/wide: passed in " in text  # huskies' line starts a line of its own


async def test_reports_are_stored_newest_first_and_survive_a_restart(rig: Rig):
    first = await rig.check(component("app", gates={"test": "exit 1"}))
    second = await rig.check(component("app", gates={"test": "true"}))
    assert read_gate_reports(rig.replica.document, rig.item.id) == ([second, first], [])
    assert read_gate_reports(rig.replica.document, "someone-else") == ([], [])
    await rig.replica.close()
    async with await Replica.open(rig.project.db_path) as reopened:
        assert read_gate_reports(reopened.document) == ([second, first], [])


async def test_a_bad_place_is_refused_before_anything_runs(rig: Rig):
    gates = rig.gates(component("app", gates={"test": "touch ran"}))
    count = rig.replica.document.change_count
    with pytest.raises(ValueError, match="where must be one of worktree, merge, got 'laptop'"):
        await gates.check(rig.item, rig.tree, "laptop")
    assert not (rig.tree / "ran").exists()
    assert rig.replica.document.change_count == count


async def test_a_cancelled_check_leaves_no_process_and_no_report(rig: Rig):
    command = "sleep 300 & echo $! > child.pid; echo $$ > leader.pid; sleep 300"
    gates = rig.gates(component("app", gates={"test": command}))
    task = asyncio.create_task(gates.check(rig.item, rig.tree, "worktree"))
    deadline = time.monotonic() + 10
    while not ((rig.tree / "leader.pid").exists() and (rig.tree / "child.pid").exists()):
        assert time.monotonic() < deadline, "the gate never started"
        await asyncio.sleep(0.01)  # the shell writes the files on its own; nothing to await
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for pid in (rig.pid("child.pid"), rig.pid("leader.pid")):
        await until_gone(pid)
    assert read_gate_reports(rig.replica.document) == ([], [])


async def until_gone(pid: int) -> None:
    """SIGKILL is delivered, not waited for: poll (with a deadline) until the process ends."""
    deadline = time.monotonic() + 10
    while not gone(pid):
        assert time.monotonic() < deadline, f"pid {pid} outlived its gate"
        await asyncio.sleep(0.01)
