"""The board view: sorting, errors, and number collisions resolved alike on every replica."""

import dataclasses
import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from huskies.pipeline import (
    ItemsView,
    WorkItem,
    next_number,
    project_items,
    renumbering,
)

T = 1_700_000_000_000


def raw(number: int, created_at: int = T, title: str = "t") -> dict[str, Any]:
    return {
        "number": number,
        "kind": "story",
        "title": title,
        "stage": {"name": "backlog"},
        "created_at": created_at,
        "updated_at": created_at,
    }


def key(n: int) -> str:
    return f"{n:064x}.0"


def numbers(view: ItemsView) -> dict[str, int]:
    return {item.id: item.number for item in view.items}


def test_empty_board():
    view = project_items([])
    assert (view.items, view.errors, renumbering(view)) == ([], [], [])
    assert next_number(view) == 1


def test_items_sort_by_number_and_bad_items_are_reported_not_raised():
    view = project_items([(key(1), raw(3)), (key(2), {"number": 1}), (key(3), raw(1))])
    assert [item.number for item in view.items] == [1, 3]
    assert [(e.item_id, e.field, e.problem) for e in view.errors] == [(key(2), "kind", "missing")]
    assert next_number(view) == 4


def test_lookups():
    view = project_items([(key(1), raw(3)), (key(2), raw(5))])
    found = view.by_number(5)
    assert found is not None
    assert found.id == key(2)
    assert view.by_id(key(1)) == view.by_number(3)
    assert view.by_number(4) is None
    assert view.by_id(key(9)) is None


def test_the_earliest_claim_keeps_a_number_and_later_ones_move_past_the_highest():
    view = project_items(
        [
            (key(5), raw(2, created_at=T + 2)),
            (key(4), raw(2, created_at=T)),
            (key(3), raw(2, created_at=T + 1)),
            (key(2), raw(1, created_at=T + 1)),
            (key(1), raw(1, created_at=T + 1)),  # same time as key(2): the smaller id wins
            (key(6), raw(9, created_at=T + 3)),
        ]
    )
    assert numbers(view) == {
        key(4): 2,
        key(1): 1,
        key(6): 9,
        # losers in (created_at, id) order: key(2) and key(3) at T+1, then key(5)
        key(2): 10,
        key(3): 11,
        key(5): 12,
    }
    assert renumbering(view) == [(key(2), 10), (key(3), 11), (key(5), 12)]
    assert view.claimed[key(5)] == 2
    assert next_number(view) == 13  # past the losers' new numbers, not only the claimed ones


def test_persisting_the_renumbering_settles_the_numbers():
    pairs = [(key(1), raw(1, T)), (key(2), raw(1, T + 1))]
    view = project_items(pairs)
    for item_id, number in renumbering(view):
        pairs = [(i, r | {"number": number} if i == item_id else r) for i, r in pairs]
    settled = project_items(pairs)
    assert renumbering(settled) == []
    assert numbers(settled) == numbers(view)


@given(
    st.lists(
        st.tuples(st.integers(1, 5), st.integers(0, 3)),
        min_size=1,
        max_size=12,
    ),
    st.randoms(use_true_random=False),
)
def test_every_replica_agrees_whatever_order_it_reads_items_in(
    claims: list[tuple[int, int]], rnd: random.Random
):
    pairs = [(key(i), raw(number, T + at)) for i, (number, at) in enumerate(claims)]
    view = project_items(pairs)
    shuffled = list(pairs)
    rnd.shuffle(shuffled)
    assert project_items(shuffled) == view
    resolved = [item.number for item in view.items]
    assert len(set(resolved)) == len(resolved)
    assert resolved == sorted(resolved)
    # Each claimed number is kept by exactly one item.
    assert {view.claimed[i.id] for i in view.items} <= set(resolved)
    assert next_number(view) == max(resolved) + 1


def test_view_items_are_work_items_with_their_resolved_number():
    view = project_items([(key(1), raw(1, T)), (key(2), raw(1, T + 1))])
    loser = view.by_id(key(2))
    assert isinstance(loser, WorkItem)
    original = project_items([(key(2), raw(1, T + 1))]).items[0]
    assert loser == dataclasses.replace(original, number=2)
