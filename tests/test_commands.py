"""The command interpreter against a real server's services: every command's answer, what it
changes, and commands it cannot read, which change nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from huskies.commands import CommandError, run_command
from huskies.pipeline import Block, ItemKind, QaMode, StageName
from huskies.pipeline.usage import UsageRecord, record_usage
from huskies.project import Project
from huskies.server import Running
from huskies.services.agents import NotRunning
from huskies.services.stories import IllegalMove, UnknownItem
from huskies.store.replica import wall_clock_ms

from .services.agent_rig import waiting_project
from .web.support import served, stored, until
from .web.test_api_costs import usage

DAY_MS = 86_400_000


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return waiting_project(tmp_path)


async def answer(server: Running, text: str) -> str:
    return (await run_command(server.services, text)).text


async def add(
    server: Running, title: str, kind: ItemKind = ItemKind.STORY, qa: QaMode | None = None
) -> int:
    item = await server.services.board.create(title, kind=kind, qa=qa)
    return item.number


async def to_qa(server: Running, number: int) -> None:
    board = server.services.board
    await board.move(number, StageName.CODING)
    await board.move(number, StageName.QA)


async def test_help_lists_every_command_and_shows_one(project: Project):
    async with served(project) as (server, _):
        listed = await answer(server, "help")
        usages = [line.split("  ")[1] for line in listed.splitlines()[1:]]
        assert usages == [
            "status",
            "show N",
            "start N [AGENT]",
            "stop N",
            "assign N AGENT",
            "unblock N",
            "approve N",
            "reject N REASON...",
            "timer set N HH:MM",
            "timer list",
            "timer cancel N",
            "cost",
            "help [COMMAND]",
        ]
        timer = (await answer(server, "HELP timer")).splitlines()
        assert timer[0] == "Usage:"
        assert [line.split()[:2] for line in timer[1:]] == [
            ["timer", "set"],
            ["timer", "list"],
            ["timer", "cancel"],
        ]


async def test_commands_act_and_answer_in_the_clis_words(project: Project):
    async with served(project) as (server, _):
        board = server.services.board
        await add(server, "Ship it")
        await add(server, "Look into it", kind=ItemKind.SPIKE, qa=QaMode.HUMAN)
        await add(server, "Fix it", qa=QaMode.HUMAN)
        await add(server, "Stuck")

        assert await answer(server, "start 1") == "#1: coder is running"
        assert board.get(1).stage.name is StageName.CODING
        assert await answer(server, "assign #4 coder") == "#4 will be worked on by coder."
        assert board.get(4).agent == "coder"

        # The coder is busy with #1, so nothing starts on these on their way to qa.
        await to_qa(server, 2)
        await to_qa(server, 3)
        assert await answer(server, "approve 2") == "Approved #2; it is now in done."
        assert board.get(2).stage.name is StageName.DONE
        rejected = await answer(server, "reject 3   the login test is missing")
        assert rejected == "Rejected #3; it is back in coding."
        assert board.get(3).stage.name is StageName.CODING

        await board.apply(4, Block(wall_clock_ms(), "gates failed 3 times"))
        assert await answer(server, "unblock 4") == "#4 is back in backlog."
        assert board.get(4).stage.name is StageName.BACKLOG

        set_at = re.fullmatch(
            r"#4 will start at (\d{4}-\d\d-\d\d 23:59 UTC)\.", await answer(server, "timer 4 23:59")
        )
        assert set_at is not None
        assert (await answer(server, "timer set 1 07:00")).endswith(" 07:00 UTC.")
        listed = (await answer(server, "timer list")).splitlines()
        assert sorted(line.split("  ")[0] for line in listed) == ["#1", "#4"]
        assert f"#4  {set_at.group(1)}" in listed
        assert await answer(server, "timer cancel 4") == "Cancelled the timer of #4."
        assert await answer(server, "timer cancel 4") == "#4 has no timer."

        assert await answer(server, "stop 1") == "Stopped the agent of #1 (stopped by request)."
        agents = server.services.agents
        assert agents is not None
        assert agents.active_run(1) is None


async def test_show_gives_the_whole_item_as_plain_text(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Add login", "body": "## Goal\n[b]x[/b]\n"})
        shown = await answer(server, "show 1")
        lines = shown.splitlines()
        assert lines[0] == "#1 Add login"
        assert lines[1:3] == ["  kind        story", "  stage       backlog"]
        assert shown.endswith("\n\n## Goal\n[b]x[/b]\n")  # the body as written, markup and all
        assert "\x1b" not in shown


async def test_status_shows_stages_agents_and_what_waits_for_a_person(project: Project):
    async with served(project) as (server, _):
        board = server.services.board
        await add(server, "Plan the work")
        await add(server, "Ship it")
        await add(server, "Look into it", kind=ItemKind.SPIKE, qa=QaMode.HUMAN)
        await add(server, "Stuck")
        await answer(server, "start 2")
        await to_qa(server, 3)
        await board.apply(4, Block(wall_clock_ms(), "gates failed 3 times"))
        agents = server.services.agents
        assert agents is not None
        await until(lambda: agents.output(2)["events"], "the coder's first words")

        status = (await answer(server, "status")).splitlines()
        assert status[0] == (
            "backlog 1 · coding 1 · qa 1 · merge 0 · done 0 · archived 1 (2 waiting for a person)"
        )
        assert status[1:12] == [
            "",
            "Backlog",
            "  #1  Plan the work",
            "",
            "Coding",
            "  #2  Ship it",
            "",
            "Qa",
            "  #3  Look into it (spike)",
            "",
            "Agents",
        ]
        assert re.fullmatch(r"  coder \(coder\): #2, running for \d+s: working", status[12])
        assert status[13:] == [
            "  reviewer (qa): idle",
            "",
            "Waiting for a person",
            "  #3  Look into it: review it: `approve 3` or `reject 3 REASON`",
            "  #4  Stuck: gates failed 3 times (`unblock 4` when it can go on)",
        ]


async def test_status_counts_what_it_does_not_list(project: Project):
    async with served(project) as (server, _):
        for n in range(1, 13):
            await add(server, f"Item {n}")
        status = (await answer(server, "status")).splitlines()
        assert status[2:4] == ["Backlog", "  #1  Item 1"]
        assert status[12:14] == [
            "  #10  Item 10",
            "  … and 2 more (`huskies story list --stage backlog`)",
        ]


async def record(server: Running, *records: UsageRecord) -> None:
    replica = server.services.replica
    tx = replica.transaction()
    for one in records:
        record_usage(tx, one)
    await replica.change(tx)


async def test_cost_adds_up_what_runs_cost(project: Project):
    async with served(project) as (server, _):
        assert await answer(server, "cost") == (
            "No agent runs are recorded yet, so nothing has been spent."
        )
        board = server.services.board
        login = board.get(await add(server, "Add login"))
        crash = board.get(await add(server, "Crash on save", kind=ItemKind.BUG))
        now = wall_clock_ms()
        await record(
            server,
            usage(login.id, 1, "coder", 1.25, now - 3 * DAY_MS),
            usage(login.id, 1, "reviewer", 0.5, now),
            usage(crash.id, 2, "coder", 0.125, now),
            usage(crash.id, 2, "scripted", None, now),
        )
        assert (await answer(server, "cost")).splitlines()[2:] == [
            "",
            "By agent",
            "  coder     $1.3750  2 runs  2,000 tokens in, 200 out",
            "  reviewer  $0.5000  1 run   1,000 tokens in, 100 out",
            "  scripted  $0.0000  1 run   1,000 tokens in, 100 out",
            "",
            "By item",
            "  #1  $1.7500  2 runs  Add login",
            "  #2  $0.1250  2 runs  Crash on save",
        ]
        head = (await answer(server, "cost")).splitlines()[:2]
        assert head[0] == "Spent $1.8750 on 4 runs (1 reported no cost)."
        assert re.fullmatch(r"Today \(\d{4}-\d\d-\d\d, UTC\): \$0\.6250 on 3 runs\.", head[1])


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "no command given; `help` lists the commands"),
        ("   ", "no command given"),
        ("stat", "there is no command 'stat'; did you mean `start`? `help` lists the commands"),
        ("deploy 1", "there is no command 'deploy'; `help` lists the commands"),
        ("start", "`start` needs an item number; usage: `start N [AGENT]`"),
        ("start one", "'one' is not an item number; usage: `start N [AGENT]`"),
        ("start 0", "'0' is not an item number"),
        ("start -1", "'-1' is not an item number"),
        ("start 1 coder extra", "too many words for `start`: 'extra' is left over"),
        ("stop 1 2", "too many words for `stop`: '2' is left over; usage: `stop N`"),
        ("assign 1", "`assign` needs an agent's name"),
        ("assign 1 nobody", "there is no agent 'nobody' in agents.toml (agents: coder, reviewer)"),
        ("reject 1", "`reject` needs a reason the coder can act on"),
        ("timer", "`timer` needs what to do: set, list or cancel"),
        ("timer snooze 1", "'snooze' is not something timers do"),
        ("timer 1", "`timer` needs a time of day, HH:MM"),
        ("timer set 1 9:30", "'9:30' is not a time of day"),
        ("timer 1 25:00", "'25:00' is not a time of day"),
        ("timer cancel", "`timer cancel` needs an item number; usage: `timer cancel N`"),
        ("timer list now", "too many words for `timer`"),
        ("status now", "too many words for `status`"),
        ("cost 1", "too many words for `cost`"),
        ("help deploy", "there is no command 'deploy'"),
    ],
)
async def test_a_command_that_cannot_be_read_says_why_and_changes_nothing(
    project: Project, text: str, words: str
):
    async with served(project) as (server, _):
        await add(server, "Only")
        before = stored(server)
        with pytest.raises(CommandError) as refused:
            await answer(server, text)
        assert words in str(refused.value)
        assert "help" in str(refused.value)
        assert stored(server) == before


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ("start 9", UnknownItem, "there is no item #9"),
        ("show 9", UnknownItem, "there is no item #9"),
        ("approve 1", IllegalMove, "#1 is in backlog; only items in qa are reviewed"),
        ("reject 1 no", IllegalMove, "only items in qa are reviewed"),
        ("unblock 1", IllegalMove, "cannot move #1"),
        ("stop 1", NotRunning, "#1 has no agent running"),
        ("timer cancel 9", UnknownItem, "there is no item #9"),
    ],
)
async def test_a_refused_command_raises_the_services_error(
    project: Project, text: str, error: type[Exception], words: str
):
    async with served(project) as (server, _):
        await add(server, "Only")
        before = stored(server)
        with pytest.raises(error, match=re.escape(words)):
            await answer(server, text)
        assert stored(server) == before
