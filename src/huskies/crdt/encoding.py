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


def check_json(value: object, where: str, depth: int = 0) -> Json:
    """Return `value` if it is a JSON value huskies can store, else raise EncodingError.

    `where` names the place the value came from, for the error message.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise EncodingError(f"{where}: integer {value} does not fit in signed 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EncodingError(f"{where}: non-finite float {value!r} is not allowed")
        return value
    if depth >= MAX_DEPTH:
        raise EncodingError(f"{where}: value nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list | tuple):
        return [check_json(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, dict):
        checked: dict[str, Json] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise EncodingError(f"{where}: map key {key!r} is not a string")
            checked[key] = check_json(item, f"{where}.{key}", depth + 1)
        return checked
    raise EncodingError(f"{where}: {type(value).__name__} is not a JSON value")


def copy_json(value: Json) -> Json:
    """A fresh copy of a stored JSON value, so callers cannot mutate the document through it."""
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    return value
