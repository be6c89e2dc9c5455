"""An item's history: which node changed which of its fields, and when, read from the change
log (through the log's element index, `Replica.element_changes`).

Each change that touched the item becomes one entry: the fields it set, in their stored form,
and a line for people. Bookkeeping that every edit carries (`updated_at`) and a running agent's
renewals of its claim are left out; a change with nothing else is no entry at all. Body edits
are counted in characters, never copied: a body can be long, and its text is on the item.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from huskies.crdt import Json, OpId, VerifiedChange
from huskies.crdt.ops import ListMake, MapDelete, MapSet, TextDelete, TextInsert, slots
from huskies.pipeline import StageError, stage_from_json
from huskies.pipeline.schema import BODY
from huskies.render import stage_text
from huskies.store.elements import op_element

# Set by every edit, or only at creation: not news in a history.
_BOOKKEEPING = frozenset({"updated_at", "created_at"})


@dataclass(frozen=True, slots=True)
class ItemChange:
    """One change to an item: when (`at`, ms since the epoch, the author's clock), by which
    node (`author`, its id), in which change (`change`, its id), the `fields` it set (a body
    edit as {"inserted", "deleted"} characters; a removed field as null), and `summary`."""

    at: int
    author: str
    change: str
    fields: dict[str, Json]
    summary: str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "author": self.author,
            "change": self.change,
            "fields": self.fields,
            "summary": self.summary,
        }


def item_history(element: OpId, changes: list[VerifiedChange]) -> list[ItemChange]:
    """The entries for the changes (in apply order) that touched the item at `element`."""
    history = []
    claimed_by: object = None
    for verified in changes:
        created, fields = _item_ops(element, verified)
        if "claim" in fields:
            claim = fields["claim"]
            node = claim.get("node") if isinstance(claim, dict) else None
            if node is not None and node == claimed_by:
                del fields["claim"]  # the same node renewing its claim while its agent runs
            claimed_by = node
        if not created and not fields:
            continue
        history.append(
            ItemChange(
                at=verified.change.time,
                author=verified.change.author.hex(),
                change=verified.id.hex(),
                fields=fields,
                summary=_summary(created, fields),
            )
        )
    return history


def _item_ops(element: OpId, verified: VerifiedChange) -> tuple[bool, dict[str, Json]]:
    """Whether the change made the item, and the fields it set (bookkeeping left out)."""
    created = False
    fields: dict[str, Json] = {}
    inserted = deleted = 0
    slot = 0
    for op in verified.change.ops:
        if op_element(verified.id, slot, op) == element:
            depth = len(op.path)
            if depth == 1 and isinstance(op, ListMake):
                created = True
            elif depth == 2 and isinstance(op, MapSet) and op.key not in _BOOKKEEPING:
                fields[op.key] = op.value
            elif depth == 2 and isinstance(op, MapDelete):
                fields[op.key] = None
            elif depth == 3 and op.path[2] == BODY and isinstance(op, TextInsert):
                inserted += len(op.text)
            elif depth == 3 and op.path[2] == BODY and isinstance(op, TextDelete):
                deleted += sum(span.length for span in op.spans)
        slot += slots(op)
    if inserted or deleted:
        fields[BODY] = {"inserted": inserted, "deleted": deleted}
    return created, fields


def _summary(created: bool, fields: dict[str, Json]) -> str:
    if created:
        kind, title = fields.get("kind"), fields.get("title")
        return f"created: {kind} “{title}”" if isinstance(title, str) else "created"
    return ", ".join(_shown(name, value) for name, value in fields.items())


def _shown(name: str, value: Json) -> str:
    """One field's change as people read it: `stage → qa`, `body edited (+12 -3)`."""
    match name, value:
        case "body", {"inserted": int() as inserted, "deleted": int() as deleted}:
            return f"body edited (+{inserted} -{deleted})"
        case "stage", _:
            try:
                return f"stage → {stage_text(stage_from_json(value))}"
            except StageError:
                return f"stage → {json.dumps(value, ensure_ascii=False)}"
        case "claim", None:
            return "claim released"
        case "claim", {"node": str() as node}:
            return f"claimed by {node[:16]}…"
        case "number", int():
            return f"number → #{value}"
        case "depends_on", list():
            return f"depends on → {', '.join(f'#{n}' for n in value) or 'nothing'}"
        case "title", str():
            return f"title → “{value}”"
        case "blocked_reason", None:
            return "blocked reason cleared"
        case "agent", None:
            return "agent → any"
        case "qa", None:
            return "qa → project default"
        case _, str():
            return f"{name.replace('_', ' ')} → {value}"
    return f"{name.replace('_', ' ')} → {json.dumps(value, ensure_ascii=False)}"
