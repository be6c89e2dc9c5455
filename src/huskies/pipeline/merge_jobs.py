"""Merge jobs: what the merge queue is doing, or last did, for each item.

The root key "merge_jobs" holds a map from item id to one JSON record, written whole: a job's
fields only make sense together, so a last-writer-wins register over the record keeps them so.
A job is written as running before the queue touches git, again with the squash commit just
before the base branch is moved to it, and as succeeded or failed in the same change as the
item's own event. After a crash the document therefore says which merges were under way, and
how far they got: a job still running under an earlier boot of this node was interrupted, and
if its commit is already in the base branch the merge happened and only its record was lost.

Reading tolerates bad records the way items do: each becomes a problem line for that record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from huskies.crdt import Document, Json, ObjKind, Path, Transaction
from huskies.pipeline.events import Archive, IllegalTransition, MergeFailed
from huskies.pipeline.items import WorkItem
from huskies.pipeline.jsonvalues import (
    WrongType,
    as_int,
    as_object,
    as_str,
    describe,
    member,
)
from huskies.pipeline.stages import ArchiveReason
from huskies.pipeline.updates import ItemUpdate, apply_event

MERGE_JOBS = "merge_jobs"
MERGE_JOBS_PATH: Path = (MERGE_JOBS,)

T = TypeVar("T")


class JobState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class MergeJob:
    """The merge of item `item_id` (#`number` when it started), run by node `node` in the
    process started as `boot`. `attempt` counts the item's merge jobs from 1. `commit` is the
    squash commit once there is one to move the base to; `reason` says why a job failed.
    Times are ms since the epoch; `ended_at` is None while the job runs."""

    item_id: str
    number: int
    node: str
    boot: str
    state: JobState
    attempt: int
    started_at: int
    ended_at: int | None = None
    reason: str | None = None
    commit: str | None = None


def job_to_json(job: MergeJob) -> dict[str, Json]:
    """The stored record (the item id is its key in the map, not a field)."""
    return {
        "number": job.number,
        "node": job.node,
        "boot": job.boot,
        "state": job.state.value,
        "attempt": job.attempt,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "reason": job.reason,
        "commit": job.commit,
    }


def job_from_json(item_id: str, raw: object) -> MergeJob:
    """The job `raw` records for `item_id`, or WrongType naming the first bad field."""
    record = as_object(raw)
    state = member(record, "state", as_str)
    if state not in JobState._value2member_map_:
        raise WrongType(f"'state' must be one of {', '.join(JobState)}, got {state!r}")
    attempt = member(record, "attempt", as_int)
    if attempt < 1:
        raise WrongType(f"'attempt' must be ≥ 1, got {attempt}")
    return MergeJob(
        item_id=item_id,
        number=member(record, "number", as_int),
        node=member(record, "node", as_str),
        boot=member(record, "boot", as_str),
        state=JobState(state),
        attempt=attempt,
        started_at=member(record, "started_at", as_int),
        ended_at=member(record, "ended_at", _nullable(as_int)),
        reason=member(record, "reason", _nullable(as_str)),
        commit=member(record, "commit", _nullable(as_str)),
    )


def write_job(tx: Transaction, job: MergeJob) -> None:
    """Store `job` as its item's record (the map is made every time; makes of one key as a map
    share a single map, so this never hides other records)."""
    tx.make((), MERGE_JOBS, ObjKind.MAP)
    tx.set(MERGE_JOBS_PATH, job.item_id, job_to_json(job))


def read_jobs(doc: Document) -> tuple[dict[str, MergeJob], list[str]]:
    """Every readable job by item id, and a problem line for each record that is not."""
    try:
        values = doc.get(MERGE_JOBS_PATH)
    except KeyError:
        return {}, []
    if not isinstance(values, dict):
        return {}, [f"merge_jobs must be an object, got {describe(values)}"]
    jobs, problems = {}, []
    for item_id, raw in values.items():
        try:
            jobs[item_id] = job_from_json(item_id, raw)
        except WrongType as exc:
            problems.append(f"merge job of item {item_id}: {exc}")
    return jobs, problems


def start_job(
    item: WorkItem, previous: MergeJob | None, *, node: str, boot: str, at: int
) -> MergeJob:
    """A new running job for `item`, the attempt after `previous` (the item's last job)."""
    return MergeJob(
        item_id=item.id,
        number=item.number,
        node=node,
        boot=boot,
        state=JobState.RUNNING,
        attempt=1 if previous is None else previous.attempt + 1,
        started_at=at,
    )


def end_job(
    job: MergeJob, state: JobState, at: int, *, reason: str | None = None, commit: str | None = None
) -> MergeJob:
    """`job` ended in `state` at `at`; a commit already recorded on it is kept unless given."""
    if state is JobState.RUNNING:
        raise ValueError("a job ends as succeeded or failed, not running")
    return dataclasses.replace(
        job, state=state, ended_at=at, reason=reason, commit=commit or job.commit
    )


def is_interrupted(job: MergeJob, *, node: str, boot: str) -> bool:
    """Whether `job` is one this node was running in an earlier process: a crash or kill ended
    it before it could record an outcome, so it must be finished, never dropped. (A job running
    under `boot` is under way now; one of another node is that node's business.)"""
    return job.state is JobState.RUNNING and job.node == node and job.boot != boot


def interrupted(jobs: Iterable[MergeJob], *, node: str, boot: str) -> list[MergeJob]:
    """The interrupted jobs among `jobs` (see `is_interrupted`), by item number."""
    found = [job for job in jobs if is_interrupted(job, node=node, boot=boot)]
    return sorted(found, key=lambda job: (job.number, job.item_id))


def merge_failure(
    item: WorkItem, reason: str, at: int, max_retries: int
) -> ItemUpdate | IllegalTransition:
    """What a failed merge does to `item`: MergeFailed, which counts a retry; or, when this is
    the failure that brings its retries to `max_retries`, archiving it as merge_failed instead,
    with the reason kept as its blocked reason so people see why (unblocking clears it)."""
    failures = item.retries + 1
    if failures < max_retries:
        return apply_event(item, MergeFailed(reason), at)
    update = apply_event(item, Archive(at, ArchiveReason.MERGE_FAILED), at)
    if isinstance(update, IllegalTransition):
        return update
    blocked = f"merge failed {failures} times; last: {reason}"
    return ItemUpdate(
        dataclasses.replace(update.item, blocked_reason=blocked),
        {**update.fields, "blocked_reason": blocked},
    )


def _nullable(read: Callable[[object], T]) -> Callable[[object], T | None]:
    return lambda raw: None if raw is None else read(raw)
