"""How the CLI shows work items and state: rich tables and plain detail views."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from huskies.crdt import Document
from huskies.pipeline import ItemError, WorkItem
from huskies.pipeline.stages import Archived, Done, Merge, Stage
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
