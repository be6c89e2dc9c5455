"""The text commands people type: `status`, `start 3`, `reject 3 the tests miss X`, `cost` …

One interpreter for every place that takes a typed command (the web board's command line,
`huskies status` and `huskies cost`, chat), so a command reads the same and answers in the same
words everywhere; the answers are the CLI's own (the wording lives in `huskies.render`). Answers
are plain text for a monospace font, with no colours.

A command that cannot be read (unknown, an argument missing or wrong) raises CommandError and
changes nothing. A command that is read but refused raises the service's own error
(`UnknownItem`, `IllegalMove`, `AgentError` …), as the HTTP API does.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn
from zoneinfo import ZoneInfo

from huskies.agents.events import event_to_json
from huskies.costs import add_up, day_of
from huskies.pipeline.usage import read_usage
from huskies.render import (
    agent_event_text,
    approved_text,
    assigned_text,
    plain_text,
    print_item,
    rejected_text,
    spend_text,
    started_text,
    status_text,
    stopped_text,
    timer_cancelled_text,
    timer_set_text,
    timers_text,
    unblocked_text,
)
from huskies.services.agents import Agents, NoSuchAgent
from huskies.services.review import Review
from huskies.services.stories import BadField, StoryError
from huskies.services.timers import Timers
from huskies.store.replica import wall_clock_ms
from huskies.web.services import Services


class CommandError(Exception):
    """A command that cannot be read: unknown, or an argument missing or wrong. The message
    says what, and how to find the right form; nothing changed."""


@dataclass(frozen=True, slots=True)
class CommandOutput:
    text: str


class _Args:
    """The words after a command's name, read for one command."""

    def __init__(self, name: str, usage: str, words: list[str], text: str) -> None:
        self.name = name
        self.usage = usage
        self.words = words
        self._text = text

    def bad(self, problem: str) -> CommandError:
        return CommandError(f"{problem}; usage: `{self.usage}` (`help` lists every command)")

    def word(self, index: int, what: str) -> str:
        if index >= len(self.words):
            raise self.bad(f"`{self.name}` needs {what}")
        return self.words[index]

    def optional(self, index: int) -> str | None:
        return self.words[index] if index < len(self.words) else None

    def number(self, index: int) -> int:
        word = self.word(index, "an item number")
        digits = word.removeprefix("#")
        if not digits.isdecimal() or int(digits) < 1:
            raise self.bad(f"{word!r} is not an item number")
        return int(digits)

    def rest(self, index: int, what: str) -> str:
        """The text from word `index` on, as it was typed (spaces and quotes kept)."""
        self.word(index, what)
        return self._text.split(None, index + 1)[index + 1].strip()

    def at_most(self, count: int) -> None:
        if len(self.words) > count:
            extra = " ".join(self.words[count:])
            raise self.bad(f"too many words for `{self.name}`: {extra!r} is left over")

    def shifted(self, name: str, usage: str) -> _Args:
        """The arguments of a subcommand (`timer set …`): the words after its name."""
        return _Args(name, usage, self.words[1:], self._text.split(None, 1)[1])


Handler = Callable[[Services, _Args], Awaitable[str]]


async def run_command(services: Services, text: str) -> CommandOutput:
    """Read and carry out one command; its answer as plain text."""
    words = text.split()
    if not words:
        raise CommandError("no command given; `help` lists the commands")
    name = words[0].lower()
    handler = _HANDLERS.get(name) or _unknown(words[0])
    args = _Args(name, _usage(name), words[1:], text)
    try:
        answer = await handler(services, args)
    except (BadField, NoSuchAgent) as exc:  # a value the command was given, refused
        raise args.bad(str(exc)) from None
    return CommandOutput(answer)


def _unknown(word: str) -> NoReturn:
    close = difflib.get_close_matches(word.lower(), _HANDLERS, n=1)
    hint = f"; did you mean `{close[0]}`?" if close else ";"
    raise CommandError(f"there is no command {word!r}{hint} `help` lists the commands")


def _usage(name: str) -> str:
    return " | ".join(usage for usage, _ in _HELP if usage.split()[0] == name)


# ---- the commands ------------------------------------------------------------------------


async def _status(services: Services, args: _Args) -> str:
    args.at_most(0)
    agents = services.agents
    return status_text(
        services.board.listing(include_archived=True).items,
        agents.agents() if agents else [],
        _latest_events(agents) if agents else {},
        services.settings.config.default_qa,
        wall_clock_ms(),
    )


def _latest_events(agents: Agents) -> dict[int, str]:
    """The latest event of each running agent, as a line, by item number."""
    latest: dict[int, str] = {}
    for agent in agents.agents():
        if agent["running"] is None:
            continue
        number: int = agent["running"]["number"]
        try:
            run = agents.active_run(number)
        except StoryError:  # purged or renumbered since the list was taken
            continue
        if run is not None and run.process is not None and run.process.events:
            latest[number] = agent_event_text(event_to_json(run.process.events[-1].event))
    return latest


async def _show(services: Services, args: _Args) -> str:
    number = args.number(0)
    args.at_most(1)
    item = services.board.get(number)
    config = services.settings.config
    zone = ZoneInfo(config.timezone)
    return plain_text(lambda console: print_item(console, item, zone, config.default_qa))


async def _start(services: Services, args: _Args) -> str:
    number = args.number(0)
    agent = args.optional(1)
    args.at_most(2)
    run = await _agents(services).start(number, agent)
    if run is None:
        return started_text(number, None, None)
    return started_text(number, run.agent, run.end.message if run.end is not None else None)


async def _stop(services: Services, args: _Args) -> str:
    number = args.number(0)
    args.at_most(1)
    end = await _agents(services).stop(number)
    return stopped_text(number, end.message)


async def _assign(services: Services, args: _Args) -> str:
    number = args.number(0)
    agent = args.word(1, "an agent's name")
    args.at_most(2)
    await _agents(services).assign(number, agent)
    return assigned_text(number, agent)


async def _unblock(services: Services, args: _Args) -> str:
    number = args.number(0)
    args.at_most(1)
    item = await services.board.unblock(number)
    return unblocked_text(number, item.stage)


async def _approve(services: Services, args: _Args) -> str:
    number = args.number(0)
    args.at_most(1)
    item = await _review(services).approve(number)
    return approved_text(number, item.stage.name.value)


async def _reject(services: Services, args: _Args) -> str:
    number = args.number(0)
    reason = args.rest(1, "a reason the coder can act on")
    await _review(services).reject(number, reason)
    return rejected_text(number)


async def _timer(services: Services, args: _Args) -> str:
    what = args.word(0, "what to do: set, list or cancel")
    timers = _timers(services)
    match what.lower():
        case "list":
            args.at_most(1)
            return timers_text(
                [(timer.number, timers.local_time(timer)) for timer in timers.list()]
            )
        case "cancel":
            cancel = args.shifted("timer cancel", "timer cancel N")
            number = cancel.number(0)
            cancel.at_most(1)
            return timer_cancelled_text(number, await timers.cancel(number))
        case "set":
            return await _set_timer(timers, args.shifted("timer set", "timer set N HH:MM"))
    if what.removeprefix("#").isdecimal():  # `timer N HH:MM` is short for `timer set N HH:MM`
        return await _set_timer(timers, args)
    raise args.bad(f"{what!r} is not something timers do")


async def _set_timer(timers: Timers, args: _Args) -> str:
    number = args.number(0)
    at = args.word(1, "a time of day, HH:MM")
    args.at_most(2)
    timer = await timers.set(number, at)
    return timer_set_text(number, timers.local_time(timer))


async def _cost(services: Services, args: _Args) -> str:
    args.at_most(0)
    zone = ZoneInfo(services.settings.config.timezone)
    records, problems = read_usage(services.replica.document)
    spend = add_up(records, services.board.view(), zone)
    return spend_text(spend, day_of(wall_clock_ms(), zone), zone.key, problems)


async def _help(services: Services, args: _Args) -> str:
    topic = args.optional(0)
    args.at_most(1)
    if topic is not None and topic.lower() not in _HANDLERS:
        _unknown(topic)
    rows = [row for row in _HELP if topic is None or row[0].split()[0] == topic.lower()]
    width = max(len(usage) for usage, _ in rows)
    lines = [f"  {usage:<{width}}  {summary}" for usage, summary in rows]
    return "\n".join(["Commands:" if topic is None else "Usage:", *lines])


def _agents(services: Services) -> Agents:
    assert services.agents is not None, "huskies serve always runs the agents service"
    agents: Agents = services.agents
    return agents


def _review(services: Services) -> Review:
    assert services.review is not None, "huskies serve always runs the review service"
    review: Review = services.review
    return review


def _timers(services: Services) -> Timers:
    assert services.timers is not None, "huskies serve always runs the timers service"
    timers: Timers = services.timers
    return timers


_HELP = (
    ("status", "the pipeline at a glance: stages, agents, what waits for a person"),
    ("show N", "one item in full, body included"),
    ("start N [AGENT]", "start an agent on the item now (from backlog: to coding)"),
    ("stop N", "stop the item's agent; the item waits until started again"),
    ("assign N AGENT", "the agent to work on the item from its next run"),
    ("unblock N", "a blocked, merge-failed or held item goes back where it was"),
    ("approve N", "approve an item in qa: on to merge (a spike: to done)"),
    ("reject N REASON...", "send an item in qa back to coding, with the reason"),
    ("timer set N HH:MM", "start the item's agent at the next HH:MM (or: timer N HH:MM)"),
    ("timer list", "the timers, soonest first"),
    ("timer cancel N", "cancel the item's timer"),
    ("cost", "what agent runs have cost: in all, today, per agent, per item"),
    ("help [COMMAND]", "the commands, or how to use one"),
)
_HANDLERS: dict[str, Handler] = {
    "status": _status,
    "show": _show,
    "start": _start,
    "stop": _stop,
    "assign": _assign,
    "unblock": _unblock,
    "approve": _approve,
    "reject": _reject,
    "timer": _timer,
    "cost": _cost,
    "help": _help,
}
