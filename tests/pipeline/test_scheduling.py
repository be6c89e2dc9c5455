"""Auto-assign decisions: promotion by dependencies, who wants a coder, which coder takes it."""

from typing import Any

from huskies.pipeline import (
    Archived,
    ArchiveReason,
    Backlog,
    Coding,
    Done,
    Qa,
    Stage,
    project_items,
)
from huskies.pipeline.scheduling import Waiting, choose_agent, ready_to_promote, wants_coder
from huskies.pipeline.stages import stage_to_json

T = 1_700_000_000_000


def raw(number: int, stage: Stage, depends_on: tuple[int, ...] = (), agent: str | None = None):
    fields: dict[str, Any] = {
        "number": number,
        "kind": "story",
        "title": f"item {number}",
        "stage": stage_to_json(stage),
        "depends_on": list(depends_on),
        "agent": agent,
        "created_at": T,
        "updated_at": T,
    }
    return (f"{number:064x}.0", fields)


def numbers(items) -> list[int]:
    return [item.number for item in items]


def test_a_backlog_item_is_ready_once_every_dependency_is_done_or_archived():
    view = project_items(
        [
            raw(1, Done(T, "abc")),
            raw(2, Archived(T, ArchiveReason.COMPLETED, None)),
            raw(3, Coding()),
            raw(4, Backlog(), depends_on=(1, 2)),
            raw(5, Backlog(), depends_on=(1, 3)),
            raw(6, Backlog()),  # no dependencies: waits for a person
            raw(7, Coding(), depends_on=(3,)),  # not in the backlog: not promoted again
            raw(8, Backlog(), depends_on=(1, 42)),
        ]
    )
    ready, waiting = ready_to_promote(view)
    assert numbers(ready) == [4]
    assert [(w.item.number, w.unfinished, w.missing) for w in waiting] == [
        (5, (3,), ()),
        (8, (), (42,)),
    ]
    assert all(isinstance(w, Waiting) for w in waiting)


def test_items_in_coding_want_a_coder_unless_skipped():
    view = project_items([raw(3, Coding()), raw(1, Coding()), raw(2, Qa()), raw(4, Backlog())])
    assert numbers(wants_coder(view, skip=())) == [1, 3]
    assert numbers(wants_coder(view, skip={f"{1:064x}.0"})) == [3]


def test_choose_agent_takes_the_first_free_coder_in_config_order():
    view = project_items([raw(1, Coding())])
    (item,) = view.items
    assert choose_agent(item, ["a", "b", "c"], busy=set()) == "a"
    assert choose_agent(item, ["a", "b", "c"], busy={"a"}) == "b"
    assert choose_agent(item, ["a", "b"], busy={"a", "b"}) is None
    assert choose_agent(item, [], busy=set()) is None


def test_a_preferred_agent_is_waited_for():
    view = project_items([raw(1, Coding(), agent="b"), raw(2, Coding(), agent="not-a-coder")])
    preferring, unknown = view.items
    assert choose_agent(preferring, ["a", "b"], busy=set()) == "b"
    assert choose_agent(preferring, ["a", "b"], busy={"b"}) is None
    # A preference that names no coder (a qa agent, or one since removed) is ignored.
    assert choose_agent(unknown, ["a", "b"], busy={"a"}) == "b"
