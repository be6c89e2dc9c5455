"""The ASGI app `huskies serve` runs: the JSON API, the live event stream, and `/crdt-sync`.

A router joins the app by being listed in ROUTERS; its routes reach the server's services
through a `ServicesDep` parameter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import Route

from huskies import __version__
from huskies.mcp.endpoint import PATH as MCP_PATH
from huskies.mcp.endpoint import McpEndpoint
from huskies.web import (
    api_agents,
    api_commands,
    api_costs,
    api_gates,
    api_history,
    api_items,
    api_markdown,
    api_nodes,
    api_permissions,
    api_review,
    api_state,
    api_timers,
    board,
    errors,
    events_ws,
)
from huskies.web.fields import AGENT_NAME, agent_name_schema, refer_to_agent_names
from huskies.web.guard import Guard
from huskies.web.services import Services
from huskies.web.sync_ws import PATH as SYNC_PATH
from huskies.web.sync_ws import sync_route

ROUTERS: tuple[APIRouter, ...] = (
    api_items.router,
    api_history.router,
    api_agents.router,
    api_gates.router,
    api_review.router,
    api_permissions.router,
    api_timers.router,
    api_state.router,
    api_nodes.router,
    api_costs.router,
    api_commands.router,
    api_markdown.router,
    events_ws.router,
)

DESCRIPTION = """\
Work items, configuration and state of one huskies node. Errors are
`{"error": {"message", "field"}}`. Requests that change something take JSON bodies only
(`Content-Type: application/json`) and, from a browser, only from this server's own origin. A
server listening beyond loopback requires `Authorization: Bearer <token>` (the token is in
`.huskies/access-token`). Live events: websocket `/api/events?kinds=item,item_removed`.
"""


def create_app(
    services: Services,
    *,
    names: Iterable[str],
    access_token: str | None = None,
    mcp: McpEndpoint | None = None,
) -> FastAPI:
    """The app over `services`, with the MCP endpoint at `/mcp` if given, answering to the
    host `names` only (see `huskies.web.guard`); with `access_token`, every route needs it but
    `/crdt-sync` and `/mcp` (which check their own callers) and the board's shell."""
    app = FastAPI(title="huskies", version=__version__, description=DESCRIPTION)
    app.state.services = services
    errors.install(app, [route for router in ROUTERS for route in router.routes])
    for router in ROUTERS:
        app.include_router(router)
    app.router.routes.append(sync_route(services.node))
    app.include_router(board.router)  # pages and assets, not API routes: not in ROUTERS
    if mcp is not None:
        app.router.routes.append(Route(MCP_PATH, mcp, name="mcp"))
    app.add_middleware(
        Guard,
        names=names,
        token=access_token,
        open_paths=(SYNC_PATH, MCP_PATH, *board.OPEN_PATHS),
        open_prefixes=board.OPEN_PREFIXES,
    )
    app.openapi = lambda: _schema(app)  # type: ignore[method-assign]
    return app


def _schema(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, without the 422 it lists for every route with parameters (this API
    answers a bad request with 400 and the error shape above), with the agents configured
    now as the `AgentName` component."""
    services: Services = app.state.services
    schema = _static_schema(app)
    components = schema.get("components", {})
    names = [agent.name for agent in services.settings.agents.agents]
    return {
        **schema,
        "components": {
            **components,
            "schemas": {**components.get("schemas", {}), AGENT_NAME: agent_name_schema(names)},
        },
    }


def _static_schema(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for operations in schema["paths"].values():
            for operation in operations.values():
                operation["responses"].pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = refer_to_agent_names(schema)
    return app.openapi_schema
