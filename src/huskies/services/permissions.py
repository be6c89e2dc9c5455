"""Permission requests: agents asking whether they may use a tool, and people answering.

The policy (`huskies.agents.permissions`) rules on each request. When it says "ask", the request
waits here for a person: it is published as a `permission_request` event (the board shows it),
listed by `pending()`, and answered with `answer()` (`POST /api/permissions/{id}`); with no
answer within `permission_timeout_secs` of agents.toml it is denied. Every request that waited
ends with a `permission_answered` event, so whoever shows it can take it down. Requests live on
the node whose agent asked; they are not replicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from huskies.agents.permissions import ToolCall, rule_on
from huskies.services.events import EventHub
from huskies.services.notifications import Notify
from huskies.services.settings import Settings

log = logging.getLogger("huskies.permissions")

PERMISSION_REQUEST = "permission_request"
PERMISSION_ANSWERED = "permission_answered"
PERMISSION_ASKED = "permission_asked"
"""The notification kind that tells people a request waits for them."""


class UnknownRequest(Exception):
    """No request with this id is waiting."""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    message: str
    by: str
    """"policy", "person" or "timeout"."""

    def for_claude(self, tool_input: Mapping[str, Any]) -> dict[str, Any]:
        """The answer Claude Code's permission prompt tool gives: allow with the input as it
        was, or deny with the reason."""
        if self.allowed:
            return {"behavior": "allow", "updatedInput": dict(tool_input)}
        return {"behavior": "deny", "message": self.message}


@dataclass(slots=True)
class PermissionRequest:
    id: str
    number: int | None
    agent: str | None
    tool: str
    """The call as people read it, e.g. `Bash(git push)`."""
    tool_input: Mapping[str, Any]
    asked_at: int
    expires_at: int
    answer: asyncio.Future[Verdict] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "agent": self.agent,
            "tool": self.tool,
            "input": dict(self.tool_input),
            "asked_at": self.asked_at,
            "expires_at": self.expires_at,
        }


class Permissions:
    def __init__(
        self,
        settings: Settings,
        hub: EventHub,
        clock: Callable[[], int],
        notify: Notify | None = None,
    ) -> None:
        self._settings = settings
        self._hub = hub
        self._clock = clock
        self._notify = notify
        self._waiting: dict[str, PermissionRequest] = {}

    async def decide(
        self,
        call: ToolCall,
        number: int | None,
        hold: AbstractContextManager[object] | None = None,
    ) -> Verdict:
        """The verdict on `call` (for item `number`); blocks while a person is asked. `hold`
        is entered while waiting (it keeps the agent's inactivity timeout from running)."""
        agents = self._settings.agents
        ruling = rule_on(agents.permissions, call)
        if ruling.decision != "ask":
            allowed = ruling.decision == "allow"
            log.info("%s %s: %s", "allowed" if allowed else "denied", ruling.shown, ruling.reason)
            return Verdict(allowed, ruling.reason, "policy")
        timeout_s = agents.permission_timeout_secs
        now = self._clock()
        request = PermissionRequest(
            id=secrets.token_hex(6),
            number=number,
            agent=call.agent,
            tool=ruling.shown,
            tool_input=call.tool_input,
            asked_at=now,
            expires_at=now + timeout_s * 1000,
            answer=asyncio.get_running_loop().create_future(),
        )
        self._waiting[request.id] = request
        self._hub.publish(PERMISSION_REQUEST, request.to_json())
        if self._notify is not None:
            who = call.agent or "a client"
            self._notify(
                PERMISSION_ASKED,
                f"{who} asks to use {ruling.shown}: allow or deny it on the board "
                f"(request {request.id}, denied in {timeout_s} s)",
                number,
            )
        verdict: Verdict | None = None
        try:
            with hold if hold is not None else contextlib.nullcontext():
                async with asyncio.timeout(timeout_s):
                    verdict = await request.answer
        except TimeoutError:
            verdict = Verdict(False, f"no one answered within {timeout_s} s", "timeout")
        finally:
            del self._waiting[request.id]
            # None: the asking call was cancelled (its agent ended) before an answer came.
            self._hub.publish(
                PERMISSION_ANSWERED,
                {
                    "id": request.id,
                    "decision": "allow" if verdict is not None and verdict.allowed else "deny",
                    "by": "withdrawn" if verdict is None else verdict.by,
                },
            )
        log.info(
            "%s %s: %s", "allowed" if verdict.allowed else "denied", ruling.shown, verdict.message
        )
        return verdict

    def pending(self) -> list[PermissionRequest]:
        """The requests waiting for a person, oldest first."""
        return sorted(self._waiting.values(), key=lambda request: request.asked_at)

    def answer(self, request_id: str, allow: bool, message: str = "") -> PermissionRequest:
        """Answer a waiting request; `message` is what a denied agent is told."""
        request = self._waiting.get(request_id)
        if request is None or request.answer.done():
            raise UnknownRequest(
                f"no permission request {request_id!r} is waiting (answered already, timed "
                "out, or its agent ended); GET /api/permissions lists those that are"
            )
        said = message or ("allowed by a person" if allow else "denied by a person")
        request.answer.set_result(Verdict(allow, said, "person"))
        return request
