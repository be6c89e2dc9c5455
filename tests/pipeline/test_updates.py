"""apply_event: the new stage plus the bookkeeping fields an event changes."""

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
    Start,
    Unblock,
    WorkItem,
    apply_event,
    stage_to_json,
)

T = 1_700_000_000_000
MERGE = Merge("feature/story-1", 1)


def item(stage: Stage, retries: int = 0, blocked_reason: str | None = None) -> WorkItem:
    return WorkItem(
        id="ab" * 32 + ".0",
        number=1,
        kind=ItemKind.STORY,
        title="t",
        body="",
        stage=stage,
        agent=None,
        qa=None,
        depends_on=(),
        retries=retries,
        blocked_reason=blocked_reason,
        claim=None,
        created_at=T,
        updated_at=T,
    )


@pytest.mark.parametrize(
    ("before", "event", "fields"),
    [
        (item(Backlog()), Start(), {"stage": {"name": "coding"}}),
        (item(Coding(), retries=1), GatesFailed("lint"), {"retries": 2}),
        (item(Qa(), retries=0), AttemptFailed("crashed"), {"retries": 1}),
        (item(Coding(), retries=1), GatesPassed(), {"stage": {"name": "qa"}}),
        (item(Qa()), QaRejected("no tests"), {"stage": {"name": "coding"}, "retries": 1}),
        (
            item(Qa(), retries=2),
            QaApproved(T, "feature/story-1", 1),
            {"stage": stage_to_json(MERGE)},
        ),
        (item(MERGE), MergeFailed("conflict"), {"retries": 1}),
        (
            item(MERGE, retries=3),
            MergeSucceeded(T, "c0ffee"),
            {"stage": stage_to_json(Done(T, "c0ffee"))},
        ),
        (item(MERGE, retries=3), Demote(), {"stage": {"name": "backlog"}, "retries": 0}),
        (
            item(Coding(), retries=2),
            Block(T, "waiting for an API key"),
            {
                "stage": stage_to_json(Archived(T, ArchiveReason.BLOCKED, Coding())),
                "blocked_reason": "waiting for an API key",
            },
        ),
        (
            item(Archived(T, ArchiveReason.BLOCKED, Coding()), retries=2, blocked_reason="key"),
            Unblock(),
            {"stage": {"name": "coding"}, "retries": 0, "blocked_reason": None},
        ),
        (
            item(Archived(T, ArchiveReason.MERGE_FAILED, MERGE), retries=5),
            Unblock(),
            {"stage": stage_to_json(MERGE), "retries": 0},
        ),
        (
            item(Done(T, "c0ffee"), retries=1),
            Archive(T, ArchiveReason.COMPLETED),
            {"stage": stage_to_json(Archived(T, ArchiveReason.COMPLETED, Done(T, "c0ffee")))},
        ),
    ],
)
def test_apply_event_writes_only_what_changed(before: WorkItem, event: Event, fields: dict):
    update = apply_event(before, event, T + 1)
    assert not isinstance(update, IllegalTransition)
    assert update.fields == fields
    after = update.item
    assert after.updated_at == T + 1
    assert stage_to_json(after.stage) == fields.get("stage", stage_to_json(before.stage))
    assert after.retries == fields.get("retries", before.retries)
    assert after.blocked_reason == fields.get("blocked_reason", before.blocked_reason)
    assert (after.id, after.title, after.created_at) == (before.id, before.title, before.created_at)


def test_an_illegal_event_is_returned_as_is():
    result = apply_event(item(Backlog()), MergeSucceeded(T, "c0ffee"), T)
    assert isinstance(result, IllegalTransition)
    assert result.event == "MergeSucceeded"
