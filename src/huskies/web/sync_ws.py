"""`/crdt-sync`: the websocket peers replicate over. It authenticates peers itself (by node
keys, see `huskies.sync`), so the API's access token does not apply to it. A connection takes
a place in the handshake before it is accepted; when too many are in the handshake it is
refused with 503 at once, before any WebSocket is set up."""

from __future__ import annotations

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from huskies.services.node import Node
from huskies.sync.link import HandshakeRefused
from huskies.sync.transports import AcceptedTransport
from huskies.web.errors import error_response

PATH = "/crdt-sync"
# What a refused dialler is told to wait; a place frees when a handshake finishes or times out.
RETRY_AFTER_S = 10


def sync_route(node: Node) -> WebSocketRoute:
    async def crdt_sync(websocket: WebSocket) -> None:
        client = websocket.client
        host, port = (client.host, client.port) if client else ("unknown", 0)
        try:
            with node.handshake(host, port) as info:
                await websocket.accept()
                await node.accept(AcceptedTransport(websocket), info)
        except HandshakeRefused as refused:
            busy = error_response(
                503,
                f"this node is busy: {refused}; try again in a few seconds",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
            await websocket.send_denial_response(busy)

    return WebSocketRoute(PATH, crdt_sync)
