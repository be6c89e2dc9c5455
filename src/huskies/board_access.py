"""How the CLI reaches the board: through the running server's API when there is one, else
through the database directly.

While `huskies serve` runs it holds the database's writer lock, so the CLI must ask it; when it
does not run, the CLI opens the database itself. Both ways implement `BoardAccess`, so each
command has one code path, and both return the same `WorkItem`s (the remote one rebuilds them
from the API's JSON with `project_item`), so the output is the same either way.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from huskies.client import ApiClient, ApiError, connect
from huskies.config import ProjectConfig
from huskies.pipeline import ItemError, ItemKind, QaMode, StageName, WorkItem, project_item
from huskies.project import Project
from huskies.render import state_summary
from huskies.services.stories import Board, Listing
from huskies.store import Replica, Synchronous
from huskies.store.replica import wall_clock_ms


class BoardAccess(Protocol):
    async def settle(self) -> list[tuple[int, WorkItem]]:
        """Store numbers that collided with items minted elsewhere: (number claimed, item)."""
        ...

    async def listing(self, stage: StageName | None, include_archived: bool) -> Listing: ...

    async def get(self, number: int) -> WorkItem: ...

    async def create(
        self,
        title: str,
        *,
        kind: ItemKind,
        body: str,
        depends_on: Iterable[int],
        qa: QaMode | None,
    ) -> WorkItem: ...

    async def edit(self, number: int, *, title: str | None, body: str | None) -> bool: ...

    async def move(self, number: int, stage: StageName) -> WorkItem: ...

    async def unblock(self, number: int) -> WorkItem: ...

    async def purge(self, number: int) -> WorkItem: ...

    async def state(self) -> dict[str, Any]:
        """What `huskies state dump` prints."""
        ...


@contextlib.asynccontextmanager
async def open_board(project: Project, config: ProjectConfig) -> AsyncIterator[BoardAccess]:
    async with connect(project) as client:
        if client is not None:
            yield RemoteBoard(client)
            return
    replica = await Replica.open(
        project.db_path,
        synchronous=Synchronous(config.store.synchronous),
        snapshot_every=config.store.snapshot_every,
    )
    async with replica:
        yield LocalBoard(replica, ZoneInfo(config.timezone))


class LocalBoard:
    def __init__(self, replica: Replica, zone: ZoneInfo) -> None:
        self._replica = replica
        self._zone = zone
        self._board = Board(replica, wall_clock_ms)

    async def settle(self) -> list[tuple[int, WorkItem]]:
        return await self._board.settle_numbers()

    async def listing(self, stage: StageName | None, include_archived: bool) -> Listing:
        return self._board.listing(stage, include_archived)

    async def get(self, number: int) -> WorkItem:
        return self._board.get(number)

    async def create(
        self,
        title: str,
        *,
        kind: ItemKind,
        body: str,
        depends_on: Iterable[int],
        qa: QaMode | None,
    ) -> WorkItem:
        return await self._board.create(title, kind=kind, body=body, depends_on=depends_on, qa=qa)

    async def edit(self, number: int, *, title: str | None, body: str | None) -> bool:
        return await self._board.edit(number, title=title, body=body)

    async def move(self, number: int, stage: StageName) -> WorkItem:
        return await self._board.move(number, stage)

    async def unblock(self, number: int) -> WorkItem:
        return await self._board.unblock(number)

    async def purge(self, number: int) -> WorkItem:
        return await self._board.purge(number)

    async def state(self) -> dict[str, Any]:
        stats = await self._replica.stats()
        return state_summary(self._replica.document, stats, wall_clock_ms(), self._zone)


class RemoteBoard:
    def __init__(self, client: ApiClient) -> None:
        self._client = client

    async def settle(self) -> list[tuple[int, WorkItem]]:
        return []  # the server settles numbers as changes arrive

    async def listing(self, stage: StageName | None, include_archived: bool) -> Listing:
        params = {"all": "true" if include_archived else "false"}
        if stage is not None:
            params["stage"] = stage.value
        body = await self._client.call("GET", "/api/items", params=params)
        return Listing(
            [_item(raw) for raw in body["items"]],
            [ItemError(**raw) for raw in body["errors"]],
            body["total"],
        )

    async def get(self, number: int) -> WorkItem:
        return _item(await self._client.call("GET", f"/api/items/{number}"))

    async def create(
        self,
        title: str,
        *,
        kind: ItemKind,
        body: str,
        depends_on: Iterable[int],
        qa: QaMode | None,
    ) -> WorkItem:
        request = {
            "title": title,
            "kind": kind.value,
            "body": body,
            "depends_on": list(depends_on),
            "qa": None if qa is None else qa.value,
        }
        return _item(await self._client.call("POST", "/api/items", json=request))

    async def edit(self, number: int, *, title: str | None, body: str | None) -> bool:
        request = {
            name: value for name, value in (("title", title), ("body", body)) if value is not None
        }
        edited = await self._client.call("PATCH", f"/api/items/{number}", json=request)
        return bool(edited["changed"])

    async def move(self, number: int, stage: StageName) -> WorkItem:
        moved = await self._client.call(
            "POST", f"/api/items/{number}/move", json={"stage": stage.value}
        )
        return _item(moved)

    async def unblock(self, number: int) -> WorkItem:
        return _item(await self._client.call("POST", f"/api/items/{number}/unblock"))

    async def purge(self, number: int) -> WorkItem:
        return _item(await self._client.call("DELETE", f"/api/items/{number}"))

    async def state(self) -> dict[str, Any]:
        state: dict[str, Any] = await self._client.call("GET", "/api/state")
        return state


def _item(raw: Mapping[str, Any]) -> WorkItem:
    item = project_item(raw["id"], raw)
    if isinstance(item, ItemError):  # the server sent an item it could read: a version skew
        raise ApiError(f"the server sent an item this huskies cannot read: {item}")
    return item
