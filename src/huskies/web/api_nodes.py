"""`/api/nodes`: this node, the nodes it knows of (connected now, or seen through their
presence in the document, or configured to be dialled), and the keys it trusts to sync."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from huskies.config import ConfigError
from huskies.crdt import node_id
from huskies.services.node import NODES
from huskies.web.errors import documented
from huskies.web.services import Services, ServicesDep

router = APIRouter(prefix="/api", tags=["server"], responses=documented())


class Lag(BaseModel):
    queued: int = Field(description="frames waiting to go out to the slowest peer")
    catching_up: int = Field(description="peers still catching up")


class SelfNode(BaseModel):
    id: str
    role: str
    url: str = Field(description="where this node serves /crdt-sync")
    change_count: int
    pending: int = Field(description="changes held for a dependency that has not arrived")
    clock: str = Field(description="a digest of the clock: equal on nodes with the same changes")
    lag: Lag


class Peer(BaseModel):
    id: str | None = Field(description="its node id; null: a configured URL never reached")
    url: str | None = Field(description="where it serves /crdt-sync, or where we dial it")
    role: str | None
    connected: bool
    direction: str | None = Field(description="in (it dialled us), out (we dial it); null")
    caught_up: bool = Field(description="connected and has every change we have sent it for")
    lag: int = Field(description="frames queued for it")
    connected_at: int | None = Field(description="ms since the epoch")
    last_seen: int | None = Field(description="its latest presence in the document, ms")


class Nodes(BaseModel):
    self: SelfNode
    peers: list[Peer] = Field(description="connected first, then others by id or URL")
    trusted_keys: list[str] = Field(
        description="node ids allowed to sync: sync.trusted_keys and nodes enrolled by token"
    )


@router.get("/nodes", response_model=Nodes)
async def nodes(services: ServicesDep) -> dict[str, Any]:
    """This node, its peers, and who may sync with it."""
    node = services.node
    health = node.health()
    me = node.replica.node_id
    presence = _presence(services)
    peers: list[dict[str, Any]] = []
    for link in node.peers.snapshot():
        seen = presence.get(link.peer or "", {})
        dialled = link.direction == "out"
        peers.append(
            {
                "id": link.peer,
                "url": link.address if dialled else _text(seen.get("address")),
                "role": _text(seen.get("role")),
                "connected": True,
                "direction": link.direction,
                "caught_up": link.caught_up,
                "lag": link.queued,
                "connected_at": round(link.connected_at * 1000),
                "last_seen": _number(seen.get("last_seen")),
            }
        )
    connected_ids = {peer["id"] for peer in peers}
    connected_urls = {peer["url"] for peer in peers}
    for peer_id, seen in sorted(presence.items()):
        if peer_id != me and peer_id not in connected_ids:
            peers.append(_absent(peer_id, _text(seen.get("address")), seen))
    for url in services.settings.config.sync.rendezvous:
        if url not in connected_urls:
            peers.append(_absent(None, url, {}))
    lag = health["lag"]
    return {
        "self": {
            "id": me,
            "role": node.role,
            "url": node.address,
            "change_count": health["changes"],
            "pending": health["pending"],
            "clock": health["clock"],
            "lag": lag,
        },
        "peers": peers,
        "trusted_keys": _trusted_keys(services),
    }


def _presence(services: Services) -> dict[str, Mapping[str, Any]]:
    """Each node's entry under `nodes` in the document (what its heartbeat wrote)."""
    try:
        entries = services.replica.document.get((NODES,))
    except KeyError:
        return {}
    if not isinstance(entries, dict):
        return {}
    return {key: value for key, value in entries.items() if isinstance(value, dict)}


def _absent(peer_id: str | None, url: str | None, seen: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": peer_id,
        "url": url,
        "role": _text(seen.get("role")),
        "connected": False,
        "direction": None,
        "caught_up": False,
        "lag": 0,
        "connected_at": None,
        "last_seen": _number(seen.get("last_seen")),
    }


def _trusted_keys(services: Services) -> list[str]:
    # project.toml as it is now: `huskies node trust` edits it, and the server's handshakes
    # read it afresh, without a reload.
    try:
        configured = services.project.config().sync.trusted_keys
    except ConfigError:
        configured = services.settings.config.sync.trusted_keys
    enrolled = {node_id(key) for key in services.node.trust_store.enrolled()}
    return sorted(set(configured) | enrolled)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
