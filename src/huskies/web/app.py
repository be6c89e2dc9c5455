"""The ASGI app `huskies serve` runs: `/crdt-sync` for peers and `/health` for people."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from huskies.services.node import Node
from huskies.sync.transports import AcceptedTransport


def create_app(node: Node) -> Starlette:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse(node.health())

    async def crdt_sync(websocket: WebSocket) -> None:
        await websocket.accept()
        client = websocket.client
        remote = f"{client.host}:{client.port}" if client else "unknown"
        await node.accept(AcceptedTransport(websocket), remote)

    return Starlette(
        routes=[Route("/health", health), WebSocketRoute("/crdt-sync", crdt_sync)],
    )
