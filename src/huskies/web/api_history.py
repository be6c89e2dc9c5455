"""`/api/items/{n}/history`: who changed what on an item, and when, from the change log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from huskies.history import item_history
from huskies.pipeline import parse_item_key
from huskies.web.errors import ERROR_RESPONSES
from huskies.web.services import ServicesDep

router = APIRouter(prefix="/api/items", tags=["items"], responses=ERROR_RESPONSES)


class ItemChangeOut(BaseModel):
    at: int = Field(description="ms since the epoch, by the clock of the node that made it")
    author: str = Field(description="the id of the node that made the change")
    change: str = Field(description="the change's id")
    fields: dict[str, Any] = Field(
        description="the fields it set, in their stored form (null: removed); a body edit is "
        '{"inserted", "deleted"} characters; `updated_at` and claim renewals are left out'
    )
    summary: str = Field(examples=["stage → qa", "body edited (+12 -3)"])


class ItemHistory(BaseModel):
    number: int
    item_id: str
    changes: list[ItemChangeOut] = Field(description="oldest first, in the order applied here")


@router.get("/{number}/history", response_model=ItemHistory)
async def history(services: ServicesDep, number: int) -> dict[str, Any]:
    """Every change that made or edited the item: when, by which node, what it set."""
    item = services.board.get(number)
    element = parse_item_key(item.id)
    changes = await services.replica.element_changes(element)
    return {
        "number": item.number,
        "item_id": item.id,
        "changes": [entry.to_json() for entry in item_history(element, changes)],
    }
