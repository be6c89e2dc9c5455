"""The transition function, exhaustively: every stage, every event and every item kind, and
every manual move. Legal outcomes are listed; everything not listed must be refused."""

import itertools

import pytest

from huskies.pipeline import (
    Archive,
    Archived,
    ArchiveReason,
    AttemptFailed,
    Backlog,
    Block,
    Coding,
    Demote,
    Done,
    Event,
    GatesFailed,
    GatesPassed,
    IllegalTransition,
    ItemKind,
    Merge,
    MergeFailed,
    MergeSucceeded,
    Qa,
    QaApproved,
    QaRejected,
    Stage,
    StageName,
    Start,
    Submit,
    Unblock,
    event_for_move,
    transition,
)

T0 = 1_700_000_000_000  # when representative stages were entered
T = T0 + 60_000  # when the events happen
MERGE = Merge("feature/story-3", 2)

STAGES: dict[str, Stage] = {
    "backlog": Backlog(),
    "coding": Coding(),
    "qa": Qa(),
    "merge": MERGE,
    "done": Done(T0, "c0ffee"),
    "done-spike": Done(T0, None),
    "archived-blocked": Archived(T0, ArchiveReason.BLOCKED, Coding()),
    "archived-blocked-no-previous": Archived(T0, ArchiveReason.BLOCKED, None),
    "archived-merge_failed": Archived(T0, ArchiveReason.MERGE_FAILED, MERGE),
    "archived-review_held": Archived(T0, ArchiveReason.REVIEW_HELD, Qa()),
    "archived-completed": Archived(T0, ArchiveReason.COMPLETED, Done(T0, "c0ffee")),
    "archived-abandoned": Archived(T0, ArchiveReason.ABANDONED, Backlog()),
    "archived-superseded": Archived(T0, ArchiveReason.SUPERSEDED, Qa()),
}

EVENTS: dict[str, Event] = {
    "start": Start(),
    "submit": Submit(),
    "gates-passed": GatesPassed(),
    "gates-failed": GatesFailed("2 tests failed"),
    "qa-approved": QaApproved(T, "feature/story-3", 2),
    "qa-approved-no-branch": QaApproved(T, None, 2),
    "qa-approved-no-commits": QaApproved(T, "feature/story-3", 0),
    "qa-rejected": QaRejected("missing tests"),
    "merge-succeeded": MergeSucceeded(T, "beef42"),
    "merge-failed": MergeFailed("conflict in README.md"),
    "attempt-failed": AttemptFailed("the agent exited with status 1"),
    "block": Block(T, "needs a decision"),
    "unblock": Unblock(),
    "demote": Demote(),
    **{f"archive-{reason.value}": Archive(T, reason) for reason in ArchiveReason},
}


def archived(reason: ArchiveReason, previous: str) -> Archived:
    return Archived(T, reason, STAGES[previous])


# Every legal (stage, event) for stories, bugs and refactors, and where it lands.
LEGAL: dict[tuple[str, str], Stage] = {
    ("backlog", "start"): Coding(),
    ("backlog", "block"): archived(ArchiveReason.BLOCKED, "backlog"),
    ("backlog", "archive-abandoned"): archived(ArchiveReason.ABANDONED, "backlog"),
    ("backlog", "archive-superseded"): archived(ArchiveReason.SUPERSEDED, "backlog"),
    ("coding", "submit"): Qa(),
    ("coding", "gates-passed"): Qa(),
    ("coding", "gates-failed"): Coding(),
    ("coding", "attempt-failed"): Coding(),
    ("qa", "attempt-failed"): Qa(),
    ("merge", "attempt-failed"): MERGE,
    ("coding", "block"): archived(ArchiveReason.BLOCKED, "coding"),
    ("coding", "demote"): Backlog(),
    ("coding", "archive-abandoned"): archived(ArchiveReason.ABANDONED, "coding"),
    ("coding", "archive-superseded"): archived(ArchiveReason.SUPERSEDED, "coding"),
    ("qa", "qa-approved"): Merge("feature/story-3", 2),
    ("qa", "qa-rejected"): Coding(),
    ("qa", "block"): archived(ArchiveReason.BLOCKED, "qa"),
    ("qa", "demote"): Backlog(),
    ("qa", "archive-review_held"): archived(ArchiveReason.REVIEW_HELD, "qa"),
    ("qa", "archive-abandoned"): archived(ArchiveReason.ABANDONED, "qa"),
    ("qa", "archive-superseded"): archived(ArchiveReason.SUPERSEDED, "qa"),
    ("merge", "merge-succeeded"): Done(T, "beef42"),
    ("merge", "merge-failed"): MERGE,
    ("merge", "block"): archived(ArchiveReason.BLOCKED, "merge"),
    ("merge", "demote"): Backlog(),
    ("merge", "archive-merge_failed"): archived(ArchiveReason.MERGE_FAILED, "merge"),
    ("merge", "archive-abandoned"): archived(ArchiveReason.ABANDONED, "merge"),
    ("merge", "archive-superseded"): archived(ArchiveReason.SUPERSEDED, "merge"),
    ("done", "archive-completed"): archived(ArchiveReason.COMPLETED, "done"),
    ("done", "archive-abandoned"): archived(ArchiveReason.ABANDONED, "done"),
    ("done", "archive-superseded"): archived(ArchiveReason.SUPERSEDED, "done"),
    ("done-spike", "archive-completed"): archived(ArchiveReason.COMPLETED, "done-spike"),
    ("done-spike", "archive-abandoned"): archived(ArchiveReason.ABANDONED, "done-spike"),
    ("done-spike", "archive-superseded"): archived(ArchiveReason.SUPERSEDED, "done-spike"),
    ("archived-blocked", "unblock"): Coding(),
    ("archived-blocked-no-previous", "unblock"): Backlog(),
    ("archived-merge_failed", "unblock"): MERGE,
    ("archived-review_held", "unblock"): Qa(),
}

# Spikes skip the merge: approval takes them straight to done, branch or not.
SPIKE: dict[tuple[str, str], Stage] = {
    ("qa", "qa-approved"): Done(T, None),
    ("qa", "qa-approved-no-branch"): Done(T, None),
    ("qa", "qa-approved-no-commits"): Done(T, None),
}

# What some refusals must say ({kind} stands for the item's kind). Every refusal is checked
# for its stage and event; these also for their words.
REASONS: dict[tuple[str, str], str] = {
    ("qa", "qa-approved-no-branch"): "nothing to merge: this {kind} was approved without a "
    "feature branch, and an empty merge is never made; reject it back to coding or archive it",
    ("qa", "qa-approved-no-commits"): "nothing to merge: feature/story-3 has no commits ahead",
    ("backlog", "archive-blocked"): "archive an item as blocked with Block",
    ("merge", "archive-blocked"): "archive an item as blocked with Block",
    ("coding", "archive-completed"): "only items in done are archived as completed; this one "
    "is in coding, so archive it as abandoned or superseded instead",
    ("done", "archive-merge_failed"): "only items in merge are archived as merge_failed",
    ("merge", "archive-review_held"): "only items in qa are archived as review_held",
    ("backlog", "unblock"): "only archived items can be unblocked; this one is in backlog",
    ("done", "unblock"): "only archived items can be unblocked; this one is in done",
    ("archived-abandoned", "unblock"): "items archived as abandoned stay archived; only "
    "blocked, merge_failed or review_held items can be unblocked",
    ("archived-completed", "unblock"): "items archived as completed stay archived",
    ("archived-blocked", "start"): "archived as blocked; it takes nothing but Unblock",
    ("archived-blocked", "archive-abandoned"): "it takes nothing but Unblock",
    ("archived-superseded", "archive-abandoned"): "archived as superseded, which is final",
    ("archived-merge_failed", "block"): "it takes nothing but Unblock",
    ("backlog", "demote"): "already in backlog",
    ("done", "demote"): "a done item is finished and can't be demoted; archive it instead",
    ("done", "block"): "a done item is finished and can't be blocked; archive it instead",
    ("done", "archive-blocked"): "a done item is finished and can't be blocked; archive it as "
    "completed instead",
    ("backlog", "gates-passed"): "GatesPassed does not apply in backlog: a backlog item can be "
    "started (Start), blocked, or archived as abandoned or superseded",
    ("coding", "start"): "Start does not apply in coding: a coding item goes to qa",
    ("qa", "merge-succeeded"): "MergeSucceeded does not apply in qa: a qa item is approved",
    ("merge", "qa-rejected"): "QaRejected does not apply in merge: a merging item takes "
    "MergeSucceeded or MergeFailed",
    ("done", "start"): "a done item can only be archived",
}


def test_tables_name_real_cases():
    for table in (LEGAL, SPIKE, REASONS):
        for stage, event in table:
            assert stage in STAGES
            assert event in EVENTS
    assert not set(REASONS) & set(LEGAL)


@pytest.mark.parametrize(
    ("stage", "event", "kind"), list(itertools.product(STAGES, EVENTS, ItemKind))
)
def test_transition(stage: str, event: str, kind: ItemKind):
    expected = LEGAL.get((stage, event))
    if kind is ItemKind.SPIKE and (stage, event) in SPIKE:
        expected = SPIKE[(stage, event)]
    result = transition(STAGES[stage], EVENTS[event], kind)
    if expected is not None:
        assert result == expected
        return
    assert isinstance(result, IllegalTransition)
    assert result.stage is STAGES[stage].name
    assert result.event == type(EVENTS[event]).__name__
    assert str(result) == result.reason
    reason = REASONS.get((stage, event), "").replace("{kind}", kind.value)
    assert reason in result.reason, result.reason


# Every manual move that is allowed, and the event it becomes.
MOVES: dict[tuple[str, StageName], Event] = {
    ("backlog", StageName.CODING): Start(),
    ("backlog", StageName.ARCHIVED): Archive(T, ArchiveReason.ABANDONED),
    ("coding", StageName.BACKLOG): Demote(),
    ("coding", StageName.QA): Submit(),
    ("coding", StageName.ARCHIVED): Archive(T, ArchiveReason.ABANDONED),
    ("qa", StageName.BACKLOG): Demote(),
    ("qa", StageName.CODING): QaRejected("moved back by hand"),
    ("qa", StageName.ARCHIVED): Archive(T, ArchiveReason.ABANDONED),
    ("merge", StageName.BACKLOG): Demote(),
    ("merge", StageName.ARCHIVED): Archive(T, ArchiveReason.ABANDONED),
    ("done", StageName.ARCHIVED): Archive(T, ArchiveReason.COMPLETED),
    ("done-spike", StageName.ARCHIVED): Archive(T, ArchiveReason.COMPLETED),
}

MOVE_REASONS: dict[tuple[str, StageName], str] = {
    ("backlog", StageName.BACKLOG): "the item is already in backlog",
    ("merge", StageName.MERGE): "the item is already in merge",
    ("archived-abandoned", StageName.ARCHIVED): "the item is already in archived",
    ("backlog", StageName.MERGE): "merge needs a feature branch with commits ahead of the base "
    "branch: approve the item in qa instead",
    ("qa", StageName.MERGE): "merge needs a feature branch",
    ("qa", StageName.DONE): "done needs a merge",
    ("merge", StageName.DONE): "done needs a merge",
    ("backlog", StageName.QA): "start it (move it to coding) first",
    ("merge", StageName.CODING): "let the merge finish, demote it to backlog, or archive it",
    ("done", StageName.BACKLOG): "a done item is finished and can't go back to backlog; archive",
    ("done-spike", StageName.QA): "a done item is finished and can't go back to qa",
    ("archived-blocked", StageName.CODING): "the item is archived as blocked; use `huskies "
    "unblock N` to return it to coding",
    ("archived-blocked-no-previous", StageName.BACKLOG): "use `huskies unblock N` to return "
    "it to backlog",
    ("archived-merge_failed", StageName.BACKLOG): "use `huskies unblock N` to return it to merge",
    ("archived-review_held", StageName.DONE): "use `huskies unblock N` to return it to qa",
    ("archived-abandoned", StageName.CODING): "the item is archived as abandoned, and such "
    "items stay archived",
    ("archived-superseded", StageName.BACKLOG): "archived as superseded, and such items stay",
    ("archived-completed", StageName.DONE): "archived as completed, and such items stay",
}


def test_move_tables_name_real_cases():
    for stage, _ in (*MOVES, *MOVE_REASONS):
        assert stage in STAGES
    assert not set(MOVES) & set(MOVE_REASONS)


@pytest.mark.parametrize(("stage", "target"), list(itertools.product(STAGES, StageName)))
def test_event_for_move(stage: str, target: StageName):
    result = event_for_move(STAGES[stage], target, T)
    expected = MOVES.get((stage, target))
    if expected is None:
        assert isinstance(result, IllegalTransition)
        assert result.stage is STAGES[stage].name
        assert result.event == f"move to {target.value}"
        assert MOVE_REASONS.get((stage, target), "") in result.reason, result.reason
        return
    assert result == expected
    # Whatever a person may do by hand is a legal transition that lands where they asked.
    for kind in ItemKind:
        moved = transition(STAGES[stage], result, kind)
        assert not isinstance(moved, IllegalTransition)
        assert moved.name is target


def test_a_merge_success_names_its_commit():
    with pytest.raises(ValueError, match="names its merge commit"):
        MergeSucceeded(T, "")
