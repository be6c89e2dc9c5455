"""Who may knock: the one check every HTTP request and websocket passes before any route.

As ASGI middleware rather than route dependencies, so nothing is reachable around it: unknown
paths, the OpenAPI schema, `/mcp`, `/crdt-sync` and routes added later included. In order:

1. **Host.** The `Host` header must name this server: a loopback name, the address it listens
   on, the machine's own names, or a name in `[server] hosts` of project.toml (421 otherwise).
   This is what defeats DNS rebinding: a page on `attacker.example` whose name is made to
   resolve to 127.0.0.1 still sends `Host: attacker.example`. The port is not compared: an
   attacker controls the name, not the port, and a tunnel (`ssh -L 8000:localhost:3000`) or a
   proxy on 443 legitimately changes it.
2. **Origin.** A browser names the page a request comes from in `Origin`. A request that may
   change something (any method but GET, HEAD and OPTIONS) and every websocket (which no CORS
   rule protects) must come from this server's own origin, the one in its `Host`, or carry no
   `Origin` at all, as the CLI and scripts do (403 otherwise).
3. **Body.** A request that may change something takes a JSON body only (415 otherwise): no HTML
   form can send `application/json`, and a script on another origin cannot without a CORS
   preflight, which this server never grants.
4. **Token.** With an access token (beyond loopback, or `--require-token`), every path but the
   open ones needs it as `Authorization: Bearer` (websockets may give it as `?token=`, since
   browsers cannot set headers on them); see `huskies.services.access_token`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, QueryParams
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from huskies.services.access_token import HOW_TO_FIND
from huskies.web.errors import error_response

log = logging.getLogger("huskies.web")

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
LOGGED_REFUSALS = 256
"""Distinct refusals (by status and the Host or Origin at fault) logged, each once: enough to
see why a proxy or a page is refused, too few for a flood to fill the log."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON = "application/json"
DEFAULT_PORTS = {"http": 80, "https": 443}  # the schemes of a web page's origin


def served_names(host: str, extra: Iterable[str] = ()) -> list[str]:
    """The names a client of a server listening on `host` may put in `Host`: loopback by
    address and name, the listening address, and `extra` (the machine's names and addresses
    when it listens on all of them, and the configured ones)."""
    names = [*LOOPBACK_NAMES, *extra]
    if host not in ("", "0.0.0.0", "::"):
        names.append(host)
    return list(dict.fromkeys(name.strip("[]").lower() for name in names))


def _split_host(value: str) -> tuple[str, int | None] | None:
    """(name, port) of a `Host` header value (`name`, `name:port`, `[v6]:port`), or None when
    it is not one."""
    name, port = value, ""
    if value.startswith("["):
        name, bracket, port = value[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            return None
        port = port[1:]
    elif value.count(":") == 1:
        name, port = value.split(":")
    if not name or (port and not port.isdigit()):
        return None
    return name.lower(), int(port) if port else None


class Guard:
    """The checks above, in front of the whole app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        names: Iterable[str],
        token: str | None = None,
        open_paths: Iterable[str] = (),
        open_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self._names = frozenset(names)
        self._token = token.encode() if token is not None else None
        self._open = frozenset(open_paths)
        self._open_prefixes = open_prefixes
        self._logged: set[tuple[int, str]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        self._log_once(refusal.status_code, headers)
        if scope["type"] == "websocket":
            await WebSocket(scope, receive, send).send_denial_response(refusal)
        else:
            await refusal(scope, receive, send)

    def _refusal(self, scope: Scope, headers: Headers) -> JSONResponse | None:
        host = headers.get("host", "")
        split = _split_host(host)
        if split is None or split[0] not in self._names:
            shown = f"the host {host!r}" if host else "a request that names no host"
            return error_response(
                421,
                f"this server does not answer to {shown}: reach it by an address it listens "
                "on, or add the name it is reached by (say, through a proxy) to `hosts` under "
                "[server] in .huskies/project.toml",
            )
        websocket = scope["type"] == "websocket"
        changes = websocket or scope["method"] not in SAFE_METHODS
        origin = headers.get("origin")
        if changes and origin is not None and not _same_origin(origin, split):
            return error_response(
                403,
                f"a page at {origin} may not {'connect to' if websocket else 'change'} this "
                "server: only its own board may, and scripts that send no Origin",
            )
        if changes and not websocket and (problem := _body_problem(headers)) is not None:
            return error_response(415, problem, "body")
        if (
            self._token is not None
            and not self._is_open(scope["path"])
            and not self._presented(scope, headers, self._token)
        ):
            return error_response(
                401,
                f"this server needs its access token: {HOW_TO_FIND}",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return None

    def _log_once(self, status: int, headers: Headers) -> None:
        if status not in (403, 421):  # the others are a client's own mistake, told to it
            return
        culprit = headers.get("host" if status == 421 else "origin", "")
        if (status, culprit) in self._logged or len(self._logged) >= LOGGED_REFUSALS:
            return
        self._logged.add((status, culprit))
        if status == 421:
            log.warning(
                "refused a request for the host %r (if the server is reached by that name, add "
                "it to `hosts` under [server] in .huskies/project.toml); not logged again",
                culprit,
            )
        else:
            log.warning("refused a request from a page at %r; not logged again", culprit)

    def _is_open(self, path: str) -> bool:
        return path in self._open or path.startswith(self._open_prefixes)

    @staticmethod
    def _presented(scope: Scope, headers: Headers, token: bytes) -> bool:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            given = ""
        if not given and scope["type"] == "websocket":
            given = QueryParams(scope["query_string"]).get("token", "")
        # Constant time: how long the check takes says nothing about how much of it matched.
        return hmac.compare_digest(given.strip().encode(), token)


def _same_origin(origin: str, host: tuple[str, int | None]) -> bool:
    """Whether `origin` (scheme://name[:port], or "null") is the origin `Host` names."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return False
    default = DEFAULT_PORTS.get(parts.scheme)
    if default is None or parts.hostname is None:
        return False  # "null" (a sandboxed or file page), or not a web origin at all
    name, host_port = host
    return parts.hostname == name and (port or default) == (host_port or default)


def _body_problem(headers: Headers) -> str | None:
    """Why a request that may change something cannot carry this body, or None."""
    given = headers.get("content-type")
    if given is None:
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        if has_body:
            return f"a request body must be JSON, sent with Content-Type: {JSON}"
        return None
    if given.partition(";")[0].strip().lower() != JSON:
        return f"this server takes JSON only: send Content-Type: {JSON} (got {given!r})"
    return None
