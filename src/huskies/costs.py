"""What agent runs have cost, added up from the usage records in the replicated document: in
all, per day in the project's time zone, per item and per agent.

A run whose runtime reports no cost (a `command` agent) counts as a run that cost nothing, and
is counted apart so a total is never mistaken for complete when it is not.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from huskies.pipeline.usage import UsageRecord
from huskies.pipeline.view import ItemsView

PURGED_TITLE = "(purged)"
"""The title shown for an item no longer on the board: its records outlive it."""


@dataclass(frozen=True, slots=True)
class DaySpend:
    day: str  # YYYY-MM-DD in the project's time zone, of the runs' ends
    usd: float
    runs: int


@dataclass(frozen=True, slots=True)
class ItemSpend:
    item_id: str
    number: int
    title: str
    usd: float
    runs: int


@dataclass(frozen=True, slots=True)
class AgentSpend:
    agent: str
    usd: float
    runs: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Spend:
    """Days oldest first; items and agents costliest first (then by number, by name)."""

    total_usd: float
    runs: int
    unpriced_runs: int
    by_day: list[DaySpend]
    by_item: list[ItemSpend]
    by_agent: list[AgentSpend]

    def on(self, day: str) -> DaySpend:
        return next((spent for spent in self.by_day if spent.day == day), DaySpend(day, 0.0, 0))


def day_of(ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d")


def add_up(records: list[UsageRecord], board: ItemsView, zone: ZoneInfo) -> Spend:
    """The records added up; items are shown by their number and title on `board` now."""
    days: dict[str, list[UsageRecord]] = defaultdict(list)
    items: dict[str, list[UsageRecord]] = defaultdict(list)
    agents: dict[str, list[UsageRecord]] = defaultdict(list)
    for record in records:
        days[day_of(record.ended_at, zone)].append(record)
        items[record.item_id].append(record)
        agents[record.agent].append(record)
    by_item = []
    for item_id, runs in items.items():
        item = board.by_id(item_id)
        number, title = (
            (runs[-1].number, PURGED_TITLE) if item is None else (item.number, item.title)
        )
        by_item.append(ItemSpend(item_id, number, title, _usd(runs), len(runs)))
    by_agent = [
        AgentSpend(
            agent,
            _usd(runs),
            len(runs),
            sum(run.input_tokens for run in runs),
            sum(run.output_tokens for run in runs),
        )
        for agent, runs in agents.items()
    ]
    return Spend(
        total_usd=_usd(records),
        runs=len(records),
        unpriced_runs=sum(record.cost_usd is None for record in records),
        by_day=[DaySpend(day, _usd(runs), len(runs)) for day, runs in sorted(days.items())],
        by_item=sorted(by_item, key=lambda spent: (-spent.usd, spent.number)),
        by_agent=sorted(by_agent, key=lambda spent: (-spent.usd, spent.agent)),
    )


def _usd(records: list[UsageRecord]) -> float:
    # Rounded to a millionth of a dollar: sums of binary floats would show 0.30000000000000004.
    return round(sum(record.cost_usd or 0.0 for record in records), 6)
