"""Merge jobs in a real document (written whole, read back tolerantly), which of them a restart
interrupted, and what a failed merge does to its item."""

from __future__ import annotations

import dataclasses

import pytest

from huskies.crdt import Document, Transaction
from huskies.pipeline import (
    Archived,
    ArchiveReason,
    Coding,
    IllegalTransition,
    ItemKind,
    Merge,
    Unblock,
    WorkItem,
    apply_event,
    create_item,
    project_item,
    set_fields,
    set_stage,
)
from huskies.pipeline.merge_jobs import (
    JobState,
    MergeJob,
    end_job,
    interrupted,
    is_interrupted,
    job_to_json,
    merge_failure,
    read_jobs,
    start_job,
    write_job,
)
from huskies.pipeline.schema import item_key, read_items

from ..crdt.support import key, set_key

A, B = key(1), key(2)
T = 1_700_000_000_000
ITEM = "ab" * 32 + ".0"
OTHER = "cd" * 32 + ".1"
MERGE = Merge("feature/story-7", 2)

JOB = MergeJob(
    item_id=ITEM,
    number=7,
    node="node-a",
    boot="boot-1",
    state=JobState.RUNNING,
    attempt=1,
    started_at=T,
)


def item(stage: Merge | Coding = MERGE, retries: int = 0) -> WorkItem:
    return WorkItem(
        id=ITEM,
        number=7,
        kind=ItemKind.STORY,
        title="Add login",
        body="",
        stage=stage,
        agent=None,
        qa=None,
        depends_on=(),
        retries=retries,
        blocked_reason=None,
        claim=None,
        created_at=T,
        updated_at=T,
    )


def write(doc: Document, *jobs: MergeJob, signer=A) -> None:
    tx = Transaction(doc)
    for job in jobs:
        write_job(tx, job)
    tx.commit(signer, T)


def test_jobs_are_written_whole_and_replaced_by_item():
    doc = Document()
    other = dataclasses.replace(JOB, item_id=OTHER, number=8)
    write(doc, JOB, other)
    assert read_jobs(doc) == ({ITEM: JOB, OTHER: other}, [])
    done = end_job(JOB, JobState.SUCCEEDED, T + 5, commit="c0ffee")
    write(doc, done)
    jobs, problems = read_jobs(doc)
    assert (jobs[ITEM], jobs[OTHER], problems) == (done, other, [])
    assert (done.ended_at, done.commit, done.reason) == (T + 5, "c0ffee", None)


def test_concurrent_first_writes_on_two_nodes_keep_both_jobs():
    # Each node makes the map in its first write; both makes name one map, so neither job hides
    # the other once the changes meet.
    one, two = Document(), Document()
    tx = Transaction(one)
    write_job(tx, JOB)
    first = tx.commit(A, T)
    other = dataclasses.replace(JOB, item_id=OTHER, number=8, node="node-b")
    tx = Transaction(two)
    write_job(tx, other)
    second = tx.commit(B, T)
    one.apply(second)
    two.apply(first)
    assert read_jobs(one) == read_jobs(two) == ({ITEM: JOB, OTHER: other}, [])


def test_an_empty_document_has_no_jobs():
    assert read_jobs(Document()) == ({}, [])


def test_bad_records_are_named_and_the_rest_still_read():
    doc = Document()
    tx = Transaction(doc)
    write_job(tx, JOB)
    good = job_to_json(JOB)
    tx.set(("merge_jobs",), "x1", {**good, "state": "paused"})
    tx.set(("merge_jobs",), "x2", {**good, "attempt": 0})
    tx.set(("merge_jobs",), "x3", {k: v for k, v in good.items() if k != "boot"})
    tx.set(("merge_jobs",), "x4", {**good, "ended_at": "later"})
    tx.set(("merge_jobs",), "x5", {**good, "commit": 5})
    tx.set(("merge_jobs",), "x6", [1, 2])
    tx.commit(A, T)
    jobs, problems = read_jobs(doc)
    assert jobs == {ITEM: JOB}
    assert sorted(problems) == [
        "merge job of item x1: 'state' must be one of running, succeeded, failed, got 'paused'",
        "merge job of item x2: 'attempt' must be ≥ 1, got 0",
        "merge job of item x3: 'boot' is missing",
        "merge job of item x4: 'ended_at' must be an integer, got a string",
        "merge job of item x5: 'commit' must be a string, got a number",
        "merge job of item x6: must be an object, got an array",
    ]


def test_merge_jobs_that_are_not_a_map_are_reported():
    doc = Document()
    set_key(doc, A, "merge_jobs", [1])
    assert read_jobs(doc) == ({}, ["merge_jobs must be an object, got an array"])


def test_a_new_job_counts_attempts_and_an_ended_job_keeps_its_commit():
    first = start_job(item(), None, node="node-a", boot="boot-1", at=T)
    assert first == JOB
    with_commit = dataclasses.replace(first, commit="abc")
    failed = end_job(with_commit, JobState.FAILED, T + 9, reason="checkout blocked")
    assert (failed.state, failed.reason, failed.commit) == (
        JobState.FAILED,
        "checkout blocked",
        "abc",
    )
    second = start_job(item(), failed, node="node-a", boot="boot-2", at=T + 10)
    assert (second.attempt, second.boot, second.state) == (2, "boot-2", JobState.RUNNING)
    assert (second.commit, second.reason, second.ended_at) == (None, None, None)
    with pytest.raises(ValueError, match="not running"):
        end_job(first, JobState.RUNNING, T)


def test_only_this_nodes_running_jobs_of_earlier_boots_were_interrupted():
    earlier = dataclasses.replace(JOB, item_id="j3", number=3, boot="boot-0")
    now = dataclasses.replace(JOB, item_id="j1", number=1, boot="boot-1")
    elsewhere = dataclasses.replace(JOB, item_id="j2", number=2, node="node-b", boot="boot-0")
    finished = dataclasses.replace(earlier, item_id="j4", number=4, state=JobState.FAILED)
    first = dataclasses.replace(earlier, item_id="j0", number=0)
    jobs = [earlier, now, elsewhere, finished, first]
    assert interrupted(jobs, node="node-a", boot="boot-1") == [first, earlier]
    assert is_interrupted(earlier, node="node-a", boot="boot-1")
    assert not is_interrupted(now, node="node-a", boot="boot-1")
    assert not is_interrupted(elsewhere, node="node-a", boot="boot-1")
    assert not is_interrupted(finished, node="node-a", boot="boot-1")


def test_a_failed_merge_counts_a_retry_and_keeps_the_merge():
    update = merge_failure(item(retries=0), "empty squash", T + 1, max_retries=3)
    assert not isinstance(update, IllegalTransition)
    assert update.item.stage == MERGE
    assert update.fields == {"retries": 1}
    assert update.item.blocked_reason is None


def test_the_last_allowed_failure_archives_the_item_with_its_reason():
    update = merge_failure(item(retries=2), "conflicts in a.txt", T + 1, max_retries=3)
    assert not isinstance(update, IllegalTransition)
    assert update.item.stage == Archived(T + 1, ArchiveReason.MERGE_FAILED, MERGE)
    reason = "merge failed 3 times; last: conflicts in a.txt"
    assert update.item.blocked_reason == reason
    assert update.fields["blocked_reason"] == reason
    assert update.fields["stage"]["name"] == "archived"  # type: ignore[index,call-overload]
    # Unblocking returns it to its merge and clears the reason and the count.
    back = apply_event(update.item, Unblock(), T + 2)
    assert not isinstance(back, IllegalTransition)
    assert (back.item.stage, back.item.blocked_reason, back.item.retries) == (MERGE, None, 0)


def test_a_failure_is_refused_for_an_item_not_in_merge():
    for retries in (0, 5):
        refused = merge_failure(item(Coding(), retries=retries), "x", T, max_retries=3)
        assert isinstance(refused, IllegalTransition)


def test_the_archive_fields_land_on_a_real_item():
    doc = Document()
    tx = Transaction(doc)
    element = create_item(
        tx, number=7, kind=ItemKind.STORY, title="t", body="", depends_on=(), qa=None, at=T
    )
    tx.commit(A, T)
    element = tx.resolve(element)
    tx = Transaction(doc)
    set_stage(tx, element, MERGE, T + 1)
    tx.commit(A, T + 1)
    ((item_id, raw),) = read_items(doc)
    assert item_id == item_key(element)
    stored = project_item(item_id, raw)
    assert isinstance(stored, WorkItem)
    update = merge_failure(stored, "no commits", T + 2, max_retries=1)
    assert not isinstance(update, IllegalTransition)
    tx = Transaction(doc)
    set_fields(tx, element, update.fields, T + 2)
    tx.commit(A, T + 2)
    ((_, raw),) = read_items(doc)
    assert project_item(item_id, raw) == update.item
