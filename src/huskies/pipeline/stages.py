"""Where a work item is in the pipeline, and the one JSON form that stage is stored as.

A stage carries exactly the data that is true in it and nowhere else: only a merging item has a
feature branch with commits on it, only a done item has a merge time. So code that holds a
`Merge` never has to ask whether the branch is set, and a stage that could not exist (a merge with
nothing to merge) cannot be built.

The stage is stored in the replicated document as one JSON value under the item's "stage" key,
written whole. A last-writer-wins register over the whole value keeps a stage and its data
together: two concurrent moves never mix one stage's name with the other's fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, TypeAlias, TypeVar

from huskies.crdt import Json
from huskies.pipeline.jsonvalues import WrongType, as_int, as_object, as_str, describe

T = TypeVar("T")


class StageName(StrEnum):
    """The pipeline's stages, in order."""

    BACKLOG = "backlog"
    CODING = "coding"
    QA = "qa"
    MERGE = "merge"
    DONE = "done"
    ARCHIVED = "archived"


class ArchiveReason(StrEnum):
    """Why an item left the pipeline. Blocked, merge_failed and review_held can be unblocked."""

    COMPLETED = "completed"
    ABANDONED = "abandoned"
    SUPERSEDED = "superseded"
    BLOCKED = "blocked"
    MERGE_FAILED = "merge_failed"
    REVIEW_HELD = "review_held"


class ExecutionState(StrEnum):
    """What this node is doing about an item right now.

    Per node and never replicated: whether an agent is running here says nothing about what
    another node does, and it is gone after a restart anyway.
    """

    IDLE = "idle"
    PENDING = "pending"
    RUNNING = "running"
    RATE_LIMITED = "rate_limited"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class Backlog:
    name: ClassVar[StageName] = StageName.BACKLOG


@dataclass(frozen=True, slots=True)
class Coding:
    name: ClassVar[StageName] = StageName.CODING


@dataclass(frozen=True, slots=True)
class Qa:
    name: ClassVar[StageName] = StageName.QA


@dataclass(frozen=True, slots=True)
class Merge:
    """Waiting for (or in) the squash merge of `feature_branch`, which is ahead of the base."""

    name: ClassVar[StageName] = StageName.MERGE
    feature_branch: str
    commits_ahead: int

    def __post_init__(self) -> None:
        if not self.feature_branch:
            raise ValueError("a merge needs a feature branch")
        if self.commits_ahead < 1:
            raise ValueError(
                f"a merge needs at least one commit ahead of the base, got {self.commits_ahead}"
            )


@dataclass(frozen=True, slots=True)
class Done:
    """Merged at `merged_at` (ms since the epoch). `merge_commit` is None only for spikes,
    which produce findings rather than code and so skip the merge."""

    name: ClassVar[StageName] = StageName.DONE
    merged_at: int
    merge_commit: str | None

    def __post_init__(self) -> None:
        if self.merge_commit == "":
            raise ValueError("a merge commit is a non-empty id, or None for a spike")


@dataclass(frozen=True, slots=True)
class Archived:
    """Out of the pipeline since `archived_at`. `previous` is the stage it left, so unblocking
    can put it back exactly there (a blocked merge returns to its merge, with its branch)."""

    name: ClassVar[StageName] = StageName.ARCHIVED
    archived_at: int
    reason: ArchiveReason
    previous: Stage | None

    def __post_init__(self) -> None:
        if isinstance(self.previous, Archived):
            raise ValueError("an archived item cannot have been archived from the archive")


Stage: TypeAlias = Backlog | Coding | Qa | Merge | Done | Archived


class StageError(ValueError):
    """A stored stage value that is not a valid stage; the message says what is wrong."""


def stage_to_json(stage: Stage) -> dict[str, Json]:
    """The stored form: `{"name": …}` plus the stage's own fields."""
    match stage:
        case Merge(feature_branch, commits_ahead):
            return {
                "name": stage.name.value,
                "feature_branch": feature_branch,
                "commits_ahead": commits_ahead,
            }
        case Done(merged_at, merge_commit):
            return {"name": stage.name.value, "merged_at": merged_at, "merge_commit": merge_commit}
        case Archived(archived_at, reason, previous):
            return {
                "name": stage.name.value,
                "archived_at": archived_at,
                "reason": reason.value,
                "previous": None if previous is None else stage_to_json(previous),
            }
        case _:
            return {"name": stage.name.value}


def stage_from_json(value: object) -> Stage:
    """Parse a stored stage, or raise StageError saying exactly what is wrong.

    Keys a stage does not use are ignored, so a newer node can add data to a stage without older
    nodes losing the item.
    """
    if not isinstance(value, Mapping):
        raise StageError(f"a stage must be an object, got {describe(value)}")
    if "name" not in value:
        raise StageError("the stage has no 'name'")
    name = value["name"]
    if not isinstance(name, str) or name not in StageName._value2member_map_:
        known = ", ".join(StageName)
        raise StageError(f"unknown stage name {name!r} (expected one of {known})")
    match StageName(name):
        case StageName.BACKLOG:
            return Backlog()
        case StageName.CODING:
            return Coding()
        case StageName.QA:
            return Qa()
        case StageName.MERGE:
            branch = _field(value, "merge", "feature_branch", as_str)
            if not branch:
                raise StageError("merge stage: 'feature_branch' must not be empty")
            ahead = _field(value, "merge", "commits_ahead", as_int)
            if ahead < 1:
                raise StageError(f"merge stage: 'commits_ahead' must be ≥ 1, got {ahead}")
            return Merge(branch, ahead)
        case StageName.DONE:
            merged_at = _field(value, "done", "merged_at", as_int)
            commit = _field(value, "done", "merge_commit", _nullable(as_str))
            if commit == "":
                raise StageError("done stage: 'merge_commit' must not be empty (null for spikes)")
            return Done(merged_at, commit)
        case StageName.ARCHIVED:
            archived_at = _field(value, "archived", "archived_at", as_int)
            reason = _field(value, "archived", "reason", as_str)
            if reason not in ArchiveReason._value2member_map_:
                known = ", ".join(ArchiveReason)
                raise StageError(
                    f"archived stage: unknown reason {reason!r} (expected one of {known})"
                )
            raw_previous = _field(value, "archived", "previous", _nullable(as_object))
            previous = None
            if raw_previous is not None:
                try:
                    previous = stage_from_json(raw_previous)
                except StageError as exc:
                    raise StageError(f"archived stage: 'previous': {exc}") from None
                if isinstance(previous, Archived):
                    raise StageError("archived stage: 'previous' cannot itself be archived")
            return Archived(archived_at, ArchiveReason(reason), previous)


def _field(value: Mapping[str, object], stage: str, key: str, read: Callable[[object], T]) -> T:
    if key not in value:
        raise StageError(f"{stage} stage: missing '{key}'")
    try:
        return read(value[key])
    except WrongType as exc:
        raise StageError(f"{stage} stage: '{key}' {exc}") from None


def _nullable(read: Callable[[object], T]) -> Callable[[object], T | None]:
    return lambda raw: None if raw is None else read(raw)
