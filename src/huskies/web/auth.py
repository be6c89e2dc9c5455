"""The access token, required on every HTTP route and the event stream when the server
listens beyond loopback (see `huskies.services.access_token`).

As ASGI middleware rather than a route dependency, so nothing is reachable without it: unknown
paths, the OpenAPI schema and routes added later included. `/crdt-sync` is the exception: peers
authenticate there with their node keys. The app may leave more paths open, exactly or by prefix
(the web board's page and its assets, which hold no data, so it can ask for the token).
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from huskies.services.access_token import HOW_TO_FIND
from huskies.web.errors import error_response
from huskies.web.sync_ws import PATH as SYNC_PATH


class RequireToken:
    def __init__(
        self,
        app: ASGIApp,
        token: str,
        open_paths: tuple[str, ...] = (),
        open_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self._token = token.encode()
        self._open = {SYNC_PATH, *open_paths}
        self._open_prefixes = open_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] not in ("http", "websocket")
            or scope["path"] in self._open
            or scope["path"].startswith(self._open_prefixes)
            or self._presented(scope)
        ):
            await self.app(scope, receive, send)
            return
        response = error_response(
            401,
            f"this server needs its access token: {HOW_TO_FIND}",
            headers={"WWW-Authenticate": "Bearer"},
        )
        if scope["type"] == "websocket":
            await WebSocket(scope, receive, send).send_denial_response(response)
        else:
            await response(scope, receive, send)

    def _presented(self, scope: Scope) -> bool:
        scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            given = ""
        if not given and scope["type"] == "websocket":
            # Browsers cannot set headers on a websocket, so the stream also takes ?token=.
            given = QueryParams(scope["query_string"]).get("token", "")
        # Constant time: how long the check takes says nothing about how much of it matched.
        return hmac.compare_digest(given.strip().encode(), self._token)
