"""The acceptance-criteria checklist of an item's body: its `- [ ]` and `- [x]` lines.

Pure: reads a body and returns a new one; the caller writes it through the board.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(r"^(?P<lead>\s*[-*]\s+\[)(?P<mark>[ xX])(?P<rest>\]\s+(?P<text>.*))$")


@dataclass(frozen=True, slots=True)
class Todo:
    index: int
    text: str
    done: bool
    line: int
    """Where it is in the body (0-based line number)."""


class NoSuchTodo(ValueError):
    """The criterion asked for is not in the checklist; the message says what there is."""


def todos(body: str) -> list[Todo]:
    found: list[Todo] = []
    for number, line in enumerate(body.split("\n")):
        match = _LINE.match(line)
        if match is not None:
            text = match["text"].strip()
            found.append(Todo(len(found), text, match["mark"] != " ", number))
    return found


def find(body: str, index: int | None, text: str | None) -> Todo:
    """The criterion at `index`, or else the one whose text is (or uniquely contains) `text`."""
    listed = todos(body)
    if not listed:
        raise NoSuchTodo("the item's body has no checklist (`- [ ] …` lines)")
    if index is not None:
        if not 0 <= index < len(listed):
            raise NoSuchTodo(f"index {index} is not in the checklist (0 to {len(listed) - 1})")
        return listed[index]
    wanted = (text or "").strip().casefold()
    exact = [todo for todo in listed if todo.text.casefold() == wanted]
    matches = exact or [todo for todo in listed if wanted and wanted in todo.text.casefold()]
    if len(matches) != 1:
        how = "no criterion matches" if not matches else f"{len(matches)} criteria match"
        raise NoSuchTodo(f"{how} {text!r}; give the index from get_todos")
    return matches[0]


def checked(body: str, todo: Todo, done: bool) -> str:
    """`body` with `todo` marked done (or not done)."""
    lines = body.split("\n")
    match = _LINE.match(lines[todo.line])
    assert match is not None
    lines[todo.line] = f"{match['lead']}{'x' if done else ' '}{match['rest']}"
    return "\n".join(lines)
