"""The agents service with real parts: SQLite replica, git worktrees, `command` agents as real
process groups. Each test polls for what it expects with a deadline; nothing sleeps to wait."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from huskies.agents.events import RateLimit
from huskies.agents.supervisor import AgentProcess
from huskies.pipeline import (
    Archived,
    ArchiveReason,
    Claim,
    Coding,
    Done,
    ExecutionState,
    MergeSucceeded,
    QaApproved,
    Start,
    Submit,
)
from huskies.pipeline.stages import StageName
from huskies.pipeline.usage import read_usage
from huskies.services import agents as agents_service
from huskies.services.agents import AgentBusy, NoSuchAgent, NotRunning
from huskies.services.stories import Board
from huskies.services.worktrees import Worktrees
from huskies.store import PersistError
from huskies.store.replica import wall_clock_ms

from .agent_rig import COMMIT, agent_table, rig


async def test_a_started_story_gets_a_coder_that_commits_on_its_branch(tmp_path: Path):
    async with rig(tmp_path, agent_table("coder", COMMIT)) as r:
        with r.hub.subscribe({"agent_output", "agent_state"}) as events:
            item = await r.board.create("Add a greeting")
            run = await r.agents.start(item.number)
            assert run is not None
            assert r.item(1).stage == Coding()
            await r.until(
                lambda: r.agents.execution_state(item.id) is ExecutionState.COMPLETED, "completed"
            )
            kinds = []
            while not events.queue.empty():
                kinds.append((await events.get()).kind)
        assert r.git("log", "-1", "--format=%s", "feature/story-1") == "#1"
        worktree = r.project.dir / "worktrees" / "1-add-a-greeting"
        assert (worktree / "work-1.txt").read_text() == "Add a greeting\n"
        assert r.git("log", "-1", "--format=%s", "main") == "start"  # base untouched
        assert "agent_output" in kinds
        assert "agent_state" in kinds
        output = r.agents.output(1)
        assert [e["event"] for e in output["events"]] == [{"type": "text", "text": "committed"}]
        assert Path(output["log"]).read_text() == "committed\n"
        records, problems = read_usage(r.replica.document)
        assert problems == []
        assert [(u.number, u.agent, u.outcome) for u in records] == [(1, "coder", "completed")]
        # Completed here: auto-assign does not start it again.
        await r.agents.assign_pass()
        assert r.agents.runs()[0]["state"] == "completed"
        assert len(r.agents.runs()) == 1


async def test_the_worktree_is_reused_by_the_next_run(tmp_path: Path):
    script = 'echo "run" >> runs.txt; git add -A; git commit -qm "run $(wc -l < runs.txt)"'
    async with rig(tmp_path, agent_table("coder", script)) as r:
        item = await r.board.create("Twice")
        await r.agents.start(1)
        await r.until(lambda: r.agents.execution_state(item.id) is ExecutionState.COMPLETED, "1")
        await r.agents.start(1)
        worktree = r.project.dir / "worktrees" / "1-twice"
        await r.until(lambda: (worktree / "runs.txt").read_text() == "run\nrun\n", "second run")


async def test_a_crash_counts_a_retry_and_max_retries_blocks_with_the_reason(tmp_path: Path):
    async with rig(tmp_path, agent_table("coder", "echo failing; exit 3"), max_retries=3) as r:
        item = await r.board.create("Doomed")
        await r.agents.start(1)
        await r.until(lambda: isinstance(r.item(1).stage, Archived), "blocked")
        blocked = r.item(1)
        assert isinstance(blocked.stage, Archived)
        assert blocked.stage.reason is ArchiveReason.BLOCKED
        assert blocked.blocked_reason is not None
        assert blocked.blocked_reason.startswith("3 failed attempts; last: coder run ")
        assert blocked.blocked_reason.endswith("the agent exited with status 3")
        assert [run["outcome"] for run in r.agents.runs()] == ["crashed"] * 3
        # Unblocking resets the count and lets auto-assign try again.
        await r.board.unblock(1)
        assert r.item(1).retries == 0
        await r.until(lambda: len(r.agents.runs()) >= 4, "a fresh attempt")
        assert r.agents.runs()[0]["item_id"] == item.id


async def test_files_changed_but_not_committed_get_one_commit_only_respawn(tmp_path: Path):
    script = (
        'case "$HUSKIES_PROMPT" in *"committed nothing"*) git add -A; git commit -qm saved;;'
        " *) echo draft > draft.txt;; esac"
    )
    async with rig(tmp_path, agent_table("coder", script)) as r:
        item = await r.board.create("Forgetful")
        await r.agents.start(1)
        await r.until(
            lambda: r.agents.execution_state(item.id) is ExecutionState.COMPLETED, "saved"
        )
        runs = list(reversed(r.agents.runs()))
        assert [run["commit_only"] for run in runs] == [False, True]
        assert r.item(1).retries == 0  # the respawn is not a retry
        assert r.git("log", "-1", "--format=%s", "feature/story-1") == "saved"


async def test_a_second_commit_only_failure_counts_as_a_retry(tmp_path: Path):
    async with rig(tmp_path, agent_table("coder", "echo draft >> draft.txt"), max_retries=2) as r:
        await r.board.create("Never commits")
        await r.agents.start(1)
        await r.until(lambda: isinstance(r.item(1).stage, Archived), "blocked")
        runs = list(reversed(r.agents.runs()))
        # First run: dirty → commit-only respawn; it fails → retry 1; the next run fails → 2.
        assert [run["commit_only"] for run in runs] == [False, True, False]
        assert "nothing was committed" in (r.item(1).blocked_reason or "")


async def test_max_coders_holds_under_a_burst_of_ten_stories(tmp_path: Path):
    release = tmp_path / "release"
    wait = f"while [ ! -f {release} ]; do sleep 0.05; done; {COMMIT}"
    toml = "".join(agent_table(f"coder-{n}", wait) for n in range(1, 6))
    async with rig(tmp_path, toml, max_coders=3) as r:
        items = [await r.board.create(f"Story {n}") for n in range(1, 11)]
        most = 0

        def running() -> int:
            nonlocal most
            count = sum(1 for run in r.agents.runs() if run["state"] == "running")
            most = max(most, count)
            return count

        for item in items:
            await r.agents.start(item.number)
        await r.until(lambda: running() == 3, "three coders running")
        release.write_text("go")
        await r.until(
            lambda: (
                running() <= 3
                and all(r.agents.execution_state(i.id) is ExecutionState.COMPLETED for i in items)
            ),
            "all ten completed",
        )
        assert most == 3
        assert len(r.agents.runs()) == 10


async def test_a_preferred_agent_is_used_and_an_unknown_one_refused(tmp_path: Path):
    toml = agent_table("first", COMMIT) + agent_table("second", COMMIT)
    async with rig(tmp_path, toml) as r:
        await r.board.create("Picky")
        with pytest.raises(NoSuchAgent, match="there is no agent 'third'"):
            await r.agents.start(1, "third")
        assert r.item(1).stage.name is StageName.BACKLOG  # nothing changed
        run = await r.agents.start(1, "second")
        assert run is not None
        assert run.agent == "second"
        assert r.item(1).agent == "second"


async def test_a_backlog_item_is_promoted_when_its_dependencies_finish(tmp_path: Path):
    # Only a qa agent: nothing runs, so the test sees promotion alone.
    async with rig(tmp_path, agent_table("reviewer", COMMIT, stage="qa")) as r:
        await r.board.create("First")
        await r.board.create("Second", depends_on=[1])
        await r.board.create("Gone")
        await r.board.create("Third", depends_on=[1, 3])
        await r.board.purge(3)
        await r.agents.assign_pass()
        assert r.item(2).stage.name is StageName.BACKLOG
        for event in (
            Start(),
            Submit(),
            QaApproved(wall_clock_ms(), "feature/story-1", 1),
            MergeSucceeded(wall_clock_ms(), "abc123"),
        ):
            await r.board.apply(1, event)
        assert isinstance(r.item(1).stage, Done)
        await r.until(lambda: r.item(2).stage.name is StageName.CODING, "promoted")
        assert r.item(4).stage.name is StageName.BACKLOG  # #3 was purged


async def test_stop_kills_the_agent_and_holds_the_item(tmp_path: Path):
    pidfile = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {pidfile}; echo started; wait"
    async with rig(tmp_path, agent_table("coder", script)) as r:
        item = await r.board.create("Long")
        await r.agents.start(1)
        await r.until(lambda: pidfile.exists() and pidfile.read_text().strip(), "child started")
        end = await r.agents.stop(1)
        assert end.outcome.value == "stopped"
        child = int(pidfile.read_text())
        assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"
        await r.agents.assign_pass()
        assert r.agents.execution_state(item.id) is ExecutionState.IDLE
        assert len(r.agents.runs()) == 1  # held: auto-assign leaves it alone
        assert r.item(1).retries == 0
        with pytest.raises(NotRunning):
            await r.agents.stop(1)


async def test_starting_a_running_item_again_is_refused(tmp_path: Path):
    release = tmp_path / "release"
    async with rig(
        tmp_path, agent_table("coder", f"while [ ! -f {release} ]; do sleep 0.05; done")
    ) as r:
        await r.board.create("Busy")
        await r.agents.start(1)
        with pytest.raises(AgentBusy, match="#1 already has coder running"):
            await r.agents.start(1)
        release.write_text("go")


RATE_LIMITED_ONCE = """
import json, pathlib, subprocess, sys, time
marker = pathlib.Path(sys.argv[1])
if not marker.exists():
    marker.touch()
    reset = int(time.time() * 1000) + 1000
    print(json.dumps({"type": "rate_limit", "resets_at": reset, "message": "limit"}), flush=True)
    time.sleep(300)
subprocess.run(["sh", "-c", sys.argv[2]], check=True)
"""


async def test_a_rate_limit_waits_for_the_reset_and_resumes_in_the_same_worktree(tmp_path: Path):
    script = tmp_path / "limited.py"
    script.write_text(RATE_LIMITED_ONCE)
    argv = [sys.executable, str(script), str(tmp_path / "limited-once"), COMMIT]
    toml = agent_table("coder", "").replace(json.dumps(["sh", "-c", ""]), json.dumps(argv))
    async with rig(tmp_path, toml) as r:
        item = await r.board.create("Limited")
        await r.agents.start(1)
        await r.until(
            lambda: r.agents.execution_state(item.id) is ExecutionState.RATE_LIMITED, "limited"
        )
        limited_at = wall_clock_ms()
        await r.until(
            lambda: r.agents.execution_state(item.id) is ExecutionState.COMPLETED, "resumed"
        )
        runs = list(reversed(r.agents.runs()))
        assert [run["outcome"] for run in runs] == ["rate_limited", "completed"]
        assert runs[1]["started_at"] >= runs[0]["ended_at"]
        assert runs[1]["started_at"] >= limited_at - 1000
        assert r.item(1).retries == 0
        assert r.git("log", "-1", "--format=%s", "feature/story-1") == "#1"
        assert runs[0]["worktree"] == runs[1]["worktree"]


async def test_an_agent_that_cannot_start_costs_no_retry(tmp_path: Path):
    toml = agent_table("coder", "").replace(
        json.dumps(["sh", "-c", ""]), json.dumps([str(tmp_path / "missing-agent")])
    )
    async with rig(tmp_path, toml) as r:
        await r.board.create("Unlucky")
        run = await r.agents.start(1)
        assert run is not None
        assert run.end is not None
        assert run.end.message.startswith("could not start: cannot start ")
        assert "missing-agent" in run.end.message
        await r.agents.assign_pass()
        assert len(r.agents.runs()) == 1  # auto-assign waits before trying again
        assert r.item(1).stage == Coding()
        assert r.item(1).retries == 0


async def test_depending_on_an_archived_item_logs_a_warning(tmp_path: Path, caplog):
    async with rig(tmp_path, agent_table("reviewer", COMMIT, stage="qa")) as r:
        await r.board.create("Old")
        await r.board.move(1, StageName.ARCHIVED)
        with caplog.at_level("WARNING", logger="huskies.stories"):
            await r.board.create("New", depends_on=[1])
        assert "new item #2 depends on #1, which is already archived" in caplog.text
        # Its dependency is finished, so it is promoted at once.
        await r.until(lambda: r.item(2).stage.name is StageName.CODING, "promoted")


async def test_a_running_agent_claims_its_item_and_another_nodes_claim_is_respected(
    tmp_path: Path,
):
    release = tmp_path / "release"
    waiting = f"while [ ! -f {release} ]; do sleep 0.05; done; {COMMIT}"
    async with rig(tmp_path, agent_table("coder", waiting)) as r:
        mine = await r.board.create("Mine")
        await r.agents.start(1)
        claim = r.item(1).claim
        assert claim is not None
        assert claim.node == r.replica.node_id
        assert claim.expires_at > wall_clock_ms()
        release.write_text("go")
        await r.until(lambda: r.agents.execution_state(mine.id) is ExecutionState.COMPLETED, "1")
        assert r.item(1).claim is None  # released when the run ended

        # An item another node is working on is left alone, by auto-assign and by start.
        theirs = await r.board.create("Theirs")
        await r.board.set_claim(theirs.id, Claim("ab" * 32, wall_clock_ms() + 60_000))
        await r.board.apply(2, Start())
        await r.agents.assign_pass()
        assert r.agents.execution_state(theirs.id) is ExecutionState.IDLE
        with pytest.raises(AgentBusy, match="#2 is being worked on by node abababab"):
            await r.agents.start(2)
        # Once their claim has expired, this node may take the item over.
        await r.board.set_claim(theirs.id, Claim("ab" * 32, wall_clock_ms() - 1))
        await r.until(
            lambda: r.agents.execution_state(theirs.id) is ExecutionState.COMPLETED, "taken over"
        )


class InjectedFault(Exception):
    """A failure no launch step expects, injected into one of them."""


def fail_once(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, error: Exception):
    """Make `owner.name` (an async callable) raise `error` on its first call only."""
    original = getattr(owner, name)
    calls = {"count": 0}

    async def failing(*args: object, **kwargs: object) -> object:
        calls["count"] += 1
        if calls["count"] == 1:
            raise error
        return await original(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)


@pytest.mark.parametrize("step", ["worktree", "run files", "claim", "spawn", "after spawn"])
async def test_any_failure_while_launching_frees_the_slot_and_the_next_item_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
):
    spawned: list[int] = []
    if step == "worktree":
        fail_once(monkeypatch, Worktrees, "ensure", InjectedFault("no worktree"))
    elif step == "run files":
        real_spec = agents_service.launch_spec
        specs = {"count": 0}

        def failing_spec(*args: Any, **kwargs: Any) -> Any:
            specs["count"] += 1
            if specs["count"] == 1:
                raise InjectedFault("no run files")
            return real_spec(*args, **kwargs)

        monkeypatch.setattr(agents_service, "launch_spec", failing_spec)
    elif step == "claim":
        fail_once(monkeypatch, Board, "set_claim", PersistError("disk full"))
    elif step == "spawn":
        fail_once(monkeypatch, AgentProcess, "start", ValueError("embedded null byte"))
    else:
        real_start = AgentProcess.start
        starts = {"count": 0}

        async def started_then_failed(process: AgentProcess) -> None:
            await real_start(process)
            starts["count"] += 1
            if starts["count"] == 1:
                assert process.pid is not None
                spawned.append(process.pid)
                raise InjectedFault("the ledger could not be written")

        monkeypatch.setattr(AgentProcess, "start", started_then_failed)

    script = f"sleep 300 & echo $! >> {tmp_path / 'children'}; wait"
    async with rig(tmp_path, agent_table("coder", f"{script}; {COMMIT}"), max_coders=1) as r:
        first = await r.board.create("First")
        second = await r.board.create("Second")
        failed = await r.agents.start(1)
        assert failed is not None
        assert failed.end is not None
        assert failed.end.message.startswith("could not start: ")
        assert r.agents.active_run(1) is None
        assert r.item(1).claim is None
        assert r.item(1).retries == 0
        with pytest.raises(NotRunning):  # nothing half-started to stop
            await r.agents.stop(1)
        # The one coder slot is free: the second item gets it.
        await r.board.apply(2, Start())
        await r.until(
            lambda: r.agents.execution_state(second.id) is ExecutionState.RUNNING,
            "the second item running",
        )
        assert r.agents.execution_state(first.id) is ExecutionState.IDLE
        await r.agents.stop(2)
        for pid in spawned:  # a process that did start is not left running
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_a_rate_limit_resumes_at_its_reset_and_a_past_reset_soon_after():
    now = 1_000_000
    at_reset = agents_service._resume_time(RateLimit(now + 60_000, "limit"), now)
    assert at_reset == now + 60_000
    # The run took longer to end than the limit lasted: resume shortly, not after 5 minutes.
    past = agents_service._resume_time(RateLimit(now - 1_000, "limit"), now)
    assert past == now + agents_service.RATE_LIMIT_MIN_WAIT_S * 1000
    unnamed = agents_service._resume_time(RateLimit(None, "limit"), now)
    assert unnamed == now + agents_service.DEFAULT_RATE_LIMIT_WAIT_S * 1000
