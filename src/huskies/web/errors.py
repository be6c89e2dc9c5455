"""Every error the API returns has one JSON shape: `{"error": {"message", "field"}}`.

`field` names the part of the request at fault (`body.title`, `query.stage`, `path.number`), or
is null. Handlers here turn FastAPI's and Starlette's own errors (validation, unknown routes,
wrong methods) and the services' errors into that shape, with the status chosen by the error's
type, never by its text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from huskies.services.agents import AgentBusy, AgentError, NoRun, NoSuchAgent
from huskies.services.merge import NoMergemaster
from huskies.services.permissions import UnknownRequest
from huskies.services.stories import BadField, IllegalMove, StoryError, UnknownItem
from huskies.store import PersistError

log = logging.getLogger("huskies.web")


class ErrorDetail(BaseModel):
    message: str
    field: str | None


class ErrorBody(BaseModel):
    error: ErrorDetail


def _documented(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# For the OpenAPI schema: what each error status means on this API.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented("Malformed JSON, or a bad value; `field` names it"),
    401: _documented("The access token is missing or wrong"),
    403: _documented("A change or websocket from a web page of another origin"),
    404: _documented(
        "No such item (or no agent run, or permission request, for it; or an item named by "
        "a field, which `field` names)"
    ),
    409: _documented(
        "The pipeline does not allow this move, the agent is busy, or none runs, or it is "
        "not for the item's stage"
    ),
    415: _documented("A body that is not sent as application/json"),
    421: _documented("A Host that is not one of this server's names"),
    503: _documented("The change could not be stored, so nothing changed"),
}


GUARD_STATUSES = (401, 403, 415, 421)
"""What the guard in front of every route may answer (see `huskies.web.guard`)."""


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of a router whose routes may answer `statuses` themselves."""
    return {status: ERROR_RESPONSES[status] for status in (*GUARD_STATUSES, *statuses)}


def error_response(
    status: int,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "field": field}}, status_code=status, headers=headers
    )


def install(app: FastAPI, routes: Iterable[BaseRoute]) -> None:
    """Answer every error in the one shape; `routes` are the API's (for 405's Allow)."""
    app.state.api_routes = list(routes)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(StoryError, _story)
    app.add_exception_handler(AgentError, _agent)
    app.add_exception_handler(PersistError, _persist)
    app.add_exception_handler(UnknownRequest, _not_found)
    app.add_exception_handler(NoMergemaster, _conflict)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [_problem(error) for error in exc.errors()]
    return error_response(400, "; ".join(text for _, text in problems), problems[0][0])


def _problem(error: Mapping[str, Any]) -> tuple[str | None, str]:
    """(field, "field: what is wrong") for one pydantic error."""
    kind, loc = error["type"], tuple(error["loc"])
    if kind == "json_invalid":
        reason = error.get("ctx", {}).get("error", "")
        return None, f"the request body is not valid JSON ({reason})"
    if loc == ("body",) and kind == "missing":
        return "body", "the request needs a JSON body"
    field = ".".join(str(part) for part in loc)
    if kind == "value_error":  # our own validators' messages, without pydantic's prefix
        return field, f"{field}: {error['ctx']['error']}"
    text = f"{field}: {error['msg']}"
    value = error.get("input")
    if kind not in ("missing", "extra_forbidden") and _scalar(value):
        text += f", got {json.dumps(value)}"
    return field, text


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        message = f"there is nothing at {where}; the API is described at /openapi.json"
    elif exc.status_code == 405:
        # Starlette names only the first route with the path, and FastAPI makes one route
        # per method: ask them all.
        routes: list[BaseRoute] = request.app.state.api_routes
        allowed = ", ".join(
            sorted(
                method
                for route in routes
                if isinstance(route, Route) and route.path_regex.match(request.url.path)
                for method in route.methods or ()
            )
        )
        message = f"{where} is not allowed; {request.url.path} allows {allowed}"
        return error_response(405, message, headers={"Allow": allowed})
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, headers=exc.headers)


async def _story(request: Request, exc: Exception) -> Response:
    match exc:
        case UnknownItem(field=field):
            return error_response(404, str(exc), None if field is None else f"body.{field}")
        case IllegalMove():
            return error_response(409, str(exc))
        case BadField(field=field):
            return error_response(400, str(exc), f"body.{field}")
    return error_response(400, str(exc))


async def _agent(request: Request, exc: Exception) -> Response:
    match exc:
        case NoSuchAgent():
            return error_response(400, str(exc), "body.agent")
        case NoRun():
            return error_response(404, str(exc))
        case AgentBusy():
            return error_response(409, str(exc))
    return error_response(409, str(exc))


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, str(exc))


async def _conflict(request: Request, exc: Exception) -> Response:
    return error_response(409, str(exc))


async def _persist(request: Request, exc: Exception) -> Response:
    log.error("could not store a change for %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, f"the change could not be stored, so nothing changed: {exc}")
