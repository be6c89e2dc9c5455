"""Reading a shell command far enough to tell whether it is one plain command.

A plain command is one simple command: words, quoted as the shell quotes them, that run one
program and do nothing else. `plain_words()` returns those words with the quotes taken off, or
raises `NotPlain` saying what else the shell would do with the command:

- run another command: `;`, `&`, `&&`, `||`, `|`, `|&`, a line break, `$(…)`, backticks,
  `<(…)`, `>(…)`, a subshell `( … )`;
- redirect: `<`, `>`, `>>`, `2>`, `&>`, `>&`, here-documents `<<`, here-strings `<<<`;
- expand: `$NAME`, `${…}`, `$'…'`, braces `{a,b}` or `{1..3}` (into several words);
- hide the rest of the line in a comment (`#` starting a word), or set a variable for the
  command (`NAME=value cmd`: GIT_SSH_COMMAND, LD_PRELOAD and the like name programs to run).

`shlex` splits the words; with `punctuation_chars` every unquoted run of `();<>|&` becomes a
token of its own, so operators can't hide inside a word. What shlex cannot report, because it
takes the quotes off, is found by a scan beforehand that follows the same quoting rules: `$`
and backticks still work inside double quotes, a `#` starting a word begins a comment, and a
line break is only literal inside quotes. Being unsure, the reading refuses: a word that is
nothing but operator characters counts as an operator even when it was quoted (`';'`).
"""

from __future__ import annotations

import re
import shlex

OPERATOR_CHARS = "();<>|&"

ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")

VARIABLE_NAME = re.compile(r"[A-Za-z0-9_]+")

WORD_STARTS_AFTER = " \t\n" + OPERATOR_CHARS


class NotPlain(ValueError):
    """The command is more than one plain command; the message says why, for people."""


def plain_words(command: str) -> list[str]:
    """The words of `command` when it is one plain command; else raises NotPlain."""
    _refuse_what_shlex_cannot_see(command)
    lexer = shlex.shlex(command, posix=True, punctuation_chars=OPERATOR_CHARS)
    lexer.whitespace_split = True
    lexer.whitespace = " \t"  # bash splits words on blanks only; line breaks are refused above
    lexer.commenters = ""  # a comment is refused above, where shlex would cut mid-word
    try:
        words = list(lexer)
    except ValueError as error:  # unbalanced quotes, or a trailing backslash
        raise NotPlain(f"the command does not parse as shell ({error})") from None
    for word in words:
        if word and all(char in OPERATOR_CHARS for char in word):
            raise NotPlain(_operator_refusal(word))
    if not words:
        raise NotPlain("the command is empty")
    if ASSIGNMENT.match(words[0]):
        raise NotPlain(
            f"`{words[0]}` sets a variable for the command, and variables can name programs "
            "to run (GIT_SSH_COMMAND, LD_PRELOAD)"
        )
    return words


def _operator_refusal(operator: str) -> str:
    if operator == "&":
        return "`&` runs the command before it in the background and goes on to the next"
    if "(" in operator or ")" in operator or not set(operator) & set("<>"):
        return f"`{operator}` runs another command"
    return f"`{operator}` redirects input or output"


def _refuse_what_shlex_cannot_see(command: str) -> None:
    """Raise NotPlain for what the shell expands or treats as a new line, following its
    quoting: nothing is special inside single quotes, `$` and backticks still are inside
    double quotes, and a backslash makes the next character literal outside single quotes."""
    quote = ""  # the quote we are inside: "", "'" or '"'
    at = 0
    while at < len(command):
        char = command[at]
        if quote == "'":
            if char == "'":
                quote = ""
        elif char == "\\":
            if command[at + 1 : at + 2] == "\n":
                raise NotPlain("a line break (after `\\`) continues the command on another line")
            at += 1  # the escaped character is literal
        elif char == "`":
            raise NotPlain("backticks run another command")
        elif char == "$":
            _refuse_an_expansion(command[at + 1 :], quote)
        elif char == '"':
            quote = "" if quote == '"' else '"'
        elif quote:
            pass
        elif char == "'":
            quote = "'"
        elif char == "\n":
            raise NotPlain("a line break runs another command")
        elif char == "#" and (at == 0 or command[at - 1] in WORD_STARTS_AFTER):
            raise NotPlain("`#` starts a comment, which hides the rest of the line")
        elif char == "{" and _expands_braces(command[at + 1 :]):
            raise NotPlain("braces like `{a,b}` or `{1..3}` expand into several words")
        at += 1


def _refuse_an_expansion(rest: str, quote: str) -> None:
    """A `$` outside single quotes, followed by `rest`: literal only before a blank, at the
    end, or before the closing double quote."""
    following = rest[:1]
    if following in ("", " ", "\t", "\n") or (quote == '"' and following == '"'):
        return
    if following == "(":
        raise NotPlain("`$(…)` runs another command")
    if following == "{":
        raise NotPlain("`${…}` expands a variable")
    if following in ("'", '"'):
        raise NotPlain(f"`${following}…{following}` is quoting that huskies does not read")
    name = VARIABLE_NAME.match(rest)
    raise NotPlain(f"`${name[0] if name else following}` expands a variable")


def _expands_braces(after_brace: str) -> bool:
    """Whether an unquoted `{` followed by `after_brace` is brace expansion: a comma or `..`
    before the next `}`. (`HEAD@{1}` is not.)"""
    inside, closed, _ = after_brace.partition("}")
    return bool(closed) and ("," in inside or ".." in inside)
