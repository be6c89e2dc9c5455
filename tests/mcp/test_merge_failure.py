"""`report_merge_failure` from a real mergemaster agent: two items rewrite one file, the second
conflicts, and its mergemaster reports through MCP that it cannot resolve it. The merge fails
with that reason, and the base keeps only the first item's commit."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from huskies.pipeline import Done, StageName
from huskies.pipeline.merge_jobs import JobState, read_jobs
from huskies.server import running

from ..services.agent_rig import agent_table, make_repo
from .giving_up_mergemaster import REASON

DEADLINE_S = 60
MERGEMASTER = Path(__file__).with_name("giving_up_mergemaster.py")
REWRITE = 'echo "$HUSKIES_TITLE" > shared.txt; git add -A; git commit -qm "$HUSKIES_TITLE"'


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


async def test_a_mergemaster_reports_a_merge_it_cannot_resolve(tmp_path: Path):
    project = make_repo(tmp_path / "repo")
    mergemaster = (
        '[[agent]]\nname = "merger"\nstage = "mergemaster"\nruntime = "command"\n'
        f'argv = {json.dumps([sys.executable, str(MERGEMASTER)])}\nprompt = "{{title}}"\n'
    )
    project.agents_toml.write_text(agent_table("coder", REWRITE) + mergemaster)
    async with running(
        project, project.config(), "127.0.0.1", 0, heartbeat_s=3600, merge_retry_s=3600
    ) as server:
        board = server.services.board
        agents = server.services.agents
        assert agents is not None
        await board.create("left")
        await board.create("right")
        # Both start from the same base, so the second to merge conflicts with the first.
        await agents.start(1)
        await agents.start(2)
        deadline = time.monotonic() + DEADLINE_S
        while True:
            jobs, _ = read_jobs(server.services.replica.document)
            ended = [job for job in jobs.values() if job.state is not JobState.RUNNING]
            if len(ended) == 2:
                break
            assert time.monotonic() < deadline, f"merges not ended: {jobs}"
            await asyncio.sleep(0.05)

        merged = next(item for item in board.view().items if isinstance(item.stage, Done))
        failed = next(item for item in board.view().items if item is not merged)
        assert failed.stage.name is StageName.MERGE  # tried again later, a retry counted
        assert failed.retries == 1
        job = jobs[failed.id]
        assert job.state is JobState.FAILED
        assert job.reason is not None
        assert job.reason.endswith(f"and the mergemaster gave up: {REASON}")
        assert git(project.root, "show", "main:shared.txt") == merged.title
        mergemaster_runs = [run for run in agents.runs() if run["agent"] == "merger"]
        assert [run["outcome"] for run in mergemaster_runs] == ["completed"]
