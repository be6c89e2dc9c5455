"""What agent runs cost: one record per run, kept in the replicated document under "usage".

A record is written once, when a run ends, and never edited, so records are plain JSON values
in a list rather than maps of registers. Reading tolerates bad records the way items do: each
becomes a problem for that record, and the rest still add up.
"""

from __future__ import annotations

from dataclasses import dataclass

from huskies.crdt import Document, Json, Transaction
from huskies.pipeline.jsonvalues import (
    WrongType,
    as_int,
    as_object,
    as_optional_int,
    as_str,
    describe,
    member,
)
from huskies.pipeline.records import append_record, stored_records

USAGE = "usage"


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """The cost and tokens of one run of `agent` on item `item_id` (#`number` when it ran).

    `cost_usd` is None when the runtime does not report cost (a `command` agent, say).
    `outcome` says how the run ended: completed, failed, crashed, stopped, timed_out,
    rate_limited.
    """

    run: str
    item_id: str
    number: int
    agent: str
    outcome: str
    cost_usd: float | None
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    turns: int | None
    started_at: int
    ended_at: int


_INTS = (
    "number",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "started_at",
    "ended_at",
)
_STRS = ("run", "item_id", "agent", "outcome")


def usage_to_json(record: UsageRecord) -> dict[str, Json]:
    return {
        "run": record.run,
        "item_id": record.item_id,
        "number": record.number,
        "agent": record.agent,
        "outcome": record.outcome,
        "cost_usd": record.cost_usd,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cache_read_input_tokens": record.cache_read_input_tokens,
        "cache_creation_input_tokens": record.cache_creation_input_tokens,
        "turns": record.turns,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
    }


def record_usage(tx: Transaction, record: UsageRecord) -> None:
    """Append `record` (the list is made every time; concurrent makes share one list)."""
    append_record(tx, USAGE, usage_to_json(record))


def usage_from_json(raw: object) -> UsageRecord:
    """The record `raw` holds, or WrongType naming the first bad field."""
    record = as_object(raw)
    ints = {name: member(record, name, as_int) for name in _INTS}
    strs = {name: member(record, name, as_str) for name in _STRS}
    return UsageRecord(
        run=strs["run"],
        item_id=strs["item_id"],
        number=ints["number"],
        agent=strs["agent"],
        outcome=strs["outcome"],
        cost_usd=member(record, "cost_usd", _cost),
        input_tokens=ints["input_tokens"],
        output_tokens=ints["output_tokens"],
        cache_read_input_tokens=ints["cache_read_input_tokens"],
        cache_creation_input_tokens=ints["cache_creation_input_tokens"],
        turns=member(record, "turns", as_optional_int),
        started_at=ints["started_at"],
        ended_at=ints["ended_at"],
    )


def read_usage(doc: Document) -> tuple[list[UsageRecord], list[str]]:
    """Every usage record, oldest first, and a problem line for each one that is malformed."""
    values, problems = stored_records(doc, USAGE)
    records = []
    for position, raw in enumerate(reversed(values)):
        try:
            records.append(usage_from_json(raw))
        except WrongType as exc:
            problems.append(f"usage record {position}: {exc}")
    return records, problems


def _cost(raw: object) -> float | None:
    if raw is None:
        return None
    # bool is an int in Python, but `true` is not a cost.
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise WrongType(f"must be a number or null, got {describe(raw)}")
    return float(raw)
