"""The two WebSockets a sync link runs over: a dialled one (the `websockets` library) and an
accepted one (Starlette's endpoint). Both raise TransportClosed when the connection ends."""

from __future__ import annotations

import contextlib

from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from huskies.sync.link import TransportClosed


class DialledTransport:
    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    async def recv(self) -> bytes:
        try:
            data = await self._connection.recv()
        except ConnectionClosed as exc:
            raise TransportClosed(
                f"connection closed ({exc.rcvd.reason if exc.rcvd else 'no reason'})"
            ) from None
        # A text message is not a frame; as bytes it fails to decode and the peer is cut.
        return data if isinstance(data, bytes) else data.encode()

    async def send(self, data: bytes) -> None:
        try:
            await self._connection.send(data)
        except ConnectionClosed:
            raise TransportClosed("connection closed while sending") from None

    async def close(self, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            await self._connection.close(1000, reason[:120])


class AcceptedTransport:
    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._closed = False

    async def recv(self) -> bytes:
        try:
            message = await self._websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            raise TransportClosed("connection closed") from None
        if message["type"] == "websocket.disconnect":
            self._closed = True
            raise TransportClosed(f"connection closed (code {message.get('code')})")
        data = message.get("bytes")
        if data is None:
            data = (message.get("text") or "").encode()
        return bytes(data)

    async def send(self, data: bytes) -> None:
        try:
            await self._websocket.send_bytes(data)
        except (WebSocketDisconnect, RuntimeError, OSError):
            raise TransportClosed("connection closed while sending") from None

    async def close(self, reason: str) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(RuntimeError, OSError):
                await self._websocket.close(1000, reason[:120])
