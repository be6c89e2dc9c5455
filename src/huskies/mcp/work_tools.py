"""Tools over an item's worktree: the quality gates, and git status, diff and log."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from huskies.gitops import Git
from huskies.mcp.binding import inside
from huskies.mcp.scope import Scope, dumps, reported
from huskies.mcp.test_runs import TestRun
from huskies.pipeline.gates import GateReport, failure_summary, output_tail, step_label

Number = Annotated[int, Field(ge=1, description="item number (an agent's own by default)")]
WaitS = Annotated[float, Field(ge=0, le=600, description="seconds to wait for the end")]
Path = Annotated[str, Field(min_length=1, description="relative to the worktree")]

OUTPUT_CHARS = 1500
"""The end of each step's output a tool answer carries (the full log is on the server)."""

DIFF_CHARS = 40_000


def _report(run_id: str, report: GateReport) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "done": True,
        "passed": report.passed,
        "steps": [
            {
                "step": step_label(r),
                "exit_code": r.exit_code,
                "timed_out": r.timed_out,
                "output": output_tail(r.output_tail, OUTPUT_CHARS),
            }
            for r in report.results
        ],
        "summary": failure_summary(report, OUTPUT_CHARS),
        "log": report.log,
    }


def register(server: MCPServer, scope: Scope) -> None:
    board = scope.services.board

    async def answer(run: TestRun, wait_s: float) -> str:
        try:
            report = await scope.tests.wait(run, wait_s)
        except Exception as exc:
            raise ToolError(f"the gate run {run.id} failed to run: {exc}") from exc
        if report is None:
            return dumps(
                {"run_id": run.id, "done": False, "hint": "still running: call get_test_result"}
            )
        return dumps(_report(run.id, report))

    @server.tool(
        description="Run the project's quality gates in the worktree (an agent's own; a person "
        "names the item). Blocks up to wait_s (default 300 s); returns {passed, steps with exit "
        "codes and output ends, summary}, or {run_id, done: false} if still running.",
        structured_output=False,
    )
    @reported
    async def run_tests(ctx: Context, number: Number | None = None, wait_s: WaitS = 300) -> str:
        caller = scope.caller(ctx)
        number = number if number is not None else caller.own_number(board)
        if number is None:
            raise ToolError("number: name the item whose worktree to test")
        directory = await scope.directory(caller, number)
        item = board.get(number)
        gates = scope.services.gates
        if gates is None:
            raise ToolError("this server runs without its gates service")
        run = scope.tests.start(item.id, gates.check(item, directory, "worktree"))
        return await answer(run, wait_s)

    @server.tool(
        description="The result of a run_tests run by its run_id; blocks up to wait_s (default 0).",
        structured_output=False,
    )
    @reported
    async def get_test_result(run_id: str, ctx: Context, wait_s: WaitS = 0) -> str:
        caller = scope.caller(ctx)
        run = scope.tests.get(run_id)
        if run is None or (caller.item_id is not None and run.item_id != caller.item_id):
            raise ToolError(f"run_id: there is no test run {run_id!r} (runs are kept a while)")
        return await answer(run, wait_s)

    @server.tool(
        description="`git status --short --branch` of the worktree.", structured_output=False
    )
    @reported
    async def git_status(ctx: Context, number: Number | None = None) -> str:
        directory = await scope.directory(scope.caller(ctx), number)
        result = await Git(directory).run("status", "--short", "--branch")
        return result.stdout

    @server.tool(
        description="`git diff` of the worktree (staged=true: of the index; base=REF: from "
        f"REF to the working tree), optionally of one path; cut at {DIFF_CHARS} characters.",
        structured_output=False,
    )
    @reported
    async def git_diff(
        ctx: Context,
        number: Number | None = None,
        path: Path | None = None,
        staged: bool = False,
        base: Annotated[str, Field(pattern=r"^[\w./~^-]+$")] | None = None,
    ) -> str:
        directory = await scope.directory(scope.caller(ctx), number)
        args = ["diff", "--stat", "--patch"]
        if staged:
            args.append("--cached")
        if base is not None:
            if base.startswith("-"):
                raise ToolError("base: a ref cannot start with '-'")
            args.append(base)
        args.append("--")
        if path is not None:
            args.append(str(inside(directory, path)))
        text = (await Git(directory).run(*args)).stdout
        if len(text) > DIFF_CHARS:
            text = text[:DIFF_CHARS] + f"\n… cut: the diff is {len(text)} characters"
        return text

    @server.tool(
        description="The newest commits of the worktree's HEAD: [{sha, subject, author, at}].",
        structured_output=False,
    )
    @reported
    async def git_log(
        ctx: Context,
        number: Number | None = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
    ) -> str:
        directory = await scope.directory(scope.caller(ctx), number)
        commits = await Git(directory).log("HEAD", limit)
        return dumps(
            [
                {"sha": c.sha, "subject": c.subject, "author": c.author, "at": c.at.isoformat()}
                for c in commits
            ]
        )
