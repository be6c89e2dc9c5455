"""One-line texts that people and nodes give: item titles and agent names.

Such a line travels to places where a control character does harm: a process environment
refuses NUL outright, a terminal obeys escape sequences, a log line or a commit subject breaks
at a newline, and bidirectional overrides make a name read otherwise than it is. So every entry
point refuses them, and an item that holds one anyway (written by an older or hostile node) is
read as an item error, not a crash.
"""

from __future__ import annotations

import re

FORBIDDEN = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069"
"""The characters a line may not hold, as a regular expression's character class (the same in
Python and in JSON Schema): C0 and C1 controls with DEL (Unicode's Cc), the line and paragraph
separators, and the bidirectional marks, embeddings, overrides and isolates."""

_FORBIDDEN = re.compile(f"[{FORBIDDEN}]")
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def line_problem(text: str) -> str | None:
    """What makes `text` unfit for one line (e.g. "holds the control character U+0000 at
    position 2"), or None."""
    found = _FORBIDDEN.search(text)
    if found is None:
        return None
    char, at = found.group(), found.start()
    if char in _LINE_BREAKS:
        return f"is more than one line (a line break at position {at})"
    return f"holds the control character U+{ord(char):04X} at position {at}"
