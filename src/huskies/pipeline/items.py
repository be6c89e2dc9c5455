"""Work items: the typed projection of one item map in the replicated document.

The document holds plain JSON that any node may have written, so projecting an item never
raises: a missing or malformed field becomes an ItemError for that one item, and the rest of the
board still loads. Optional fields that are absent take their defaults, which lets the schema
grow without rewriting old items.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from huskies.crdt import Json
from huskies.pipeline.jsonvalues import WrongType, as_int, as_object, as_str, describe
from huskies.pipeline.lines import line_problem
from huskies.pipeline.stages import Stage, StageError, stage_from_json, stage_to_json

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)


class ItemKind(StrEnum):
    STORY = "story"
    BUG = "bug"
    SPIKE = "spike"
    REFACTOR = "refactor"


class QaMode(StrEnum):
    """Who reviews an item after its gates pass: the gates alone, a QA agent, or a person."""

    SERVER = "server"
    AGENT = "agent"
    HUMAN = "human"


@dataclass(frozen=True, slots=True)
class Claim:
    """`node` is working on the item until `expires_at` (ms since the epoch) unless it renews.

    The expiry lets another node take over an item whose claimant vanished, without anyone
    having to decide that the claimant is dead.
    """

    node: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One item as the pipeline sees it.

    `id` is the item's permanent key (see `huskies.pipeline.schema.item_key`); `number` is the
    human alias, after collisions between concurrently minted numbers are resolved. `qa` None
    means the project's default QA mode. Times are ms since the epoch.
    """

    id: str
    number: int
    kind: ItemKind
    title: str
    body: str
    stage: Stage
    agent: str | None
    qa: QaMode | None
    depends_on: tuple[int, ...]
    retries: int
    blocked_reason: str | None
    claim: Claim | None
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class ItemError:
    """Why item `item_id` could not be read: `field` (None: the item as a whole) and what is
    wrong with it."""

    item_id: str
    field: str | None
    problem: str

    def __str__(self) -> str:
        where = f"item {self.item_id}" + ("" if self.field is None else f" field {self.field!r}")
        return f"{where}: {self.problem}"


class _Bad(Exception):
    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem


def project_item(item_id: str, raw: object) -> WorkItem | ItemError:
    """The typed item for the map `raw`, or an ItemError naming the first bad field."""
    if not isinstance(raw, Mapping):
        return ItemError(item_id, None, f"an item must be an object, got {describe(raw)}")
    try:
        return WorkItem(
            id=item_id,
            number=_required(raw, "number", _number),
            kind=_required(raw, "kind", _enum(ItemKind)),
            title=_required(raw, "title", _line),
            body=_optional(raw, "body", as_str, ""),
            stage=_required(raw, "stage", stage_from_json),
            agent=_optional(raw, "agent", _nullable(_line), None),
            qa=_optional(raw, "qa", _nullable(_enum(QaMode)), None),
            depends_on=_optional(raw, "depends_on", _numbers, ()),
            retries=_optional(raw, "retries", _count, 0),
            blocked_reason=_optional(raw, "blocked_reason", _nullable(as_str), None),
            claim=_optional(raw, "claim", _nullable(_claim), None),
            created_at=_required(raw, "created_at", as_int),
            updated_at=_required(raw, "updated_at", as_int),
        )
    except _Bad as bad:
        return ItemError(item_id, bad.field, bad.problem)


def item_to_json(item: WorkItem) -> dict[str, Json]:
    """The item in its stored form, every field written out, plus its `id`.

    This is how an item leaves the server (HTTP API, event stream): a client rebuilds the
    identical WorkItem with `project_item(json["id"], json)`, which ignores the extra `id`.
    `number` is the resolved number, which is what every reader of the board sees.
    """
    return {
        "id": item.id,
        "number": item.number,
        "kind": item.kind.value,
        "title": item.title,
        "body": item.body,
        "stage": stage_to_json(item.stage),
        "agent": item.agent,
        "qa": None if item.qa is None else item.qa.value,
        "depends_on": list(item.depends_on),
        "retries": item.retries,
        "blocked_reason": item.blocked_reason,
        "claim": (
            None
            if item.claim is None
            else {"node": item.claim.node, "expires_at": item.claim.expires_at}
        ),
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }


def _required(raw: Mapping[str, object], field: str, read: Callable[[object], T]) -> T:
    if field not in raw:
        raise _Bad(field, "missing")
    return _read(raw, field, read)


def _optional(raw: Mapping[str, object], field: str, read: Callable[[object], T], default: T) -> T:
    return _read(raw, field, read) if field in raw else default


def _read(raw: Mapping[str, object], field: str, read: Callable[[object], T]) -> T:
    try:
        return read(raw[field])
    except (WrongType, StageError) as exc:
        raise _Bad(field, str(exc)) from None


def _nullable(read: Callable[[object], T]) -> Callable[[object], T | None]:
    return lambda raw: None if raw is None else read(raw)


def _enum(enum: type[E]) -> Callable[[object], E]:
    def read(raw: object) -> E:
        value = as_str(raw)
        if value not in enum._value2member_map_:
            raise WrongType(f"must be one of {', '.join(enum)}, got {value!r}")
        return enum(value)

    return read


def _line(raw: object) -> str:
    text = as_str(raw)
    problem = line_problem(text)
    if problem is not None:
        raise WrongType(problem)
    return text


def _number(raw: object) -> int:
    number = as_int(raw)
    if number < 1:
        raise WrongType(f"must be a number ≥ 1, got {number}")
    return number


def _count(raw: object) -> int:
    count = as_int(raw)
    if count < 0:
        raise WrongType(f"must be ≥ 0, got {count}")
    return count


def _numbers(raw: object) -> tuple[int, ...]:
    if not isinstance(raw, list | tuple):
        raise WrongType(f"must be an array of item numbers, got {describe(raw)}")
    numbers = []
    for index, element in enumerate(raw):
        try:
            numbers.append(_number(element))
        except WrongType as exc:
            raise WrongType(f"element {index} {exc}") from None
    return tuple(numbers)


def _claim(raw: object) -> Claim:
    claim = as_object(raw)
    return Claim(
        node=_member(claim, "node", as_str),
        expires_at=_member(claim, "expires_at", as_int),
    )


def _member(obj: Mapping[str, object], key: str, read: Callable[[object], T]) -> T:
    if key not in obj:
        raise WrongType(f"has no '{key}'")
    try:
        return read(obj[key])
    except WrongType as exc:
        raise WrongType(f"'{key}' {exc}") from None
