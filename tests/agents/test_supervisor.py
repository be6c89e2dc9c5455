"""Agent runs as real process groups: output, ends of every kind, and nothing left behind."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from huskies.agents import supervisor
from huskies.agents.events import RateLimit, Text, event_to_json, parse_command_line
from huskies.agents.supervisor import AgentProcess, LaunchSpec, Outcome, SpawnError, Stamped

DEADLINE_S = 20


def spec(tmp_path: Path, script: str, timeout_s: float = 30) -> LaunchSpec:
    return LaunchSpec(
        argv=("sh", "-c", script),
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
        parse=parse_command_line,
        inactivity_timeout_s=timeout_s,
    )


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def wait_for_file(path: Path) -> str:
    await wait_until(lambda: path.exists() and path.read_text().strip(), f"{path} never written")
    return path.read_text().strip()


async def wait_until(check, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def test_output_becomes_events_a_log_and_a_live_stream(tmp_path: Path):
    seen: list[Stamped] = []
    event_line = json.dumps(event_to_json(Text("from json")))
    run = AgentProcess(
        spec(tmp_path, f"echo hello; echo oops >&2; echo '{event_line}'; pwd"),
        tmp_path / "logs" / "run.log",
        seen.append,
    )
    await run.start()
    end = await run.wait()
    assert (end.outcome, end.exit_code) == (Outcome.COMPLETED, 0)
    texts = [s.event for s in run.events]
    assert texts == [Text("hello"), Text("oops"), Text("from json"), Text(str(tmp_path))]
    assert [s.seq for s in seen] == [1, 2, 3, 4]
    assert [s.event for s in seen] == texts
    log_text = (tmp_path / "logs" / "run.log").read_text()
    assert log_text.splitlines() == ["hello", "oops", event_line, str(tmp_path)]


async def test_a_crash_is_detected_with_its_status(tmp_path: Path):
    run = AgentProcess(spec(tmp_path, "echo working; exit 3"), tmp_path / "run.log")
    await run.start()
    end = await run.wait()
    assert (end.outcome, end.exit_code) == (Outcome.CRASHED, 3)
    assert end.message == "the agent exited with status 3"


async def test_death_by_signal_is_a_crash(tmp_path: Path):
    run = AgentProcess(spec(tmp_path, "kill -9 $$"), tmp_path / "run.log")
    await run.start()
    end = await run.wait()
    assert (end.outcome, end.exit_code) == (Outcome.CRASHED, -9)
    assert "signal 9" in end.message


async def test_stop_kills_the_whole_group_and_leaves_no_orphan(tmp_path: Path):
    child = tmp_path / "child.pid"
    run = AgentProcess(
        spec(tmp_path, f"sleep 300 & echo $! > {child}; echo started; wait"),
        tmp_path / "run.log",
    )
    await run.start()
    child_pid = int(await wait_for_file(child))
    assert alive(child_pid)
    end = await run.stop()
    assert end.outcome is Outcome.STOPPED
    assert end.message == "stopped"
    assert run.pid is not None
    assert not alive(run.pid)
    assert not alive(child_pid)


async def test_children_left_behind_after_a_normal_exit_are_killed(tmp_path: Path):
    child = tmp_path / "child.pid"
    # The child keeps the output pipe open: the run must still end, and take the child with it.
    run = AgentProcess(
        spec(tmp_path, f"sleep 300 & echo $! > {child}; echo done"), tmp_path / "run.log"
    )
    await run.start()
    end = await run.wait()
    assert end.outcome is Outcome.COMPLETED
    assert not alive(int(child.read_text()))


async def test_silence_past_the_inactivity_timeout_ends_the_group(tmp_path: Path):
    child = tmp_path / "child.pid"
    run = AgentProcess(
        spec(tmp_path, f"sleep 300 & echo $! > {child}; echo once; wait", timeout_s=0.5),
        tmp_path / "run.log",
    )
    await run.start()
    end = await run.wait()
    assert end.outcome is Outcome.TIMED_OUT
    assert end.message == "no output for 0.5 s"
    assert not alive(int(child.read_text()))
    assert [s.event for s in run.events] == [Text("once")]


async def test_waiting_on_a_person_is_not_inactivity(tmp_path: Path):
    run = AgentProcess(spec(tmp_path, "echo asking; sleep 300", timeout_s=0.5), tmp_path / "log")
    await run.start()
    with run.waiting_on_a_person():
        # Three timeouts' worth of silence: time passing is what is tested, not an event.
        await asyncio.sleep(1.5)
        assert run.running
    released = time.monotonic()
    end = await run.wait()
    # The inactivity clock starts again when the wait ends: the run times out one timeout
    # after the answer, not at once.
    assert end.outcome is Outcome.TIMED_OUT
    assert time.monotonic() - released >= 0.5


async def test_an_agent_that_ignores_sigterm_is_killed(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(supervisor, "KILL_GRACE_S", 0.3)
    ready = tmp_path / "ready"
    script = f"trap '' TERM; echo yes > {ready}; while :; do sleep 0.05; done"
    run = AgentProcess(spec(tmp_path, script), tmp_path / "run.log")
    await run.start()
    await wait_for_file(ready)
    end = await run.stop()
    assert (end.outcome, end.exit_code) == (Outcome.STOPPED, -9)


async def test_a_rate_limit_ends_the_run_and_says_when_it_resets(tmp_path: Path):
    limit = json.dumps(event_to_json(RateLimit(1_900_000_000_000, "limit reached")))
    run = AgentProcess(spec(tmp_path, f"echo '{limit}'; sleep 300"), tmp_path / "run.log")
    await run.start()
    end = await run.wait()
    assert end.outcome is Outcome.RATE_LIMITED
    assert end.rate_limit == RateLimit(1_900_000_000_000, "limit reached")
    assert end.message == "limit reached"


async def test_the_buffer_is_bounded_and_the_log_keeps_everything(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(supervisor, "BUFFER_EVENTS", 10)
    run = AgentProcess(spec(tmp_path, "seq 1 100"), tmp_path / "run.log")
    await run.start()
    await run.wait()
    assert [s.event for s in run.events] == [Text(str(n)) for n in range(91, 101)]
    assert [s.seq for s in run.events] == list(range(91, 101))
    assert (tmp_path / "run.log").read_text().split() == [str(n) for n in range(1, 101)]


async def test_a_missing_program_is_a_clear_error(tmp_path: Path):
    missing = LaunchSpec(
        argv=(str(tmp_path / "no-such-agent"),),
        cwd=tmp_path,
        env={},
        parse=parse_command_line,
        inactivity_timeout_s=5,
    )
    with pytest.raises(SpawnError, match=r"cannot start .*no-such-agent.*No such file"):
        await AgentProcess(missing, tmp_path / "run.log").start()


@pytest.mark.parametrize(
    ("argv", "env"),
    [(("sh", "-c", "true"), {"HUSKIES_TITLE": "a\x00b"}), (("sh", "-c", "echo a\x00b"), {})],
)
async def test_what_no_process_can_take_is_a_clear_error(
    tmp_path: Path, argv: tuple[str, ...], env: dict[str, str]
):
    refused = LaunchSpec(
        argv=argv, cwd=tmp_path, env=env, parse=parse_command_line, inactivity_timeout_s=5
    )
    run = AgentProcess(refused, tmp_path / "run.log")
    with pytest.raises(SpawnError, match=r"cannot start 'sh': embedded null byte"):
        await run.start()
    assert not run.running


async def test_a_huge_line_is_kept_whole(tmp_path: Path):
    size = 3 * 1024 * 1024
    run = AgentProcess(
        LaunchSpec(
            argv=(sys.executable, "-c", f"print('x' * {size})"),
            cwd=tmp_path,
            env=dict(os.environ),
            parse=parse_command_line,
            inactivity_timeout_s=30,
        ),
        tmp_path / "run.log",
    )
    await run.start()
    await run.wait()
    (only,) = run.events
    assert only.event == Text("x" * size)
