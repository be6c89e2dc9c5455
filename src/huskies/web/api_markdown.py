"""`POST /api/markdown`: an item body as HTML, for the board's preview.

CommonMark with tables and strikethrough, raw HTML off (a `<script>` in a body is shown as
text), and links only with safe schemes (markdown-it refuses `javascript:` and the like), so the
board can insert the answer as it is. A task list item (`- [ ] …`, `- [x] …`) gets a disabled
checkbox: the body is edited as text, not by clicking.
"""

from __future__ import annotations

import re

from fastapi import APIRouter
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from huskies.web.errors import documented

router = APIRouter(prefix="/api", tags=["items"], responses=documented(400))

MAX_TEXT = 1 << 20  # a body larger than a change can carry is no body

_TASK = re.compile(r"\[([ xX])\](?: |$)")


class MarkdownRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: StrictStr = Field(max_length=MAX_TEXT, description="markdown")


class Html(BaseModel):
    html: str = Field(description="safe to insert: raw HTML in the text is escaped")


def _task_lists(state: StateCore) -> None:
    """Turn the `[ ]` / `[x]` that opens a list item's first paragraph into a checkbox."""
    tokens = state.tokens
    for index in range(2, len(tokens)):
        inline = tokens[index]
        if not (
            inline.type == "inline"
            and tokens[index - 1].type == "paragraph_open"
            and tokens[index - 2].type == "list_item_open"
            and inline.children
            and inline.children[0].type == "text"
        ):
            continue
        first = inline.children[0]
        match = _TASK.match(first.content)
        if match is None:
            continue
        first.content = first.content[match.end() :]
        checked = " checked" if match.group(1) != " " else ""
        box = Token("html_inline", "", 0)
        box.content = f'<input type="checkbox" disabled{checked}> '
        inline.children.insert(0, box)
        tokens[index - 2].attrSet("class", "task-list-item")


_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
_MARKDOWN.core.ruler.push("task_lists", _task_lists)


@router.post("/markdown", response_model=Html)
async def markdown(request: MarkdownRequest) -> dict[str, str]:
    """Render markdown (an item's body) as HTML that is safe to insert into the page."""
    return {"html": _MARKDOWN.render(request.text)}
