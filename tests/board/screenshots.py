"""The README's pictures of the board: `python -m tests.board.screenshots [DIR]` (default
`docs/screenshots`) builds a sample project in a temporary directory, runs items through a real
server with the scripted `board_agent.py` until the board shows every stage of work (done, in
review, agents coding), and photographs it in Chromium."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from huskies.pipeline import ItemKind, QaMode, StageName
from huskies.project import Project
from huskies.server import Running
from huskies.services.agents import AgentBusy

from ..services.agent_rig import make_repo
from .browser import chromium
from .harness import GATE, coder, serving, url_of

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DEADLINE_S = 120
SEARCH, CHANGE_LOG, SHORTCUTS = 3, 4, 6  # the items' numbers, as in ITEMS
HELD_AT = 6  # board_agent's events before it waits for its release file

ITEMS = (
    (
        "Export the report as CSV",
        ItemKind.STORY,
        "People paste the report into spreadsheets by hand.\n\n"
        "## Acceptance criteria\n\n- [x] a Download CSV button on the report\n"
        "- [x] amounts use a dot as the decimal separator\n- [x] a test reads the file back\n",
    ),
    (
        "Totals are off by one cent on refunds",
        ItemKind.BUG,
        "Refunds round each line before adding them up.\n\n"
        "- [x] totals add exact amounts, then round once\n- [x] a regression test\n",
    ),
    (
        "Search items by title",
        ItemKind.STORY,
        "A search box above the list that filters as you type.\n\n"
        "## Acceptance criteria\n\n- [x] matches any part of the title, ignoring case\n"
        "- [ ] `#12` finds item 12\n- [ ] the list says how many it shows\n"
        "- [ ] works with the keyboard alone\n",
    ),
    (
        "Show the change log on each item",
        ItemKind.STORY,
        "Who changed what, and when.\n\n- [x] newest first\n- [x] names the node\n",
    ),
    (
        "Split the settings module",
        ItemKind.REFACTOR,
        "`settings.py` does three jobs; give each its own module.\n",
    ),
    (
        "Keyboard shortcuts for the list",
        ItemKind.STORY,
        "- [ ] `/` focuses the search\n- [ ] `j` and `k` move between items\n",
    ),
    ("Try SQLite FTS5 for search", ItemKind.SPIKE, "How fast is it on 100k titles?\n"),
    ("Dark theme: badges lack contrast", ItemKind.BUG, "Measure against WCAG AA.\n"),
)


def sample_project(root: Path, through: Path, held: Path) -> Project:
    """Two coders: `coder-1` goes straight through while `through` exists, `coder-2` holds
    until `held` exists (it never does here)."""
    project = make_repo(root)
    project.project_toml.write_text(project.project_toml.read_text() + GATE)
    project.agents_toml.write_text(coder("coder-1", through) + "\n" + coder("coder-2", held))
    return project


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def fill(server: Running, through: Path) -> None:
    """Two items done, one waiting for review, one sent back from review and coded again (by
    `coder-2`, held), one more coding (held), and three in the backlog."""
    board, agents, review = server.services.board, server.services.agents, server.services.review
    assert agents is not None
    assert review is not None
    for number, (title, kind, body) in enumerate(ITEMS, 1):
        depends_on = [SEARCH] if number == SHORTCUTS else []
        reviewer = QaMode.HUMAN if number in (SEARCH, CHANGE_LOG) else None
        await board.create(title, kind=kind, body=body, depends_on=depends_on, qa=reviewer)

    def stages(want: dict[int, StageName]) -> bool:
        return all(board.get(number).stage.name is stage for number, stage in want.items())

    through.write_text("go")
    for number in (1, 2, SEARCH, CHANGE_LOG):
        await agents.start(number, "coder-1")
    done, in_review = StageName.DONE, StageName.QA
    first_runs = {1: done, 2: done, SEARCH: in_review, CHANGE_LOG: in_review}
    await until(lambda: stages(first_runs), "the first runs")
    through.unlink()  # from here on, coder-1 holds as well
    await agents.assign(SEARCH, "coder-2")
    await review.reject(SEARCH, "`#12` must find item 12: the search ignores numbers")
    with contextlib.suppress(AgentBusy):  # auto-assign may have given it to coder-2 already
        await agents.start(SEARCH, "coder-2")
    await agents.start(5, "coder-1")

    def holding(number: int) -> bool:
        run = agents.active_run(number)
        return run is not None and run.process is not None and len(run.process.events) >= HELD_AT

    await until(lambda: holding(SEARCH) and holding(5), "the held agents' first output")


async def shoot(page: Page, path: Path) -> Path:
    """A picture of the page without the toasts that happened to be up."""
    await page.evaluate("document.querySelectorAll('.toast').forEach((toast) => toast.remove())")
    await page.mouse.move(0, 0)
    await page.screenshot(path=path)
    return path


async def show_board(page: Page, url: str) -> None:
    await page.goto(url)
    await expect(page.locator(".card")).to_have_count(len(ITEMS))
    await expect(page.locator('.column[data-stage="done"] .cost')).to_have_count(2)


async def photograph(browser: Browser, server: Running, out: Path) -> list[Path]:
    url = url_of(server)
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    await show_board(page, url)
    made = [await shoot(page, out / "board.png")]

    await page.get_by_role("link", name="Search items by title").click()
    log = page.locator("#agent-panel").get_by_role("log")
    await expect(log).to_contain_text("I will write notes-3.md")
    await expect(page.locator('[data-field="history"] li')).not_to_have_count(0)
    await page.set_viewport_size({"width": 1400, "height": 1100})
    made.append(await shoot(page, out / "item.png"))
    made.append(out / "agent-panel.png")
    await page.locator("#agent-panel").screenshot(path=made[-1])

    await page.get_by_role("link", name="Costs").click()
    await expect(page.locator(".hbars li")).not_to_have_count(0)
    await page.set_viewport_size({"width": 1400, "height": 760})
    made.append(await shoot(page, out / "costs.png"))

    dark = await browser.new_page(viewport={"width": 1400, "height": 900}, color_scheme="dark")
    await show_board(dark, url)
    made.append(await shoot(dark, out / "board-dark.png"))

    phone = await browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    await show_board(phone, url)
    made.append(await shoot(phone, out / "board-phone.png"))
    return made


async def make_screenshots(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="huskies-screenshots-") as folder:
        through, held = Path(folder) / "through", Path(folder) / "held"
        project = sample_project(Path(folder) / "project", through, held)
        async with serving(project) as server:
            await fill(server, through)
            async with chromium() as browser:
                return await photograph(browser, server, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_DIR)
    for path in asyncio.run(make_screenshots(parser.parse_args().out)):
        print(path)


if __name__ == "__main__":
    main()
