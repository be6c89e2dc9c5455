"""QA decisions: approving an item sends it to merge (a spike to done), rejecting sends it back
to coding with the reason, which the coder's next prompt carries.

Who decides depends on the item's QA mode (its own `qa`, else the project's `default_qa`):
`server` approves as soon as the item reaches qa (the gates already passed), `agent` runs a QA
agent, `human` waits for `huskies approve` or `huskies reject`. Whoever decides, approval
looks at git itself for what there is to merge: an approval with nothing to merge is refused.
"""

from __future__ import annotations

from collections.abc import Callable

from huskies.gitops import Git, GitError
from huskies.pipeline import ItemKind, QaApproved, QaMode, QaRejected, WorkItem
from huskies.pipeline.stages import StageName
from huskies.services.settings import Settings
from huskies.services.stories import BadField, Board, IllegalMove
from huskies.services.worktrees import Worktrees, branch_for


class Review:
    def __init__(
        self,
        board: Board,
        worktrees: Worktrees,
        settings: Settings,
        clock: Callable[[], int],
        on_reject: Callable[[WorkItem, str], None] = lambda item, reason: None,
    ) -> None:
        self._board = board
        self._worktrees = worktrees
        self._settings = settings
        self._clock = clock
        self._on_reject = on_reject

    def mode(self, item: WorkItem) -> QaMode:
        return item.qa if item.qa is not None else QaMode(self._settings.config.default_qa)

    async def approve(self, number: int) -> WorkItem:
        item = self._in_qa(number)
        branch, ahead = await self._work_on_branch(item)
        return await self._board.apply(number, QaApproved(self._clock(), branch, ahead))

    async def reject(self, number: int, reason: str) -> WorkItem:
        reason = reason.strip()
        if not reason:
            raise BadField("reason", "a rejection needs a reason the coder can act on")
        item = self._in_qa(number)
        rejected = await self._board.apply(number, QaRejected(reason))
        self._on_reject(item, f"QA rejected your last attempt: {reason}")
        return rejected

    def _in_qa(self, number: int) -> WorkItem:
        item = self._board.get(number)
        if item.stage.name is not StageName.QA:
            raise IllegalMove(
                f"#{number} is in {item.stage.name.value}; only items in qa are reviewed"
            )
        return item

    async def _work_on_branch(self, item: WorkItem) -> tuple[str | None, int]:
        """The item's feature branch and its commits ahead of the base, as git has them."""
        branch = branch_for(item.number)
        git = Git(self._worktrees.root)
        try:
            if not await git.branch_exists(branch):
                return None, 0
            return branch, await git.commits_ahead(await self._worktrees.base(), branch)
        except GitError:
            if item.kind is ItemKind.SPIKE:
                return None, 0  # a spike merges nothing; its review does not need git
            raise
