"""A project for the board's browser tests: a git repository whose coder is the scripted
`board_agent.py`, with one quality gate, served in this process; and a page of its board."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Locator, Page, expect

from huskies.project import Project
from huskies.server import Running, running

from ..services.agent_rig import make_repo

AGENT = Path(__file__).with_name("board_agent.py")
GATE = '\n[[component]]\nname = "all"\n[component.gates.check]\ncommand = "true"\n'
# A page updates within milliseconds; the default deadline is for a loaded CI machine. An
# agent's run, its gates, QA and a merge take a few seconds, so waiting for them gets longer.
expect.set_options(timeout=20_000)
PIPELINE_TIMEOUT_MS = 90_000


def coder(name: str, release: Path) -> str:
    """An agents.toml table: coder `name` runs `board_agent.py`, which holds until `release`
    exists."""
    argv = json.dumps([sys.executable, str(AGENT), str(release)])
    return (
        f'[[agent]]\nname = "{name}"\nstage = "coder"\nruntime = "command"\nargv = {argv}\n'
        'prompt = "{title}"\ninactivity_timeout_secs = 600\n'
    )


def board_project(root: Path, release: Path, *, permissions: str = "") -> Project:
    """A project whose one coder, `coder-1`, holds until `release` exists; `permissions` is
    appended to agents.toml."""
    project = make_repo(root)
    project.project_toml.write_text(project.project_toml.read_text() + GATE)
    project.agents_toml.write_text(coder("coder-1", release) + permissions)
    return project


@contextlib.asynccontextmanager
async def serving(project: Project, port: int = 0, **options: Any) -> AsyncIterator[Running]:
    async with running(
        project,
        project.config(),
        "127.0.0.1",
        port,
        heartbeat_s=3600,
        verify_processes=0,
        merge_retry_s=0.2,
        **options,
    ) as server:
        yield server


def url_of(server: Running) -> str:
    return f"http://127.0.0.1:{server.port}"


@dataclass
class BoardPage:
    """A page of the board and the errors its scripts threw."""

    page: Page
    errors: list[str]

    async def assert_same_document(self) -> None:
        """The page was updated in place: never loaded again, and nothing it ran threw."""
        assert await self.page.evaluate("window.sameDocument") is True
        assert self.errors == [], self.errors


async def open_board(browser: Browser, server: Running, path: str = "/") -> BoardPage:
    """A page of the board, connected live, its document marked so that a test can tell it was
    never loaded again."""
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(url_of(server) + path)
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await page.evaluate("window.sameDocument = true")
    return BoardPage(page, errors)


def column(page: Page, stage: str, title: str | None = None) -> Locator:
    """The cards in `stage`'s column (with `title`, if given)."""
    cards = page.locator(f'.column[data-stage="{stage}"] .card')
    return cards if title is None else cards.filter(has_text=title)
