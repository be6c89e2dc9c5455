"""The CLI with and without a running server: real `huskies serve` and `huskies` processes.

While a server runs it holds the database, so the story commands go through its API; the
output must be exactly what they print when they open the database themselves."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

HUSKIES = shutil.which("huskies")
COMMAND = [HUSKIES] if HUSKIES else [sys.executable, "-m", "huskies"]


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def huskies(cwd: Path, *args: str, stdin: str = "") -> Result:
    done = subprocess.run(
        [*COMMAND, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        input=stdin,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


def ok(cwd: Path, *args: str, stdin: str = "") -> str:
    result = huskies(cwd, *args, stdin=stdin)
    assert result.code == 0, result
    return result.out


class Server:
    """`huskies serve` in a subprocess, on any free port; its log goes to `log`."""

    def __init__(self, root: Path, log: Path, *args: str) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [*COMMAND, "serve", "--port", "0", *args],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=log.open("a"),
            text=True,
        )
        self.first_line = self.next_line()
        assert "serving http://127.0.0.1:" in self.first_line, self.finish()
        self.port = int(self.first_line.rsplit(":", 1)[1])

    def next_line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline()

    def finish(self) -> str:
        """Stop it (if still running); the rest of its output, and its log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        assert self.process.stdout is not None
        return self.process.stdout.read() + self.log.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    ok(root, "init")
    return root


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.kill()
        if server.process.stdout is not None:
            server.process.stdout.close()


def start(servers: list[Server], root: Path, *args: str) -> Server:
    server = Server(root, root.parent / f"serve-{len(servers)}.log", *args)
    servers.append(server)
    return server


READS = [
    ("story", "list"),
    ("story", "list", "--all"),
    ("story", "list", "--stage", "qa"),
    ("story", "show", "1"),
    ("story", "show", "2"),
    ("story", "show", "9"),
    ("story", "move", "1", "done"),
    ("story", "new", "Orphan", "--depends-on", "9"),
    ("unblock", "2"),
    ("story", "purge", "9", "--yes"),
]
"""Commands that read, or fail before writing: the same output with or without a server."""


def run_all(cwd: Path, commands: list[tuple[str, ...]]) -> list[Result]:
    """Run independent commands side by side (each is a whole process start)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda command: huskies(cwd, *command), commands))


def test_the_cli_prints_the_same_with_and_without_a_server(project: Path, tmp_path, servers):
    body = tmp_path / "body.md"
    body.write_text("## Goal\nLog in with a passkey.\n")
    ok(project, "story", "new", "Add login", "--body-file", str(body))
    ok(project, "story", "new", "Crash on save", "--kind", "bug", "--depends-on", "1")
    ok(project, "story", "move", "1", "coding")
    local = run_all(project, READS)
    assert [r.code for r in local] == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]

    server = start(servers, project)
    remote = run_all(project, READS)
    for command, here, there in zip(READS, local, remote, strict=True):
        assert there == here, command

    # Writes go through the server (it holds the database: the CLI could not open it).
    assert ok(project, "story", "new", "Via the API", "--qa", "human") == (
        "Created #3 (story): Via the API\n"
    )
    assert ok(project, "story", "edit", "3", "--title", "Renamed") == "Updated #3.\n"
    assert ok(project, "story", "edit", "3", "--title", "Renamed") == "#3 is unchanged.\n"
    assert ok(project, "story", "move", "3", "archived") == "#3 is now in archived (abandoned).\n"
    assert "abandoned stay archived" in huskies(project, "unblock", "3").err
    assert "Nothing purged" in ok(project, "story", "purge", "2", stdin="n\n")
    assert ok(project, "story", "purge", "2", "--yes") == "Purged #2.\n"
    while_serving = ok(project, "story", "list", "--all")
    dump = json.loads(ok(project, "state", "dump"))
    health = httpx.get(f"http://127.0.0.1:{server.port}/health").json()
    assert dump["node"] == health["node"]
    assert [item["title"] for item in dump["document"]["items"]] == ["Renamed", "Add login"]

    assert "Traceback" not in server.finish()
    assert ok(project, "story", "list", "--all") == while_serving
    shown = ok(project, "story", "show", "3")
    assert "Renamed" in shown
    assert "qa          human" in shown


def test_a_stale_port_file_falls_back_to_the_database(project: Path, tmp_path, servers):
    port_file = project / ".huskies" / "server.port"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        gone = probe.getsockname()[1]  # nothing listens here once the socket closes
    port_file.write_text(f"{gone}\n")
    created = huskies(project, "story", "new", "Written locally")
    assert (created.code, created.err) == (0, "")
    port_file.write_text("not a port\n")
    assert "Written locally" in ok(project, "story", "list")

    # A port file naming another project's server: not this project's node, so not used.
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=other, check=True)
    ok(other, "init")
    server = start(servers, other)
    port_file.write_text(f"{server.port}\n")
    result = huskies(project, "story", "new", "Also local")
    assert (result.code, result.err) == (0, "")
    assert "Also local" in ok(project, "story", "list")
    assert ok(other, "story", "list") == "No items.\n"  # through the other server's API


def test_the_server_keeps_its_port_file_while_it_runs(project: Path, servers):
    port_file = project / ".huskies" / "server.port"
    server = start(servers, project)
    assert port_file.read_text() == f"{server.port}\n"
    server.finish()
    assert not port_file.exists()


def test_a_taken_port_names_the_next_free_one(project: Path):
    with socket.socket() as taken, socket.socket() as next_taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            next_taken.bind(("127.0.0.1", port + 1))
            next_taken.listen()
            first_free_at_least = port + 2
        except OSError:  # someone else has it: either way it is not free
            first_free_at_least = port + 2
        result = huskies(project, "serve", "--port", str(port))
        assert result.code == 1
        assert f"cannot listen on 127.0.0.1:{port}: the port is taken" in result.err
        assert "--port 0 for any free port" in result.err
        suggested = int(result.err.split("try --port ", 1)[1].split(",", 1)[0])
        assert suggested >= first_free_at_least
        with socket.socket() as check:
            check.bind(("127.0.0.1", suggested))  # it was really free
    assert not (project / ".huskies" / "server.port").exists()


def test_the_token_is_printed_once_and_the_cli_sends_it(project: Path, servers):
    server = start(servers, project, "--require-token")
    line = server.next_line()
    assert line.startswith("access token: ")
    token = line.split(": ", 1)[1].strip()
    token_file = project / ".huskies" / "access-token"
    assert token_file.read_text().strip() == token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    refused = httpx.get(f"http://127.0.0.1:{server.port}/api/items")
    assert refused.status_code == 401
    assert ok(project, "story", "new", "With a token") == "Created #1 (story): With a token\n"
    assert "No peers connected." in ok(project, "node", "peers")

    token_file.write_text("not-the-token\n")
    refused_cli = huskies(project, "story", "list")
    assert refused_cli.code == 1
    assert "needs its access token" in refused_cli.err
    token_file.write_text(f"{token}\n")
    server.finish()

    again = start(servers, project, "--require-token")
    assert ok(project, "story", "list").count("With a token") == 1
    rest = again.finish()
    assert token not in rest
    assert "access token:" not in rest
    assert "requests need the access token in" in rest


def test_serve_takes_the_project_from_an_option(project: Path, servers):
    elsewhere = project.parent / "elsewhere"
    elsewhere.mkdir()
    server = Server(elsewhere, project.parent / "serve-elsewhere.log", "--project", str(project))
    servers.append(server)
    assert (project / ".huskies" / "server.port").read_text().strip() == str(server.port)
    assert ok(project, "agent", "list") == "coder (coder, claude-code): idle\n"


def test_agent_commands_need_a_server_and_name_their_errors(project: Path, servers):
    alone = huskies(project, "agent", "list")
    assert alone.code == 1
    assert alone.err.startswith("error: no huskies server is running for this project")
    start(servers, project)
    ok(project, "story", "new", "Something")
    missing = huskies(project, "agent", "start", "9")
    assert (missing.code, missing.err) == (
        1,
        "error: there is no item #9; `huskies story list` shows them all\n",
    )
    unknown = huskies(project, "agent", "assign", "1", "robot")
    assert unknown.code == 1
    assert "there is no agent 'robot' in agents.toml (agents: coder)" in unknown.err
    assert ok(project, "agent", "assign", "1", "coder") == "#1 will be worked on by coder.\n"
    no_run = huskies(project, "agent", "output", "1")
    assert (no_run.code, no_run.err) == (1, "error: #1 has not had an agent run on this node yet\n")
