"""Process groups: waiting for a group's leader to exit, and ending whatever it left behind.

Agents and quality gates run as the leaders of their own process groups (`start_new_session`),
so one signal to the group reaches every child they started. Both need the same three things:
to notice the leader's exit without waiting for its output pipe (which a child may hold open),
its exit status, and to end the rest of the group so nothing outlives the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

import psutil

from huskies.project import open_private

KILL_GRACE_S = 3.0
"""How long a group gets between SIGTERM and SIGKILL."""

_POLL_S = 0.05


async def leader_exited(pid: int) -> None:
    """Wait for process `pid` to end. Not `Process.wait()`: on Python 3.11 that also waits for
    the output pipe to close, which a child left running can hold open."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already gone
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await exited
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


async def exit_status(process: asyncio.subprocess.Process) -> int:
    """The exit status of a process that has exited: asyncio's child watcher learns it just
    after the exit, so this waits (briefly) for that."""
    while process.returncode is None:
        await asyncio.sleep(0.01)
    return process.returncode


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send `sig` to the group; a group that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process is still in the group."""
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getpgid(process.pid) == pgid:
                return True
    return False


async def end_group(pgid: int, grace_s: float = KILL_GRACE_S) -> None:
    """End every process of the group: SIGTERM, then SIGKILL what is left after `grace_s`.
    Returns once none is left alive (a process stuck in the kernel may take a moment to die
    after SIGKILL; that wait is bounded by the grace too)."""
    if not group_alive(pgid):
        return
    signal_group(pgid, signal.SIGTERM)
    if await _gone(pgid, grace_s):
        return
    signal_group(pgid, signal.SIGKILL)
    await _gone(pgid, grace_s)


async def _gone(pgid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while group_alive(pgid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_S)  # a group's end can only be polled for
    return True


class GroupLedger:
    """The process groups this server started and has not seen end, one small file each.

    Agents and gates run in sessions of their own, so they outlive a server killed with
    SIGKILL. The next start of the server reads the ledger and ends what the crashed one left
    running, before anything is re-run in the same worktree.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def add(self, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            started = psutil.Process(pid).create_time()
            with open_private(self._directory / f"{pid}.json") as record:
                record.write(json.dumps({"started": started}).encode())

    def remove(self, pid: int) -> None:
        (self._directory / f"{pid}.json").unlink(missing_ok=True)

    async def end_leftovers(self) -> list[int]:
        """End every recorded group still running; returns their ids."""
        ended = []
        for record in sorted(self._directory.glob("*.json")):
            pgid = int(record.stem)
            try:
                started = float(json.loads(record.read_text())["started"])
            except (OSError, ValueError, KeyError, TypeError):
                started = None  # unreadable: the group is still ended if it is there
            if _members(pgid, started):
                await end_group(pgid)
                ended.append(pgid)
            record.unlink(missing_ok=True)
        return ended


def _members(pgid: int, started: float | None) -> bool:
    """Whether group `pgid` still has live members started no earlier than its leader was
    (so a pid reused since by an unrelated process is left alone)."""
    for process in psutil.process_iter(["status", "create_time"]):
        with contextlib.suppress(psutil.Error, OSError):
            if process.info["status"] == psutil.STATUS_ZOMBIE or os.getpgid(process.pid) != pgid:
                continue
            if started is None or process.info["create_time"] >= started - 0.01:
                return True
    return False
