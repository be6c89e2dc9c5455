"""`/api/items`: list, show, create, edit, move, unblock and purge work items."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from huskies.crdt import Json
from huskies.pipeline import ItemKind, QaMode, StageName, item_to_json
from huskies.services.stories import KEEP
from huskies.web.errors import ERROR_RESPONSES
from huskies.web.fields import AgentNameOrNull, BodyEdit, Title, TitleEdit
from huskies.web.models import Edited, Item, ItemList
from huskies.web.services import ServicesDep

router = APIRouter(prefix="/api/items", tags=["items"], responses=ERROR_RESPONSES)


class _Request(BaseModel):
    # An unknown key is most likely a typo: refuse it rather than ignore what was meant.
    model_config = ConfigDict(extra="forbid")


class NewItem(_Request):
    title: Title
    kind: ItemKind = ItemKind.STORY
    body: StrictStr = Field("", description="markdown")
    depends_on: list[StrictInt] = Field([], description="numbers of items this one waits for")
    qa: QaMode | None = Field(None, description="null: the project's default_qa")


class ItemEdit(_Request):
    """Only the fields present change; `agent` and `qa` may be null to clear them."""

    title: TitleEdit = None
    body: BodyEdit = None
    agent: AgentNameOrNull = Field(
        None, description="the preferred agent: a name from agents.toml, or null for any"
    )
    qa: QaMode | None = Field(None, description="null: the project's default_qa")

    @field_validator("title", "body")
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        # Runs only for values given: an absent title is None too, and means "keep it".
        if value is None:
            raise ValueError("must be a string; leave the field out to keep it")
        return value


class MoveTo(_Request):
    stage: StageName


@router.get("", response_model=ItemList)
async def list_items(
    services: ServicesDep,
    stage: Annotated[StageName | None, Query(description="only items in this stage")] = None,
    include_archived: Annotated[
        bool, Query(alias="all", description="include archived items")
    ] = False,
) -> JSONResponse:
    """Items by number: those in `stage`, or else all but the archived (all with `all`)."""
    listing = services.board.listing(stage, include_archived)
    # Returned as a response, so FastAPI does not validate it against ItemList again: the items
    # come from item_to_json, and re-validating 1,000 of them would double the request's time.
    return JSONResponse(
        {
            "items": [item_to_json(item) for item in listing.items],
            "errors": [dataclasses.asdict(error) for error in listing.errors],
            "total": listing.total,
        }
    )


@router.get("/{number}", response_model=Item)
async def get_item(services: ServicesDep, number: int) -> dict[str, Json]:
    return item_to_json(services.board.get(number))


@router.post("", response_model=Item, status_code=201)
async def create_item(services: ServicesDep, new: NewItem) -> dict[str, Json]:
    """Add an item to the backlog."""
    item = await services.board.create(
        new.title, kind=new.kind, body=new.body, depends_on=new.depends_on, qa=new.qa
    )
    return item_to_json(item)


@router.patch("/{number}", response_model=Edited)
async def edit_item(services: ServicesDep, number: int, edit: ItemEdit) -> dict[str, Any]:
    given = edit.model_fields_set
    changed = await services.board.edit(
        number,
        title=edit.title,
        body=edit.body,
        agent=edit.agent if "agent" in given else KEEP,
        qa=edit.qa if "qa" in given else KEEP,
    )
    return {"item": item_to_json(services.board.get(number)), "changed": changed}


@router.post("/{number}/move", response_model=Item)
async def move_item(services: ServicesDep, number: int, move: MoveTo) -> dict[str, Json]:
    """A person's move: only moves the pipeline allows by hand (409 with its reason if not)."""
    return item_to_json(await services.board.move(number, move.stage))


@router.post("/{number}/unblock", response_model=Item)
async def unblock_item(services: ServicesDep, number: int) -> dict[str, Json]:
    """Return a blocked, merge-failed or review-held item to the stage it left."""
    return item_to_json(await services.board.unblock(number))


@router.delete("/{number}", response_model=Item)
async def purge_item(services: ServicesDep, number: int) -> dict[str, Json]:
    """Delete the item for good, on every node. Returns it as it was."""
    return item_to_json(await services.board.purge(number))
