"""An event applied to a whole item: its new stage plus the fields the event changes.

This keeps the bookkeeping that goes with a move in the pure core, next to the move itself, so
each service does not restate it. `retries` counts automatic failures (gates failed, QA rejected,
merge failed, agent runs that failed) since a person last reset the item by demoting or
unblocking it; counting across stages is deliberate, so a retry limit also stops an item
bouncing between coding and qa.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from huskies.crdt import Json
from huskies.pipeline.events import (
    AttemptFailed,
    Block,
    Demote,
    Event,
    GatesFailed,
    IllegalTransition,
    MergeFailed,
    QaRejected,
    Unblock,
    transition,
)
from huskies.pipeline.items import WorkItem
from huskies.pipeline.stages import stage_to_json


@dataclass(frozen=True, slots=True)
class ItemUpdate:
    """`item` after the event, and `fields`: only the stored fields that changed, in stored
    form, for `edits.set_fields` (writing unchanged fields would overwrite concurrent edits)."""

    item: WorkItem
    fields: dict[str, Json]


def apply_event(item: WorkItem, event: Event, at: int) -> ItemUpdate | IllegalTransition:
    """What `event` at time `at` does to `item`, or why it cannot happen."""
    stage = transition(item.stage, event, item.kind)
    if isinstance(stage, IllegalTransition):
        return stage
    retries = item.retries
    blocked_reason = item.blocked_reason
    match event:
        case GatesFailed() | QaRejected() | MergeFailed() | AttemptFailed():
            retries += 1
        case Demote():
            retries = 0
        case Unblock():
            retries = 0
            blocked_reason = None
        case Block(_, reason):
            blocked_reason = reason
    fields: dict[str, Json] = {}
    if stage != item.stage:
        fields["stage"] = stage_to_json(stage)
    if retries != item.retries:
        fields["retries"] = retries
    if blocked_reason != item.blocked_reason:
        fields["blocked_reason"] = blocked_reason
    updated = dataclasses.replace(
        item, stage=stage, retries=retries, blocked_reason=blocked_reason, updated_at=at
    )
    return ItemUpdate(updated, fields)
