"""`POST /api/markdown` over real HTTP: a body as HTML the board can insert safely."""

from __future__ import annotations

from pathlib import Path

import pytest

from huskies.project import Project

from .support import error_of, make_project, served


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "repo")


async def test_markdown_becomes_html(project: Project):
    async with served(project) as (_, api):
        answered = await api.post(
            "/api/markdown",
            json={"text": "## Goal\n\nLog in with **email**.\n\n| a | b |\n|---|---|\n| 1 | 2 |"},
        )
        assert answered.status_code == 200
        html = answered.json()["html"]
        assert set(answered.json()) == {"html"}
        assert html.startswith("<h2>Goal</h2>\n<p>Log in with <strong>email</strong>.</p>\n")
        assert "<td>1</td>" in html


async def test_raw_html_and_script_links_stay_text(project: Project):
    async with served(project) as (_, api):
        text = (
            '<script>alert(1)</script>\n\n<img src=x onerror="alert(2)">\n\n'
            "[a](javascript:alert(3))"
        )
        html = (await api.post("/api/markdown", json={"text": text})).json()["html"]
        assert "<script" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<img" not in html
        assert "href" not in html  # the javascript: link is not made a link


async def test_task_lists_get_disabled_checkboxes(project: Project):
    async with served(project) as (_, api):
        text = "- [ ] write the test\n- [x] **make** it pass\n- [y] not a task\n- plain"
        html = (await api.post("/api/markdown", json={"text": text})).json()["html"]
        assert html == (
            "<ul>\n"
            '<li class="task-list-item"><input type="checkbox" disabled> write the test</li>\n'
            '<li class="task-list-item"><input type="checkbox" disabled checked> '
            "<strong>make</strong> it pass</li>\n"
            "<li>[y] not a task</li>\n"
            "<li>plain</li>\n"
            "</ul>\n"
        )


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({}, "body.text", "Field required"),
        ({"text": 3}, "body.text", "valid string"),
        ({"text": "x", "raw": True}, "body.raw", "Extra inputs"),
    ],
)
async def test_a_bad_request_is_a_400_naming_the_field(project, body, field, words):
    async with served(project) as (_, api):
        error = error_of(await api.post("/api/markdown", json=body), 400)
        assert error["field"] == field
        assert words in error["message"]
