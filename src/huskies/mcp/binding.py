"""Who calls an MCP tool, and what they may touch.

An agent's run token binds a caller to that run's item and worktree; a person's client (on
loopback, or with the server's access token) acts on the whole project. Paths given to tools
resolve inside the directory they are scoped to, and one that leads outside it is refused.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from huskies.services.agents import Agents, Run
from huskies.services.stories import Board


class Refused(Exception):
    """The caller may not do this; the message says why."""


@dataclass(frozen=True, slots=True)
class Caller:
    """A tool's caller: an agent `run`, bound to its item and worktree, or (None) a person
    acting on the whole project."""

    run: Run | None = None

    @property
    def item_id(self) -> str | None:
        return None if self.run is None else self.run.item_id

    @property
    def worktree(self) -> Path | None:
        return None if self.run is None else self.run.worktree

    @property
    def bound(self) -> bool:
        return self.item_id is not None

    def check_item(self, board: Board, number: int) -> None:
        """Refuse item `number` unless this caller may act on it."""
        if self.item_id is None:
            return
        if board.get(number).id != self.item_id:
            own = board.view().by_id(self.item_id)
            mine = f"#{own.number}" if own is not None else "its own item"
            raise Refused(f"this agent's token is bound to {mine}; it cannot act on #{number}")

    def own_number(self, board: Board) -> int | None:
        """The number of the bound item now (numbers can change), or None when unbound."""
        if self.item_id is None:
            return None
        item = board.view().by_id(self.item_id)
        if item is None:
            raise Refused("the item this agent's token is bound to is no longer on the board")
        return item.number


PROJECT = Caller()


def bearer(headers: Mapping[str, str] | None) -> str | None:
    """The bearer token of an Authorization header, if one was sent."""
    if headers is None:
        return None
    scheme, _, given = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    return given.strip()


def identify(token: str | None, access_token: str | None, agents: Agents | None) -> Caller | None:
    """The caller `token` makes, or None when it must be refused: an unknown token, or no
    token where the server requires its access token."""
    if token is not None and agents is not None:
        run = agents.token_for(token)
        if run is not None:
            return Caller(run)
    if access_token is None:
        return PROJECT if token is None else None
    if token is not None and hmac.compare_digest(token.encode(), access_token.encode()):
        return PROJECT
    return None


def inside(top: Path, path: str) -> Path:
    """`path` (relative to `top`) resolved, symlinks followed; refused when it is absolute or
    leads outside `top`."""
    if Path(path).is_absolute():
        raise Refused(f"path {path!r} is absolute; give it relative to {top}")
    root = top.resolve()
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise Refused(f"path {path!r} leads outside {top}; give a path inside it")
    return resolved
