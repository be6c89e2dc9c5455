"""Agents at work: starting, stopping and watching agent runs, and auto-assign.

Auto-assign runs after every change to the document, after every run ends, and on a timer. It
promotes backlog items whose dependencies are finished, gives items in coding without a running
agent the first free coder (at most `max_coders` at once, honouring an item's preferred agent),
and reviews items in qa by their QA mode (approves in `server` mode, runs a QA agent in `agent`
mode). When a coder's run ends, this service decides what it means, never the agent's own word:

- commits made: the server runs the gates; pass → qa, fail → back to the coder with the output;
- files changed but nothing committed: one commit-only respawn, not counted as a retry;
- anything else (crash, silence, nothing done): a failed attempt, counted; at `max_retries`
  the item is blocked with the reason;
- a rate limit: the agent waits for the reset and resumes in the same worktree;
- a person's stop: the item is held on this node until someone starts it again.

Runs are per node (execution state is never replicated); what they cost goes into the document.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huskies.agents.events import RateLimit, Text, event_to_json
from huskies.agents.runtimes import RunContext, fill, launch_spec
from huskies.agents.supervisor import AgentProcess, Outcome, RunEnd, SpawnError, Stamped
from huskies.config import AgentConfig
from huskies.gitops import Git, GitError
from huskies.pipeline import (
    AttemptFailed,
    Block,
    Claim,
    GatesFailed,
    GatesPassed,
    QaMode,
    Start,
    WorkItem,
)
from huskies.pipeline.scheduling import Waiting, choose_agent, ready_to_promote, wants_coder
from huskies.pipeline.stages import ExecutionState, StageName
from huskies.pipeline.usage import UsageRecord, record_usage
from huskies.pipeline.view import ItemsView
from huskies.processes import GroupLedger
from huskies.services.events import EventHub
from huskies.services.notifications import Notify, blocked_message
from huskies.services.passes import Passes
from huskies.services.review import Review
from huskies.services.settings import Settings
from huskies.services.stories import Board, StoryError
from huskies.services.worktrees import WorktreeError, Worktrees
from huskies.store import PersistError, Replica

log = logging.getLogger("huskies.agents")

HISTORY = 200
"""Ended runs kept in memory for `output` and the agents list (their logs stay on disk)."""

DEFAULT_RATE_LIMIT_WAIT_S = 300
RATE_LIMIT_MIN_WAIT_S = 5

CLAIM_TTL_S = 600
"""A running agent's claim on its item lasts this long and is renewed at half of it, so other
nodes leave the item alone while it runs and may take it over if this node vanishes."""

CLOSE_GRACE_S = 5.0
"""At shutdown, how long ends already being recorded get before they are cancelled."""

LAUNCH_RETRY_S = 60

# Why an agent may fail to start that is this machine's state, not a fault in huskies.
_EXPECTED_LAUNCH_FAILURES = (SpawnError, WorktreeError, GitError, OSError)
"""How long auto-assign waits before trying again an item whose agent could not start."""
"""How long to wait out a rate limit whose reset time the runtime did not say."""

# The agent stage that works on items in each pipeline stage.
AGENT_STAGE = {StageName.CODING: "coder", StageName.QA: "qa", StageName.MERGE: "mergemaster"}

COMMIT_ONLY_PROMPT = (
    "You changed files in {worktree} but committed nothing. Do not change anything else: review "
    "`git status` and `git diff`, then commit the work that belongs to story {number} "
    '("{title}") to branch {branch} with a message that says what it does.'
)


GateCheck = Callable[[WorkItem, Path, str], Awaitable[tuple[bool, str]]]
"""Runs the project's gates for an item in a directory ("worktree" or "merge"): (passed,
summary of what failed)."""


class AgentError(Exception):
    """A request about agents that cannot be done; the message says why and what to do."""


class NoSuchAgent(AgentError):
    pass


class AgentBusy(AgentError):
    pass


class NoRun(AgentError):
    """The item has had no run on this node: nothing to show."""


class NotRunning(AgentError):
    """The item has no agent running now: nothing to stop."""


class WrongStage(AgentError):
    """The agent asked for is not one for the item's stage."""


@dataclass(eq=False)
class Run:
    id: str
    item_id: str
    number: int
    agent: str
    stage: StageName
    started_at: int
    commit_only: bool
    state: ExecutionState = ExecutionState.PENDING
    process: AgentProcess | None = None
    head_before: str | None = None
    worktree: Path | None = None
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    end: RunEnd | None = None
    ended_at: int | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    """Set once the end is recorded and decided."""

    def to_json(self) -> dict[str, Any]:
        result = self.end.result if self.end else None
        return {
            "run": self.id,
            "item_id": self.item_id,
            "number": self.number,
            "agent": self.agent,
            "state": self.state.value,
            "commit_only": self.commit_only,
            "pid": self.process.pid if self.process else None,
            "worktree": str(self.worktree) if self.worktree else None,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "outcome": self.end.outcome.value if self.end else None,
            "exit_code": self.end.exit_code if self.end else None,
            "message": self.end.message if self.end else None,
            "cost_usd": result.cost_usd if result else None,
        }


class Agents:
    def __init__(
        self,
        *,
        settings: Settings,
        replica: Replica,
        board: Board,
        worktrees: Worktrees,
        hub: EventHub,
        runs_dir: Path,
        server_url: Callable[[], str],
        clock: Callable[[], int],
        gates: GateCheck | None = None,
        review: Review | None = None,
        notify: Notify | None = None,
        ledger: GroupLedger | None = None,
    ) -> None:
        self._ledger = ledger
        self._settings = settings
        self._notifier = notify
        self._gates = gates
        self._review = review
        self._feedback: dict[str, str] = {}
        self._replica = replica
        self._board = board
        self._worktrees = worktrees
        self._hub = hub
        self._runs_dir = runs_dir
        self._server_url = server_url
        self._clock = clock
        self._active: dict[str, Run] = {}  # by item id
        self._history: deque[Run] = deque(maxlen=HISTORY)
        # After a run: completed / rate limited, and the stage that holds for (a completed
        # coder says nothing about the item once it has moved on to qa).
        self._state: dict[str, tuple[StageName, ExecutionState]] = {}
        # Items whose stage's work a run here has done (or that wait for a rate limit's reset),
        # by that stage: not started again while they stay in it. Forgotten once the item is
        # seen elsewhere, so one that comes back (a rejection) is worked on again.
        self._done_in: dict[str, StageName] = {}
        self._held: set[str] = set()
        self._deciding: set[str] = set()
        self._resume_at: dict[str, int] = {}
        self._commit_only_used: set[tuple[str, StageName]] = set()
        self._attempts: dict[tuple[str, StageName], int] = {}
        self._warned: set[tuple[str, tuple[int, ...]]] = set()
        self._lock = asyncio.Lock()
        self._passes = Passes("auto-assign", replica, self.assign_pass, self._next_wake)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    # ---- what people and the API ask for ------------------------------------------------

    def agents(self) -> list[dict[str, Any]]:
        busy = {run.agent: run for run in self._active.values()}
        return [
            {
                "name": agent.name,
                "stage": agent.stage,
                "runtime": agent.runtime,
                "model": agent.model,
                "running": busy[agent.name].to_json() if agent.name in busy else None,
            }
            for agent in self._settings.agents.agents
        ]

    def runs(self) -> list[dict[str, Any]]:
        """Running runs first, then ended ones, newest first."""
        ended = [run.to_json() for run in reversed(self._history)]
        return [run.to_json() for run in self._active.values()] + ended

    def execution_state(self, item_id: str) -> ExecutionState:
        run = self._active.get(item_id)
        if run is not None:
            return run.state
        return self._state.get(item_id, (StageName.CODING, ExecutionState.IDLE))[1]

    def token_for(self, token: str) -> Run | None:
        """The running run that `token` belongs to (the MCP server binds tools with it)."""
        return next((run for run in self._active.values() if run.token == token), None)

    def active_run(self, number: int) -> Run | None:
        """Item `number`'s run on this node while it runs (its `finished` is set at the end)."""
        return self._active.get(self._board.get(number).id)

    async def start(self, number: int, agent: str | None = None) -> Run | None:
        """Start work on item `number` now: a backlog item moves to coding first. Returns the
        run, or None when no agent is free yet (auto-assign starts it when one is)."""
        item = self._board.get(number)
        if item.id in self._active:
            raise AgentBusy(f"#{number} already has {self._active[item.id].agent} running")
        if self._claimed_elsewhere(item):
            assert item.claim is not None
            raise AgentBusy(f"#{number} is being worked on by node {item.claim.node[:16]}…")
        if item.stage.name not in (StageName.BACKLOG, *AGENT_STAGE):
            raise AgentError(
                f"#{number} is in {item.stage.name.value}; agents work on items in backlog, "
                "coding, qa or merge"
            )
        if agent is not None:
            self._agent_for_stage(agent, item)
        # While this start writes, auto-assign must not give the item to another agent.
        self._deciding.add(item.id)
        try:
            if agent is not None and item.agent != agent:
                item = await self._board.set_agent(number, agent)
            if item.stage.name is StageName.BACKLOG:
                item = await self._board.apply(number, Start())
            self._held.discard(item.id)
            self._state.pop(item.id, None)
            self._done_in.pop(item.id, None)
            self._resume_at.pop(item.id, None)
            self._attempts.pop((item.id, item.stage.name), None)
            async with self._lock:
                run = self._reserve(item, self._pick(item))
        finally:
            self._deciding.discard(item.id)
        if run is None:
            self.poke()
            return None
        await self._launch(run, item)
        return run

    async def stop(self, number: int) -> RunEnd:
        """Stop item `number`'s agent (its whole process group) and hold the item on this
        node until it is started again."""
        item = self._board.get(number)
        run = self._active.get(item.id)
        if run is None or run.process is None:
            raise NotRunning(f"#{number} has no agent running")
        self._held.add(item.id)
        end = await run.process.stop(Outcome.STOPPED, "stopped by request")
        await run.finished.wait()
        return end

    async def assign(self, number: int, agent: str) -> WorkItem:
        """Make `agent` the item's preferred agent (from its next run)."""
        self._board.get(number)  # an unknown item is named before an unknown agent
        self._agent_config(agent)
        return await self._board.set_agent(number, agent)

    def output(self, number: int, after: int = 0) -> dict[str, Any]:
        """The events of item `number`'s current run, or its last one, after seq `after`."""
        item = self._board.get(number)
        run = self._active.get(item.id) or next(
            (run for run in reversed(self._history) if run.item_id == item.id), None
        )
        if run is None:
            raise NoRun(f"#{number} has not had an agent run on this node yet")
        events = run.process.events if run.process else ()
        return {
            "run": run.to_json(),
            "log": str(self._log_path(run)),
            "events": [_stamped_json(s) for s in events if s.seq > after],
        }

    # ---- the loop ---------------------------------------------------------------------------

    def poke(self) -> None:
        self._passes.poke()

    async def run_forever(self, interval_s: float = 5.0) -> None:
        """Auto-assign: after every document change, every run's end, and every interval."""
        await self._passes.run_forever(interval_s)

    async def assign_pass(self) -> None:
        config = self._settings.config
        now = self._clock()
        for item_id, at in list(self._resume_at.items()):
            if at <= now:
                del self._resume_at[item_id]
                self._state.pop(item_id, None)
                self._done_in.pop(item_id, None)
        view = self._board.view()
        self._forget_left_stages(view)
        await self._stop_moved(view)
        await self._renew_claims(view)
        ready, waiting = ready_to_promote(view)
        for item in ready:
            with contextlib.suppress(StoryError):  # another node or person moved it first
                await self._board.apply(item.number, Start())
                log.info("#%s: its dependencies are finished; moved to coding", item.number)
        self._warn_missing(waiting)
        if ready:
            view = self._board.view()
        launches: list[tuple[Run, WorkItem]] = []
        async with self._lock:
            skip = set(self._active) | self._held | set(self._done_in) | self._deciding
            skip |= set(self._resume_at)  # rate limited, or could not start: not yet
            for item in wants_coder(view, skip):
                if self._coders_running() >= config.max_coders:
                    break
                if self._claimed_elsewhere(item):
                    continue
                run = self._reserve(item, self._pick(item))
                if run is not None:
                    launches.append((run, item))
            reviews = [
                item
                for item in view.items
                if item.stage.name is StageName.QA
                and item.id not in skip
                and not self._claimed_elsewhere(item)
            ]
            server_approvals = []
            for item in reviews:
                mode = self._review.mode(item) if self._review else QaMode.HUMAN
                if mode is QaMode.SERVER:
                    server_approvals.append(item)
                elif mode is QaMode.AGENT:
                    run = self._reserve(item, self._pick(item))
                    if run is not None:
                        launches.append((run, item))
        for item in server_approvals:
            await self._server_review(item)
        await asyncio.gather(*(self._launch(run, item) for run, item in launches))

    async def close(self) -> None:
        """Server shutdown: stop every run (whole groups) and wait for them."""
        self._closing = True
        runs = [run.process for run in self._active.values() if run.process and run.process.pid]
        await asyncio.gather(
            *(process.stop(Outcome.STOPPED, "the server shut down") for process in runs)
        )
        # Ends being recorded finish; a gate check still running is cancelled (its processes
        # are killed) and runs again after the restart, when the coder is re-queued.
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=CLOSE_GRACE_S)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- running one agent --------------------------------------------------------------

    def _pick(self, item: WorkItem) -> AgentConfig | None:
        stage = AGENT_STAGE.get(item.stage.name)
        names = [agent.name for agent in self._settings.agents.agents if agent.stage == stage]
        busy = {run.agent for run in self._active.values()}
        if stage == "coder" and self._coders_running() >= self._settings.config.max_coders:
            return None
        name = choose_agent(item, names, busy)
        return None if name is None else self._settings.agent(name)

    def _reserve(self, item: WorkItem, agent: AgentConfig | None, **kw: Any) -> Run | None:
        """Claim the item and agent for a run before any I/O, so no other pass takes them."""
        if agent is None or item.id in self._active:
            return None
        key = (item.id, item.stage.name)
        attempts = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempts
        run = Run(
            id=f"{self._clock()}-{secrets.token_hex(4)}",
            item_id=item.id,
            number=item.number,
            agent=agent.name,
            stage=item.stage.name,
            started_at=self._clock(),
            commit_only=kw.get("commit_only", False),
        )
        self._active[item.id] = run
        return run

    async def _launch(
        self, run: Run, item: WorkItem, directory: Path | None = None, task: str | None = None
    ) -> None:
        """Start `run` on `item` in its worktree (or in `directory`, with `task` as the whole
        prompt: a mergemaster in the merge workspace)."""
        agent = self._settings.agent(run.agent)
        assert agent is not None
        limit = self._settings.config.max_retries * 2 + 1
        if self._attempts.get((run.item_id, run.stage), 0) > limit:
            self._active.pop(run.item_id, None)
            await self._block(item, f"gave up after {limit} attempts in {run.stage.value}")
            return
        self._publish_state(run)
        claimed = False
        try:
            worktree = await self._worktrees.ensure(item.number, item.title)
            run.worktree = directory or worktree.path
            run.head_before = await Git(run.worktree).head()
            context = RunContext(
                story_id=item.id,
                number=item.number,
                title=item.title,
                worktree=run.worktree,
                branch=worktree.branch,
                base_branch=await self._worktrees.base(),
                server_url=self._server_url(),
                agent_token=run.token,
            )
            spec = launch_spec(
                agent,
                context,
                self._runs_dir / run.id,
                prompt=self._prompt(run, agent, context, task),
            )
            if self._closing:
                raise SpawnError("the server is shutting down")
            await self._claim(run.item_id)
            claimed = True
            run.process = AgentProcess(
                spec, self._log_path(run), self._on_event(run), ledger=self._ledger
            )
            await run.process.start()
        except Exception as exc:
            # Whatever failed, the run must not stay reserved: it would hold its agent (and a
            # coder slot) until the server restarts.
            if run.process is not None and run.process.running:
                await run.process.stop(Outcome.CRASHED, "its launch failed")
            await self._not_started(run, item, _launch_problem(exc, item), claimed=claimed)
            return
        run.state = ExecutionState.RUNNING
        self._publish_state(run)
        log.info("#%s: %s running (pid %s)", item.number, run.agent, run.process.pid)
        self._spawn_task(self._supervise(run), f"agent #{item.number}")

    async def _not_started(self, run: Run, item: WorkItem, problem: str, *, claimed: bool) -> None:
        """The agent could not even start (its program is missing, git refused the worktree):
        a problem of this machine, not of the item, so it costs no retry. What the launch
        reserved is released (the run, and the item's claim when it was made); auto-assign
        tries again after a pause, and a person's `start` at once."""
        log.warning("#%s: %s could not start: %s", item.number, run.agent, problem)
        # All of it before the first await: a pass that ran between would start it again.
        self._active.pop(run.item_id, None)
        self._attempts[(run.item_id, run.stage)] -= 1
        run.end = RunEnd(Outcome.CRASHED, None, f"could not start: {problem}", None, None)
        run.ended_at = self._clock()
        run.state = ExecutionState.IDLE
        self._history.append(run)
        self._resume_at[item.id] = run.ended_at + LAUNCH_RETRY_S * 1000
        run.finished.set()
        self._publish_state(run)
        self._notify("agent_not_started", run, run.end.message)
        if claimed:
            try:
                await self._board.set_claim(run.item_id, None)
            except (StoryError, PersistError) as exc:  # it expires by itself
                log.warning("#%s: could not release its claim: %s", item.number, exc)

    async def _supervise(self, run: Run) -> None:
        assert run.process is not None
        run.end = await run.process.wait()
        try:
            await self._finish(run)
        except Exception:
            log.exception("#%s: recording the end of %s failed", run.number, run.id)

    async def _finish(self, run: Run) -> None:
        end = run.end
        assert end is not None
        run.ended_at = self._clock()
        # Until the end is decided, auto-assign must not see an item without an agent.
        self._deciding.add(run.item_id)
        self._active.pop(run.item_id, None)
        self._history.append(run)
        try:
            await self._record_usage(run, end)
            await self._board.set_claim(run.item_id, None)
            item = self._board.view().by_id(run.item_id)
            run.state = await self._decide(run, end, item) if item else ExecutionState.IDLE
            self._state.pop(run.item_id, None)
            self._done_in.pop(run.item_id, None)
            if run.state in (ExecutionState.COMPLETED, ExecutionState.RATE_LIMITED):
                self._state[run.item_id] = (run.stage, run.state)
                self._done_in[run.item_id] = run.stage
        finally:
            self._deciding.discard(run.item_id)
            run.finished.set()
        self._publish_state(run)
        self.poke()

    def _forget_left_stages(self, view: ItemsView) -> None:
        """Forget the done work of items that have left its stage: when one comes back (a
        person moves it back to coding, say), it is work to do again."""
        for item_id, stage in list(self._done_in.items()):
            current = view.by_id(item_id)
            if current is None or current.stage.name is not stage:
                del self._done_in[item_id]

    async def _decide(self, run: Run, end: RunEnd, item: WorkItem) -> ExecutionState:
        """What the end of `run` means for `item`; see the module docstring."""
        if end.outcome is Outcome.STOPPED:
            return ExecutionState.IDLE
        if end.outcome is Outcome.RATE_LIMITED:
            self._resume_at[item.id] = _resume_time(end.rate_limit, self._clock())
            self._notify("rate_limited", run, f"resumes at {self._resume_at[item.id]}")
            self.poke()
            return ExecutionState.RATE_LIMITED
        if item.stage.name is not run.stage or run.stage is StageName.MERGE:
            # Moved meanwhile: nothing to decide here. A mergemaster's end is the merge
            # queue's to judge (it waits for the run).
            return ExecutionState.IDLE
        if run.stage is StageName.QA:
            await self._agent_review(run, end, item)
            return ExecutionState.IDLE
        committed, dirty = await self._work_done(run)
        if committed and end.outcome is Outcome.COMPLETED:
            self._notify("agent_completed", run, end.message)
            return await self._check_gates(run, item)
        key = (item.id, run.stage)
        if dirty and not committed and key not in self._commit_only_used:
            self._commit_only_used.add(key)
            async with self._lock:
                respawn = self._reserve(item, self._settings.agent(run.agent), commit_only=True)
            if respawn is not None:
                self._spawn_task(self._launch(respawn, item), f"commit-only #{item.number}")
            return ExecutionState.PENDING
        reason = end.message if end.outcome is not Outcome.COMPLETED else "nothing was committed"
        reason = f"{run.agent} run {run.id}: {reason}"
        if item.retries + 1 >= self._settings.config.max_retries:
            await self._block(item, f"{item.retries + 1} failed attempts; last: {reason}")
        else:
            with contextlib.suppress(StoryError):
                await self._board.apply(item.number, AttemptFailed(reason))
            self._notify("attempt_failed", run, reason)
        return ExecutionState.IDLE

    async def _check_gates(self, run: Run, item: WorkItem) -> ExecutionState:
        """The server's own check of a coder's work: pass → qa, fail → back to the coder
        with the gates' output, counted as a retry."""
        if self._gates is None or run.worktree is None:
            return ExecutionState.COMPLETED
        passed, summary = await self._gates(item, run.worktree, "worktree")
        current = self._board.view().by_id(item.id)
        if current is None or current.stage.name is not StageName.CODING:
            return ExecutionState.IDLE
        if passed:
            with contextlib.suppress(StoryError):
                await self._board.apply(current.number, GatesPassed())
            return ExecutionState.COMPLETED
        self._feedback[item.id] = f"The quality gates failed on your last attempt:\n{summary}"
        if current.retries + 1 >= self._settings.config.max_retries:
            await self._block(current, f"the gates failed {current.retries + 1} times: {summary}")
        else:
            with contextlib.suppress(StoryError):
                await self._board.apply(current.number, GatesFailed(summary))
            self._notify("gates_failed", run, summary)
        return ExecutionState.IDLE

    async def _server_review(self, item: WorkItem) -> None:
        """QA mode "server": the gates are the review. Approval can still be refused (nothing
        to merge), which sends the item back to its coder."""
        assert self._review is not None
        try:
            await self._review.approve(item.number)
        except StoryError as refused:
            with contextlib.suppress(StoryError):
                await self._review.reject(item.number, str(refused))

    async def _agent_review(self, run: Run, end: RunEnd, item: WorkItem) -> None:
        """A QA agent approves by finishing cleanly and rejects by failing; its last words
        are the reason."""
        if self._review is None:
            return
        try:
            if end.outcome is Outcome.COMPLETED:
                await self._review.approve(item.number)
                return
            events = run.process.events if run.process else ()
            said = [s.event.text for s in events if isinstance(s.event, Text) and s.event.text]
            await self._review.reject(item.number, said[-1] if said else end.message)
        except StoryError as refused:
            with contextlib.suppress(StoryError):
                await self._review.reject(item.number, str(refused))

    def remember_feedback(self, item: WorkItem, text: str) -> None:
        """What the item's next coder should be told (a rejection, failed gates). The item goes
        back to coding: its last coder run on this node no longer stands for that work."""
        self._feedback[item.id] = text
        self._done_in.pop(item.id, None)

    async def run_mergemaster(self, item: WorkItem, directory: Path, task: str) -> bool:
        """Run the first free mergemaster agent on `item` in `directory` with `task` as its
        prompt, and wait for it. True if it finished cleanly (the merge queue then checks its
        work itself); False if it failed or there is no mergemaster to run."""
        async with self._lock:
            run = self._reserve(item, self._pick(item))
        if run is None:
            return False
        await self._launch(run, item, directory, task)
        await run.finished.wait()
        return run.end is not None and run.end.outcome is Outcome.COMPLETED

    def _prompt(
        self, run: Run, agent: AgentConfig, context: RunContext, task: str | None
    ) -> str | None:
        """The run's prompt: `task` if given, the commit-only request for a respawn, else the
        agent's own prompt (None: launch_spec fills it) plus any feedback for this item."""
        if task is not None:
            return task
        if run.commit_only:
            return COMMIT_ONLY_PROMPT.format_map(context.placeholders())
        feedback = self._feedback.get(run.item_id)
        if feedback is None or run.stage is not StageName.CODING:
            return None
        return f"{fill(agent.prompt, context)}\n\n{feedback}"

    async def _work_done(self, run: Run) -> tuple[bool, bool]:
        """(new commits since the run started, uncommitted changes) in the run's worktree."""
        if run.worktree is None or run.head_before is None:
            return False, False
        git = Git(run.worktree)
        try:
            return await git.head() != run.head_before, await git.is_dirty()
        except GitError as exc:
            log.warning("#%s: cannot inspect %s: %s", run.number, run.worktree, exc)
            return False, False

    async def _block(self, item: WorkItem, reason: str) -> None:
        with contextlib.suppress(StoryError):
            await self._board.apply(item.number, Block(self._clock(), reason))
        if self._notifier is not None:
            self._notifier("blocked", blocked_message(item.number, reason), item.number)
        log.warning("#%s blocked: %s", item.number, reason)

    async def _record_usage(self, run: Run, end: RunEnd) -> None:
        result = end.result
        usage = result.usage if result else None
        record = UsageRecord(
            run=run.id,
            item_id=run.item_id,
            number=run.number,
            agent=run.agent,
            outcome=end.outcome.value,
            cost_usd=result.cost_usd if result else None,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            cache_read_input_tokens=usage.cache_read_input_tokens if usage else 0,
            cache_creation_input_tokens=usage.cache_creation_input_tokens if usage else 0,
            turns=result.turns if result else None,
            started_at=run.started_at,
            ended_at=run.ended_at or self._clock(),
        )
        tx = self._replica.transaction()
        record_usage(tx, record)
        await self._replica.change(tx)

    async def _stop_moved(self, view: ItemsView) -> None:
        """Stop runs whose item left the stage they were working on (or was purged)."""
        for run in list(self._active.values()):
            item = view.by_id(run.item_id)
            if run.process is None or not run.process.running:
                continue
            if item is None or item.stage.name is not run.stage:
                where = "was purged" if item is None else f"moved to {item.stage.name.value}"
                self._spawn_task(
                    run.process.stop(Outcome.STOPPED, f"the item {where}"), f"stop #{run.number}"
                )

    # ---- helpers ----------------------------------------------------------------------------

    def _claimed_elsewhere(self, item: WorkItem) -> bool:
        claim = item.claim
        return (
            claim is not None
            and claim.node != self._replica.node_id
            and claim.expires_at > self._clock()
        )

    async def _claim(self, item_id: str) -> None:
        claim = Claim(self._replica.node_id, self._clock() + CLAIM_TTL_S * 1000)
        await self._board.set_claim(item_id, claim)

    async def _renew_claims(self, view: ItemsView) -> None:
        renew_before = self._clock() + CLAIM_TTL_S * 500
        for run in list(self._active.values()):
            item = view.by_id(run.item_id)
            if item is None or run.state is not ExecutionState.RUNNING:
                continue
            if item.claim is None or item.claim.expires_at < renew_before:
                await self._claim(run.item_id)

    def _coders_running(self) -> int:
        return sum(1 for run in self._active.values() if run.stage is StageName.CODING)

    def _agent_config(self, name: str) -> AgentConfig:
        agent = self._settings.agent(name)
        if agent is None:
            known = ", ".join(a.name for a in self._settings.agents.agents) or "none"
            raise NoSuchAgent(f"there is no agent {name!r} in agents.toml (agents: {known})")
        return agent

    def _agent_for_stage(self, name: str, item: WorkItem) -> AgentConfig:
        agent = self._agent_config(name)
        stage = AGENT_STAGE.get(item.stage.name, "coder")
        if agent.stage != stage:
            raise WrongStage(
                f"{name} is a {agent.stage} agent; #{item.number} needs a {stage} agent"
            )
        return agent

    def _log_path(self, run: Run) -> Path:
        return self._runs_dir / f"{run.id}.log"

    def _on_event(self, run: Run) -> Callable[[Stamped], None]:
        def publish(stamped: Stamped) -> None:
            self._hub.publish(
                "agent_output",
                {"run": run.id, "number": run.number, "agent": run.agent, **_stamped_json(stamped)},
            )
            if isinstance(stamped.event, RateLimit):
                run.state = ExecutionState.RATE_LIMITED
                self._publish_state(run)

        return publish

    def _publish_state(self, run: Run) -> None:
        self._hub.publish("agent_state", run.to_json())

    def _notify(self, kind: str, run: Run, message: str) -> None:
        if self._notifier is not None:
            self._notifier(kind, f"#{run.number} {run.agent}: {message}", run.number)

    def _warn_missing(self, waiting: list[Waiting]) -> None:
        for entry in waiting:
            key = (entry.item.id, entry.missing)
            if entry.missing and key not in self._warned:
                self._warned.add(key)
                log.warning(
                    "#%s depends on %s, which is not on the board; it stays in the backlog",
                    entry.item.number,
                    ", ".join(f"#{n}" for n in entry.missing),
                )

    def _next_wake(self, interval_s: float) -> float:
        if not self._resume_at:
            return interval_s
        soonest = (min(self._resume_at.values()) - self._clock()) / 1000
        return max(0.0, min(interval_s, soonest))

    def _spawn_task(self, work: Any, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _resume_time(limit: RateLimit | None, now: int) -> int:
    """When a rate-limited run resumes: at the reset the runtime named, or after a default
    wait when it named none. A reset already past (the run was slow to end) resumes soon, not
    after the default wait, but never at once: with a clock ahead of ours that would restart
    the agent against the limit again and again."""
    if limit is not None and limit.resets_at is not None:
        return max(limit.resets_at, now + RATE_LIMIT_MIN_WAIT_S * 1000)
    return now + DEFAULT_RATE_LIMIT_WAIT_S * 1000


def _stamped_json(stamped: Stamped) -> dict[str, Any]:
    return {"seq": stamped.seq, "at": stamped.at_ms, "event": event_to_json(stamped.event)}


def _launch_problem(exc: Exception, item: WorkItem) -> str:
    """What to tell people about a failed launch; an unexpected failure is logged whole."""
    if isinstance(exc, _EXPECTED_LAUNCH_FAILURES):
        return str(exc)
    log.error("#%s: launching its agent failed", item.number, exc_info=exc)
    return f"{type(exc).__name__}: {exc} (a fault in huskies; its log has the details)"
