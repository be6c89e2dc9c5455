"""What the HTTP app works with: the server's services, built once by `huskies serve`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from huskies.project import Project
from huskies.services.agents import Agents
from huskies.services.events import EventHub
from huskies.services.gates import Gates
from huskies.services.merge import MergeQueue
from huskies.services.node import Node
from huskies.services.notifications import Notifier
from huskies.services.permissions import Permissions
from huskies.services.review import Review
from huskies.services.settings import Settings
from huskies.services.stories import Board
from huskies.services.timers import Timers
from huskies.services.worktrees import Worktrees
from huskies.store import Replica


@dataclass(frozen=True, slots=True)
class Services:
    project: Project
    settings: Settings
    replica: Replica
    board: Board
    node: Node
    hub: EventHub
    agents: Agents | None = None
    """The agents service (None only in tests of the API without agents)."""
    review: Review | None = None
    timers: Timers | None = None
    notifier: Notifier | None = None
    gates: Gates | None = None
    worktrees: Worktrees | None = None
    permissions: Permissions | None = None
    merge: MergeQueue | None = None


def get_services(connection: HTTPConnection) -> Services:
    services: Services = connection.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
"""A route parameter typed `ServicesDep` receives the app's Services."""
