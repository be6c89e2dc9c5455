"""The web board in a real Chromium against a real server with `command` agents: an item made,
started and watched live to done; legal and illegal moves; the command box; a server restart;
the access token; a permission request. Every wait is a Playwright expectation with a deadline."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import httpx
from playwright.async_api import Browser, expect

from huskies.agents.permissions import ToolCall
from huskies.services.access_token import read_token

from .harness import PIPELINE_TIMEOUT_MS, board_project, column, open_board, serving, url_of


async def test_an_item_made_on_the_board_is_coded_live_and_reaches_done(
    tmp_path: Path, browser: Browser
):
    release = tmp_path / "release"
    project = board_project(tmp_path / "repo", release)
    async with serving(project) as server:
        board = await open_board(browser, server)
        page = board.page
        await page.get_by_role("button", name="New item").click()
        await page.get_by_label("Title").fill("Greet the world")
        await page.get_by_label("Description").fill("Say hello.\n\n- [ ] it says hello\n")
        await page.get_by_role("button", name="Add to backlog").click()
        await expect(column(page, "backlog", "Greet the world")).to_be_visible()

        await column(page, "backlog", "Greet the world").get_by_role("link").click()
        await expect(page).to_have_url(re.compile(r"/board/items/1$"))
        await expect(page.get_by_role("heading", name="Greet the world")).to_be_visible()
        await expect(page.get_by_label("it says hello")).not_to_be_checked()
        panel = page.locator("#agent-panel")
        await panel.get_by_role("button", name="Start").click()
        log = panel.get_by_role("log")
        # The agent holds until released: what shows now was streamed while it runs.
        await expect(log).to_contain_text("Reading #1: Greet the world")
        await expect(log).to_contain_text("git status")
        await expect(log).to_contain_text("I will write notes-1.md")
        await expect(panel.locator(".status")).to_contain_text("coder-1: running")
        agents = server.services.agents
        assert agents is not None
        assert agents.active_run(1) is not None

        release.write_text("go")
        await expect(log).to_contain_text("Committed notes-1.md")
        await expect(log).to_contain_text("Finished · $0.04")
        await page.get_by_role("link", name="← Board").click()
        await expect(column(page, "done", "Greet the world")).to_be_visible(
            timeout=PIPELINE_TIMEOUT_MS
        )
        await expect(column(page, "done", "Greet the world").locator(".cost")).to_have_text("$0.04")
        await board.assert_same_document()


async def test_moves_offered_are_legal_and_an_illegal_one_is_refused_with_why(
    tmp_path: Path, browser: Browser
):
    project = board_project(tmp_path / "repo", tmp_path / "release")
    project.agents_toml.write_text("")  # no agents: an item in coding stays put
    async with serving(project) as server, httpx.AsyncClient(base_url=url_of(server)) as api:
        (await api.post("/api/items", json={"title": "Stay in line"})).raise_for_status()
        board = await open_board(browser, server)
        page = board.page
        card = column(page, "backlog", "Stay in line")

        await card.drag_to(page.locator('.column[data-stage="done"]'))
        alert = page.locator("#alerts")
        await expect(alert).to_contain_text("done needs a merge")
        await expect(card).to_be_visible()
        assert (await api.get("/api/items/1")).json()["stage"]["name"] == "backlog"

        # By keyboard: the menu lists only what the pipeline allows from the backlog.
        await card.get_by_role("button", name="Actions for #1").focus()
        await page.keyboard.press("Enter")
        menu = page.get_by_role("menu")
        await expect(menu.get_by_role("menuitem")).to_have_text(
            ["Move to coding", "Abandon (archive)"]  # no agents, so no "Start agent"
        )
        await page.keyboard.press("ArrowDown")
        await expect(menu.get_by_role("menuitem", name="Abandon (archive)")).to_be_focused()
        await page.keyboard.press("ArrowUp")
        await expect(menu.get_by_role("menuitem", name="Move to coding")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(column(page, "coding", "Stay in line")).to_be_visible()
        await expect(column(page, "backlog")).to_have_count(0)

        # Archived items are out of sight until asked for.
        await column(page, "coding").get_by_role("button", name="Actions for #1").click()
        await page.get_by_role("menuitem", name="Abandon (archive)").click()
        await expect(page.locator(".card:visible")).to_have_count(0)
        await page.get_by_label("Show archived").check()
        await expect(column(page, "archived", "Stay in line")).to_be_visible()
        await board.assert_same_document()


async def test_the_command_box_answers_as_the_api_does(tmp_path: Path, browser: Browser):
    project = board_project(tmp_path / "repo", tmp_path / "release")
    async with serving(project) as server, httpx.AsyncClient(base_url=url_of(server)) as api:
        (await api.post("/api/items", json={"title": "Count me"})).raise_for_status()
        board = await open_board(browser, server)
        page = board.page
        await page.keyboard.press(":")
        command = page.get_by_label("Command", exact=True)
        await expect(command).to_be_focused()
        await command.fill("status")
        await command.press("Enter")
        expected = (await api.post("/api/commands", json={"command": "status"})).json()["output"]
        assert "Count me" in expected
        answer = page.locator(".console-answer").last
        await expect(answer).to_have_text(expected)

        await command.fill("frobnicate 3")
        await command.press("Enter")
        await expect(page.locator(".console-answer.error").last).to_contain_text(
            "there is no command 'frobnicate'"
        )
        await board.assert_same_document()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_the_board_recovers_by_itself_after_the_server_restarts(
    tmp_path: Path, browser: Browser
):
    project = board_project(tmp_path / "repo", tmp_path / "release")
    port = free_port()
    async with serving(project, port) as server:
        board = await open_board(browser, server)
        page = board.page
        async with httpx.AsyncClient(base_url=url_of(server)) as api:
            (await api.post("/api/items", json={"title": "Before the restart"})).raise_for_status()
        await expect(column(page, "backlog", "Before the restart")).to_be_visible()

    connection = page.locator("#connection")
    await expect(connection).to_have_attribute("data-state", "offline")
    await expect(connection).to_contain_text("Reconnecting")

    async with serving(project, port) as server:
        await expect(connection).to_have_attribute("data-state", "live")
        async with httpx.AsyncClient(base_url=url_of(server)) as api:
            (await api.post("/api/items", json={"title": "After the restart"})).raise_for_status()
        await expect(column(page, "backlog", "After the restart")).to_be_visible()
        await expect(column(page, "backlog")).to_have_count(2)
        await board.assert_same_document()


async def test_beyond_loopback_the_board_asks_for_the_token(tmp_path: Path, browser: Browser):
    project = board_project(tmp_path / "repo", tmp_path / "release")
    async with serving(project, require_token=True) as server:
        token = read_token(project)
        assert token is not None
        async with httpx.AsyncClient(
            base_url=url_of(server), headers={"Authorization": f"Bearer {token}"}
        ) as api:
            (await api.post("/api/items", json={"title": "Behind the token"})).raise_for_status()
        page = await browser.new_page()
        await page.goto(url_of(server))
        dialog = page.get_by_role("dialog", name="Access token")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text(".huskies/access-token")
        await expect(page.locator(".card")).to_have_count(0)

        await dialog.get_by_label("Token").fill("not-the-token")
        await dialog.get_by_role("button", name="Open the board").click()
        await expect(dialog).to_contain_text("did not accept that token")

        await dialog.get_by_label("Token").fill(token)
        await dialog.get_by_role("button", name="Open the board").click()
        await expect(dialog).to_be_hidden()
        await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        await expect(column(page, "backlog", "Behind the token")).to_be_visible()


PERMISSIONS = '\n[[permission]]\ntool = "Bash"\ndecision = "ask"\n'


async def test_a_permission_request_is_answered_on_the_board(tmp_path: Path, browser: Browser):
    project = board_project(tmp_path / "repo", tmp_path / "release", permissions=PERMISSIONS)
    async with serving(project) as server:
        permissions = server.services.permissions
        assert permissions is not None
        board = await open_board(browser, server)
        page = board.page
        call = ToolCall("Bash", {"command": "make deploy"}, "coder-1", project.root)
        decision = asyncio.create_task(permissions.decide(call, None))

        banner = page.get_by_role("region", name="Permission requests")
        await expect(banner).to_contain_text("coder-1 asks to use Bash(make deploy)")
        await banner.get_by_role("button", name="Allow").click()
        verdict = await asyncio.wait_for(decision, timeout=20)
        assert verdict.allowed
        assert verdict.by == "person"
        await expect(banner).to_be_hidden()
        await board.assert_same_document()
