"""An item's JSON (what the API and the event stream send) rebuilds the identical item."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from huskies.pipeline import Claim, ItemKind, Qa, QaMode, WorkItem, item_to_json, project_item
from huskies.pipeline.lines import line_problem

from .test_stages import stages

times = st.integers(min_value=0, max_value=2**62)
ids = st.builds(
    lambda change, index: f"{change:064x}.{index}",
    st.integers(min_value=0, max_value=2**256 - 1),
    st.integers(min_value=0, max_value=10_000),
)
# Titles and agent names are single lines (a control character makes the item unreadable).
lines = st.text(st.characters(exclude_categories=("Cc", "Zl", "Zp")), max_size=40).filter(
    lambda text: line_problem(text) is None
)
items = st.builds(
    WorkItem,
    id=ids,
    number=st.integers(min_value=1, max_value=2**31),
    kind=st.sampled_from(ItemKind),
    title=lines,
    body=st.text(max_size=200),
    stage=stages,
    agent=st.none() | lines,
    qa=st.none() | st.sampled_from(QaMode),
    depends_on=st.lists(st.integers(min_value=1, max_value=10_000), max_size=4).map(tuple),
    retries=st.integers(min_value=0, max_value=100),
    blocked_reason=st.none() | st.text(max_size=20),
    claim=st.none() | st.builds(Claim, st.text(min_size=1, max_size=64), times),
    created_at=times,
    updated_at=times,
)


@given(items)
def test_item_json_round_trips_through_project_item(item: WorkItem):
    as_json = item_to_json(item)
    assert project_item(item.id, as_json) == item
    # ...and through JSON text, as a client receives it.
    received = json.loads(json.dumps(as_json))
    assert project_item(received["id"], received) == item


def test_item_json_writes_every_stored_field_and_the_id():
    item = WorkItem(
        id="ab" * 32 + ".3",
        number=7,
        kind=ItemKind.BUG,
        title="Crash",
        body="Steps",
        stage=Qa(),
        agent=None,
        qa=QaMode.HUMAN,
        depends_on=(3,),
        retries=1,
        blocked_reason=None,
        claim=Claim("cd" * 32, 99),
        created_at=1,
        updated_at=2,
    )
    assert item_to_json(item) == {
        "id": "ab" * 32 + ".3",
        "number": 7,
        "kind": "bug",
        "title": "Crash",
        "body": "Steps",
        "stage": {"name": "qa"},
        "agent": None,
        "qa": "human",
        "depends_on": [3],
        "retries": 1,
        "blocked_reason": None,
        "claim": {"node": "cd" * 32, "expires_at": 99},
        "created_at": 1,
        "updated_at": 2,
    }
