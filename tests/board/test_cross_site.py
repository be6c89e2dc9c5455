"""A page on another site, open in the developer's browser, can neither read nor drive a
loopback server: not by a form, not by a script, not by a websocket, and not by DNS
rebinding (its name made to resolve to 127.0.0.1). Real Chromium against a real server.

Chromium refuses most of these requests itself (Private Network Access: a public page may not
reach loopback); Firefox and Safari send them. So this browser runs with that guard off and
evil.example resolving to 127.0.0.1: what stops the attack here is the server alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Route

from ..web.support import stored
from .browser import chromium
from .harness import board_project, serving, url_of

BROWSER_UNGUARDED = (
    "--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,"
    "PrivateNetworkAccessRespectPreflightResults,LocalNetworkAccessChecks",
    "--host-resolver-rules=MAP evil.example 127.0.0.1",
)

ATTACK = """<!doctype html>
<iframe name="sink"></iframe>
<form id="form" method="post" target="sink" enctype="text/plain"
      action="{server}/api/items/1/start">
  <input name='{{"agent": "coder-1", "x": "' value='"}}'>
</form>
<script>
  window.results = {{}};
  const done = (key, value) => {{ window.results[key] = value; }};
  document.querySelector("iframe").addEventListener("load", () => done("form", "sent"));
  document.getElementById("form").submit();
  fetch("{server}/api/config/reload", {{method: "POST", mode: "no-cors"}})
    .then(() => done("script", "sent"), () => done("script", "failed"));
  fetch("/api/state").then((r) => done("rebound", r.status), () => done("rebound", "failed"));
  const socket = new WebSocket("{events}");
  socket.onopen = () => done("websocket", "open");
  socket.onerror = () => done("websocket", "refused");
</script>
"""


async def test_a_page_on_another_site_can_neither_read_nor_drive_the_server(tmp_path: Path):
    project = board_project(tmp_path / "repo", tmp_path / "release")
    async with serving(project) as server, chromium(*BROWSER_UNGUARDED) as browser:
        async with httpx.AsyncClient(base_url=url_of(server)) as api:
            (await api.post("/api/items", json={"title": "Target"})).raise_for_status()
        before = stored(server)
        # The attacker's page, served under its own name and the server's port (as after a
        # DNS rebinding); its relative fetch goes to 127.0.0.1 by that name.
        attacker = f"http://evil.example:{server.port}/"
        html = ATTACK.format(
            server=url_of(server), events=f"ws://127.0.0.1:{server.port}/api/events"
        )

        async def serve_attack(route: Route) -> None:
            await route.fulfill(body=html, content_type="text/html")

        page = await browser.new_page()
        await page.route(attacker, serve_attack)
        await page.goto(attacker)
        await page.wait_for_function("Object.keys(window.results).length === 4")
        results: dict[str, Any] = await page.evaluate("window.results")
        # The requests went out; the server refused each of them.
        assert results == {
            "form": "sent",
            "script": "sent",
            "rebound": 421,
            "websocket": "refused",
        }
        assert stored(server) == before
        agents = server.services.agents
        assert agents is not None
        assert agents.active_run(1) is None
