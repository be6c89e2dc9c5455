"""QA by a person: approve or reject an item in qa (its QA mode `human`, or any mode)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from huskies.crdt import Json
from huskies.pipeline import item_to_json
from huskies.services.review import Review
from huskies.web.errors import ERROR_RESPONSES
from huskies.web.fields import Reason
from huskies.web.models import Item
from huskies.web.services import ServicesDep

router = APIRouter(prefix="/api/items", tags=["review"], responses=ERROR_RESPONSES)


class Rejection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


def _review(services: ServicesDep) -> Review:
    assert services.review is not None, "huskies serve always runs the review service"
    return services.review


@router.post("/{number}/approve", response_model=Item)
async def approve(services: ServicesDep, number: int) -> dict[str, Json]:
    """Approve an item in qa: to merge with its feature branch (a spike: to done). Refused
    when its branch has nothing to merge."""
    return item_to_json(await _review(services).approve(number))


@router.post("/{number}/reject", response_model=Item)
async def reject(services: ServicesDep, number: int, rejection: Rejection) -> dict[str, Json]:
    """Send an item in qa back to coding; the reason goes into its coder's next prompt."""
    return item_to_json(await _review(services).reject(number, rejection.reason))
