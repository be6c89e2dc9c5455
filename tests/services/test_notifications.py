"""Notifications: bursts batched into one event, a steady trickle still published every window,
and stage changes of real items (through the real item event loop) told once each."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from huskies.pipeline import (
    Archive,
    ArchiveReason,
    Block,
    MergeSucceeded,
    QaApproved,
    Start,
    Submit,
    item_to_json,
)
from huskies.pipeline.stages import StageName
from huskies.services.agents import Agents
from huskies.services.events import EventHub, Subscription
from huskies.services.item_events import ITEM, publish_item_events
from huskies.services.notifications import (
    BLOCKED,
    MERGE_FAILED,
    NOTIFICATION,
    STAGE,
    Notifier,
    blocked_message,
)
from huskies.services.settings import Settings
from huskies.services.stories import Board
from huskies.services.worktrees import Worktrees
from huskies.store import Replica
from huskies.store.replica import wall_clock_ms

from ..web.support import until
from .agent_rig import agent_table, make_repo

DEADLINE_S = 10
AT = 1_717_228_800_000


def fixed_clock() -> int:
    return AT


async def next_messages(events: Subscription) -> list[dict[str, Any]]:
    async with asyncio.timeout(DEADLINE_S):
        event = await events.get()
    assert event.kind == NOTIFICATION
    assert set(event.data) == {"messages"}
    messages: list[dict[str, Any]] = event.data["messages"]
    return messages


async def test_a_burst_is_published_as_one_event():
    hub = EventHub()
    notifier = Notifier(hub, debounce_s=0.1, clock=fixed_clock)
    with hub.subscribe({NOTIFICATION}) as events:
        notifier.notify(STAGE, "#1 moved to qa", number=1)
        notifier.notify("rate_limited", "#2 coder: resumes at 10:05", number=2)
        notifier.notify("agent_completed", "the run finished")
        assert events.queue.empty()  # nothing goes out before the window ends
        assert await next_messages(events) == [
            {"kind": STAGE, "message": "#1 moved to qa", "number": 1, "at": AT},
            {
                "kind": "rate_limited",
                "message": "#2 coder: resumes at 10:05",
                "number": 2,
                "at": AT,
            },
            {"kind": "agent_completed", "message": "the run finished", "number": None, "at": AT},
        ]
        # The next notification opens a new window of its own.
        notifier.notify(STAGE, "#1 moved to merge", number=1)
        assert [m["message"] for m in await next_messages(events)] == ["#1 moved to merge"]


async def test_a_steady_trickle_is_published_every_window():
    hub = EventHub()
    notifier = Notifier(hub, debounce_s=0.3)
    published: list[list[dict[str, Any]]] = []
    with hub.subscribe({NOTIFICATION}) as events:
        # One message every 0.1 s for 1.2 s: never a quiet window, so a debounce that waited
        # for quiet would hold them all until the end.
        for n in range(12):
            notifier.notify("attempt_failed", f"message {n}", number=n)
            await asyncio.sleep(0.1)  # paces the messages; nothing is waited for here
            while not events.queue.empty():
                published.append(events.queue.get_nowait().data["messages"])
        during = len(published)
        notifier.flush()  # publishes what is left (if anything) before it returns
        while not events.queue.empty():
            published.append(events.queue.get_nowait().data["messages"])
    assert during >= 2, published
    assert [m["message"] for batch in published for m in batch] == [
        f"message {n}" for n in range(12)
    ]
    for batch in published:  # each event holds one window's worth
        assert batch[-1]["at"] - batch[0]["at"] <= 300 + 150


async def test_the_same_news_twice_in_a_row_is_told_once():
    hub = EventHub()
    notifier = Notifier(hub, debounce_s=60, clock=fixed_clock)
    blocked = blocked_message(3, "too many failures")
    with hub.subscribe({NOTIFICATION}) as events:
        notifier.notify(BLOCKED, blocked, number=3)  # the agents service blocked it…
        notifier.notify(STAGE, "#4 moved to qa", number=4)
        notifier.notify(BLOCKED, blocked, number=3)  # …and the stage watcher saw it blocked
        notifier.notify(BLOCKED, blocked, number=4)  # another item: other news
        notifier.notify(STAGE, "#3 moved to coding", number=3)
        notifier.notify(BLOCKED, blocked, number=3)  # blocked again after a move: news
        notifier.flush()  # at once, without waiting out the minute
        messages = await next_messages(events)
        notifier.flush()  # nothing queued: nothing published
        assert events.queue.empty()
    assert [(m["kind"], m["number"]) for m in messages] == [
        (BLOCKED, 3),
        (STAGE, 4),
        (BLOCKED, 4),
        (STAGE, 3),
        (BLOCKED, 3),
    ]
    assert blocked == "#3 is blocked: too many failures; `huskies unblock 3` when it can go on"


def test_a_negative_window_is_refused():
    with pytest.raises(ValueError, match="debounce_s must be ≥ 0, got -1"):
        Notifier(EventHub(), debounce_s=-1)


def ticking() -> Any:
    now = [AT]

    def clock() -> int:
        now[0] += 1
        return now[0]

    return clock


@contextlib.asynccontextmanager
async def watched(tmp_path: Path, titles: list[str]) -> AsyncIterator[tuple[Board, Subscription]]:
    """A real replica and board with `titles` as items, the real item event loop, and a
    notifier watching the items; yields the board and a subscription to notifications."""
    async with await Replica.open(tmp_path / "a.db") as replica:
        board = Board(replica, ticking())
        for title in titles:
            await board.create(title)
        hub = EventHub()
        notifier = Notifier(hub, debounce_s=0.02)
        with hub.subscribe({NOTIFICATION}) as events:
            items = asyncio.create_task(publish_item_events(replica, board, hub))
            watcher = asyncio.create_task(notifier.watch_items(board))
            # Tasks take their first step in the order they were made: once the watcher has
            # subscribed, the item loop is following the replica too.
            await until(lambda: hub.subscribers == 2, "the watcher's subscription")
            try:
                yield board, events
            finally:
                for task in (items, watcher):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task


async def told(events: Subscription, until_message: str) -> list[tuple[str, str, int | None]]:
    """Every notification up to and including `until_message`."""
    seen: list[tuple[str, str, int | None]] = []
    while not seen or seen[-1][1] != until_message:
        seen += [(m["kind"], m["message"], m["number"]) for m in await next_messages(events)]
    return seen


async def test_stage_changes_are_told_once_each(tmp_path: Path):
    async with watched(tmp_path, ["Login", "Search"]) as (board, events):
        await board.apply(1, Start())
        await board.edit(1, title="Login, renamed")  # not a change of stage
        await board.apply(1, Submit())
        await board.apply(1, QaApproved(AT, "feature/story-1", 2))
        await board.apply(1, MergeSucceeded(AT, "0123456789abcdef"))
        await board.move(1, StageName.ARCHIVED)
        await board.create("Made later")  # new items are not news
        await board.apply(2, Block(AT, "the tests hang"))
        await board.unblock(2)
        assert await told(events, "#2 moved to backlog") == [
            (STAGE, "#1 moved to coding", 1),
            (STAGE, "#1 moved to qa", 1),
            (STAGE, "#1 moved to merge", 1),
            (STAGE, "#1 is done (merged as 0123456789ab)", 1),
            (STAGE, "#1 was archived as completed", 1),
            (BLOCKED, blocked_message(2, "the tests hang"), 2),
            (STAGE, "#2 moved to backlog", 2),
        ]


async def test_failed_merges_and_held_reviews_are_told(tmp_path: Path):
    async with watched(tmp_path, ["Merge me", "Review me", "Drop me"]) as (board, events):
        for number in (1, 2):
            await board.apply(number, Start())
            await board.apply(number, Submit())
        await board.apply(1, QaApproved(AT, "feature/story-1", 1))
        await board.apply(1, Archive(AT, ArchiveReason.MERGE_FAILED))
        await board.apply(2, Archive(AT, ArchiveReason.REVIEW_HELD))
        await board.unblock(1)
        await board.move(3, StageName.ARCHIVED)
        seen = await told(events, "#3 was archived as abandoned")
    assert [entry for entry in seen if entry[1].startswith("#1 ")][-2:] == [
        (MERGE_FAILED, "#1 failed to merge; `huskies unblock 1` returns it to merge", 1),
        (STAGE, "#1 moved to merge", 1),
    ]
    assert (STAGE, "#2 is held in review; `huskies unblock 2` returns it to qa", 2) in seen


async def test_a_watcher_that_fell_behind_rereads_the_board(tmp_path: Path):
    async with await Replica.open(tmp_path / "a.db") as replica:
        board = Board(replica, ticking())
        await board.create("Moves unseen")
        await board.create("Noisy")
        hub = EventHub()
        notifier = Notifier(hub, debounce_s=0.02)
        with hub.subscribe({NOTIFICATION}) as events:
            watcher = asyncio.create_task(notifier.watch_items(board))
            await until(lambda: hub.subscribers == 2, "the watcher's subscription")
            await board.apply(1, Start())  # no item loop runs: no event tells of this move
            noisy = item_to_json(board.get(2))
            for _ in range(2_000):  # more than the watcher's queue holds, in one go
                hub.publish(ITEM, {"item": noisy})
            hub.publish(ITEM, {"item": {"id": "x", "number": "one"}})  # unreadable: skipped
            try:
                assert await told(events, "#1 moved to coding") == [
                    (STAGE, "#1 moved to coding", 1)
                ]
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher


@contextlib.asynccontextmanager
async def agents_telling(
    tmp_path: Path, agents_toml: str
) -> AsyncIterator[tuple[Agents, Subscription]]:
    """The real agents service with the agents of `agents_toml`, at most one attempt per item,
    notifying through a notifier; yields it and a subscription to notifications."""
    project = make_repo(tmp_path / "repo")
    project.agents_toml.write_text(agents_toml)
    toml = project.project_toml.read_text()
    project.project_toml.write_text(toml.replace("max_retries = 3", "max_retries = 1"))
    settings = Settings.load(project)
    hub = EventHub()
    notifier = Notifier(hub, debounce_s=0.02)
    async with await Replica.open(project.db_path) as replica:
        board = Board(replica, wall_clock_ms)
        await board.create("Try it")
        agents = Agents(
            settings=settings,
            replica=replica,
            board=board,
            worktrees=Worktrees(project.root, settings.config.base_branch),
            hub=hub,
            runs_dir=project.dir / "runs",
            server_url=lambda: "http://127.0.0.1:9",
            clock=wall_clock_ms,
            notify=notifier,
        )
        with hub.subscribe({NOTIFICATION}) as events:
            try:
                yield agents, events
            finally:
                await agents.close()


async def test_the_agents_service_notifies_through_the_notifier(tmp_path: Path):
    coder = agent_table("coder", "echo trying; exit 3")
    async with agents_telling(tmp_path, coder) as (agents, events):
        run = await agents.start(1)
        assert run is not None
        async with asyncio.timeout(DEADLINE_S):
            await run.finished.wait()
        messages = await next_messages(events)
    assert [(m["kind"], m["number"]) for m in messages] == [(BLOCKED, 1)]
    reason = messages[0]["message"]
    assert reason.startswith(f"#1 is blocked: 1 failed attempts; last: coder run {run.id}: ")
    assert reason.endswith("; `huskies unblock 1` when it can go on")


async def test_an_agent_that_cannot_start_is_told(tmp_path: Path):
    missing = agent_table("coder", "").replace('["sh", "-c", ""]', '["/nonexistent/agent"]')
    async with agents_telling(tmp_path, missing) as (agents, events):
        await agents.start(1)
        messages = await next_messages(events)
    assert [(m["kind"], m["number"]) for m in messages] == [("agent_not_started", 1)]
    assert messages[0]["message"].startswith("#1 coder: could not start: ")
    assert "/nonexistent/agent" in messages[0]["message"]
