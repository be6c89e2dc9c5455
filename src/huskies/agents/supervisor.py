"""One agent run as an operating-system process group, watched from start to end.

The agent runs in its own session (so its own process group) in the item's worktree. Its output
(stdout and stderr together, in the order written) is kept three ways: every line in a log file
for the run, the parsed events in a bounded buffer for people who look in later, and each event
handed to `on_event` as it happens for the live stream. Whatever ends the run (the agent's own
exit, a stop, silence past the inactivity timeout, a rate limit, server shutdown), nothing of the
group outlives it: stray children an agent left behind are killed too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from huskies.agents.events import AgentEvent, RateLimit, Result
from huskies.processes import GroupLedger, end_group, exit_status, leader_exited
from huskies.project import open_private, private_dir

log = logging.getLogger("huskies.agents")

BUFFER_EVENTS = 2000
"""Parsed events kept in memory per run; older ones are in the run's log file."""

KILL_GRACE_S = 3.0
"""How long a stopped group gets between SIGTERM and SIGKILL."""

LINE_LIMIT = 64 * 1024 * 1024
"""A single output line longer than this is cut (Claude Code can print large tool results)."""


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    CRASHED = "crashed"
    STOPPED = "stopped"
    TIMED_OUT = "timed_out"
    RATE_LIMITED = "rate_limited"


class SpawnError(Exception):
    """The agent's program could not be started; the message says which and why."""


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    parse: Callable[[str], list[AgentEvent]]
    inactivity_timeout_s: float


@dataclass(frozen=True, slots=True)
class RunEnd:
    outcome: Outcome
    exit_code: int | None
    """The process's exit status; negative: killed by that signal; None: it never started."""
    message: str
    result: Result | None
    rate_limit: RateLimit | None


@dataclass(slots=True)
class Stamped:
    seq: int
    at_ms: int
    event: AgentEvent


@dataclass(eq=False)
class AgentProcess:
    """One run of one agent. `start`, then `wait` for its end; `stop` ends it early."""

    spec: LaunchSpec
    log_path: Path
    on_event: Callable[[Stamped], None] = lambda _: None
    ledger: GroupLedger | None = None
    """Where the run's process group is recorded while it lives (see GroupLedger)."""
    events: deque[Stamped] = field(default_factory=lambda: deque(maxlen=BUFFER_EVENTS))
    pid: int | None = None
    _process: asyncio.subprocess.Process | None = None
    _ending: Outcome | None = None
    _ending_message: str = ""
    _result: Result | None = None
    _rate_limit: RateLimit | None = None
    _last_output: float = 0.0
    _waiting_on_people: int = 0
    _seq: int = 0
    _done: asyncio.Future[RunEnd] | None = None

    async def start(self) -> None:
        """Start the process. Raises SpawnError when it cannot be; once it runs, it is watched
        (so `stop` ends it) before anything else can fail."""
        private_dir(self.log_path.parent)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.spec.argv,
                cwd=self.spec.cwd,
                env=dict(self.spec.env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group, which a stop kills whole
                limit=LINE_LIMIT,
            )
        except (OSError, ValueError) as exc:  # ValueError: a NUL in an argument or variable
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise SpawnError(f"cannot start {self.spec.argv[0]!r}: {reason}") from None
        self.pid = self._process.pid
        self._last_output = time.monotonic()
        self._done = asyncio.get_running_loop().create_future()
        asyncio.create_task(self._watch(), name=f"agent pid {self.pid}")  # noqa: RUF006
        if self.ledger is not None:
            self.ledger.add(self.pid)

    @property
    def running(self) -> bool:
        return self._done is not None and not self._done.done()

    async def wait(self) -> RunEnd:
        assert self._done is not None, "start the run first"
        return await asyncio.shield(self._done)

    async def stop(self, outcome: Outcome = Outcome.STOPPED, message: str = "") -> RunEnd:
        """End the run (whole group) and wait for it; a run already ended keeps its outcome."""
        if self.running and self._ending is None:
            self._ending, self._ending_message = outcome, message
            self._signal_group(signal.SIGTERM)
        return await self.wait()

    @contextlib.contextmanager
    def waiting_on_a_person(self) -> Iterator[None]:
        """While the agent waits for a person (a permission prompt), its silence is not
        inactivity; the inactivity clock starts again when the wait ends."""
        self._waiting_on_people += 1
        try:
            yield
        finally:
            self._waiting_on_people -= 1
            self._last_output = time.monotonic()

    async def _watch(self) -> None:
        assert self._process is not None
        assert self._done is not None
        watchdog = asyncio.create_task(self._watchdog(), name=f"agent watchdog {self.pid}")
        try:
            with open_private(self.log_path, append=True) as log_file:
                reader = asyncio.create_task(self._read(log_file))
                await leader_exited(self._process.pid)
                # Children left in the group may hold the output pipe open: end them, then
                # read what is left. One that escaped the group is not waited for.
                await end_group(self._process.pid, KILL_GRACE_S)
                if self.ledger is not None:
                    self.ledger.remove(self._process.pid)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(KILL_GRACE_S):
                        await asyncio.shield(reader)
                reader.cancel()
            self._done.set_result(self._end(await exit_status(self._process)))
        except BaseException as exc:  # never leave a waiter hanging, even on cancellation
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
            if not self._done.done():
                self._done.set_result(
                    RunEnd(Outcome.CRASHED, None, f"supervision failed: {exc!r}", None, None)
                )
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.exception("supervising pid %s failed", self.pid)
        finally:
            watchdog.cancel()

    async def _read(self, log_file: BinaryIO) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        write = log_file.write
        stdout = self._process.stdout
        while True:
            try:
                raw = await stdout.readline()
            except ValueError:  # a line over LINE_LIMIT: take what is buffered, cut
                raw = await stdout.read(LINE_LIMIT) + b"\n"
            if not raw:
                return
            self._last_output = time.monotonic()
            write(raw)
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            for event in self.spec.parse(line):
                self._publish(event)

    def _publish(self, event: AgentEvent) -> None:
        self._seq += 1
        stamped = Stamped(self._seq, int(time.time() * 1000), event)
        self.events.append(stamped)
        if isinstance(event, Result):
            self._result = event
        elif isinstance(event, RateLimit) and self._ending is None:
            # A hard limit: the agent cannot make progress until the reset, so end the run
            # now and resume it then, rather than let it retry against the limit.
            self._rate_limit = event
            self._ending, self._ending_message = Outcome.RATE_LIMITED, event.message
            self._signal_group(signal.SIGTERM)
        try:
            self.on_event(stamped)
        except Exception:
            log.exception("a listener of pid %s failed", self.pid)

    async def _watchdog(self) -> None:
        timeout = self.spec.inactivity_timeout_s
        while True:
            silent = 0.0 if self._waiting_on_people else time.monotonic() - self._last_output
            if silent >= timeout:
                if self._ending is None:
                    self._ending = Outcome.TIMED_OUT
                    self._ending_message = f"no output for {timeout:g} s"
                    self._signal_group(signal.SIGTERM)
                return
            await asyncio.sleep(timeout - silent)

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.pid is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)
        if sig is signal.SIGTERM and self._ending is not None:
            asyncio.get_running_loop().call_later(KILL_GRACE_S, self._force_kill)

    def _force_kill(self) -> None:
        if self.running and self.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)

    def _end(self, code: int) -> RunEnd:
        result, limit = self._result, self._rate_limit
        if self._ending is not None:
            message = self._ending_message or self._ending.value.replace("_", " ")
            return RunEnd(self._ending, code, message, result, limit)
        if result is not None and result.is_error:
            return RunEnd(
                Outcome.FAILED, code, result.text or "the agent reported an error", result, limit
            )
        if code != 0:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            return RunEnd(Outcome.CRASHED, code, f"the agent {how}", result, limit)
        return RunEnd(Outcome.COMPLETED, code, "the agent finished", result, limit)
