"""Auto-assign decisions: which backlog items are ready, which items want an agent, and which
agent takes one. Pure: the service feeds in the board and what is running on this node."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from huskies.pipeline.items import WorkItem
from huskies.pipeline.stages import StageName
from huskies.pipeline.view import ItemsView

FINISHED = frozenset({StageName.DONE, StageName.ARCHIVED})


@dataclass(frozen=True, slots=True)
class Waiting:
    """A backlog item whose dependencies are not all finished; `missing` names dependencies
    that are not on the board at all (purged, or never existed)."""

    item: WorkItem
    unfinished: tuple[int, ...]
    missing: tuple[int, ...]


def ready_to_promote(view: ItemsView) -> tuple[list[WorkItem], list[Waiting]]:
    """Backlog items with dependencies, split into those whose dependencies are all done or
    archived (promote them to coding) and those still waiting. Items without dependencies
    stay in the backlog until someone starts them."""
    ready, waiting = [], []
    for item in view.items:
        if item.stage.name is not StageName.BACKLOG or not item.depends_on:
            continue
        unfinished, missing = [], []
        for number in item.depends_on:
            dependency = view.by_number(number)
            if dependency is None:
                missing.append(number)
            elif dependency.stage.name not in FINISHED:
                unfinished.append(number)
        if unfinished or missing:
            waiting.append(Waiting(item, tuple(unfinished), tuple(missing)))
        else:
            ready.append(item)
    return ready, waiting


def wants_coder(view: ItemsView, skip: Collection[str]) -> list[WorkItem]:
    """Items in coding, by number, except those in `skip` (running here, held by a person,
    finished here, waiting out a rate limit)."""
    return [
        item for item in view.items if item.stage.name is StageName.CODING and item.id not in skip
    ]


def choose_agent(item: WorkItem, coders: Sequence[str], busy: Collection[str]) -> str | None:
    """The coder for `item`: its preferred agent if it names a coder (and then only that one,
    waiting while it is busy), else the first free coder in config order."""
    if item.agent is not None and item.agent in coders:
        return None if item.agent in busy else item.agent
    return next((name for name in coders if name not in busy), None)
