"""Canonical CBOR: the one byte encoding that change ids are hashed over.

We use deterministic CBOR (RFC 8949 section 4.2) through cbor2 rather than canonical JSON because
CBOR carries byte strings (keys, hashes, signatures) natively, distinguishes integers from floats,
and its deterministic form is fully specified: shortest integer heads, shortest float width that
keeps the value exact, map keys ordered by their encoded bytes. cbor2 also encodes and decodes in C,
which matters at hundreds of thousands of changes.

Numbers: integers must fit in signed 64 bits; floats must be finite (NaN and infinities have no
single meaning across languages and are rejected). `1` and `1.0` are different values and encode
differently. Decoding accepts only bytes that re-encode to themselves, so one logical change has
exactly one encoding and therefore exactly one id.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeAlias

import cbor2

Json: TypeAlias = bool | int | float | str | list["Json"] | dict[str, "Json"] | None

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
MAX_DEPTH = 32


class EncodingError(ValueError):
    """A value or byte string that has no canonical encoding."""


def encode(value: object) -> bytes:
    """Deterministic CBOR bytes of `value` (lists, tuples, dicts, bytes, str, int, float, None)."""
    try:
        return cbor2.dumps(value, canonical=True)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise EncodingError(f"cannot encode value: {exc}") from exc


def decode(data: bytes) -> Any:
    """Decode CBOR bytes. Canonical form is checked by the caller, by re-encoding what it built."""
    try:
        value = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise EncodingError(f"not valid CBOR: {exc}") from exc
    return value


def check_json(value: object, where: str | Callable[[], str]) -> Json:
    """Return `value` (containers freshly copied) if it is a JSON value huskies can store, else
    raise EncodingError.

    `where` names the place the value came from, for the error message (a callable is called
    only on failure, so a hot path need not format it).
    """
    try:
        # A fresh copy of containers (tuples become lists), so the caller's later changes to
        # its own object cannot reach the document.
        return _checked_copy(value, 0)
    except _NotJson:
        pass
    problem = _json_problem(value, 0)
    assert problem is not None, value
    inside, message = problem
    place = where if isinstance(where, str) else where()
    raise EncodingError(f"{place}{''.join(reversed(inside))}: {message}")


class _NotJson(Exception):
    """Raised by _checked_copy; _json_problem then says what and where."""


def _checked_copy(value: Any, depth: int) -> Json:
    """A fresh copy of `value` if it is storable JSON, else _NotJson. This runs on every value
    a transaction sets, so it tests exact types, and checks and copies in one pass."""
    kind = type(value)
    if value is None or kind is str or kind is bool:
        return value  # type: ignore[no-any-return]
    if kind is int:
        if INT_MIN <= value <= INT_MAX:
            return value  # type: ignore[no-any-return]
        raise _NotJson
    if kind is float:
        if math.isfinite(value):
            return value  # type: ignore[no-any-return]
        raise _NotJson
    if depth >= MAX_DEPTH:
        raise _NotJson
    if kind is dict:
        copy: dict[str, Json] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotJson
            copy[key] = _checked_copy(item, depth + 1)
        return copy
    if kind is list or kind is tuple:
        return [_checked_copy(item, depth + 1) for item in value]
    raise _NotJson


def _json_problem(value: Any, depth: int) -> tuple[list[str], str] | None:
    """None if `value` is storable JSON, else (the path inside it, innermost step first; what is
    wrong)."""
    kind = type(value)
    if value is None or kind is str or kind is bool:
        return None
    if kind is int:
        if INT_MIN <= value <= INT_MAX:
            return None
        return [], f"integer {value} does not fit in signed 64 bits"
    if kind is float:
        if math.isfinite(value):
            return None
        return [], f"non-finite float {value!r} is not allowed"
    if kind is not list and kind is not tuple and kind is not dict:
        return [], f"{kind.__name__} is not a JSON value"
    if depth >= MAX_DEPTH:
        return [], f"value nested deeper than {MAX_DEPTH} levels"
    items = value.items() if kind is dict else enumerate(value)
    for step, item in items:
        if kind is dict and type(step) is not str:
            return [], f"map key {step!r} is not a string"
        problem = _json_problem(item, depth + 1)
        if problem is not None:
            problem[0].append(f".{step}" if kind is dict else f"[{step}]")
            return problem
    return None


def copy_json(value: Json) -> Json:
    """A fresh copy of a stored JSON value, so callers cannot mutate the document through it."""
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    return value
