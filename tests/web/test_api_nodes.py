"""`GET /api/nodes` with two real nodes syncing over a real WebSocket: this node, its peers
(connected, known from their presence, or configured and unreachable) and the keys it trusts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from huskies.project import Project
from huskies.server import Running
from huskies.services.nodes import add_trusted_key, node_id
from huskies.web.api_nodes import Nodes

from .support import make_project, served, until

UNREACHABLE = "ws://127.0.0.1:9/crdt-sync"


def dial(project: Project, *urls: str) -> None:
    toml = project.project_toml.read_text()
    listed = ", ".join(f'"{url}"' for url in urls)
    project.project_toml.write_text(toml.replace("rendezvous = []", f"rendezvous = [{listed}]"))


async def nodes(api: httpx.AsyncClient) -> dict[str, Any]:
    answered = await api.get("/api/nodes")
    assert answered.status_code == 200
    body: dict[str, Any] = answered.json()
    Nodes.model_validate(body)
    return body


def present(server: Running, node: str) -> bool:
    """Whether `server` holds `node`'s presence entry (written by its heartbeat)."""
    try:
        server.services.replica.document.get(("nodes", node))
    except KeyError:
        return False
    return True


def peer(body: dict[str, Any], peer_id: str | None) -> dict[str, Any] | None:
    return next((p for p in body["peers"] if p["id"] == peer_id), None)


async def test_nodes_show_this_node_its_peers_and_trusted_keys(tmp_path: Path):
    hub, spoke = make_project(tmp_path / "hub"), make_project(tmp_path / "spoke")
    spoke_id = await node_id(spoke)
    add_trusted_key(hub, spoke_id)
    async with served(hub) as (hub_server, hub_api):
        hub_id = hub_server.services.replica.node_id
        alone = await nodes(hub_api)
        assert alone["self"]["id"] == hub_id
        assert alone["self"]["role"] == "server"
        assert alone["self"]["url"] == f"ws://127.0.0.1:{hub_server.port}/crdt-sync"
        assert alone["self"]["change_count"] == hub_server.services.replica.document.change_count
        assert alone["self"]["pending"] == 0
        assert alone["self"]["lag"] == {"queued": 0, "catching_up": 0}
        assert alone["peers"] == []
        assert alone["trusted_keys"] == [spoke_id]

        add_trusted_key(spoke, hub_id)
        dial(spoke, f"ws://127.0.0.1:{hub_server.port}/crdt-sync", UNREACHABLE)
        async with served(spoke) as (spoke_server, spoke_api):
            spoke_url = f"ws://127.0.0.1:{spoke_server.port}/crdt-sync"

            def linked() -> bool:
                peers = hub_server.services.node.peers.snapshot()
                return any(p.peer == spoke_id and p.caught_up for p in peers)

            await until(linked, "the spoke to connect and catch up")
            await until(lambda: present(hub_server, spoke_id), "the spoke's presence at the hub")
            seen_by_hub = peer(await nodes(hub_api), spoke_id)
            assert seen_by_hub is not None
            assert {k: seen_by_hub[k] for k in ("url", "role", "connected", "direction")} == {
                "url": spoke_url,
                "role": "server",
                "connected": True,
                "direction": "in",
            }
            assert isinstance(seen_by_hub["last_seen"], int)
            assert isinstance(seen_by_hub["connected_at"], int)

            from_spoke = await nodes(spoke_api)
            assert from_spoke["trusted_keys"] == [hub_id]
            await until(
                lambda: any(p.peer == hub_id for p in spoke_server.services.node.peers.snapshot()),
                "the spoke's link to the hub",
            )
            from_spoke = await nodes(spoke_api)
            dialled = peer(from_spoke, hub_id)
            assert dialled is not None
            assert (dialled["connected"], dialled["direction"]) == (True, "out")
            assert dialled["url"] == f"ws://127.0.0.1:{hub_server.port}/crdt-sync"
            never = peer(from_spoke, None)
            assert never == {
                "id": None,
                "url": UNREACHABLE,
                "role": None,
                "connected": False,
                "direction": None,
                "caught_up": False,
                "lag": 0,
                "connected_at": None,
                "last_seen": None,
            }

        await until(lambda: not hub_server.services.node.peers.snapshot(), "the spoke to leave")
        gone = peer(await nodes(hub_api), spoke_id)
        assert gone is not None
        assert (gone["connected"], gone["url"], gone["role"]) == (False, spoke_url, "server")
