from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support import Node, new_node


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[[str], Node]]:
    """Makes initialised projects, each a node to start; every one is killed at the end."""
    made: list[Node] = []

    def make(name: str) -> Node:
        made.append(new_node(tmp_path, name))
        return made[-1]

    yield make
    for node in made:
        node.stop(signal.SIGKILL)
