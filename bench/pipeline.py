"""Pipeline benchmark: trivial stories through the whole pipeline, and where the time goes.

A real server (in this process, on 127.0.0.1) for a git repository made in a temporary
directory; `--stories` stories, each coded by a `command` agent that writes one file and
commits (`max_coders = 4` coder agents), checked by one trivial gate in the worktree and again
on the squashed result, approved by server QA, and squash-merged one at a time.

- stories_per_min: stories done per minute, from the first start to the last merge.
- overhead_ms_per_story: per story, the time from its start to its merge minus the time its
  agent ran and its gates ran (mean). What is left is huskies: worktrees, bookkeeping, the
  merge (squash, advance) and waiting in the merge queue, which are broken down too.

Prints one JSON object. No peer is named for this benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from replica import positive

from huskies.pipeline import Done
from huskies.pipeline.gates import read_gate_reports
from huskies.pipeline.merge_jobs import read_jobs
from huskies.project import Project, init_project
from huskies.server import running

CODER = (
    'echo "$HUSKIES_NUMBER" > "story-$HUSKIES_NUMBER.txt"; git add -A; '
    'git commit -qm "story $HUSKIES_NUMBER"'
)
GATE = '\n[[component]]\nname = "all"\n[component.gates.ok]\ncommand = "true"\n'


def make_project(root: Path, coders: int) -> Path:
    root.mkdir()
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.name", "Bench"],
        ["config", "user.email", "bench@example.com"],
        ["commit", "-q", "--allow-empty", "-m", "start"],
    ):
        subprocess.run(["git", *args], cwd=root, check=True)
    project = init_project(root)
    toml = project.project_toml.read_text().replace("max_coders = 3", f"max_coders = {coders}")
    project.project_toml.write_text(toml + GATE)
    argv = json.dumps(["sh", "-c", CODER])
    project.agents_toml.write_text(
        "\n".join(
            f'[[agent]]\nname = "coder-{n}"\nstage = "coder"\nruntime = "command"\n'
            f'argv = {argv}\nprompt = "{{title}}"\n'
            for n in range(1, coders + 1)
        )
    )
    return root


async def measure(root: Path, args: argparse.Namespace) -> dict[str, object]:
    project = Project(root)
    async with running(project, project.config(), "127.0.0.1", 0, heartbeat_s=3600) as server:
        board, agents = server.services.board, server.services.agents
        assert agents is not None
        for n in range(1, args.stories + 1):
            await board.create(f"Trivial story {n}")
        began = time.monotonic()
        started_at = {}
        for n in range(1, args.stories + 1):
            started_at[n] = int(time.time() * 1000)
            await agents.start(n)
        deadline = began + args.timeout
        while not all(isinstance(board.get(n).stage, Done) for n in started_at):
            if time.monotonic() > deadline:
                raise SystemExit("the stories did not all finish in time")
            await asyncio.sleep(0.05)
        wall_s = time.monotonic() - began
        document = server.services.replica.document
        runs = agents.runs()
        reports, _ = read_gate_reports(document)
        jobs, _ = read_jobs(document)
        view = board.view()
    overheads, merges, waits = [], [], []
    for n, start in started_at.items():
        item = view.by_number(n)
        assert item is not None
        assert isinstance(item.stage, Done)
        agent_ms = sum(r["ended_at"] - r["started_at"] for r in runs if r["item_id"] == item.id)
        gates = [r for r in reports if r.item_id == item.id]
        gate_ms = sum(r.ended_at - r.started_at for r in gates)
        job = jobs[item.id]
        assert job.ended_at is not None
        merge_gate_ms = sum(r.ended_at - r.started_at for r in gates if r.where == "merge")
        overheads.append(item.stage.merged_at - start - agent_ms - gate_ms)
        merges.append(job.ended_at - job.started_at - merge_gate_ms)
        waits.append(job.started_at - max(r.ended_at for r in gates if r.where == "worktree"))
    return {
        "stories": args.stories,
        "max_coders": args.coders,
        "wall_s": round(wall_s, 2),
        "stories_per_min": round(args.stories / wall_s * 60, 1),
        "overhead_ms_per_story": round(statistics.mean(overheads), 1),
        "merge_ms_per_story": round(statistics.mean(merges), 1),
        "merge_queue_wait_ms_per_story": round(statistics.mean(waits), 1),
        "agent_ms_per_story": round(
            statistics.mean(r["ended_at"] - r["started_at"] for r in runs), 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stories", type=positive, default=50)
    parser.add_argument("--coders", type=positive, default=4, help="max_coders and agents")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="huskies-bench-pipeline-") as folder:
        root = make_project(Path(folder) / "project", args.coders)
        print(json.dumps(asyncio.run(measure(root, args)), indent=2))


if __name__ == "__main__":
    main()
