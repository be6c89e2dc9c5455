"""`/crdt-sync`: the websocket peers replicate over. It authenticates peers itself (by node
keys, see `huskies.sync`), so the API's access token does not apply to it."""

from __future__ import annotations

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from huskies.services.node import Node
from huskies.sync.transports import AcceptedTransport

PATH = "/crdt-sync"


def sync_route(node: Node) -> WebSocketRoute:
    async def crdt_sync(websocket: WebSocket) -> None:
        await websocket.accept()
        client = websocket.client
        remote = f"{client.host}:{client.port}" if client else "unknown"
        await node.accept(AcceptedTransport(websocket), remote)

    return WebSocketRoute(PATH, crdt_sync)
