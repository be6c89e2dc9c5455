"""What every tool works with: the server's services, who is calling, and how a failure
becomes a tool error."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from huskies.gitops import GitError
from huskies.mcp.binding import Caller, Refused, bearer, identify
from huskies.mcp.test_runs import TestRuns
from huskies.mcp.todos import NoSuchTodo
from huskies.services.agents import AgentError, Agents
from huskies.services.merge import MergeQueue, NoMergemaster
from huskies.services.permissions import Permissions
from huskies.services.review import Review
from huskies.services.stories import BadField, StoryError, UnknownDependency
from huskies.services.timers import Timers
from huskies.services.worktrees import WorktreeError, Worktrees
from huskies.web.services import Services

P = ParamSpec("P")
T = TypeVar("T")

EXPECTED = (StoryError, AgentError, Refused, NoSuchTodo, WorktreeError, GitError, NoMergemaster)
"""Failures a tool reports to its caller as they are (their messages say what to do)."""


@dataclass(frozen=True)
class Scope:
    services: Services
    access_token: str | None
    tests: TestRuns

    def caller(self, ctx: Context) -> Caller:
        found = identify(bearer(ctx.headers), self.access_token, self.services.agents)
        if found is None:
            raise ToolError("this token is not valid here (the agent's run has ended?)")
        return found

    def agents(self) -> Agents:
        return _present(self.services.agents, "agents")

    def review(self) -> Review:
        return _present(self.services.review, "review")

    def timers(self) -> Timers:
        return _present(self.services.timers, "timers")

    def merge(self) -> MergeQueue:
        return _present(self.services.merge, "merge queue")

    def permissions(self) -> Permissions:
        return _present(self.services.permissions, "permissions")

    def worktrees(self) -> Worktrees:
        return _present(self.services.worktrees, "worktrees")

    async def directory(self, caller: Caller, number: int | None) -> Path:
        """Where worktree tools work: the caller's own worktree, else item `number`'s, else
        (a person naming no item) the project's checkout."""
        board = self.services.board
        if number is not None:
            caller.check_item(board, number)
        if caller.worktree is not None:
            return caller.worktree
        if caller.bound:
            raise ToolError("this agent's run has no worktree")
        if number is None:
            return self.services.project.root
        board.get(number)
        found = await self.worktrees().find(number)
        if found is None:
            raise ToolError(f"#{number} has no worktree yet (one is made when an agent starts)")
        return found.path


def _present(service: T | None, name: str) -> T:
    if service is None:
        raise ToolError(f"this server runs without its {name} service")
    return service


def dumps(value: Any) -> str:
    """A tool's answer: compact JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def reported(
    tool: Callable[P, Awaitable[str]],
) -> Callable[P, Awaitable[str]]:
    """The tool, with the services' refusals turned into tool errors that name the field."""

    @functools.wraps(tool)
    async def call(*args: P.args, **kwargs: P.kwargs) -> str:
        try:
            return await tool(*args, **kwargs)
        except (BadField, UnknownDependency) as exc:
            raise ToolError(f"{exc.field}: {exc}") from exc
        except EXPECTED as exc:
            raise ToolError(str(exc)) from exc

    return call
