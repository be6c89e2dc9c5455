"""The access token: who needs it, the file that keeps it, and the server refusing requests
without it (over real HTTP and websockets)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from huskies.project import Project
from huskies.services.access_token import ensure_token, is_loopback, read_token, token_path

from .support import error_of, make_project, served, stored


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "repo")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("10.0.0.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("", False),
    ],
)
def test_only_loopback_addresses_go_without_a_token(host: str, loopback: bool):
    assert is_loopback(host) is loopback


def test_the_token_is_made_once_private_and_kept(project: Project):
    old_umask = os.umask(0)  # even a permissive umask leaves the file to its owner
    try:
        token, made = ensure_token(project)
    finally:
        os.umask(old_umask)
    assert made
    assert len(token) >= 40
    path = token_path(project)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_token(project) == token
    assert ensure_token(project) == (token, False)
    assert "access-token" in (project.dir / ".gitignore").read_text().splitlines()
    assert [p.name for p in project.dir.iterdir() if p.name.endswith(".tmp")] == []


def test_an_old_gitignore_learns_the_token_file_once(project: Project):
    ignore = project.dir / ".gitignore"
    ignore.write_text("huskies.db")  # written before the token existed, no final newline
    ensure_token(project)
    token_path(project).unlink()
    ensure_token(project)
    assert ignore.read_text() == "huskies.db\naccess-token\n"


def test_a_token_file_others_can_read_is_made_private(project: Project):
    path = token_path(project)
    path.write_text("shared-secret\n")
    path.chmod(0o644)
    assert ensure_token(project) == ("shared-secret", False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_a_server_that_requires_the_token_refuses_requests_without_it(project: Project):
    async with served(project, require_token=True) as (server, api):
        assert server.token_required
        token = read_token(project)
        assert token is not None
        assert server.new_token == token
        before = stored(server)
        for method, path in [
            ("GET", "/api/items"),
            ("POST", "/api/items"),
            ("GET", "/health"),
            ("GET", "/openapi.json"),
            ("GET", "/no/such/route"),
        ]:
            refused = await api.request(method, path, json={"title": "sneaky"})
            error = error_of(refused, 401)
            assert ".huskies/access-token" in error["message"]
            assert refused.headers["www-authenticate"] == "Bearer"
        wrong = {"Authorization": f"Bearer {token[:-1]}x"}
        error_of(await api.post("/api/items", json={"title": "sneaky"}, headers=wrong), 401)
        basic = {"Authorization": f"Basic {token}"}
        error_of(await api.get("/api/items", headers=basic), 401)
        assert stored(server) == before

        right = {"Authorization": f"Bearer {token}"}
        created = await api.post("/api/items", json={"title": "Allowed"}, headers=right)
        assert created.status_code == 201
        assert (await api.get("/api/items", headers=right)).json()["total"] == 1


async def test_the_event_stream_needs_the_token_but_crdt_sync_does_not(project: Project):
    async with served(project, require_token=True) as (server, _):
        token = read_token(project)
        url = f"ws://127.0.0.1:{server.port}"
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{url}/api/events")
        assert refused.value.response.status_code == 401
        assert "access-token" in json.loads(refused.value.response.body)["error"]["message"]
        with pytest.raises(InvalidStatus):
            await connect(f"{url}/api/events?token=wrong")
        async with connect(f"{url}/api/events?token={token}"):
            pass
        async with connect(
            f"{url}/api/events", additional_headers={"Authorization": f"Bearer {token}"}
        ):
            pass
        # Peers authenticate with their node keys there: the handshake is not refused.
        async with connect(f"{url}/crdt-sync"):
            pass


async def test_the_token_is_made_on_first_need_and_reused(project: Project):
    async with served(project) as (server, api):
        assert not server.token_required
        assert (await api.get("/api/items")).status_code == 200
    assert read_token(project) is None  # loopback: no token made
    async with served(project, require_token=True) as (server, _):
        first = server.new_token
        assert first is not None
    async with served(project, require_token=True, token=first) as (server, api):
        assert server.new_token is None  # shown once, when made
        assert read_token(project) == first
        assert (await api.get("/api/items")).status_code == 200


async def test_the_board_shell_is_served_without_the_token_but_no_data_is(project: Project):
    async with served(project, require_token=True) as (server, api):
        token = read_token(project)
        assert token is not None
        right = {"Authorization": f"Bearer {token}"}
        created = await api.post("/api/items", json={"title": "Secret plans"}, headers=right)
        assert created.status_code == 201
        # The page and its assets, which ask for the token: open, and holding no data.
        for path in ("/", "/board/items/1", "/board/costs", "/board/nodes"):
            page = await api.get(path)
            assert page.status_code == 200, path
            assert page.headers["content-type"].startswith("text/html")
            assert "Secret plans" not in page.text
        assert (await api.get("/board/static/app.js")).status_code == 200
        # Everything else stays closed, however the path is dressed up.
        for path in (
            "/api/items",
            "/api/items/1",
            "/api/costs",
            "/board",
            "/boardroom/api/items",
            "/api/items?x=/board/",
        ):
            error_of(await api.get(path), 401)
        for path in ("/board/%2e%2e/api/items", "/board/static/%2e%2e/%2e%2e/api/items/1"):
            answer = await api.get(path)
            assert answer.status_code == 404, path
            assert "Secret plans" not in answer.text
        url = f"ws://127.0.0.1:{server.port}"
        with pytest.raises(InvalidStatus):
            await connect(f"{url}/board/%2e%2e/api/events")
