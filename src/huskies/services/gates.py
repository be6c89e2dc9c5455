"""The quality gates, run by huskies itself: it never takes an agent's word that tests pass.

For each `[[component]]` of project.toml, in file order, in its directory of the tree being
checked (an item's worktree, or the merge workspace): its `setup` commands, then each gate,
then its `teardown` commands, which run whenever setup started, even after a failure. A failing
setup command skips the rest of the setup and the component's gates, and fails the report; a
failing teardown is recorded but fails nothing. Every command runs as `/bin/sh -c COMMAND` with
stdin closed and stdout and stderr together, as the leader of its own process group: when it
ends or times out, the whole group is ended, so no process it started outlives the step.

The full output of every step goes to one log file per run; the report, with the end of each
step's output, goes into the replicated document, where every node and person can see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from huskies.config import ComponentConfig
from huskies.pipeline import WorkItem
from huskies.pipeline.gates import (
    TAIL_CHARS,
    WHERE,
    GateReport,
    GateResult,
    failures,
    outcome_text,
    output_tail,
    record_gate_report,
)
from huskies.processes import (
    KILL_GRACE_S,
    GroupLedger,
    end_group,
    exit_status,
    leader_exited,
    signal_group,
)
from huskies.project import open_private
from huskies.services.settings import Settings
from huskies.store import Replica

log = logging.getLogger("huskies.gates")

DRAIN_S = 2.0
"""Once a step's process group is gone, how long to wait for the rest of its output: only a
process that escaped the group (a daemon that made its own session) can still hold the pipe,
and it is not waited for longer."""

_CHUNK = 64 * 1024

# Bytes of output kept in memory per step: enough for TAIL_CHARS characters even if every one
# takes four bytes in UTF-8, plus a character cut in half at the start.
_TAIL_BYTES = 4 * TAIL_CHARS + 4


class Gates:
    """Runs the configured gates on a tree and records what they found."""

    def __init__(
        self,
        settings: Settings,
        replica: Replica,
        logs_dir: Path,
        clock: Callable[[], int],
        *,
        kill_grace_s: float = KILL_GRACE_S,
        ledger: GroupLedger | None = None,
    ) -> None:
        self._ledger = ledger
        self._settings = settings
        self._replica = replica
        self._logs_dir = logs_dir
        self._clock = clock
        self._kill_grace_s = kill_grace_s

    async def check(self, item: WorkItem, directory: Path, where: str) -> GateReport:
        """Run every component's gates in `directory` (the top level of the item's worktree,
        or of the merge workspace: `where` says which), record the report, and return it.
        Raises PersistError if the report could not be stored (its log is kept)."""
        if where not in WHERE:
            raise ValueError(f"where must be one of {', '.join(WHERE)}, got {where!r}")
        components = self._settings.config.components  # one configuration for the whole run
        started_at = self._clock()
        run = f"{started_at}-{secrets.token_hex(4)}"
        log_path = self._logs_dir / f"{run}.log"
        env = {
            **os.environ,
            "HUSKIES_GATE_DIR": str(directory),
            "HUSKIES_NUMBER": str(item.number),
            "HUSKIES_ITEM_ID": item.id,
        }
        results: list[GateResult] = []
        with open_private(log_path) as file:
            run_log = _Log(file)
            run_log.note(f"huskies gates, run {run}: #{item.number} in the {where} {directory}")
            if not components:
                run_log.note(
                    "no [[component]] is configured in .huskies/project.toml, so there is "
                    "nothing to check: the gates pass"
                )
            for component in components:
                results += await self._component(component, directory, env, run_log)
            passed = not failures(results)
            run_log.note(f"gates {'passed' if passed else 'failed'}")
        report = GateReport(
            run=run,
            item_id=item.id,
            number=item.number,
            where=where,
            started_at=started_at,
            ended_at=self._clock(),
            passed=passed,
            results=tuple(results),
            log=str(log_path),
        )
        tx = self._replica.transaction()
        record_gate_report(tx, report)
        await self._replica.change(tx)
        log.info(
            "#%s: gates %s in the %s (run %s)",
            item.number,
            "passed" if passed else "failed",
            where,
            run,
        )
        return report

    async def _component(
        self, component: ComponentConfig, top: Path, env: dict[str, str], run_log: _Log
    ) -> list[GateResult]:
        cwd = top / component.path
        if not cwd.is_dir():
            message = (
                f"the directory {cwd} of component {component.name!r} does not exist; check "
                f"its path ({component.path!r}) in .huskies/project.toml"
            )
            run_log.note(f"==> {component.name}: {message}")
            return [GateResult(component.name, "setup", "directory", "", None, False, 0, message)]

        def step(kind: str, name: str, command: str, timeout_s: int) -> _Step:
            return _Step(component.name, kind, name, command, timeout_s, cwd, env)

        results = []
        setup_passed = True
        for index, command in enumerate(component.setup, 1):
            result = await self._run(
                step("setup", f"setup {index}", command, component.setup_timeout_secs), run_log
            )
            results.append(result)
            if not result.passed:
                setup_passed = False
                run_log.note(f"{component.name}: setup failed, so its gates are skipped")
                break
        if setup_passed:
            for name, gate in component.gates.items():
                results.append(
                    await self._run(step("gate", name, gate.command, gate.timeout_secs), run_log)
                )
        for index, command in enumerate(component.teardown, 1):
            results.append(
                await self._run(
                    step("teardown", f"teardown {index}", command, component.setup_timeout_secs),
                    run_log,
                )
            )
        return results

    async def _run(self, step: _Step, run_log: _Log) -> GateResult:
        """One command, with its output in the log; what it did, as a result."""
        run_log.note(f"==> {step.component}/{step.name} in {step.cwd}: {step.command}")
        began = time.monotonic()
        try:
            exit_code, timed_out, tail = await self._execute(step, run_log)
        except OSError as exc:
            exit_code, timed_out, tail = None, False, f"could not start /bin/sh: {exc}"
            run_log.note(tail)
        result = GateResult(
            component=step.component,
            step=step.kind,
            name=step.name,
            command=step.command,
            exit_code=exit_code,
            timed_out=timed_out,
            duration_ms=int((time.monotonic() - began) * 1000),
            output_tail=tail,
        )
        ended = f"after {step.timeout_s} s" if timed_out else f"in {result.duration_ms} ms"
        run_log.note(f"<== {step.component}/{step.name}: {outcome_text(result)} {ended}")
        return result

    async def _execute(self, step: _Step, run_log: _Log) -> tuple[int | None, bool, str]:
        """(exit code, timed out, the end of the output). The output goes through a pipe of
        our own, not asyncio's, so that a process holding it open past the end can be left
        behind with the pipe closed on our side."""
        read_fd, write_fd = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                step.command,
                cwd=step.cwd,
                env=step.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,  # its own process group, which is ended whole
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        output = _Output(read_fd, run_log)
        if self._ledger is not None:
            self._ledger.add(process.pid)
        try:
            timed_out = False
            try:
                async with asyncio.timeout(step.timeout_s):
                    await leader_exited(process.pid)
            except TimeoutError:
                timed_out = True
            # Whatever it left running must not outlive the step (and may hold the pipe).
            await end_group(process.pid, self._kill_grace_s)
            if self._ledger is not None:
                self._ledger.remove(process.pid)
            await asyncio.wait([output.eof], timeout=DRAIN_S)
            # A leader that exited on its own has a status; one that was killed needs none.
            code = None if timed_out else await exit_status(process)
        except BaseException:  # cancelled (the server is stopping): leave nothing running
            signal_group(process.pid, signal.SIGKILL)
            raise
        finally:
            output.close()
        return code, timed_out, output.tail()


@dataclass(frozen=True, slots=True)
class _Step:
    """One command to run, and where and how."""

    component: str
    kind: str
    name: str
    command: str
    timeout_s: int
    cwd: Path
    env: dict[str, str]


class _Log:
    """The run's log file: the steps' output as it comes, and huskies' own lines between."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._line_start = True

    def output(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._line_start = chunk.endswith(b"\n")

    def note(self, line: str) -> None:
        """A line of huskies' own, on a line of its own even after output without a final
        newline; flushed, so the log can be followed while the gates run."""
        if not self._line_start:
            self._file.write(b"\n")
        self._file.write(f"{line}\n".encode())
        self._file.flush()
        self._line_start = True


class _Output:
    """A step's output pipe, read as it comes: every chunk to the log, the end kept in memory."""

    def __init__(self, fd: int, log: _Log) -> None:
        self._fd = fd
        self._log = log
        self._tail = bytearray()
        self._loop = asyncio.get_running_loop()
        self.eof: asyncio.Future[None] = self._loop.create_future()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            chunk = os.read(self._fd, _CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._loop.remove_reader(self._fd)
            if not self.eof.done():
                self.eof.set_result(None)
            return
        self._log.output(chunk)
        self._tail += chunk
        if len(self._tail) > _TAIL_BYTES:
            del self._tail[: len(self._tail) - _TAIL_BYTES]

    def tail(self) -> str:
        return output_tail(self._tail.decode("utf-8", errors="replace"))

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        with contextlib.suppress(OSError):
            os.close(self._fd)
