"""What can happen to a work item, and the one pure function that decides where it goes.

Every change of stage is an event applied by `transition`, which returns the new stage or an
IllegalTransition saying why not and what would be allowed. Services, the CLI, chat and agents
all go through it, so an illegal move cannot be written from anywhere: there is no second place
that sets a stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from huskies.pipeline.items import ItemKind
from huskies.pipeline.stages import (
    Archived,
    ArchiveReason,
    Backlog,
    Coding,
    Done,
    Merge,
    Qa,
    Stage,
    StageName,
)


@dataclass(frozen=True, slots=True)
class Start:
    """Backlog → Coding: an agent (or person) starts work."""


@dataclass(frozen=True, slots=True)
class Submit:
    """Coding → Qa by a person's hand, without running the gates."""


@dataclass(frozen=True, slots=True)
class GatesPassed:
    """The server ran the quality gates on the coder's work and they passed."""


@dataclass(frozen=True, slots=True)
class GatesFailed:
    """The gates failed; the item stays in coding for another attempt."""

    output_summary: str


@dataclass(frozen=True, slots=True)
class QaApproved:
    """Review passed. `feature_branch` and `commits_ahead` are what there is to merge, as the
    service found them in git when approving (spikes merge nothing)."""

    at: int
    feature_branch: str | None
    commits_ahead: int


@dataclass(frozen=True, slots=True)
class QaRejected:
    reason: str


@dataclass(frozen=True, slots=True)
class MergeSucceeded:
    at: int
    merge_commit: str

    def __post_init__(self) -> None:
        if not self.merge_commit:
            raise ValueError("a successful merge names its merge commit")


@dataclass(frozen=True, slots=True)
class MergeFailed:
    """One merge attempt failed; the merge is retried until the service gives up and archives
    the item with `Archive(at, ArchiveReason.MERGE_FAILED)`."""

    reason: str


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """An agent's run in the item's stage failed (it crashed, timed out, or ended with nothing
    to show); the item stays where it is for another attempt, and the attempt is counted."""

    reason: str


@dataclass(frozen=True, slots=True)
class Block:
    at: int
    reason: str


@dataclass(frozen=True, slots=True)
class Unblock:
    """Return a blocked, merge-failed or review-held item to the stage it was archived from."""


@dataclass(frozen=True, slots=True)
class Demote:
    """Back to the backlog from any active stage."""


@dataclass(frozen=True, slots=True)
class Archive:
    at: int
    reason: ArchiveReason


Event: TypeAlias = (
    Start
    | Submit
    | GatesPassed
    | GatesFailed
    | QaApproved
    | QaRejected
    | MergeSucceeded
    | MergeFailed
    | AttemptFailed
    | Block
    | Unblock
    | Demote
    | Archive
)


@dataclass(frozen=True, slots=True)
class IllegalTransition:
    """`event` cannot happen to an item in `stage`; `reason` says why and what can instead."""

    stage: StageName
    event: str
    reason: str

    def __str__(self) -> str:
        return self.reason


UNBLOCKABLE = frozenset(
    {ArchiveReason.BLOCKED, ArchiveReason.MERGE_FAILED, ArchiveReason.REVIEW_HELD}
)

# Where each archive reason may be given (blocked is not here: it is reached only by Block,
# which records why).
_ARCHIVE_FROM: dict[ArchiveReason, frozenset[StageName]] = {
    ArchiveReason.COMPLETED: frozenset({StageName.DONE}),
    ArchiveReason.MERGE_FAILED: frozenset({StageName.MERGE}),
    ArchiveReason.REVIEW_HELD: frozenset({StageName.QA}),
    ArchiveReason.ABANDONED: frozenset(StageName) - {StageName.ARCHIVED},
    ArchiveReason.SUPERSEDED: frozenset(StageName) - {StageName.ARCHIVED},
}

_ALLOWED: dict[StageName, str] = {
    StageName.BACKLOG: "a backlog item can be started (Start), blocked, or archived as "
    "abandoned or superseded",
    StageName.CODING: "a coding item goes to qa (GatesPassed, or Submit by hand), stays in "
    "coding on GatesFailed or AttemptFailed, or can be blocked, demoted, or archived as "
    "abandoned or superseded",
    StageName.QA: "a qa item is approved (QaApproved) or rejected (QaRejected), or can be "
    "blocked, demoted, or archived as review_held, abandoned or superseded",
    StageName.MERGE: "a merging item takes MergeSucceeded or MergeFailed, or can be blocked, "
    "demoted, or archived as merge_failed, abandoned or superseded",
    StageName.DONE: "a done item can only be archived, as completed, abandoned or superseded",
}


def transition(stage: Stage, event: Event, kind: ItemKind) -> Stage | IllegalTransition:
    """The stage an item of `kind` in `stage` moves to on `event`, or why it cannot."""
    match stage, event:
        case Backlog(), Start():
            return Coding()
        case Coding(), Submit() | GatesPassed():
            return Qa()
        case Coding(), GatesFailed():
            return Coding()
        case Qa(), QaApproved():
            return _approve(event, kind)
        case Qa(), QaRejected():
            return Coding()
        case Merge(), MergeSucceeded(at, merge_commit):
            return Done(at, merge_commit)
        case Merge(), MergeFailed():
            return stage
        case Coding() | Qa() | Merge(), AttemptFailed():
            return stage
        case Backlog() | Coding() | Qa() | Merge(), Block(at):
            return Archived(at, ArchiveReason.BLOCKED, stage)
        case Coding() | Qa() | Merge(), Demote():
            return Backlog()
        case Archived(), Unblock():
            return _unblock(stage)
        case _, Archive():
            return _archive(stage, event)
    return _refuse(stage, event)


def _approve(event: QaApproved, kind: ItemKind) -> Stage | IllegalTransition:
    if kind is ItemKind.SPIKE:
        # A spike's result is what it found, not code: there is nothing to merge.
        return Done(event.at, None)
    if not event.feature_branch:
        problem = f"nothing to merge: this {kind.value} was approved without a feature branch"
    elif event.commits_ahead < 1:
        problem = (
            f"nothing to merge: {event.feature_branch} has no commits ahead of the base branch"
        )
    else:
        return Merge(event.feature_branch, event.commits_ahead)
    return IllegalTransition(
        StageName.QA,
        "QaApproved",
        f"{problem}, and an empty merge is never made; reject it back to coding or archive it",
    )


def _unblock(stage: Archived) -> Stage | IllegalTransition:
    if stage.reason in UNBLOCKABLE:
        return Backlog() if stage.previous is None else stage.previous
    return IllegalTransition(
        StageName.ARCHIVED,
        "Unblock",
        f"items archived as {stage.reason.value} stay archived; only blocked, merge_failed or "
        "review_held items can be unblocked",
    )


def _archive(stage: Stage, event: Archive) -> Stage | IllegalTransition:
    if isinstance(stage, Archived):
        return _refuse(stage, event)
    reason = event.reason
    if reason is ArchiveReason.BLOCKED and isinstance(stage, Done):
        problem = "a done item is finished and can't be blocked; archive it as completed instead"
    elif reason is ArchiveReason.BLOCKED:
        problem = "archive an item as blocked with Block, which records why it is blocked"
    elif stage.name not in _ARCHIVE_FROM[reason]:
        where = " or ".join(sorted(_ARCHIVE_FROM[reason]))
        problem = (
            f"only items in {where} are archived as {reason.value}; this one is in "
            f"{stage.name.value}, so archive it as abandoned or superseded instead"
        )
    else:
        return Archived(event.at, reason, stage)
    return IllegalTransition(stage.name, "Archive", problem)


def _refuse(stage: Stage, event: Event) -> IllegalTransition:
    name = type(event).__name__
    return IllegalTransition(stage.name, name, _why_not(stage, event, name))


def _why_not(stage: Stage, event: Event, name: str) -> str:
    if isinstance(stage, Archived):
        if stage.reason in UNBLOCKABLE:
            return (
                f"the item is archived as {stage.reason.value}; it takes nothing but Unblock, "
                "which returns it to the stage it was archived from"
            )
        return f"the item is archived as {stage.reason.value}, which is final: it stays archived"
    if isinstance(event, Unblock):
        return f"only archived items can be unblocked; this one is in {stage.name.value}"
    if isinstance(event, Demote) and isinstance(stage, Backlog):
        return "the item is already in backlog"
    if isinstance(event, Demote | Block) and isinstance(stage, Done):
        verb = "blocked" if isinstance(event, Block) else "demoted"
        return f"a done item is finished and can't be {verb}; archive it instead"
    return f"{name} does not apply in {stage.name.value}: {_ALLOWED[stage.name]}"


def event_for_move(stage: Stage, target: StageName, at: int) -> Event | IllegalTransition:
    """The event a person's "move this item to `target`" means, or why it can't be done by hand.

    Every event returned here is legal for `stage` (for any kind) and lands in `target`.
    """
    match stage, target:
        case Coding() | Qa() | Merge(), StageName.BACKLOG:
            return Demote()
        case Backlog(), StageName.CODING:
            return Start()
        case Qa(), StageName.CODING:
            return QaRejected("moved back by hand")
        case Coding(), StageName.QA:
            return Submit()
        case Done(), StageName.ARCHIVED:
            return Archive(at, ArchiveReason.COMPLETED)
        case Backlog() | Coding() | Qa() | Merge(), StageName.ARCHIVED:
            return Archive(at, ArchiveReason.ABANDONED)
    return IllegalTransition(stage.name, f"move to {target.value}", _move_refusal(stage, target))


def _move_refusal(stage: Stage, target: StageName) -> str:
    if stage.name is target:
        return f"the item is already in {target.value}"
    if isinstance(stage, Archived):
        if stage.reason in UNBLOCKABLE:
            back = "backlog" if stage.previous is None else stage.previous.name.value
            return (
                f"the item is archived as {stage.reason.value}; use `huskies unblock N` to "
                f"return it to {back}"
            )
        return f"the item is archived as {stage.reason.value}, and such items stay archived"
    if target is StageName.MERGE:
        return (
            "merge needs a feature branch with commits ahead of the base branch: approve the "
            "item in qa instead"
        )
    if target is StageName.DONE:
        return "done needs a merge (a spike gets there by being approved in qa)"
    if isinstance(stage, Done):
        return f"a done item is finished and can't go back to {target.value}; archive it instead"
    if isinstance(stage, Backlog):
        return f"a backlog item can't skip to {target.value}; start it (move it to coding) first"
    return (
        f"a merging item can't go back to {target.value} by hand; let the merge finish, "
        "demote it to backlog, or archive it"
    )
