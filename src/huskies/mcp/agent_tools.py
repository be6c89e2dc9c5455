"""Tools over agents, QA, merges and timers."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from huskies.agents.permissions import ToolCall
from huskies.mcp.scope import Scope, dumps, reported
from huskies.pipeline import item_to_json
from huskies.pipeline.merge_jobs import job_to_json, read_jobs

Number = Annotated[int, Field(ge=1, description="item number")]
Agent = Annotated[str, Field(min_length=1, description="an agent name from agents.toml")]


def register(server: MCPServer, scope: Scope) -> None:
    board = scope.services.board

    @server.tool(
        description="Start an agent on the item now (a backlog item moves to coding first); "
        "returns the run, or {started: false} when no agent is free yet.",
        structured_output=False,
    )
    @reported
    async def start_agent(number: Number, ctx: Context, agent: Agent | None = None) -> str:
        scope.caller(ctx).check_item(board, number)
        run = await scope.agents().start(number, agent)
        return dumps({"started": False} if run is None else {"started": True, **run.to_json()})

    @server.tool(
        description="Stop the item's agent (its whole process group; blocks until it has "
        "ended, a few seconds) and hold the item until started again.",
        structured_output=False,
    )
    @reported
    async def stop_agent(number: Number, ctx: Context) -> str:
        scope.caller(ctx).check_item(board, number)
        end = await scope.agents().stop(number)
        return dumps({"outcome": end.outcome.value, "exit_code": end.exit_code})

    @server.tool(
        description="Configured agents (and what each runs now) and this node's recent runs.",
        structured_output=False,
    )
    @reported
    async def list_agents(ctx: Context) -> str:
        scope.caller(ctx)
        agents = scope.agents()
        return dumps({"agents": agents.agents(), "runs": agents.runs()})

    @server.tool(
        description="The events of the item's current or last run after seq `after`.",
        structured_output=False,
    )
    @reported
    async def get_agent_output(
        number: Number, ctx: Context, after: Annotated[int, Field(ge=0)] = 0
    ) -> str:
        scope.caller(ctx).check_item(board, number)
        return dumps(scope.agents().output(number, after))

    @server.tool(
        description="Block until the item's running agent ends, or timeout_s (default 60 s); "
        "returns {ended, run}.",
        structured_output=False,
    )
    @reported
    async def wait_for_agent(
        number: Number,
        ctx: Context,
        timeout_s: Annotated[float, Field(ge=0, le=600)] = 60,
    ) -> str:
        caller = scope.caller(ctx)
        caller.check_item(board, number)
        agents = scope.agents()
        run = agents.active_run(number)
        if run is not None and not run.finished.is_set():
            waiter = asyncio.ensure_future(run.finished.wait())
            try:
                await asyncio.wait({waiter}, timeout=timeout_s)
            finally:
                waiter.cancel()
        if run is None:
            return dumps({"ended": True, "run": agents.output(number)["run"]})
        return dumps({"ended": run.finished.is_set(), "run": run.to_json()})

    @server.tool(
        description="Approve the item in qa (it moves to merge); returns the item.",
        structured_output=False,
    )
    @reported
    async def approve_qa(number: Number, ctx: Context) -> str:
        scope.caller(ctx).check_item(board, number)
        return dumps(item_to_json(await scope.review().approve(number)))

    @server.tool(
        description="Reject the item in qa with a reason the coder can act on; it goes back "
        "to coding. Returns the item.",
        structured_output=False,
    )
    @reported
    async def reject_qa(
        number: Number, reason: Annotated[str, Field(min_length=1)], ctx: Context
    ) -> str:
        scope.caller(ctx).check_item(board, number)
        return dumps(item_to_json(await scope.review().reject(number, reason)))

    @server.tool(
        description="The item's merge job (state, attempt, reason, commit), or null.",
        structured_output=False,
    )
    @reported
    async def get_merge_status(number: Number, ctx: Context) -> str:
        scope.caller(ctx).check_item(board, number)
        item = board.get(number)
        jobs, _ = read_jobs(scope.services.replica.document)
        job = jobs.get(item.id)
        return dumps(
            {"stage": item.stage.name.value, "job": None if job is None else job_to_json(job)}
        )

    @server.tool(
        description="The mergemaster's way to give up on the item's merge it is working on: "
        "when it exits, the merge fails with this reason (a retry is counted) instead of "
        "huskies taking what the workspace holds. Returns at once with the merge status.",
        structured_output=False,
    )
    @reported
    async def report_merge_failure(
        number: Number, reason: Annotated[str, Field(min_length=1)], ctx: Context
    ) -> str:
        scope.caller(ctx).check_item(board, number)
        scope.merge().report_failure(board.get(number), reason)
        return dumps({"reported": True, "reason": reason})

    @server.tool(
        description="For --permission-prompt-tool: may the caller use tool_name with input? "
        "agents.toml's [[permission]] rules decide; an ask rule blocks until a person "
        "answers (denied after permission_timeout_secs, 300 s by default). Returns "
        '{"behavior":"allow","updatedInput":…} or {"behavior":"deny","message":…}.',
        structured_output=False,
    )
    @reported
    async def prompt_permission(
        tool_name: Annotated[str, Field(min_length=1)],
        input: dict[str, Any],  # the name Claude Code sends
        ctx: Context,
        tool_use_id: str | None = None,  # sent by Claude Code; not needed to decide
    ) -> str:
        caller = scope.caller(ctx)
        run = caller.run
        call = ToolCall(
            tool=tool_name,
            tool_input=input,
            agent=None if run is None else run.agent,
            directory=caller.worktree or scope.services.project.root,
        )
        hold = None if run is None or run.process is None else run.process.waiting_on_a_person()
        verdict = await scope.permissions().decide(call, caller.own_number(board), hold)
        return dumps(verdict.for_claude(input))

    @server.tool(
        description="Start the item's agent once at the next HH:MM (project time zone); "
        "replaces its timer.",
        structured_output=False,
    )
    @reported
    async def set_timer(
        number: Number,
        at: Annotated[str, Field(pattern=r"^\d\d:\d\d$", description="HH:MM")],
        ctx: Context,
    ) -> str:
        scope.caller(ctx).check_item(board, number)
        timers = scope.timers()
        timer = await timers.set(number, at)
        return dumps({"number": timer.number, "at": timer.at, "local": timers.local_time(timer)})

    @server.tool(description="Timers, soonest first.", structured_output=False)
    @reported
    async def list_timers(ctx: Context) -> str:
        scope.caller(ctx)
        timers = scope.timers()
        return dumps([{"number": t.number, "local": timers.local_time(t)} for t in timers.list()])

    @server.tool(
        description="Cancel the item's timer; returns {cancelled}.", structured_output=False
    )
    @reported
    async def cancel_timer(number: Number, ctx: Context) -> str:
        scope.caller(ctx).check_item(board, number)
        return dumps({"cancelled": await scope.timers().cancel(number)})
