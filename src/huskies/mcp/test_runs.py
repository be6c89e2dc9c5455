"""Gate runs started through MCP: each is a task the caller may wait on for a while, and ask
about again later by its id. The endpoint owns them and cancels any still going when it stops
(cancelling a gate run ends its processes)."""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from huskies.pipeline.gates import GateReport

KEPT = 50
"""Finished runs remembered for `get_test_result`, newest kept."""


@dataclass(frozen=True, slots=True)
class TestRun:
    id: str
    item_id: str
    task: asyncio.Task[GateReport]


class TestRuns:
    def __init__(self) -> None:
        self._runs: OrderedDict[str, TestRun] = OrderedDict()

    def start(self, item_id: str, work: Coroutine[Any, Any, GateReport]) -> TestRun:
        run_id = secrets.token_hex(6)
        run = TestRun(run_id, item_id, asyncio.create_task(work, name=f"mcp gates {run_id}"))
        self._runs[run_id] = run
        self._forget_old()
        return run

    def get(self, run_id: str) -> TestRun | None:
        return self._runs.get(run_id)

    async def wait(self, run: TestRun, timeout_s: float) -> GateReport | None:
        """The run's report once it ends, or None if it is still going after `timeout_s`.
        Waiting never cancels the run."""
        if timeout_s > 0:
            await asyncio.wait({run.task}, timeout=timeout_s)
        if not run.task.done():
            return None
        return run.task.result()  # a run that failed raises here, for the caller to report

    async def close(self) -> None:
        going = [run.task for run in self._runs.values() if not run.task.done()]
        for task in going:
            task.cancel()
        await asyncio.gather(*going, return_exceptions=True)

    def _forget_old(self) -> None:
        finished = [key for key, run in self._runs.items() if run.task.done()]
        for key in finished[: max(0, len(finished) - KEPT)]:
            del self._runs[key]
