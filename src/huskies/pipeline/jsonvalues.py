"""Checked reads of JSON values that came out of the replicated document.

Any node can write any JSON value, so nothing read from the document is trusted to have the
shape the schema says. These helpers turn a value into the Python type wanted, or raise
WrongType with a message ("must be an integer, got a string") that callers prefix with where the
value was, so every refusal names both the place and the problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


class WrongType(ValueError):
    """A value of the wrong JSON type; the message reads "must be …, got …"."""


def describe(value: object) -> str:
    """The JSON type of `value`, as a message would name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def as_int(value: object) -> int:
    # bool is an int in Python, but `true` is not a count or a time.
    if type(value) is not int:
        raise WrongType(f"must be an integer, got {describe(value)}")
    return value


def as_str(value: object) -> str:
    if not isinstance(value, str):
        raise WrongType(f"must be a string, got {describe(value)}")
    return value


def as_object(value: object) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise WrongType(f"must be an object, got {describe(value)}")
    return value


def member(record: Mapping[str, object], name: str, read: Callable[[object], T]) -> T:
    """`read` applied to `record[name]`; WrongType names the member when it is missing or bad."""
    if name not in record:
        raise WrongType(f"'{name}' is missing")
    try:
        return read(record[name])
    except WrongType as exc:
        raise WrongType(f"'{name}' {exc}") from None


def as_optional_int(value: object) -> int | None:
    return None if value is None else as_int(value)
