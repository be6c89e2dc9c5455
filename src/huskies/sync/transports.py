"""The two WebSockets a sync link runs over: a dialled one (the `websockets` library) and an
accepted one (Starlette's endpoint). Both raise TransportClosed when the connection ends."""

from __future__ import annotations

import contextlib

from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from huskies.sync.link import TransportClosed
from huskies.sync.protocol import Limits

# Room beyond the largest frame for what the WebSocket layer may hold of one message, so that a
# frame just over the limit still reaches the session and is refused with the reason.
MESSAGE_SLACK_BYTES = 64 << 10
# Close codes with which the WebSocket layer fails a connection for what the peer sent: a
# protocol error, invalid data, a message too big.
PEER_FAULT_CODES = frozenset({1002, 1007, 1009})
# The ASGI scope extension through which a server lets an endpoint raise the size of message its
# connection takes (see huskies.web.websocket_protocol): {"set": callable taking bytes}.
MESSAGE_LIMIT_EXTENSION = "huskies.websocket.max_message_size"


def max_message_bytes(limits: Limits) -> int:
    """The most a WebSocket server should buffer of one incoming message for a node with
    `limits` (uvicorn's `ws_max_size`): larger ones are cut by the WebSocket layer (close code
    1009) as soon as their header gives their size."""
    return limits.max_frame_bytes + MESSAGE_SLACK_BYTES


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

    def allow_frames_up_to(self, max_bytes: int) -> None:
        """Nothing to do: a dialled connection takes frames of the limit it was opened with."""

    async def close(self, reason: str, *, graceful: bool = True) -> None:
        # Always graceful: we dialled a node we chose, and websockets bounds the wait for its
        # part of the closing handshake.
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
            code, why = message.get("code"), message.get("reason")
            raise TransportClosed(
                f"connection closed (code {code}{f': {why}' if why else ''})",
                peer_fault=code in PEER_FAULT_CODES,
            )
        data = message.get("bytes")
        if data is None:
            data = (message.get("text") or "").encode()
        return bytes(data)

    async def send(self, data: bytes) -> None:
        try:
            await self._websocket.send_bytes(data)
        except (WebSocketDisconnect, RuntimeError, OSError):
            raise TransportClosed("connection closed while sending") from None

    def allow_frames_up_to(self, max_bytes: int) -> None:
        """The peer is admitted: take messages as large as `max_bytes` from now on. Where the
        server has no limit per connection, its one limit for all already allows that."""
        extension = self._websocket.scope.get("extensions", {}).get(MESSAGE_LIMIT_EXTENSION)
        if extension is not None:
            extension["set"](max_bytes + MESSAGE_SLACK_BYTES)

    async def close(self, reason: str, *, graceful: bool = True) -> None:
        if not self._closed:
            self._closed = True
            if not graceful:
                # No close frame: the server then drops the connection as soon as the endpoint
                # returns, rather than waiting (10 s, in uvicorn) for a reply that a stranger
                # may never send. What was queued (the Bye with the reason) is still sent.
                return
            with contextlib.suppress(RuntimeError, OSError):
                await self._websocket.close(1000, reason[:120])
