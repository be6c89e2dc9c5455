"""One git worktree per work item, where its agents work.

Item n's worktree is `<project root>/.huskies/worktrees/<n>-<slug of its title>`, on branch
`feature/story-<n>`, made from the base branch the first time an agent needs it and reused by
every later agent. Which worktree belongs to which item is read from git itself (the branch
checked out), never from the directory name, so a renamed item keeps its worktree. huskies
removes a worktree only when asked to, and never deletes the branch: the work is on it.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from huskies.gitops import Git, WorktreeInfo

WORKTREES_DIR = Path(".huskies") / "worktrees"
BRANCH_PREFIX = "feature/story-"
MAX_SLUG = 40
GIT_TIMEOUT_S = 300.0  # a big checkout is slow, but a git that runs this long is stuck
_SHOWN_PATHS = 5  # of the uncommitted paths named in an error

_BRANCH = re.compile(re.escape(BRANCH_PREFIX) + r"([1-9][0-9]*)")

# Latin letters that Unicode does not decompose into an ASCII letter and a mark.
_TRANSLITERATE = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "œ": "oe",
        "ø": "o",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "\u0131": "i",
    }
)


class WorktreeError(Exception):
    """An item's worktree cannot be made or removed; the message says why and what to do."""


@dataclass(frozen=True)
class Worktree:
    number: int
    path: Path
    branch: str


def slug(title: str) -> str:
    """`title` as a short directory-name part: lowercase ASCII words joined by '-'.

    Accented letters lose their accents, other non-ASCII characters are dropped, and the result
    is cut at a word boundary to at most MAX_SLUG characters. Never empty: "item" instead.
    """
    text = unicodedata.normalize("NFKD", title.lower().translate(_TRANSLITERATE))
    text = "".join(c for c in text if not unicodedata.combining(c))  # é became e + accent
    text = re.sub("['\u2019]", "", text.lower())  # "don't" is one word, not "don-t"
    # Any other character, non-ASCII ones included, separates words: "a—b" is "a-b".
    words = re.findall(r"[a-z0-9]+", text)
    result = ""
    for word in words:
        candidate = f"{result}-{word}" if result else word
        if len(candidate) > MAX_SLUG:
            break
        result = candidate
    if not result and words:  # the first word alone is too long: cut inside it
        result = words[0][:MAX_SLUG]
    return result or "item"


def branch_for(number: int) -> str:
    """Item `number`'s branch."""
    _check_number(number)
    return f"{BRANCH_PREFIX}{number}"


class Worktrees:
    """The item worktrees of the git repository at `project_root`.

    `base_branch` is the configured branch work is made from and merged into; empty means the
    branch checked out in `project_root` when it is first needed.
    """

    def __init__(self, project_root: Path, base_branch: str) -> None:
        self.root = project_root.resolve()
        self.dir = self.root / WORKTREES_DIR
        self._configured_base = base_branch
        self._base: str | None = None  # resolved once: the server's base does not drift
        self._git = Git(self.root, timeout_s=GIT_TIMEOUT_S)
        self._locks: dict[int, asyncio.Lock] = {}
        # git does not guard its worktree bookkeeping against itself: a `git worktree` command
        # that reads the list while another adds an entry can die with "failed to read
        # .git/worktrees/<name>/commondir". So huskies runs one at a time per repository.
        self._admin = asyncio.Lock()

    @property
    def git_lock(self) -> asyncio.Lock:
        """Held around every `git worktree` command in this repository. Other services that
        add or list its worktrees (the merge workspace) must hold it too."""
        return self._admin

    async def base(self) -> str:
        """The base branch's name. Raises WorktreeError when there is none to use."""
        if self._base is not None:
            return self._base
        if self._configured_base:
            if not await self._git.branch_exists(self._configured_base):
                raise WorktreeError(
                    f"the base branch {self._configured_base!r} set in .huskies/project.toml "
                    f"does not exist in {self.root}; create it, or set base_branch to an "
                    "existing branch"
                )
            self._base = self._configured_base
        else:
            current = await self._git.current_branch()
            if current is None:
                raise WorktreeError(
                    f"{self.root} has a detached HEAD, so there is no branch to base work on; "
                    "set base_branch in .huskies/project.toml, or check out a branch there"
                )
            self._base = current
        return self._base

    async def ensure(self, number: int, title: str) -> Worktree:
        """Item `number`'s worktree: the one it already has, or a new one.

        A new worktree checks out the item's branch if it exists (as it is: it holds earlier
        work), else creates the branch from the base branch.
        """
        branch = branch_for(number)
        async with self._lock(number):
            entries = await self._worktree_list()
            live = [e for e in entries if _present(e)]
            for entry in live:
                if entry.branch == branch:
                    if self._is_item_path(entry.path):
                        return Worktree(number, entry.path, branch)
                    raise WorktreeError(
                        f"cannot make #{number}'s worktree: its branch {branch} is checked out "
                        f"at {entry.path}; check out another branch there, then try again"
                    )
            path = self.dir / f"{number}-{slug(title)}"
            for entry in live:
                if _real(entry.path) == _real(path):
                    on = f"branch {entry.branch}" if entry.branch else "a detached HEAD"
                    raise WorktreeError(
                        f"cannot make #{number}'s worktree: {path} is a worktree on {on}, not "
                        f"{branch}; check out {branch} there, or remove that worktree"
                    )
            if len(live) < len(entries):
                # A worktree was deleted without git's knowledge (say, a crash): its registration
                # would make git refuse to check the branch out again.
                async with self._admin:
                    await self._git.worktree_prune()
            _check_not_in_the_way(path, number)
            try:
                start: str | None = await self.base()
            except WorktreeError:
                # Resuming existing work does not need a base branch.
                if not await self._git.branch_exists(branch):
                    raise
                start = None
            async with self._admin:
                await self._git.worktree_add(path, branch, start)
            return Worktree(number, path, branch)

    async def find(self, number: int) -> Worktree | None:
        """Item `number`'s worktree, if it has one."""
        branch = branch_for(number)
        return next((w for w in await self.list() if w.branch == branch), None)

    async def list(self) -> builtins.list[Worktree]:
        """The items' worktrees, by item number. Other worktrees of the repository (the main one,
        any a person made) are not huskies' and are left out."""
        found = []
        for entry in await self._worktree_list():
            number = self._item_number(entry)
            if number is not None:
                found.append(Worktree(number, entry.path, branch_for(number)))
        return sorted(found, key=lambda w: w.number)

    async def remove(self, number: int, *, force: bool = False) -> bool:
        """Delete item `number`'s worktree, keeping its branch. False if it had none.

        Uncommitted changes are refused unless `force`, which throws them away.
        """
        branch = branch_for(number)
        async with self._lock(number):
            worktree = await self.find(number)
            if worktree is None:
                return False
            if not force:
                changed = await Git(worktree.path, timeout_s=GIT_TIMEOUT_S).changed_paths()
                if changed:
                    shown = ", ".join(changed[:_SHOWN_PATHS])
                    more = (
                        f" and {len(changed) - _SHOWN_PATHS} more"
                        if len(changed) > _SHOWN_PATHS
                        else ""
                    )
                    raise WorktreeError(
                        f"#{number}'s worktree {worktree.path} has uncommitted changes "
                        f"({shown}{more}); commit them to {branch} first, or remove it with "
                        "force to throw them away"
                    )
            async with self._admin:
                await self._git.worktree_remove(worktree.path, force=force)
            return True

    async def _worktree_list(self) -> builtins.list[WorktreeInfo]:
        async with self._admin:
            return await self._git.worktree_list()

    def _lock(self, number: int) -> asyncio.Lock:
        # One lock per item: the same item's requests queue, different items' run side by side.
        return self._locks.setdefault(number, asyncio.Lock())

    def _item_number(self, entry: WorktreeInfo) -> int | None:
        """The item an existing worktree belongs to, or None if it is not an item worktree."""
        match = _BRANCH.fullmatch(entry.branch or "")
        if match is None or not _present(entry) or not self._is_item_path(entry.path):
            return None
        return int(match.group(1))

    def _is_item_path(self, path: Path) -> bool:
        return _real(path).parent == _real(self.dir)


def _present(entry: WorktreeInfo) -> bool:
    """Whether a registered worktree is still there. Its `.git` (a file in a linked worktree)
    is what makes it one: a directory left without it is debris, not a worktree."""
    return (entry.path / ".git").exists()


def _real(path: Path) -> Path:
    # git may print a path through a symlink differently from how we spelled it.
    return Path(os.path.realpath(path))


def _check_number(number: int) -> None:
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"an item number is a whole number from 1, not {number!r}")


def _check_not_in_the_way(path: Path, number: int) -> None:
    """Refuse to build over something that is not a registered worktree: git would refuse too,
    less clearly. An empty directory is harmless; git fills it."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return
    raise WorktreeError(
        f"cannot make #{number}'s worktree: {path} is in the way (it exists but is not a git "
        "worktree, perhaps left over from a crash); move or delete it, then try again"
    )
