"""`huskies demo`: the whole pipeline on a sample project, offline, in well under a minute.

It makes a new git repository holding a tiny calculator package (`huskies.demo_project`),
starts a huskies server on it in this process, adds four items and starts three of them. The
coders run `huskies.demo_agent`, a scripted program, so no model, API key or network is needed;
everything else is the real server: worktrees, agent processes, the quality gates, merges,
dependencies and retries. Progress shows live (a table of the items and a log of what happened)
until every item is done; then the server keeps running, for a look at its API, until Ctrl-C.
With `once` it prints plain lines instead and returns once every item has left the pipeline or
the time is up, saying what is stuck and why unless every item got done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from huskies.demo_project import BASE_BRANCH, ITEMS, add_sample_items, create_sample_project
from huskies.gitops import Git, GitError
from huskies.pipeline import Archived, ArchiveReason, Done, Stage, WorkItem, project_item
from huskies.pipeline.stages import StageName
from huskies.project import Project
from huskies.render import stage_text
from huskies.server import Running, running
from huskies.services.agents import Agents, NoRun
from huskies.services.events import Event, Subscription
from huskies.services.stories import Board

TICK_S = 0.5
"""How often the live view redraws (its clock moves) while nothing happens."""
WIDE_COLUMNS = 110
"""A terminal this wide shows each agent's latest line in the table."""
SHOWN_OUTPUT = 6
"""Lines of a stuck item's last agent output shown when the demo gives up."""
_LOGGED_ELSEWHERE = frozenset({"stage", "agent_completed"})
"""Notifications the log already has a line for, from item and agent state events."""
_RUN_WORDS = {"pending": "starting", "completed": "finished"}
"""Words for run states and outcomes that would read wrong beside the stage ("completed")."""
EXIT_INTERRUPTED = 130  # what a shell reports for a program ended by Ctrl-C
LIVE_PACE_S = 1.5
"""Seconds the live demo's agents take over each line they say, so the board shows the work
moving (about half a minute in all); `--once` runs at full speed."""


class Ending(Enum):
    FINISHED = "finished"
    """Every item is done (or archived as completed)."""
    STUCK = "stuck"
    """Every item is done or archived, some not as completed: only a person can go on."""
    TIMED_OUT = "timed out"
    INTERRUPTED = "interrupted"


def run_demo(directory: Path | None, *, once: bool, timeout_s: float, console: Console) -> int:
    """Run the demo in `directory` (new or empty; None: a new temporary directory). Returns the
    exit status: 0 when every item got done, 1 when some were archived unfinished (blocked,
    say) or the time ran out, 130 after Ctrl-C.
    Raises `DemoError` when the sample project cannot be made."""
    target = directory if directory is not None else Path(tempfile.mkdtemp(prefix="huskies-demo-"))
    console.print(f"huskies demo: a sample project in {target.absolute()}", markup=False)
    pace_s = 0.0 if once else LIVE_PACE_S
    project = create_sample_project(target.absolute(), pace_s=pace_s)
    return asyncio.run(serve_demo(project, once=once, timeout_s=timeout_s, console=console))


async def serve_demo(project: Project, *, once: bool, timeout_s: float, console: Console) -> int:
    """Serve the sample `project`, add its items and show them through the pipeline; returns
    the exit status (see `run_demo`)."""
    # Ctrl-C and SIGTERM end the wait below rather than the process, so the server's own exit
    # (agents stopped, database closed) runs in full.
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupted.set)
    try:
        async with running(project, project.config(), "127.0.0.1", 0) as server:
            return await _show(server, project, once, timeout_s, console, interrupted)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _show(
    server: Running,
    project: Project,
    once: bool,
    timeout_s: float,
    console: Console,
    interrupted: asyncio.Event,
) -> int:
    services = server.services
    agents = services.agents
    assert agents is not None  # `running` always makes the agents service
    url = f"http://127.0.0.1:{server.port}"
    say = _plain(console)
    say(f"  server    {url}/  (the board; API docs at {url}/docs)")
    say(f"  try       cd {project.root} && huskies story list   (in another terminal)")
    say("")
    watch = Watch(services.board, agents, console, once=once)
    with services.hub.subscribe() as events:
        items = await add_sample_items(services.board)
        watch.item_ids = [item.id for item in items]
        for item, sample in zip(items, ITEMS, strict=True):
            if sample.start:
                # None when both coders are busy: auto-assign starts it when one is free.
                await agents.start(item.number)
        ending = await watch.follow(events, timeout_s, interrupted)
    say("")
    if ending is Ending.FINISHED:
        if once:
            for line in watch.summary():
                say(line)
        say(f"Every item is done, in {watch.elapsed():.0f}s. {BASE_BRANCH} now reads:")
        for line in await _history(project):
            say(f"  {line}")
    elif ending is not Ending.INTERRUPTED:
        if ending is Ending.STUCK:
            say("Some items left the pipeline unfinished; only a person can take them on:")
        else:
            say(f"Not every item got done in {timeout_s:g}s. What is stuck, and why:")
        for line in watch.stuck():
            say(line)
        say(f"Look closer: cd {project.root} && huskies story show N; the agents' logs are in")
        say(f"{project.dir / 'runs'}.")
    if not once and ending is not Ending.INTERRUPTED:
        say(f"The server keeps running at {url}/ (API docs: {url}/docs). Press Ctrl-C to stop.")
        await interrupted.wait()
    return {Ending.FINISHED: 0, Ending.INTERRUPTED: EXIT_INTERRUPTED}.get(ending, 1)


class Watch:
    """Follows the server's live events: keeps a log of what happened and what each item's
    agent is doing, and shows it, as a live table or (with `once`) as plain lines."""

    def __init__(self, board: Board, agents: Agents, console: Console, *, once: bool) -> None:
        self.item_ids: list[str] = []
        self._board = board
        self._agents = agents
        self._console = console
        self._once = once
        self._started = time.monotonic()
        self._seen: dict[str, WorkItem] = {}  # item id → as last logged
        self._agent: dict[int, str] = {}  # item number → its agent and what it is doing
        self._output: dict[int, str] = {}  # item number → the last line its agent said
        self._runs_logged: set[tuple[str, str]] = set()  # (run, "started"/"ended")
        self._live: Live | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def ending(self) -> Ending | None:
        """FINISHED or STUCK once every item has left the pipeline, else None."""
        view = self._board.view()
        items = [view.by_id(item_id) for item_id in self.item_ids]
        if all(_finished(item) for item in items):
            return Ending.FINISHED
        if all(item is not None and isinstance(item.stage, Done | Archived) for item in items):
            return Ending.STUCK
        return None

    async def follow(
        self, events: Subscription, timeout_s: float, interrupted: asyncio.Event
    ) -> Ending:
        """Until every item has left the pipeline, the time is up, or `interrupted` is set."""
        deadline = time.monotonic() + timeout_s
        with self._showing():
            while True:
                while not events.queue.empty():
                    self.note(events.queue.get_nowait())
                self._refresh()
                if (ending := self.ending()) is not None:
                    return ending
                if interrupted.is_set():
                    return Ending.INTERRUPTED
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return Ending.TIMED_OUT
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(TICK_S, remaining)):
                        self.note(await events.get())

    def note(self, event: Event) -> None:
        """Log what `event` says, if it is worth a line."""
        data = event.data
        if event.kind == "item":
            self._note_item(data["item"])
        elif event.kind == "agent_output":
            self._note_output(data)
        elif event.kind == "agent_state":
            self._note_agent(data)
        elif event.kind == "notification":
            # One message, or a batch of them under "messages".
            messages = data.get("messages")
            for message in messages if isinstance(messages, list) else [data]:
                if message.get("kind") not in _LOGGED_ELSEWHERE:
                    kind = _words(message.get("kind"))
                    self._log_line(_numbered(message, f"{kind}: {_first_line(message)}"))
        elif event.kind != "lagged":  # the board is re-read at every redraw anyway
            # Events of other services (gates, merges, timers) by their kind and message.
            self._log_line(_numbered(data, f"{_words(event.kind)}: {_first_line(data)}"))

    def summary(self) -> list[str]:
        view = self._board.view()
        lines = []
        for item_id in self.item_ids:
            item = view.by_id(item_id)
            if item is not None:
                stage = stage_text(item.stage)
                lines.append(f"  #{item.number} {item.kind.value:<6} {stage:<22} {item.title}")
        return lines

    def stuck(self) -> list[str]:
        """Each unfinished item: where it is, why, and what its agent said last."""
        view = self._board.view()
        lines = []
        for item_id in self.item_ids:
            item = view.by_id(item_id)
            if item is None:
                lines.append(f"  item {item_id} is no longer on the board")
                continue
            if _finished(item):
                continue
            lines.append(
                f"  #{item.number} {item.kind.value} “{item.title}”: {stage_text(item.stage)}"
            )
            if item.blocked_reason:
                lines.append(f"      blocked: {item.blocked_reason}")
            if item.retries:
                lines.append(f"      retries: {item.retries}")
            if item.stage.name is StageName.BACKLOG and item.depends_on:
                waits = []
                for number in item.depends_on:
                    dependency = view.by_number(number)
                    where = stage_text(dependency.stage) if dependency else "not on the board"
                    waits.append(f"#{number} ({where})")
                lines.append(f"      waiting for {', '.join(waits)}")
            lines.append(f"      agent here: {self._agents.execution_state(item.id).value}")
            lines += self._last_run(item.number)
        return lines

    # ---- events -------------------------------------------------------------------------

    def _note_item(self, raw: Mapping[str, Any]) -> None:
        item = project_item(str(raw.get("id")), raw)
        if not isinstance(item, WorkItem):
            self._log_line(Text(f"unreadable item: {item}", style="red"))
            return
        before = self._seen.get(item.id)
        self._seen[item.id] = item
        if before is None:
            self._log_line(
                Text(f"#{item.number} {item.kind.value} “{item.title}” added to the backlog")
            )
            return
        changes = []
        if before.stage != item.stage:
            changes.append(f"{stage_text(before.stage)} → {stage_text(item.stage)}")
        if before.retries != item.retries:
            changes.append(f"retries {before.retries} → {item.retries}")
        if changes:
            if item.blocked_reason and item.blocked_reason != before.blocked_reason:
                changes.append(item.blocked_reason)
            style = "green" if _finished(item) else "red" if item.blocked_reason else "bold"
            self._log_line(Text(f"#{item.number} " + "; ".join(changes), style=style))

    def _note_output(self, data: Mapping[str, Any]) -> None:
        text = _event_text(data.get("event", {}))
        if text:
            self._output[data["number"]] = text
            self._log_line(Text(f"#{data['number']} {data['agent']} │ {text}", style="dim"))

    def _note_agent(self, run: Mapping[str, Any]) -> None:
        number, agent, outcome = run["number"], run["agent"], run.get("outcome")
        state = outcome or run["state"]
        self._agent[number] = f"{agent} {_RUN_WORDS.get(state, _words(state))}"
        if run["state"] == "running" and (run["run"], "started") not in self._runs_logged:
            self._runs_logged.add((run["run"], "started"))
            self._log_line(Text(f"#{number} {agent} started"))
        elif outcome is not None and (run["run"], "ended") not in self._runs_logged:
            self._runs_logged.add((run["run"], "ended"))
            ended = "finished" if outcome == "completed" else f"{_words(outcome)}: {run['message']}"
            self._log_line(Text(f"#{number} {agent} {ended}"))

    def _log_line(self, text: Text) -> None:
        """Print a line of the log, stamped with the time. While the live table shows, rich
        prints it above the table, so the whole log stays in the terminal's scrollback."""
        line = Text(f"{self.elapsed():6.1f}s  ")
        line.append_text(text)
        self._console.print(line, highlight=False, soft_wrap=self._once)

    # ---- showing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _showing(self) -> Iterator[None]:
        if self._once:
            yield
            return
        with Live(self._render(), console=self._console, auto_refresh=False) as live:
            self._live = live
            try:
                yield
            finally:
                self._live = None

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render(), refresh=True)

    def _render(self) -> Table:
        view = self._board.view()
        done = sum(1 for item_id in self.item_ids if _finished(view.by_id(item_id)))
        table = Table(
            title=f"{done} of {len(ITEMS)} items done · {self.elapsed():.0f}s",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            header_style="bold",
            pad_edge=False,
            expand=True,
        )
        # The agent's latest line gets a column only where it has room; the log shows it too.
        wide = self._console.width >= WIDE_COLUMNS
        table.add_column("#", justify="right", style="bold", no_wrap=True)
        table.add_column("kind", no_wrap=True)
        table.add_column("title", no_wrap=True, overflow="ellipsis", ratio=2)
        table.add_column("stage", no_wrap=True)
        table.add_column("agent", no_wrap=True)
        table.add_column("retries", justify="right", no_wrap=True)
        if wide:
            table.add_column("latest", no_wrap=True, overflow="ellipsis", ratio=3)
        for item_id in self.item_ids:
            item = view.by_id(item_id)
            if item is None:
                continue
            cells = [
                str(item.number),
                item.kind.value,
                item.title,
                Text(_stage_word(item.stage), style="green" if _finished(item) else ""),
                self._agent.get(item.number, ""),
                str(item.retries) if item.retries else "",
            ]
            if wide:
                cells.append(item.blocked_reason or self._output.get(item.number, ""))
            table.add_row(*cells)
        return table

    def _last_run(self, number: int) -> list[str]:
        try:
            output = self._agents.output(number)
        except NoRun:
            return ["      no agent has run on it here"]
        run = output["run"]
        ended = f"{run['outcome']}" + (f" ({run['message']})" if run["message"] else "")
        lines = [f"      last run: {run['agent']}, {ended if run['outcome'] else 'running'}"]
        texts = [_event_text(stamped["event"]) for stamped in output["events"]]
        lines += [f"        │ {text}" for text in texts[-SHOWN_OUTPUT:] if text]
        return lines


def _stage_word(stage: Stage) -> str:
    """The stage in a word or two: the log has the details (branch, merge commit)."""
    if isinstance(stage, Archived):
        return f"archived ({stage.reason.value.replace('_', ' ')})"
    return stage.name.value


def _finished(item: WorkItem | None) -> bool:
    if item is None:
        return False
    stage = item.stage
    return isinstance(stage, Done) or (
        isinstance(stage, Archived) and stage.reason is ArchiveReason.COMPLETED
    )


def _event_text(event: Mapping[str, Any]) -> str:
    """One line for an agent's event: its text, or its kind and message."""
    kind = event.get("type")
    if kind == "text":
        return str(event.get("text", "")).strip()
    message = event.get("message") or event.get("name") or ""
    return f"{kind}: {message}" if message else str(kind)


def _first_line(data: Mapping[str, Any]) -> str:
    """An event's message, or else its fields, cut to one line: gate output can be long."""
    message = data.get("message")
    text = message if isinstance(message, str) else json.dumps(dict(data), default=str)
    lines = text.strip().splitlines() or [""]
    first = lines[0] if len(lines[0]) <= 160 else lines[0][:159] + "…"
    return first + (" …" if len(lines) > 1 else "")


def _numbered(data: Mapping[str, Any], text: str) -> Text:
    number = data.get("number")
    return Text(f"#{number} {text}" if isinstance(number, int) else text)


def _words(kind: object) -> str:
    return str(kind).replace("_", " ")


def _plain(console: Console) -> Callable[[str], None]:
    def say(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    return say


async def _history(project: Project) -> list[str]:
    try:
        commits = await Git(project.root).log(BASE_BRANCH, limit=len(ITEMS) + 2)
    except GitError as exc:
        return [f"(cannot read the history: {exc})"]
    return [f"{commit.sha[:10]} {commit.subject}" for commit in commits]
