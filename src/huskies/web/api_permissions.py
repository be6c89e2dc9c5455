"""Permission requests waiting for a person: list them, and allow or deny one.

An agent's tool call that the `[[permission]]` rules say to ask about waits here (see
`huskies.services.permissions`); the board shows each as it arrives (`permission_request`
events) and answers it with the POST below.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from huskies.services.permissions import Permissions
from huskies.web.errors import ERROR_RESPONSES
from huskies.web.services import ServicesDep

router = APIRouter(prefix="/api/permissions", tags=["permissions"], responses=ERROR_RESPONSES)


class Request(BaseModel):
    id: str
    number: int | None = Field(description="the asking agent's item; null for a person's client")
    agent: str | None
    tool: str = Field(description="the call as people read it, e.g. Bash(git push)")
    input: dict[str, Any]
    asked_at: int
    expires_at: int = Field(description="when it is denied unanswered (ms since the epoch)")


class RequestList(BaseModel):
    requests: list[Request]


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["allow", "deny"]
    message: StrictStr = Field(default="", description="what a denied agent is told")


def _permissions(services: ServicesDep) -> Permissions:
    assert services.permissions is not None, "huskies serve always runs the permissions service"
    return services.permissions


@router.get("", response_model=RequestList)
async def pending(services: ServicesDep) -> dict[str, Any]:
    """The requests waiting for an answer, oldest first."""
    return {"requests": [request.to_json() for request in _permissions(services).pending()]}


@router.post("/{request_id}", response_model=Request)
async def answer(services: ServicesDep, request_id: str, answer: Answer) -> dict[str, Any]:
    """Allow or deny a waiting request; the agent's tool call goes on (or is refused) at once.
    404 when no such request waits (answered, timed out, or its agent ended)."""
    allow = answer.decision == "allow"
    return _permissions(services).answer(request_id, allow, answer.message).to_json()
