"""How the CLI (and the command interpreter) shows work items and state: rich tables, plain
detail views, and the answers to commands."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from huskies.costs import Spend
from huskies.crdt import Document
from huskies.pipeline import UNBLOCKABLE, ItemError, ItemKind, QaMode, WorkItem
from huskies.pipeline.stages import Archived, Done, Merge, Qa, Stage, StageName
from huskies.store import ReplicaStats


def when(ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %H:%M")


def stage_text(stage: Stage) -> str:
    if isinstance(stage, Merge):
        plural = "s" if stage.commits_ahead != 1 else ""
        return f"merge ({stage.feature_branch}, {stage.commits_ahead} commit{plural} ahead)"
    if isinstance(stage, Done):
        return f"done ({stage.merge_commit[:12]})" if stage.merge_commit else "done (no merge)"
    if isinstance(stage, Archived):
        return f"archived ({stage.reason.value.replace('_', ' ')})"
    return stage.name.value


def item_table(items: list[WorkItem], zone: ZoneInfo) -> Table:
    table = Table(show_edge=False, header_style="bold")
    table.add_column("#", justify="right", style="bold", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("stage")
    table.add_column("title", overflow="fold", ratio=1)
    table.add_column("agent")
    table.add_column("retries", justify="right")
    table.add_column("updated", no_wrap=True)
    for item in items:
        table.add_row(
            str(item.number),
            item.kind.value,
            stage_text(item.stage),
            escape(item.title),
            escape(item.agent or ""),
            str(item.retries) if item.retries else "",
            when(item.updated_at, zone),
        )
    return table


def print_item(console: Console, item: WorkItem, zone: ZoneInfo, default_qa: str) -> None:
    qa = item.qa.value if item.qa else f"{default_qa} (project default)"
    rows = [
        ("kind", item.kind.value),
        ("stage", stage_text(item.stage)),
        ("qa", qa),
        ("agent", item.agent or "none"),
        ("depends on", ", ".join(f"#{n}" for n in item.depends_on) or "nothing"),
        ("retries", str(item.retries)),
        ("created", when(item.created_at, zone)),
        ("updated", when(item.updated_at, zone)),
        ("id", item.id),
    ]
    if item.blocked_reason:
        rows.insert(2, ("blocked", item.blocked_reason))
    if item.claim:
        rows.append(
            ("claimed by", f"{item.claim.node[:16]}… until {when(item.claim.expires_at, zone)}")
        )
    console.print(f"[bold]#{item.number}[/bold] {escape(item.title)}", highlight=False)
    for label, value in rows:
        console.print(f"  {label:<11} {value}", highlight=False, markup=False)
    console.print()
    console.print(item.body or "(no body)", highlight=False, markup=False)


def print_errors(console: Console, errors: list[ItemError]) -> None:
    if not errors:
        return
    noun = "item" if len(errors) == 1 else "items"
    console.print(f"\n{len(errors)} {noun} could not be read:", style="yellow")
    for error in errors:
        where = f".{error.field}" if error.field else ""
        console.print(f"  {error.item_id[:16]}…{where}: {error.problem}", markup=False)


def state_summary(
    doc: Document, stats: ReplicaStats, now_ms: int, zone: ZoneInfo
) -> dict[str, Any]:
    """The document and the log's statistics, for debugging (`huskies state dump`, and
    `GET /api/state`, which the CLI prints with `state_json` when a server runs)."""
    snapshot = None
    if stats.snapshot is not None:
        snapshot = {
            "changes": stats.snapshot.change_count,
            "taken_at": when(stats.snapshot.taken_at, zone),
            "age_s": round((now_ms - stats.snapshot.taken_at) / 1000, 1),
            "changes_since": stats.changes - stats.snapshot.change_count,
        }
    return {
        "node": stats.node_id,
        "log": {
            "changes": stats.changes,
            "pending": stats.pending,
            "heads": stats.heads,
            "max_lamport": stats.max_lamport,
            "authors": stats.authors,
            "snapshot": snapshot,
            "file_bytes": stats.file_bytes,
            "schema_version": stats.schema_version,
            "opened_by": stats.opened_by,
        },
        "document": doc.view(),
    }


def state_json(summary: dict[str, Any], *, indent: int | None = 2) -> str:
    # The document holds JSON values only; repr is a last resort that keeps a dump readable.
    return json.dumps(summary, indent=indent, ensure_ascii=False, default=repr)


def agent_event_text(event: dict[str, Any]) -> str:
    """One agent event (its JSON form) as a line for people."""
    match event.get("type"):
        case "text":
            return str(event.get("text", ""))
        case "tool_use":
            arguments = json.dumps(event.get("input", {}), ensure_ascii=False)
            short = arguments if len(arguments) <= 120 else arguments[:117] + "..."
            return f"→ {event.get('name')} {short}"
        case "tool_result":
            output = str(event.get("output", "")).strip().splitlines()
            first = output[0] if output else ""
            more = f" (+{len(output) - 1} lines)" if len(output) > 1 else ""
            mark = "✗" if event.get("is_error") else "←"
            return f"{mark} {first}{more}"
        case "result":
            usage = event.get("usage") or {}
            cost = event.get("cost_usd")
            spent = "" if cost is None else f"${cost:.4f}, "
            tokens = f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out"
            state = "error" if event.get("is_error") else "done"
            return f"■ {state}: {spent}{tokens} tokens"
        case "rate_limit":
            return f"⏸ rate limited: {event.get('message', '')}"
        case "error":
            return f"! {event.get('message', '')}"
        case "session_started":
            return f"● session {event.get('session_id', '')} ({event.get('model', '')})"
    return json.dumps(event, ensure_ascii=False)


def runs_table(runs: list[dict[str, Any]], zone: ZoneInfo) -> Table:
    table = Table(show_edge=False, header_style="bold")
    table.add_column("#", justify="right", style="bold", no_wrap=True)
    table.add_column("agent")
    table.add_column("state")
    table.add_column("started", no_wrap=True)
    table.add_column("cost", justify="right")
    table.add_column("how it ended", overflow="fold", ratio=1)
    for run in runs:
        cost = run.get("cost_usd")
        table.add_row(
            str(run["number"]),
            escape(run["agent"]),
            run["state"] + (" (commit only)" if run.get("commit_only") else ""),
            when(run["started_at"], zone),
            "" if cost is None else f"${cost:.4f}",
            escape(run.get("message") or ""),
        )
    return table


def plain_text(draw: Callable[[Console], None]) -> str:
    """What `draw` prints, as plain text without colours or styles (the command interpreter's
    answers go to the web board and chat as well as to terminals), less the line end that
    printing it adds back."""
    buffer = io.StringIO()
    draw(Console(file=buffer, color_system=None, highlight=False, soft_wrap=True))
    return buffer.getvalue().removesuffix("\n")


# What the CLI and the command interpreter say after an action; each has one wording.


def unblocked_text(number: int, stage: Stage) -> str:
    return f"#{number} is back in {stage_text(stage)}."


def approved_text(number: int, stage: str) -> str:
    return f"Approved #{number}; it is now in {stage}."


def rejected_text(number: int) -> str:
    return f"Rejected #{number}; it is back in coding."


def stopped_text(number: int, how: str) -> str:
    return f"Stopped the agent of #{number} ({how})."


def assigned_text(number: int, agent: str) -> str:
    return f"#{number} will be worked on by {agent}."


def timer_set_text(number: int, local: str) -> str:
    return f"#{number} will start at {local}."


def started_text(number: int, agent: str | None, ended: str | None) -> str:
    """What starting an agent on #`number` did: `agent` None when none was free; `ended`
    how its run ended if it already has (say, its program could not start)."""
    if agent is None:
        return f"#{number} waits for a free agent"
    if ended is not None:
        return f"#{number}: {agent} {ended}"
    return f"#{number}: {agent} is running"


def timer_cancelled_text(number: int, cancelled: bool) -> str:
    return f"Cancelled the timer of #{number}." if cancelled else f"#{number} has no timer."


def timers_text(timers: list[tuple[int, str]]) -> str:
    """(number, when in the project's time zone) of each timer, soonest first."""
    return "\n".join(f"#{number}  {local}" for number, local in timers) or "No timers."


def duration_text(ms: int) -> str:
    """A span of time, to the unit that matters: 45s, 12m, 3h05m, 2d4h."""
    seconds = max(0, ms // 1000)
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 24:
        return f"{hours}h{minutes % 60:02d}m"
    return f"{hours // 24}d{hours % 24}h"


def usd_text(usd: float) -> str:
    return f"${usd:.4f}"


STATUS_ITEMS_PER_STAGE = 10
"""Items listed under each stage by `status`; the rest are counted (`story list` has them)."""

DOING_WIDTH = 80
"""How much of an agent's latest event `status` shows."""


def status_text(
    items: list[WorkItem],
    agents: list[dict[str, Any]],
    doing: Mapping[int, str],
    default_qa: str,
    now_ms: int,
) -> str:
    """The pipeline at a glance: how many items each stage holds and which, what each agent
    is doing (`agents` as `GET /api/agents` gives them; `doing`: the latest event of the run on
    each item number), and the items waiting for a person."""
    by_stage: dict[StageName, list[WorkItem]] = {name: [] for name in StageName}
    for item in items:
        by_stage[item.stage.name].append(item)
    waiting = [item for item in items if _waits_for_person(item, default_qa)]
    counts = " · ".join(f"{name.value} {len(found)}" for name, found in by_stage.items())
    if waiting:
        counts += f" ({len(waiting)} waiting for a person)"
    lines = [counts]
    for name, found in by_stage.items():
        if name is StageName.ARCHIVED or not found:
            continue
        lines += ["", name.value.capitalize()]
        lines += [f"  {_item_line(item)}" for item in found[:STATUS_ITEMS_PER_STAGE]]
        if len(found) > STATUS_ITEMS_PER_STAGE:
            more = len(found) - STATUS_ITEMS_PER_STAGE
            lines.append(f"  … and {more} more (`huskies story list --stage {name.value}`)")
    if not items:
        lines += ["", "No items yet: `huskies story new TITLE` adds one."]
    lines += ["", "Agents"]
    lines += [f"  {_agent_line(agent, doing, now_ms)}" for agent in agents]
    if not agents:
        lines.append("  none configured (.huskies/agents.toml)")
    if waiting:
        lines += ["", "Waiting for a person"]
        lines += [f"  #{item.number}  {item.title}: {_why_waiting(item)}" for item in waiting]
    return "\n".join(lines)


def _waits_for_person(item: WorkItem, default_qa: str) -> bool:
    stage = item.stage
    if isinstance(stage, Archived):
        return stage.reason in UNBLOCKABLE
    qa = item.qa.value if item.qa else default_qa
    return isinstance(stage, Qa) and qa == QaMode.HUMAN.value


def _why_waiting(item: WorkItem) -> str:
    if isinstance(item.stage, Qa):
        return f"review it: `approve {item.number}` or `reject {item.number} REASON`"
    reason = item.blocked_reason or stage_text(item.stage)
    return f"{reason} (`unblock {item.number}` when it can go on)"


def _item_line(item: WorkItem) -> str:
    notes = [] if item.kind is ItemKind.STORY else [item.kind.value]
    if isinstance(item.stage, Merge | Done):
        notes.append(stage_text(item.stage))
    if item.agent:
        notes.append(f"agent {item.agent}")
    if item.retries:
        notes.append(f"{item.retries} retr{'y' if item.retries == 1 else 'ies'}")
    return f"#{item.number}  {item.title}" + (f" ({', '.join(notes)})" if notes else "")


def _agent_line(agent: Mapping[str, Any], doing: Mapping[int, str], now_ms: int) -> str:
    run = agent["running"]
    line = f"{agent['name']} ({agent['stage']}): "
    if run is None:
        return line + "idle"
    line += f"#{run['number']}, {run['state'].replace('_', ' ')} for "
    line += duration_text(now_ms - run["started_at"])
    latest = doing.get(run["number"], "").strip().splitlines()
    if latest:
        text = latest[0]
        line += ": " + (text if len(text) <= DOING_WIDTH else text[: DOING_WIDTH - 1] + "…")
    return line


def spend_text(
    spend: Spend, today: str, zone: str, problems: list[str], top_items: int = 10
) -> str:
    """What `cost` says: the total, today's spend, each agent's, and the costliest items;
    `problems` are the usage records that could not be read (and are not in the sums)."""
    unread = f"\n\nNot counted: {'; '.join(problems)}" if problems else ""
    if not spend.runs:
        return "No agent runs are recorded yet, so nothing has been spent." + unread
    unpriced = f" ({spend.unpriced_runs} reported no cost)" if spend.unpriced_runs else ""
    spent_today = spend.on(today)
    lines = [
        f"Spent {usd_text(spend.total_usd)} on {_runs(spend.runs)}{unpriced}.",
        f"Today ({today}, {zone}): {usd_text(spent_today.usd)} on {_runs(spent_today.runs)}.",
        "",
        "By agent",
    ]
    rows = [
        (
            agent.agent,
            usd_text(agent.usd),
            _runs(agent.runs),
            f"{agent.input_tokens:,} tokens in, {agent.output_tokens:,} out",
        )
        for agent in spend.by_agent
    ]
    lines += _columns(rows, right={1})
    lines += ["", "Costliest items" if len(spend.by_item) > top_items else "By item"]
    rows = [
        (f"#{item.number}", usd_text(item.usd), _runs(item.runs), item.title)
        for item in spend.by_item[:top_items]
    ]
    lines += _columns(rows, right={0, 1})
    return "\n".join(lines) + unread


def _runs(count: int) -> str:
    return f"{count} run{'' if count == 1 else 's'}"


def _columns(rows: Sequence[tuple[str, ...]], right: set[int]) -> list[str]:
    """Rows as aligned, indented lines; the columns in `right` aligned to the right. The last
    column is free text and never padded."""
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]) - 1)] if rows else []
    lines = []
    for row in rows:
        padded = [
            cell.rjust(width) if k in right else cell.ljust(width)
            for k, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  " + "  ".join([*padded, row[-1]]))
    return lines
