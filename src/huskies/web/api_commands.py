"""`POST /api/commands`: the text commands the CLI and chat take (`status`, `start 3`, `cost`
…), for the board's command line. One interpreter answers them all: `huskies.commands`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from huskies.commands import CommandError, run_command
from huskies.web.errors import ERROR_RESPONSES, error_response
from huskies.web.services import ServicesDep

router = APIRouter(prefix="/api", tags=["commands"], responses=ERROR_RESPONSES)

MAX_COMMAND = 10_000


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: StrictStr = Field(
        max_length=MAX_COMMAND,
        description="one command as a person types it; `help` lists them",
        examples=["status", "start 3", "reject 3 the login test is missing"],
    )


class CommandAnswer(BaseModel):
    output: str = Field(description="the answer, plain text for a monospace font")
    ok: bool = Field(description="true: a command that fails answers with an error instead")


@router.post("/commands", response_model=CommandAnswer)
async def command(services: ServicesDep, request: CommandRequest) -> Any:
    """Carry out one command and answer as the CLI would. A command that cannot be read (not a
    command, an argument missing or wrong) is a 400 naming `body.command`; one that is refused
    answers as its route would (404 no such item, 409 a move the pipeline refuses)."""
    try:
        answer = await run_command(services, request.command)
    except CommandError as exc:
        return error_response(400, str(exc), "body.command")
    return {"output": answer.text, "ok": True}
