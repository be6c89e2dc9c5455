"""The server as a whole: its configuration (and reloading it), its state, its health."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.responses import Response

from huskies.config import AgentConfig, ConfigError, ProjectConfig
from huskies.render import state_json, state_summary
from huskies.services.settings import Settings
from huskies.store.replica import wall_clock_ms
from huskies.web.errors import ErrorBody, documented, error_response
from huskies.web.services import ServicesDep

router = APIRouter(tags=["server"], responses=documented())


class Config(BaseModel):
    project: ProjectConfig
    agents: list[AgentConfig]


def _config(settings: Settings) -> dict[str, Any]:
    return {"project": settings.config, "agents": list(settings.agents.agents)}


@router.get("/api/config", response_model=Config)
async def get_config(services: ServicesDep) -> dict[str, Any]:
    """The configuration in force: project.toml and agents.toml."""
    return _config(services.settings)


@router.post(
    "/api/config/reload",
    response_model=Config,
    responses={409: {"model": ErrorBody, "description": "A file is invalid; nothing changed"}},
)
async def reload_config(services: ServicesDep) -> Any:
    """Read project.toml and agents.toml again; both must be valid, or neither is taken."""
    try:
        services.settings.reload()
    except ConfigError as exc:
        return error_response(409, f"{exc}\nThe configuration in force is unchanged.")
    return _config(services.settings)


@router.get("/api/state", response_model=dict[str, Any])
async def get_state(services: ServicesDep) -> Response:
    """The whole replicated document and the change log's statistics (as `huskies state
    dump` prints them), for debugging."""
    stats = await services.replica.stats()
    zone = ZoneInfo(services.settings.config.timezone)
    summary = state_summary(services.replica.document, stats, wall_clock_ms(), zone)
    return Response(state_json(summary, indent=None), media_type="application/json")


@router.get("/api/health", response_model=dict[str, Any])
@router.get("/health", include_in_schema=False)
async def health(services: ServicesDep) -> dict[str, object]:
    """This node: its id, role, change count, pending changes, clock digest, sync lag, peers."""
    return services.node.health()
