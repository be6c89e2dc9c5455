"""`huskies serve` killed with SIGKILL in the middle of coding and in the middle of a merge, then
started again: what the dead server left running is ended, the coder is re-queued, the merge
re-runs once, no item is lost or duplicated, and the base branch is never dirty."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from huskies.project import Project

from .services.agent_rig import make_repo

DEADLINE_S = 60
WAIT = 'while [ ! -f "{release}" ]; do sleep 0.05; done'


def project_with(root: Path, coder: str, gate: str) -> Project:
    project = make_repo(root)
    project.project_toml.write_text(
        project.project_toml.read_text()
        + f'\n[[component]]\nname = "all"\n[component.gates.check]\ncommand = {json.dumps(gate)}\n'
    )
    argv = json.dumps(["sh", "-c", coder])
    project.agents_toml.write_text(
        f'[[agent]]\nname = "coder"\nstage = "coder"\nruntime = "command"\nargv = {argv}\n'
        'prompt = "{title}"\n'
    )
    return project


COMMIT = 'echo "$HUSKIES_TITLE" > work.txt; git add -A; git commit -qm "#$HUSKIES_NUMBER work"'


class Server:
    def __init__(self, root: Path) -> None:
        self.root = root
        port_file = root / ".huskies" / "server.port"
        port_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "huskies", "serve", "--port", "0"],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=(root.parent / "serve.log").open("a"),
        )
        until(port_file.exists, "the server's port file")
        self.api = httpx.Client(
            base_url=f"http://127.0.0.1:{port_file.read_text().strip()}", timeout=30
        )
        until(lambda: self._healthy(), "the server to answer")

    def _healthy(self) -> bool:
        try:
            return self.api.get("/api/health").is_success
        except httpx.HTTPError:
            return False

    def item(self, number: int) -> dict[str, Any]:
        answer: dict[str, Any] = self.api.get(f"/api/items/{number}").json()
        return answer

    def document(self) -> dict[str, Any]:
        state: dict[str, Any] = self.api.get("/api/state").json()
        document: dict[str, Any] = state["document"]
        return document

    def kill(self) -> None:
        self.api.close()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        self.api.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)


def until(check: Callable[[], object], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return result


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def squashes(root: Path) -> list[str]:
    return git(root, "log", "--format=%s", "main").splitlines()[:-1]  # all but "start"


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def test_a_server_killed_while_its_agent_codes_requeues_the_coder(tmp_path: Path, servers):
    release = tmp_path / "release"
    project = project_with(
        tmp_path / "repo", f"echo started; {WAIT.format(release=release)}; {COMMIT}", "true"
    )
    first = Server(project.root)
    servers.append(first)
    first.api.post("/api/items", json={"title": "Survive a crash"}).raise_for_status()
    run = first.api.post("/api/items/1/start").json()["run"]
    orphan = run["pid"]
    assert alive(orphan)
    first.kill()
    assert alive(orphan)  # the agent outlived the server, as a process in its own session

    second = Server(project.root)
    servers.append(second)
    until(lambda: not alive(orphan), "the orphaned agent to be ended")
    until(
        lambda: any(r["state"] == "running" for r in second.api.get("/api/agents").json()["runs"]),
        "the coder to be re-queued",
    )
    release.write_text("go")
    until(lambda: second.item(1)["stage"]["name"] == "done", "the item to be merged")
    items = second.api.get("/api/items", params={"all": "true"}).json()["items"]
    assert [item["number"] for item in items] == [1]
    assert len(squashes(project.root)) == 1
    assert git(project.root, "status", "--porcelain", "--", ".", ":!.huskies") == ""


def test_a_server_killed_during_a_merge_runs_the_merge_again_once(tmp_path: Path, servers):
    release = tmp_path / "release"
    # The gate waits, in the merge workspace only, until the test releases it.
    gate = f'case "$PWD" in *merge_workspace*) {WAIT.format(release=release)};; esac'
    project = project_with(tmp_path / "repo", COMMIT, gate)
    first = Server(project.root)
    servers.append(first)
    first.api.post("/api/items", json={"title": "Merge me once"}).raise_for_status()
    first.api.post("/api/items/1/start").raise_for_status()

    def merging() -> bool:
        jobs = first.document().get("merge_jobs", {})
        return any(job.get("state") == "running" for job in jobs.values())

    until(merging, "the merge job to be running")
    gate_shells = until(
        lambda: [p.pid for p in psutil.process_iter() if _in_workspace(p)], "the gate to run"
    )
    first.kill()
    base_before = git(project.root, "rev-parse", "main")

    second = Server(project.root)
    servers.append(second)
    until(lambda: not any(alive(pid) for pid in gate_shells), "the orphaned gate to be ended")
    assert git(project.root, "rev-parse", "main") == base_before  # nothing merged half-way
    release.write_text("go")
    until(lambda: second.item(1)["stage"]["name"] == "done", "the merge to be re-run")
    assert len(squashes(project.root)) == 1
    assert git(project.root, "status", "--porcelain", "--", ".", ":!.huskies") == ""
    jobs = second.document()["merge_jobs"]
    assert [job["state"] for job in jobs.values()] == ["succeeded"]
    items = second.api.get("/api/items", params={"all": "true"}).json()["items"]
    assert [item["number"] for item in items] == [1]


def _in_workspace(process: psutil.Process) -> bool:
    try:
        return "merge_workspace" in process.cwd()
    except (psutil.Error, OSError):
        return False
