"""The web board at `/`: a page shell rendered with Jinja2, and small ES modules that fill it
from the public API and keep it current over the `/api/events` websocket.

Why this shape: the wheel ships plain files, so users need no Node and no build step, and every
current browser loads ES modules as they are. The shell holds no project data (the modules fetch
it, as any other client would), so it can be served without the access token and then ask for
it; only `/` and paths under `/board/` are left open for that (see `OPEN_PATHS` and
`OPEN_PREFIXES`). What the page needs from the server's own code, it gets when it is rendered:
the stages, the moves a person may make from each (from the pipeline's own rule), and the
address of every asset.

Assets are read once and served from memory. Each address carries a digest of the file
(`app.js?v=…`), and an import map gives the modules' imports of each other the same addresses,
so a browser keeps them for good and loads the board again without asking for any of them; an
upgraded server's files have new digests, hence new addresses.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from huskies import __version__
from huskies.pipeline import (
    UNBLOCKABLE,
    Backlog,
    Coding,
    Done,
    IllegalTransition,
    ItemKind,
    Merge,
    Qa,
    QaMode,
    StageName,
    event_for_move,
)

PREFIX = "/board/"
STATIC_PATH = "/board/static"
OPEN_PATHS = ("/",)
OPEN_PREFIXES = (PREFIX,)
"""What a server that requires the token still serves without it: the shell and its assets."""

STATIC_DIR = Path(__file__).with_name("static")
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
FOREVER = "public, max-age=31536000, immutable"
ENTRY = "app.js"

router = APIRouter(include_in_schema=False)
_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("huskies.web.board", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True, slots=True)
class Asset:
    content: bytes
    media_type: str
    digest: str

    def address(self, name: str) -> str:
        return f"{STATIC_PATH}/{name}?v={self.digest}"


@cache
def assets() -> dict[str, Asset]:
    """The static files by name, read once."""
    found = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.suffix in MEDIA_TYPES:
            content = path.read_bytes()
            digest = hashlib.sha256(content).hexdigest()[:16]
            found[path.name] = Asset(content, MEDIA_TYPES[path.suffix], digest)
    return found


def hand_moves() -> dict[str, list[str]]:
    """For each stage, the stages a person may move an item to, asked of the pipeline itself,
    so the board offers exactly the moves the API accepts."""
    samples = (Backlog(), Coding(), Qa(), Merge("feature/story-1", 1), Done(0, "0" * 40))
    return {
        stage.name.value: [
            target.value
            for target in StageName
            if not isinstance(event_for_move(stage, target, 0), IllegalTransition)
        ]
        for stage in samples
    }


_STATIC_IMPORT = re.compile(r'\bfrom "\./([\w.]+)"')
"""A module's `import … from "./x.js"` (not `import("./x.js")`, which loads when needed)."""


def preloaded(entry: str) -> list[str]:
    """`entry` and the modules it imports, directly or through others, so that the page asks
    for them all at once rather than one level of imports after another."""
    found, todo = set(), [entry]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += _STATIC_IMPORT.findall(assets()[name].content.decode())
    return sorted(found)


@cache
def _shell() -> str:
    settings = {
        "version": __version__,
        "stages": [stage.value for stage in StageName],
        "kinds": [kind.value for kind in ItemKind],
        "qa_modes": [mode.value for mode in QaMode],
        "moves": hand_moves(),
        "unblockable": sorted(reason.value for reason in UNBLOCKABLE),
    }
    addresses = {name: asset.address(name) for name, asset in assets().items()}
    modules = {
        f"{STATIC_PATH}/{name}": addresses[name] for name in addresses if name.endswith(".js")
    }
    return _templates.get_template("board.html").render(
        settings=settings,
        assets=addresses,
        import_map={"imports": modules},
        preload=[addresses[name] for name in preloaded(ENTRY)],
    )


@router.get("/", response_class=HTMLResponse)
@router.get("/board/items/{number}", response_class=HTMLResponse)
@router.get("/board/costs", response_class=HTMLResponse)
@router.get("/board/nodes", response_class=HTMLResponse)
async def page(number: int | None = None) -> HTMLResponse:
    """Every view is the same shell; its modules pick the view from the address."""
    return HTMLResponse(_shell(), headers={"Cache-Control": "no-cache"})


@router.get(STATIC_PATH + "/{name}")
async def asset(name: str, request: Request) -> Response:
    found = assets().get(name)
    if found is None:
        raise HTTPException(404, f"the board has no file {name!r}")
    # Kept for good when asked for by its digest (as the page does); otherwise checked anew.
    cache_control = FOREVER if request.query_params.get("v") == found.digest else "no-cache"
    headers = {"ETag": f'"{found.digest}"', "Cache-Control": cache_control}
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return Response(found.content, media_type=found.media_type, headers=headers)
