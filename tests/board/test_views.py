"""The board's other views and tools in Chromium: the item page's editor, checklist and
preview; search and filters; the theme; the nodes and cost views; a `lagged` stream; the
screenshots."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.async_api import Browser, expect

from huskies.pipeline import ItemKind

from .harness import board_project, column, open_board, serving, url_of
from .screenshots import make_screenshots


async def test_the_item_page_edits_the_body_ticks_criteria_and_previews(
    tmp_path: Path, browser: Browser
):
    project = board_project(tmp_path / "repo", tmp_path / "release")
    async with serving(project) as server, httpx.AsyncClient(base_url=url_of(server)) as api:
        body = "Intro\n\n- [ ] first\n- [ ] second\n"
        created = await api.post("/api/items", json={"title": "Edit me", "body": body})
        created.raise_for_status()
        board = await open_board(browser, server, "/board/items/1")
        page = board.page
        first = page.get_by_label("first")
        await first.check()
        await expect(page.locator('[data-field="criteria-progress"]')).to_have_text("1 of 2 done")
        await expect(page.locator('[data-field="body-state"]')).to_have_text("Saved")
        ticked = body.replace("[ ] first", "[x] first")
        assert (await api.get("/api/items/1")).json()["body"] == ticked

        editor = page.get_by_label("Description (markdown)")
        await editor.fill("# Plan\n\nNew *words*.\n\n- [x] done already\n")
        await expect(page.get_by_role("button", name="Save")).to_be_enabled()
        await page.get_by_role("tab", name="Preview").click()
        preview = page.locator("#body-preview")
        await expect(preview.get_by_role("heading", name="Plan")).to_be_visible()
        await expect(preview.locator("em")).to_have_text("words")
        await page.get_by_role("tab", name="Write").click()
        await editor.press("Control+s")
        await expect(page.get_by_role("button", name="Save")).to_be_disabled()
        assert (await api.get("/api/items/1")).json()["body"].startswith("# Plan")
        await expect(page.get_by_label("done already")).to_be_checked()
        history = page.locator('[data-field="history"]')
        await expect(history.locator("li")).not_to_have_count(1)

        # A change made elsewhere shows at once.
        await api.patch("/api/items/1", json={"title": "Edited elsewhere"})
        await expect(page.get_by_role("heading", name="Edited elsewhere")).to_be_visible()
        await board.assert_same_document()


async def test_search_and_filters_narrow_the_board(tmp_path: Path, browser: Browser):
    project = board_project(tmp_path / "repo", tmp_path / "release")
    async with serving(project) as server:
        board_service = server.services.board
        await board_service.create("Fix the login form", kind=ItemKind.BUG)
        await board_service.create("Write the docs")
        await board_service.create("Fix the footer", kind=ItemKind.BUG)
        board = await open_board(browser, server)
        page = board.page
        visible = page.locator(".card:visible")
        await expect(visible).to_have_count(3)
        await page.keyboard.press("/")
        search = page.get_by_label("Search")
        await expect(search).to_be_focused()
        await search.fill("fix")
        await expect(visible).to_have_count(2)
        await search.fill("#2")
        await expect(visible.get_by_role("link")).to_have_text(["Write the docs"])
        await search.fill("")
        await page.get_by_label("Filter by kind").select_option("bug")
        await expect(visible).to_have_count(2)
        await expect(page.locator('.column[data-stage="backlog"] .count')).to_have_text("2 / 3")
        await board.assert_same_document()


async def test_the_theme_follows_the_system_until_one_is_chosen(tmp_path: Path, browser: Browser):
    project = board_project(tmp_path / "repo", tmp_path / "release")
    async with serving(project) as server:
        board = await open_board(browser, server)
        page = board.page
        background = "getComputedStyle(document.documentElement).backgroundColor"
        await page.emulate_media(color_scheme="dark")
        dark = await page.evaluate(background)
        await page.emulate_media(color_scheme="light")
        light = await page.evaluate(background)
        assert dark != light
        theme = page.get_by_role("button", name="Theme: system (change)")
        await theme.click()
        await expect(page.locator("html")).to_have_attribute("data-theme", "light")
        await page.get_by_role("button", name="Theme: light (change)").click()
        await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        assert await page.evaluate(background) == dark
        await page.reload()  # the choice is kept, and applied before the first paint
        await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        assert board.errors == []


async def test_the_nodes_view_and_a_lagged_stream(tmp_path: Path, browser: Browser):
    project = board_project(tmp_path / "repo", tmp_path / "release")
    async with serving(project) as server:
        board = await open_board(browser, server)
        page = board.page
        await page.get_by_role("link", name="Nodes").click()
        await expect(page.get_by_role("heading", name="This node")).to_be_visible()
        await expect(page.locator('[data-field="self"]')).to_contain_text(
            server.services.replica.node_id
        )
        await expect(page.locator('[data-field="peers"]')).to_contain_text("No peers")

        # A client that fell behind reads everything again rather than show a stale board.
        await page.get_by_role("link", name="Board").click()
        async with page.expect_request("**/api/items") as reread:
            server.services.hub.publish("lagged", {"missed_from": 1})
        assert (await reread.value).method == "GET"
        await expect(column(page, "backlog")).to_have_count(0)
        await board.assert_same_document()


async def test_the_screenshots_show_every_view(tmp_path: Path):
    made = await make_screenshots(tmp_path)
    assert [path.name for path in made] == [
        "board.png",
        "item.png",
        "agent-panel.png",
        "costs.png",
        "board-dark.png",
        "board-phone.png",
    ]
    for path in made:
        assert path.read_bytes().startswith(b"\x89PNG"), path
