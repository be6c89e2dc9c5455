"""One-line texts (titles, agent names): what makes one unfit, said with where it is."""

from __future__ import annotations

import pytest

from huskies.pipeline import project_item
from huskies.pipeline.items import ItemError
from huskies.pipeline.lines import line_problem


@pytest.mark.parametrize(
    "text",
    [
        "Fix the export",
        "Émigré café 👩‍💻 naïve",
        "a non-breaking\u00a0space",
        "מימין לשמאל",
        "",
    ],
)
def test_plain_lines_in_any_script_pass(text: str):
    assert line_problem(text) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a\x00b", "holds the control character U+0000 at position 1"),
        ("\x1b[31mred", "holds the control character U+001B at position 0"),
        ("tab\there", "holds the control character U+0009 at position 3"),
        ("del\x7f", "holds the control character U+007F at position 3"),
        ("c1\x9b", "holds the control character U+009B at position 2"),
        ("txt.exe\u202egpj", "holds the control character U+202E at position 7"),
        ("iso\u2066late", "holds the control character U+2066 at position 3"),
        ("mark\u200f", "holds the control character U+200F at position 4"),
        ("two\nlines", "is more than one line (a line break at position 3)"),
        ("cr\rhere", "is more than one line (a line break at position 2)"),
        ("para\u2029graph", "is more than one line (a line break at position 4)"),
        ("next\x85line", "is more than one line (a line break at position 4)"),
    ],
)
def test_control_characters_and_line_breaks_are_named_with_their_position(text: str, problem: str):
    assert line_problem(text) == problem


def test_an_item_holding_one_is_an_item_error_not_a_crash():
    raw = {
        "number": 1,
        "kind": "story",
        "title": "ok",
        "stage": {"name": "backlog"},
        "created_at": 1,
        "updated_at": 1,
    }
    assert not isinstance(project_item("i", raw), ItemError)
    assert project_item("i", {**raw, "title": "a\x00b"}) == ItemError(
        "i", "title", "holds the control character U+0000 at position 1"
    )
    assert project_item("i", {**raw, "agent": "coder\x1b"}) == ItemError(
        "i", "agent", "holds the control character U+001B at position 5"
    )
