"""The JSON the API sends, as pydantic models: they make the OpenAPI schema, and every response
is checked against them on its way out.

An item is `item_to_json`'s form (its stored fields plus `id`), so a client rebuilds the exact
WorkItem with `huskies.pipeline.project_item(item["id"], item)`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from huskies.pipeline import ArchiveReason, ItemKind, QaMode


class BacklogStage(BaseModel):
    name: Literal["backlog"]


class CodingStage(BaseModel):
    name: Literal["coding"]


class QaStage(BaseModel):
    name: Literal["qa"]


class MergeStage(BaseModel):
    name: Literal["merge"]
    feature_branch: str
    commits_ahead: int = Field(ge=1)


class DoneStage(BaseModel):
    name: Literal["done"]
    merged_at: int = Field(description="ms since the epoch")
    merge_commit: str | None = Field(description="null for a spike, which merges nothing")


ActiveStage = Annotated[
    BacklogStage | CodingStage | QaStage | MergeStage | DoneStage, Field(discriminator="name")
]


class ArchivedStage(BaseModel):
    name: Literal["archived"]
    archived_at: int = Field(description="ms since the epoch")
    reason: ArchiveReason
    previous: ActiveStage | None = Field(description="the stage it left; unblocking returns it")


Stage = Annotated[ActiveStage | ArchivedStage, Field(discriminator="name")]


class Claim(BaseModel):
    node: str = Field(description="the id of the node working on the item")
    expires_at: int = Field(description="ms since the epoch, unless the node renews it")


class Item(BaseModel):
    id: str = Field(description="the item's permanent id (`<change id hex>.<index>`)")
    number: int = Field(description="the item's number on the board")
    kind: ItemKind
    title: str
    body: str = Field(description="markdown")
    stage: Stage
    agent: str | None = Field(description="the preferred agent; null: any agent of the stage")
    qa: QaMode | None = Field(description="who reviews it; null: the project's default_qa")
    depends_on: list[int] = Field(description="numbers of the items this one waits for")
    retries: int = Field(description="automatic attempts that failed since a person reset it")
    blocked_reason: str | None
    claim: Claim | None
    created_at: int = Field(description="ms since the epoch")
    updated_at: int = Field(description="ms since the epoch")


class ItemError(BaseModel):
    """An item in the document that could not be read."""

    item_id: str
    field: str | None = Field(description="the field at fault; null: the item as a whole")
    problem: str


class ItemList(BaseModel):
    items: list[Item] = Field(description="the items selected, by number")
    errors: list[ItemError]
    total: int = Field(description="readable items on the board, selected or not")


class Edited(BaseModel):
    item: Item
    changed: bool = Field(description="false if every field given already had that value")
