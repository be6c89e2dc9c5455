"""The `huskies` command line."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shlex
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from typer.core import TyperGroup

from huskies import __version__
from huskies.board_access import BoardAccess, open_board
from huskies.client import ApiClient, ApiError, connect
from huskies.config import ConfigError, ProjectConfig
from huskies.gate_access import item_gate_reports, report_text
from huskies.pipeline import ItemKind, QaMode
from huskies.pipeline.stages import StageName
from huskies.project import ProjectError, find_project, init_project
from huskies.render import (
    agent_event_text,
    approved_text,
    assigned_text,
    item_table,
    print_errors,
    print_item,
    rejected_text,
    runs_table,
    stage_text,
    state_json,
    stopped_text,
    timer_set_text,
    timers_text,
    unblocked_text,
)
from huskies.services.agents import AgentError
from huskies.services.nodes import NodeError, add_trusted_key, issue_token, node_id, running_health
from huskies.services.stories import StoryError
from huskies.services.worktrees import WorktreeError, Worktrees
from huskies.store import LockedError, PersistError, StoreError
from huskies.store.replica import wall_clock_ms
from huskies.sync.trust import TokenError

app = typer.Typer(
    name="huskies",
    help="A story-driven development server: agents work your backlog, huskies checks their work.",
    no_args_is_help=True,
    add_completion=False,
)
story_app = typer.Typer(help="Create, list, show, edit, move and purge work items.")
state_app = typer.Typer(help="Look inside the replicated state.")
node_app = typer.Typer(help="This node's identity, its trusted peers and join tokens.")
agent_app = typer.Typer(help="Agents of the running server: list, start, stop, assign, output.")
worktree_app = typer.Typer(help="The items' git worktrees under .huskies/worktrees.")
app.add_typer(story_app, name="story", no_args_is_help=True)
app.add_typer(state_app, name="state", no_args_is_help=True)
app.add_typer(node_app, name="node", no_args_is_help=True)
app.add_typer(agent_app, name="agent", no_args_is_help=True)
app.add_typer(worktree_app, name="worktree", no_args_is_help=True)

out = Console(highlight=False, soft_wrap=True)  # messages are never cut into lines
err = Console(stderr=True, highlight=False, soft_wrap=True)

# Failures a user can act on: printed as one message, exit status 1, no traceback.
USER_ERRORS = (
    AgentError,
    ApiError,
    ConfigError,
    LockedError,
    NodeError,
    PersistError,
    ProjectError,
    StoreError,
    StoryError,
    TokenError,
    WorktreeError,
)

T = TypeVar("T")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"huskies {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the huskies version and exit.",
        ),
    ] = False,
) -> None:
    """huskies runs AI coding agents on a backlog and moves each item through the pipeline."""


def _run(work: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an async command body, turning user errors into a message and exit status 1."""

    @functools.wraps(work)
    def command(*args: Any, **kwargs: Any) -> T:
        try:
            return asyncio.run(work(*args, **kwargs))
        except USER_ERRORS as exc:
            _fail(exc)

    return command


def _fail(error: Exception) -> NoReturn:
    err.print(f"error: {error}", markup=False)
    raise typer.Exit(1) from None


@contextlib.asynccontextmanager
async def _open_board() -> AsyncIterator[tuple[ProjectConfig, BoardAccess]]:
    """The board through the running server, or the database when no server runs."""
    project = find_project(Path.cwd())
    config = project.config()
    async with open_board(project, config) as board:
        yield config, board


async def _settled(board: BoardAccess) -> None:
    """Persist numbers that collided with items minted elsewhere, and say so."""
    for claimed, item in await board.settle():
        err.print(
            f"note: #{claimed} was also given to another item on another node; "
            f"“{item.title}” is now #{item.number}",
            markup=False,
        )


@app.command()
def demo(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            metavar="PATH",
            help="Where to make the sample project: a new or empty directory "
            "(default: a new one in the temporary directory).",
        ),
    ] = None,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="No live view: print plain lines, stop when every item is done (exit 0) or "
            "the time is up (exit 1, saying what is stuck).",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for every item to be done.")
    ] = 300.0,
) -> None:
    """Run the whole pipeline on a sample project, offline: scripted agents code four items,
    huskies runs the tests as its quality gates, retries a failure and merges the work."""
    # Imported here: the demo needs the web stack, and every other command starts faster
    # without it.
    from huskies.demo import run_demo
    from huskies.demo_project import DemoError
    from huskies.server import ServeError

    try:
        status = run_demo(directory, once=once, timeout_s=timeout, console=out)
    except (DemoError, ServeError, *USER_ERRORS) as exc:
        _fail(exc)
    raise typer.Exit(status)


@app.command()
@_run
async def init() -> None:
    """Set up huskies in this git repository (creates .huskies/ with commented config files)."""
    project = init_project(Path.cwd())
    out.print(f"Initialised huskies in {project.dir}")
    out.print(f"  {project.project_toml.name}  project settings (commit it)")
    out.print(f"  {project.agents_toml.name}   agents (commit it)")
    out.print("  the database stays local (.huskies/.gitignore)")
    out.print("  .mcp.json lets MCP clients here (your Claude Code) use huskies' tools")
    out.print("Next: huskies story new 'Your first story'")


@story_app.command("new")
@_run
async def story_new(
    title: Annotated[str, typer.Argument(help="A one-line title.")],
    kind: Annotated[ItemKind, typer.Option(help="What sort of work it is.")] = ItemKind.STORY,
    depends_on: Annotated[
        list[int] | None,
        typer.Option("--depends-on", metavar="N", help="An item this one waits for (repeatable)."),
    ] = None,
    body_file: Annotated[
        Path | None,
        typer.Option(
            "--body-file", metavar="FILE", help="Read the body (markdown) from this file."
        ),
    ] = None,
    qa: Annotated[
        QaMode | None, typer.Option(help="Who reviews it (default: the project's default_qa).")
    ] = None,
) -> None:
    """Add a work item to the backlog."""
    body = _read_body(body_file) if body_file else ""
    async with _open_board() as (_, board):
        await _settled(board)
        item = await board.create(title, kind=kind, body=body, depends_on=depends_on or (), qa=qa)
    out.print(f"Created #{item.number} ({item.kind.value}): {item.title}", markup=False)


@story_app.command("list")
@_run
async def story_list(
    show_all: Annotated[bool, typer.Option("--all", help="Include archived items.")] = False,
    stage: Annotated[StageName | None, typer.Option(help="Only items in this stage.")] = None,
) -> None:
    """List work items by number (archived ones only with --all)."""
    async with _open_board() as (config, board):
        listing = await board.listing(stage, show_all)
    if listing.items:
        out.print(item_table(listing.items, ZoneInfo(config.timezone)))
    else:
        out.print("No items match." if listing.total else "No items.")
    print_errors(err, listing.errors)


@story_app.command("show")
@_run
async def story_show(number: Annotated[int, typer.Argument(help="The item's number.")]) -> None:
    """Show one item in full."""
    async with _open_board() as (config, board):
        item = await board.get(number)
    print_item(out, item, ZoneInfo(config.timezone), config.default_qa)


@story_app.command("edit")
@_run
async def story_edit(
    number: Annotated[int, typer.Argument(help="The item's number.")],
    title: Annotated[str | None, typer.Option(help="Set the title without an editor.")] = None,
    body_file: Annotated[
        Path | None,
        typer.Option("--body-file", metavar="FILE", help="Set the body from a file, no editor."),
    ] = None,
) -> None:
    """Edit an item's title and body in $EDITOR (title on the first line, then the body)."""
    async with _open_board() as (_, board):
        item = await board.get(number)
        body = _read_body(body_file) if body_file else None
        if title is None and body is None:
            title, body = _edit_in_editor(item.title, item.body)
            if title is None:
                out.print("The file was left unchanged; nothing changed.")
                return
        changed = await board.edit(number, title=title, body=body)
    out.print(f"Updated #{number}." if changed else f"#{number} is unchanged.")


@story_app.command("move")
@_run
async def story_move(
    number: Annotated[int, typer.Argument(help="The item's number.")],
    stage: Annotated[StageName, typer.Argument(help="The stage to move it to.")],
) -> None:
    """Move an item to another stage (only moves a person may make)."""
    async with _open_board() as (_, board):
        item = await board.move(number, stage)
    out.print(f"#{number} is now in {stage_text(item.stage)}.", markup=False)


@story_app.command("purge")
@_run
async def story_purge(
    number: Annotated[int, typer.Argument(help="The item's number.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete an item for good, on every node (it will not come back)."""
    async with _open_board() as (_, board):
        item = await board.get(number)
        if not yes and not typer.confirm(f"Purge #{number} “{item.title}” for good?"):
            out.print("Nothing purged.")
            return
        await board.purge(number)
    out.print(f"Purged #{number}.")


@app.command()
@_run
async def unblock(number: Annotated[int, typer.Argument(help="The item's number.")]) -> None:
    """Return a blocked, merge-failed or review-held item to where it can continue."""
    async with _open_board() as (_, board):
        item = await board.unblock(number)
    out.print(unblocked_text(number, item.stage), markup=False)


@state_app.command("dump")
@_run
async def state_dump_command() -> None:
    """Print the whole document and the change log's statistics as JSON."""
    async with _open_board() as (_, board):
        summary = await board.state()
    typer.echo(state_json(summary))


@app.command()
@_run
async def serve(
    project_dir: Annotated[
        Path | None,
        typer.Option(
            "--project", metavar="PATH", help="The project (default: the current directory)."
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 3000,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    join: Annotated[
        str | None,
        typer.Option(metavar="TOKEN", help="A join token from the node at sync.rendezvous."),
    ] = None,
    heartbeat: Annotated[
        float, typer.Option(help="Seconds between this node's presence updates.", hidden=True)
    ] = 30.0,
    require_token: Annotated[
        bool,
        typer.Option(
            "--require-token",
            help="Require the access token on loopback too (a shared machine). Beyond "
            "loopback it is always required.",
        ),
    ] = False,
) -> None:
    """Run this node: the HTTP API (/api, /openapi.json), live events (/api/events), sync with
    peers at /crdt-sync. Other huskies commands here talk to it while it runs."""
    # Imported here: the web stack is needed only by this command, and every other command
    # starts faster without it.
    from huskies.server import ServeError
    from huskies.server import serve as run_server

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    project = find_project(project_dir or Path.cwd())
    try:
        await run_server(
            project,
            project.config(),
            host,
            port,
            join=join,
            heartbeat_s=heartbeat,
            require_token=require_token,
        )
    except ServeError as exc:
        _fail(exc)


@node_app.command("id")
@_run
async def node_id_command() -> None:
    """Print this node's id (the hex of its public key), creating its key if needed."""
    typer.echo(await node_id(find_project(Path.cwd())))


@node_app.command("trust")
@_run
async def node_trust(key: Annotated[str, typer.Argument(help="A node id to trust.")]) -> None:
    """Add a node id to sync.trusted_keys in project.toml."""
    project = find_project(Path.cwd())
    added = add_trusted_key(project, key)
    out.print(f"Trusted {key}." if added else f"{key} was already trusted.", markup=False)


@node_app.command("token")
@_run
async def node_token(
    ttl: Annotated[str, typer.Option(help="How long it stays valid: 30m, 1h, 2d.")] = "1h",
) -> None:
    """Issue a one-time join token: a node that presents it is enrolled as trusted."""
    project = find_project(Path.cwd())
    token, expires = await issue_token(project, ttl, wall_clock_ms())
    typer.echo(token)
    err.print(
        f"valid once, until {expires}; on the joining node put this node's /crdt-sync URL in "
        "sync.rendezvous and run `huskies serve --join TOKEN`",
        markup=False,
    )


@node_app.command("peers")
@_run
async def node_peers() -> None:
    """Show the running server's peers (address, node, direction, caught up, frames), and how
    many connections are still in the handshake (not peers yet)."""
    health = running_health(find_project(Path.cwd()))
    peers = health["peers"]
    assert isinstance(peers, list)
    if not peers:
        out.print("No peers connected.")
    for peer in peers:
        state = "caught up" if peer["caught_up"] else "catching up"
        out.print(
            f"{peer['direction']:>3} {peer['address']}  {(peer['peer'] or '?')[:16]}…  {state}  "
            f"frames in {peer['frames_in']}, out {peer['frames_out']}",
            markup=False,
        )
    handshaking = health.get("handshaking", 0)
    if handshaking:
        out.print(f"handshaking: {handshaking} (connections not authenticated yet)")


@contextlib.asynccontextmanager
async def _server(
    why: str = "agents run inside it",
) -> AsyncIterator[tuple[ProjectConfig, ApiClient]]:
    """The running server, for the commands that need one; `why` goes into the error when
    none runs."""
    project = find_project(Path.cwd())
    config = project.config()
    async with connect(project) as client:
        if client is None:
            raise AgentError(
                f"no huskies server is running for this project; {why}, so start it with "
                "`huskies serve`"
            )
        yield config, client


async def _command(text: str) -> None:
    """Print the running server's answer to a command of its command interpreter."""
    async with _server(f"`huskies {text}` asks it") as (_, client):
        answer = await client.call("POST", "/api/commands", json={"command": text})
    out.print(answer["output"], markup=False)


@app.command()
@_run
async def status() -> None:
    """The pipeline at a glance: each stage's items, what each agent is doing, and the items
    waiting for a person (review, unblock)."""
    await _command("status")


@app.command()
@_run
async def cost() -> None:
    """What agent runs have cost: in all, today, per agent and per item."""
    await _command("cost")


@agent_app.command("list")
@_run
async def agent_list() -> None:
    """The configured agents, what each is running, and this node's recent runs."""
    async with _server() as (config, client):
        answer = await client.call("GET", "/api/agents")
    for agent in answer["agents"]:
        running = agent["running"]
        doing = f"running #{running['number']}" if running else "idle"
        model = f", {agent['model']}" if agent["model"] else ""
        out.print(
            f"{agent['name']} ({agent['stage']}, {agent['runtime']}{model}): {doing}", markup=False
        )
    if answer["runs"]:
        out.print(runs_table(answer["runs"], ZoneInfo(config.timezone)))


@agent_app.command("start")
@_run
async def agent_start(
    number: Annotated[int, typer.Argument(help="The item's number.")],
    agent: Annotated[str | None, typer.Option(help="The agent to run (agents.toml).")] = None,
) -> None:
    """Start an agent on an item now (a backlog item moves to coding first)."""
    async with _server() as (_, client):
        answer = await client.call("POST", f"/api/items/{number}/start", json={"agent": agent})
    out.print(answer["message"], markup=False)


@agent_app.command("stop")
@_run
async def agent_stop(number: Annotated[int, typer.Argument(help="The item's number.")]) -> None:
    """Stop an item's agent; the item waits until it is started again."""
    async with _server() as (_, client):
        answer = await client.call("POST", f"/api/items/{number}/stop")
    out.print(stopped_text(number, answer["message"]), markup=False)


@agent_app.command("assign")
@_run
async def agent_assign(
    number: Annotated[int, typer.Argument(help="The item's number.")],
    agent: Annotated[str, typer.Argument(help="The agent (agents.toml).")],
) -> None:
    """Make an agent the item's preferred one, from its next run."""
    async with _server() as (_, client):
        await client.call("POST", f"/api/items/{number}/assign", json={"agent": agent})
    out.print(assigned_text(number, agent), markup=False)


@agent_app.command("output")
@_run
async def agent_output(
    number: Annotated[int, typer.Argument(help="The item's number.")],
) -> None:
    """What the item's current (or last) agent run has said and done."""
    async with _server() as (_, client):
        answer = await client.call("GET", f"/api/items/{number}/output")
    run = answer["run"]
    out.print(f"#{number} · {run['agent']} · run {run['run']} · {run['state']}", markup=False)
    for stamped in answer["events"]:
        out.print(agent_event_text(stamped["event"]), markup=False)
    out.print(f"full log: {answer['log']}", markup=False)


@app.command()
@_run
async def approve(number: Annotated[int, typer.Argument(help="The item's number.")]) -> None:
    """Approve an item in qa: it goes on to merge (a spike: to done)."""
    async with _server() as (_, client):
        answer = await client.call("POST", f"/api/items/{number}/approve")
    out.print(approved_text(number, answer["stage"]["name"]), markup=False)


@app.command()
@_run
async def reject(
    number: Annotated[int, typer.Argument(help="The item's number.")],
    reason: Annotated[str, typer.Option(help="What the coder must fix (goes into its prompt).")],
) -> None:
    """Send an item in qa back to coding, with the reason."""
    async with _server() as (_, client):
        await client.call("POST", f"/api/items/{number}/reject", json={"reason": reason})
    out.print(rejected_text(number), markup=False)


@app.command()
@_run
async def gates(number: Annotated[int, typer.Argument(help="The item's number.")]) -> None:
    """Show the latest quality-gate report of an item: each step, how it ended, the end of
    failing output, and the full log's path."""
    project = find_project(Path.cwd())
    config = project.config()
    reports, problems = await item_gate_reports(project, config, number)
    for problem in problems:
        err.print(f"warning: {problem}", markup=False)
    if not reports:
        out.print(f"#{number} has no gate report yet.")
        return
    out.print(report_text(reports[0], ZoneInfo(config.timezone)), markup=False)


@app.command()
@_run
async def mcp() -> None:
    """Serve the running server's MCP tools over stdio, for MCP clients that only speak stdio
    (`.mcp.json` from `huskies init` runs this)."""
    from huskies.mcp.bridge import BridgeError, bridge  # the MCP SDK only for this command

    try:
        await bridge(find_project(Path.cwd()))
    except BridgeError as exc:
        _fail(exc)


@worktree_app.command("list")
@_run
async def worktree_list() -> None:
    """The items' worktrees and their branches."""
    project = find_project(Path.cwd())
    worktrees = await Worktrees(project.root, project.config().base_branch).list()
    if not worktrees:
        out.print("No worktrees.")
    for worktree in worktrees:
        out.print(f"#{worktree.number}  {worktree.branch}  {worktree.path}", markup=False)


@worktree_app.command("remove")
@_run
async def worktree_remove(
    number: Annotated[int, typer.Argument(help="The item's number.")],
    force: Annotated[
        bool, typer.Option("--force", help="Remove it even with uncommitted changes.")
    ] = False,
) -> None:
    """Remove an item's worktree (its branch, with the work, is kept)."""
    project = find_project(Path.cwd())
    removed = await Worktrees(project.root, project.config().base_branch).remove(
        number, force=force
    )
    out.print(f"Removed the worktree of #{number}." if removed else f"#{number} has no worktree.")


class _TimerGroup(TyperGroup):
    """`huskies timer N HH:MM` is short for `huskies timer set N HH:MM`: a group's first
    argument names a subcommand, so a number there is taken to mean `set`."""

    # Any: typer's own click types are private to it.
    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0].isdecimal():
            args = ["set", *args]
        return super().resolve_command(ctx, args)


timer_app = typer.Typer(
    cls=_TimerGroup,
    help="Start an item's agent at a time of day: `huskies timer N HH:MM`, `huskies timer "
    "list`, `huskies timer cancel N`. Timers fire inside the running server.",
)
app.add_typer(timer_app, name="timer", no_args_is_help=True)


@timer_app.command("set")
@_run
async def timer_set(
    number: Annotated[int, typer.Argument(help="The item's number.")],
    at: Annotated[str, typer.Argument(metavar="HH:MM", help="A time of day (24-hour clock).")],
) -> None:
    """Start the item's agent once, at the next HH:MM in the project's time zone."""
    async with _server() as (_, client):
        answer = await client.call("POST", f"/api/items/{number}/timer", json={"at": at})
    out.print(timer_set_text(number, answer["local"]), markup=False)


@timer_app.command("list")
@_run
async def timer_list() -> None:
    """The timers of the running server, soonest first."""
    async with _server() as (_, client):
        answer = await client.call("GET", "/api/timers")
    timers = [(timer["number"], timer["local"]) for timer in answer["timers"]]
    out.print(timers_text(timers), markup=False)


@timer_app.command("cancel")
@_run
async def timer_cancel(number: Annotated[int, typer.Argument(help="The item's number.")]) -> None:
    """Cancel the item's timer."""
    async with _server() as (_, client):
        answer = await client.call("DELETE", f"/api/items/{number}/timer")
    out.print(answer["message"], markup=False)


def _read_body(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoryError(f"--body-file {path}: {exc}") from None


def _edit_in_editor(title: str, body: str) -> tuple[str | None, str]:
    """Open $VISUAL or $EDITOR on "title, blank line, body".

    Returns the edited (title, body), or (None, body) if the file was left unchanged.
    """
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    text = f"{title}\n\n{body}"
    with tempfile.TemporaryDirectory(prefix="huskies-edit-") as folder:
        path = Path(folder) / "item.md"
        path.write_text(text, encoding="utf-8")
        try:
            done = subprocess.run([*shlex.split(editor), str(path)], check=False)
        except OSError as exc:
            raise StoryError(f"could not start the editor {editor!r}: {exc}") from None
        if done.returncode != 0:
            raise StoryError(f"the editor {editor!r} exited with status {done.returncode}")
        edited = path.read_text(encoding="utf-8")
    if edited == text:
        return None, body
    first, _, rest = edited.partition("\n")
    if rest.startswith("\n"):
        rest = rest[1:]
    if not body.endswith("\n") and rest.endswith("\n"):
        rest = rest[:-1]  # most editors end the file with a newline the body did not have
    return first, rest
