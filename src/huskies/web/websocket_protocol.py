"""uvicorn's websockets-sansio protocol with a limit on incoming message size per connection.

uvicorn knows one limit (`ws_max_size`) for every WebSocket message on the server. A sync peer
may send frames of megabytes once it has authenticated, but a stranger must not make the server
buffer that much: an oversized message costs the event loop about 4 ms per MiB just to buffer
(fresh memory, copied twice) before anyone can look at its length. The WebSocket layer refuses
a message as soon as its header gives its size, for nothing, but only if the limit it holds is
the small one. So here every connection starts at `INITIAL_MESSAGE_BYTES`, and an endpoint that
knows better raises its own connection's limit (never past `ws_max_size`) by calling the
callable under "set" in the scope extension `MESSAGE_LIMIT_EXTENSION`.

It relies on two details of uvicorn's `WebSocketsSansIOProtocol` (`handle_connect` and the
websockets `ServerProtocol` it keeps as `conn`, whose `max_message_size` websockets ≥ 16 reads
before each frame); tests/sync/test_handshake.py checks that a large message from a stranger is
still cut on its header.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from huskies.sync.transports import MESSAGE_LIMIT_EXTENSION

# What a connection may send in one message before its endpoint raises the limit: any frame of
# the sync handshake (at most 4 KiB), and room for the Clock a peer sends right behind its Auth,
# which may already be read and checked against this before the endpoint has seen the Auth.
# Ample for the events stream, whose clients send nothing of substance.
INITIAL_MESSAGE_BYTES = 64 << 10


class LimitedWebSocketProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.handshake_complete:
            return  # refused by the WebSocket layer: there is no connection to limit
        self._set_max_message_size(INITIAL_MESSAGE_BYTES)
        extensions: dict[str, Any] = self.scope["extensions"]
        extensions[MESSAGE_LIMIT_EXTENSION] = {"set": self._set_max_message_size}

    def _set_max_message_size(self, size: int) -> None:
        self.conn.max_message_size = min(size, self.config.ws_max_size)
