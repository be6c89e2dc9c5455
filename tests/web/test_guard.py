"""The app's one door: only its own Host names, writes and websockets only from its own origin
(or none), JSON bodies only. A web page the developer happens to open can neither read nor
drive a loopback server (over real HTTP and websockets)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from huskies.project import Project
from huskies.web.guard import _same_origin, _split_host, served_names

from ..services.agent_rig import waiting_project
from .support import error_of, served, stored

EVIL = "http://evil.example"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return waiting_project(tmp_path)


def test_served_names_are_loopback_the_listening_address_and_the_names_given():
    assert served_names("10.0.0.5") == ["127.0.0.1", "localhost", "::1", "10.0.0.5"]
    everywhere = served_names("0.0.0.0", ["Box", "fe80::1", "[fe80::2]"])
    assert "0.0.0.0" not in everywhere
    assert everywhere[-3:] == ["box", "fe80::1", "fe80::2"]
    assert served_names("::1") == ["127.0.0.1", "localhost", "::1"]


@pytest.mark.parametrize(
    ("value", "split"),
    [
        ("localhost", ("localhost", None)),
        ("LocalHost:3000", ("localhost", 3000)),
        ("[::1]:80", ("::1", 80)),
        ("[::1]", ("::1", None)),
        ("", None),
        (":80", None),
        ("host:port", None),
        ("[::1", None),
        ("[::1]x", None),
    ],
)
def test_host_headers_are_read_strictly(value: str, split: tuple[str, int | None] | None):
    assert _split_host(value) == split


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("http://127.0.0.1:3000", ("127.0.0.1", 3000), True),
        ("http://LOCALHOST:3000", ("localhost", 3000), True),
        ("https://huskies.example.com", ("huskies.example.com", None), True),
        ("https://huskies.example.com", ("huskies.example.com", 443), True),
        ("http://huskies.example.com", ("huskies.example.com", 443), False),
        ("http://[::1]:3000", ("::1", 3000), True),
        ("http://127.0.0.1:3001", ("127.0.0.1", 3000), False),
        ("http://evil.example:3000", ("127.0.0.1", 3000), False),
        ("null", ("127.0.0.1", 3000), False),
        ("file://", ("127.0.0.1", 3000), False),
        ("http://127.0.0.1:99999", ("127.0.0.1", 3000), False),
    ],
)
def test_an_origin_is_the_servers_own_only_when_it_names_the_host(
    origin: str, host: tuple[str, int | None], same: bool
):
    assert _same_origin(origin, host) is same


async def test_a_rebound_host_is_refused_on_every_route_and_websocket(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Secret plans"})
        before = stored(server)
        rebound = {"Host": f"attacker.example:{server.port}"}
        for method, path in (
            ("GET", "/api/state"),
            ("GET", "/api/items"),
            ("GET", "/openapi.json"),
            ("GET", "/"),
            ("GET", "/no/such/route"),
            ("POST", "/api/items/1/start"),
            ("POST", "/api/config/reload"),
            ("POST", "/mcp"),
        ):
            answer = await api.request(method, path, headers=rebound)
            error = error_of(answer, 421)
            assert "attacker.example" in error["message"], path
            assert "Secret plans" not in answer.text
        for path in ("/api/events", "/crdt-sync"):
            # The rebound name in the URL (so in Host), the connection to loopback.
            url = f"ws://attacker.example:{server.port}{path}"
            with pytest.raises(InvalidStatus) as refused:
                await connect(url, host="127.0.0.1", port=server.port)
            assert refused.value.response.status_code == 421
        assert stored(server) == before
        agents = server.services.agents
        assert agents is not None
        assert agents.active_run(1) is None

        # A tunnel (ssh -L 8000:localhost:PORT) changes the port, not the name.
        tunnel = await api.get("/api/items", headers={"Host": "localhost:8000"})
        assert tunnel.status_code == 200


async def test_a_configured_name_is_answered(project: Project):
    toml = project.project_toml.read_text()
    project.project_toml.write_text(toml.replace("hosts = []", 'hosts = ["huskies.example.com"]'))
    async with served(project) as (_, api):
        proxied = await api.get("/api/items", headers={"Host": "huskies.example.com"})
        assert proxied.status_code == 200


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"agent=coder"),
        ("text/plain", b'{"agent": "coder"}'),
        ("multipart/form-data; boundary=x", b"--x--\r\n"),
        (None, b""),
    ],
)
async def test_a_cross_site_request_changes_nothing(
    project: Project, content_type: str | None, body: bytes
):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Target"})
        before = stored(server)
        headers = {"Origin": EVIL}
        if content_type is not None:
            headers["Content-Type"] = content_type
        for path in ("/api/items/1/start", "/api/config/reload", "/api/items"):
            error = error_of(await api.post(path, content=body, headers=headers), 403)
            assert EVIL in error["message"]
        error_of(await api.delete("/api/items/1", headers={"Origin": "null"}), 403)
        assert stored(server) == before
        agents = server.services.agents
        assert agents is not None
        assert agents.active_run(1) is None


async def test_the_api_takes_json_bodies_only(project: Project):
    async with served(project) as (server, api):
        await api.post("/api/items", json={"title": "Target"})
        before = stored(server)
        for content_type, body in (
            ("application/x-www-form-urlencoded", b"title=Sneaky"),
            ("text/plain", b'{"title": "Sneaky"}'),
            (None, b'{"title": "Sneaky"}'),
        ):
            headers = {} if content_type is None else {"Content-Type": content_type}
            answer = await api.post("/api/items", content=body, headers=headers)
            error = error_of(answer, 415)
            assert error["field"] == "body"
            assert "application/json" in error["message"]
        assert stored(server) == before
        # JSON with a charset, and requests with no body at all (the CLI's), are fine.
        charset = {"Content-Type": "application/json; charset=utf-8"}
        made = await api.post("/api/items", content=b'{"title": "Fine"}', headers=charset)
        assert made.status_code == 201, made.text
        assert (await api.post("/api/config/reload")).status_code == 200


async def test_the_servers_own_origin_may_write(project: Project):
    async with served(project) as (server, api):
        own = {"Origin": f"http://127.0.0.1:{server.port}"}
        made = await api.post("/api/items", json={"title": "From the board"}, headers=own)
        assert made.status_code == 201, made.text
        started = await api.post("/api/items/1/start", json={}, headers=own)
        assert started.status_code == 200, started.text
        # Reading needs no Origin check: without CORS headers no other page can read it.
        listed = await api.get("/api/items", headers={"Origin": EVIL})
        assert listed.status_code == 200
        assert "access-control-allow-origin" not in listed.headers


async def test_websockets_from_another_origin_are_refused(project: Project):
    async with served(project) as (server, _):
        url = f"ws://127.0.0.1:{server.port}"
        for path in ("/api/events", "/crdt-sync"):
            with pytest.raises(InvalidStatus) as refused:
                await connect(f"{url}{path}", origin=EVIL)  # type: ignore[arg-type]
            assert refused.value.response.status_code == 403
        own = f"http://127.0.0.1:{server.port}"
        async with connect(f"{url}/api/events", origin=own):  # type: ignore[arg-type]
            pass
        async with connect(f"{url}/api/events"):  # scripts send no Origin
            pass


async def test_the_host_is_checked_before_the_token(project: Project):
    async with served(project, require_token=True) as (server, api):
        token = server.new_token
        rebound = {"Host": "attacker.example", "Authorization": f"Bearer {token}"}
        error_of(await api.get("/api/items", headers=rebound), 421)
        cross = {"Origin": EVIL, "Authorization": f"Bearer {token}"}
        error_of(await api.post("/api/items", json={"title": "x"}, headers=cross), 403)
        fine = await api.get("/api/items", headers={"Authorization": f"Bearer {token}"})
        assert fine.status_code == 200


async def test_the_mcp_endpoint_is_behind_the_same_door(project: Project):
    async with served(project) as (server, _):
        url = f"http://127.0.0.1:{server.port}/mcp"
        accept = {"Accept": "application/json, text/event-stream"}
        async with httpx.AsyncClient(timeout=10) as http:
            forged = await http.post(url, json={}, headers={**accept, "Origin": EVIL})
            assert forged.status_code == 403
            form = await http.post(
                url,
                content=b"a=b",
                headers={**accept, "Content-Type": "application/x-www-form-urlencoded"},
            )
            assert form.status_code == 415


async def test_a_refused_host_or_origin_is_logged_once(project: Project, caplog):
    async with served(project) as (_, api):
        with caplog.at_level("WARNING", logger="huskies.web"):
            for _ in range(3):
                await api.get("/api/items", headers={"Host": "huskies.example.com"})
                await api.post("/api/items", json={"title": "x"}, headers={"Origin": EVIL})
    refused = [record.getMessage() for record in caplog.records if "refused" in record.message]
    assert len(refused) == 2, refused
    assert "'huskies.example.com'" in refused[0]
    assert "hosts` under [server]" in refused[0]
    assert EVIL in refused[1]
