"""`/api/events`: the live event stream as a websocket of JSON text frames.

Each frame is `{"seq", "kind", "data"}` (see `huskies.services.events`). `?kinds=item,agent_output`
keeps only those kinds; a `lagged` event still arrives when this client fell behind, and means
"reload what you show from the API". Clients send nothing; the server ignores what they do send.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from huskies.services.events import Subscription
from huskies.web.errors import error_response
from huskies.web.services import ServicesDep

router = APIRouter()


@router.websocket("/api/events")
async def events(websocket: WebSocket, services: ServicesDep, kinds: str | None = None) -> None:
    wanted = None
    if kinds is not None:
        wanted = {kind.strip() for kind in kinds.split(",") if kind.strip()}
        if not wanted:
            await websocket.send_denial_response(
                error_response(
                    400, "kinds: name at least one event kind, e.g. ?kinds=item", "query.kinds"
                )
            )
            return
    await websocket.accept()
    with services.hub.subscribe(wanted) as subscription:
        forward = asyncio.create_task(_forward(websocket, subscription), name="events out")
        try:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
        finally:
            forward.cancel()
            await asyncio.gather(forward, return_exceptions=True)


async def _forward(websocket: WebSocket, subscription: Subscription) -> None:
    try:
        async for event in subscription:
            await websocket.send_text(json.dumps(event.to_json(), ensure_ascii=False))
    except WebSocketDisconnect:
        pass  # the receiving side sees the disconnect too, and ends the connection
