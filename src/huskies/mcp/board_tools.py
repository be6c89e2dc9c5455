"""Tools over the board: status, items, moves, the checklist, purge and the state dump."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from huskies.mcp import todos
from huskies.mcp.scope import Scope, dumps, reported
from huskies.pipeline import ItemKind, QaMode, StageName, WorkItem, item_to_json
from huskies.render import state_json, state_summary
from huskies.services.stories import KEEP
from huskies.store.replica import wall_clock_ms

Number = Annotated[int, Field(ge=1, description="item number")]
Title = Annotated[str, Field(min_length=1, max_length=200)]


def _brief(item: WorkItem) -> dict[str, object]:
    brief: dict[str, object] = {"n": item.number, "title": item.title}
    if item.kind is not ItemKind.STORY:
        brief["kind"] = item.kind.value
    if item.blocked_reason:
        brief["blocked"] = True
    return brief


def register(server: MCPServer, scope: Scope) -> None:
    board = scope.services.board

    @server.tool(
        description="Items not archived, by stage: {stage: [{n, title, kind?, blocked?}]}. "
        "An agent's token sees only its own item.",
        structured_output=False,
    )
    @reported
    async def get_pipeline_status(ctx: Context) -> str:
        caller = scope.caller(ctx)
        stages: dict[str, list[dict[str, object]]] = {}
        for item in board.listing().items:
            if caller.item_id is None or item.id == caller.item_id:
                stages.setdefault(item.stage.name.value, []).append(_brief(item))
        return dumps(stages)

    @server.tool(description="One item, all its fields, as JSON.", structured_output=False)
    @reported
    async def get_item(number: Number, ctx: Context) -> str:
        scope.caller(ctx).check_item(board, number)
        return dumps(item_to_json(board.get(number)))

    @server.tool(
        description="Add an item to the backlog; returns it. A person's client only.",
        structured_output=False,
    )
    @reported
    async def create_item(
        title: Title,
        ctx: Context,
        kind: ItemKind = ItemKind.STORY,
        body: str = "",
        depends_on: list[Annotated[int, Field(ge=1)]] | None = None,
        qa: QaMode | None = None,
    ) -> str:
        _person(scope, ctx, "create items")
        item = await board.create(title, kind=kind, body=body, depends_on=depends_on or (), qa=qa)
        return dumps(item_to_json(item))

    @server.tool(
        description="Change an item's title, body and/or QA mode; returns {item, changed}.",
        structured_output=False,
    )
    @reported
    async def update_item(
        number: Number,
        ctx: Context,
        title: Title | None = None,
        body: str | None = None,
        qa: QaMode | None = None,
    ) -> str:
        scope.caller(ctx).check_item(board, number)
        changed = await board.edit(number, title=title, body=body, qa=KEEP if qa is None else qa)
        return dumps({"item": item_to_json(board.get(number)), "changed": changed})

    @server.tool(
        description="Move an item to a stage; only moves the pipeline allows. Returns the item.",
        structured_output=False,
    )
    @reported
    async def move_item(number: Number, stage: StageName, ctx: Context) -> str:
        scope.caller(ctx).check_item(board, number)
        return dumps(item_to_json(await board.move(number, stage)))

    @server.tool(
        description="The item's acceptance criteria (`- [ ]`/`- [x]` lines of its body): "
        "[{index, text, done}].",
        structured_output=False,
    )
    @reported
    async def get_todos(number: Number, ctx: Context) -> str:
        scope.caller(ctx).check_item(board, number)
        listed = todos.todos(board.get(number).body)
        return dumps([{"index": t.index, "text": t.text, "done": t.done} for t in listed])

    @server.tool(
        description="Tick (or with done=false untick) one acceptance criterion, by index from "
        "get_todos or by its text; returns the checklist.",
        structured_output=False,
    )
    @reported
    async def check_criterion(
        number: Number,
        ctx: Context,
        index: Annotated[int, Field(ge=0)] | None = None,
        text: str | None = None,
        done: bool = True,
    ) -> str:
        scope.caller(ctx).check_item(board, number)
        if (index is None) == (text is None):
            raise ToolError("index, text: give exactly one of them")
        body = board.get(number).body
        todo = todos.find(body, index, text)
        await board.edit(number, body=todos.checked(body, todo, done))
        listed = todos.todos(board.get(number).body)
        return dumps([{"index": t.index, "text": t.text, "done": t.done} for t in listed])

    @server.tool(
        description="Delete an item for good, on every node; returns it as it was. "
        "A person's client only.",
        structured_output=False,
    )
    @reported
    async def purge_item(number: Number, ctx: Context) -> str:
        _person(scope, ctx, "purge items")
        return dumps(item_to_json(await board.purge(number)))

    @server.tool(
        description="The whole replicated document and the change log's statistics (large; "
        "for debugging). A person's client only.",
        structured_output=False,
    )
    @reported
    async def dump_state(ctx: Context) -> str:
        _person(scope, ctx, "dump the state")
        services = scope.services
        stats = await services.replica.stats()
        zone = ZoneInfo(services.settings.config.timezone)
        summary = state_summary(services.replica.document, stats, wall_clock_ms(), zone)
        return state_json(summary, indent=None)


def _person(scope: Scope, ctx: Context, what: str) -> None:
    if scope.caller(ctx).bound:
        raise ToolError(f"an agent's token cannot {what}; this is for a person's client")
