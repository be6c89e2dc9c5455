"""RGA sequences with tombstones, stored as runs.

An element is identified by its op id `(change id, index)`. Elements inserted by one op get
consecutive indices and are stored as one *run* (a string for text), so a pasted paragraph is one
entry rather than one per character. A run is split when something is inserted inside it or part
of it is deleted. Deleted elements stay as tombstone runs so later inserts can still find their
origin.

Order (RGA): a new element goes right after its origin, except that it skips over elements whose
key is greater than its own, where the key of an element is
`(lamport, author, change id, index)`. A change's lamport exceeds every lamport in its causal past,
so the key is a Lamport timestamp with a total tie-break: two elements never compare equal.

Runs live in chunks (a doubly linked list of short arrays) with a count of visible elements each,
so a positional lookup skips whole chunks. A cursor remembers the last chunk looked up and its
visible offset; editing near the previous edit, as typing does, costs O(1).

Runs are plain tuples, not objects: CPython's garbage collector stops tracking tuples that hold
only atoms, so a long document does not make every collection slower.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from huskies.crdt.ops import OpId, Span

# (lamport, author, change id): shared by every run a change creates.
Stamp = tuple[int, bytes, bytes]
# (stamp, first index, length, text ("" for lists and tombstones), visible)
Run = tuple[Stamp, int, int, str, bool]

MAX_RUNS_PER_CHUNK = 32


class _Chunk:
    __slots__ = ("changes", "live", "next", "prev", "runs")

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.changes: list[bytes] = []  # runs[i]'s change id, for C-speed lookups
        self.live = 0
        self.prev: _Chunk | None = None
        self.next: _Chunk | None = None


class Sequence:
    """The ordered elements of one list or text, with their tombstones."""

    def __init__(self) -> None:
        self._first = _Chunk()
        # change id -> the chunk (or chunks, once split apart) holding that change's runs
        self._where: dict[bytes, _Chunk | list[_Chunk]] = {}
        self._cursor = self._first
        self._cursor_start = 0
        self.live = 0  # number of visible elements

    @classmethod
    def from_runs(cls, runs: Iterable[Run]) -> Sequence:
        """A sequence holding `runs` in this order (as `runs()` gave them)."""
        sequence = cls()
        chunk = sequence._first
        where = sequence._where
        fill = MAX_RUNS_PER_CHUNK // 2  # room to grow before the first split
        for run in runs:
            if len(chunk.runs) == fill:
                following = _Chunk()
                following.prev, chunk.next = chunk, following
                chunk = following
            cid = run[0][2]
            chunk.runs.append(run)
            chunk.changes.append(cid)
            if run[4]:
                chunk.live += run[2]
            held = where.get(cid)
            if held is None:
                where[cid] = chunk
            elif isinstance(held, list):
                if held[-1] is not chunk:
                    held.append(chunk)
            elif held is not chunk:
                where[cid] = [held, chunk]
        node: _Chunk | None = sequence._first
        while node is not None:
            sequence.live += node.live
            node = node.next
        return sequence

    def runs(self) -> Iterator[Run]:
        """Every run in order, tombstones included."""
        chunk: _Chunk | None = self._first
        while chunk is not None:
            yield from chunk.runs
            chunk = chunk.next

    # ---- lookups by id -------------------------------------------------------------------

    def _find(self, change: bytes, index: int) -> tuple[_Chunk, int, int] | None:
        """(chunk, run position, offset in run) of element `change/index`, if it is here."""
        where = self._where.get(change)
        if where is None:
            return None
        for chunk in where if isinstance(where, list) else (where,):
            changes, runs = chunk.changes, chunk.runs
            i = -1
            while True:
                try:
                    i = changes.index(change, i + 1)
                except ValueError:
                    break
                start = runs[i][1]
                if start <= index < start + runs[i][2]:
                    return chunk, i, index - start
        return None

    def has_span(self, change: bytes, start: int, count: int) -> bool:
        """True if every id `change/start … change/start+count-1` is an element here."""
        pos, end = start, start + count
        while pos < end:
            found = self._find(change, pos)
            if found is None:
                return False
            chunk, i, offset = found
            pos += chunk.runs[i][2] - offset
        return True

    def is_visible(self, element: OpId) -> bool:
        """True if `element` is here and not deleted."""
        found = self._find(element.change, element.idx)
        return found is not None and found[0].runs[found[1]][4]

    # ---- edits ---------------------------------------------------------------------------

    def insert(self, origin: OpId | None, stamp: Stamp, start: int, length: int, text: str) -> None:
        """Insert `length` elements with ids `stamp[2]/start…` after `origin` (None: at the start).

        The origin must be an element of this sequence (callers check with `has_span`).
        """
        new_key = (stamp, start)
        if origin is None:
            chunk, i, k = self._first, 0, 0
        else:
            found = self._find(origin.change, origin.idx)
            assert found is not None, "origin must exist"
            chunk, i, k = found
            k += 1
            if k == chunk.runs[i][2]:
                i, k = i + 1, 0
        # (chunk, i, k) is the element after the insertion point; skip elements with greater keys.
        runs = chunk.runs
        while True:
            if i == len(runs):
                following = chunk.next
                if following is None:
                    break
                head = following.runs[0]
                if (head[0], head[1]) > new_key:
                    chunk, runs, i = following, following.runs, 1
                    continue
                break
            run = runs[i]
            if (run[0], run[1] + k) > new_key:
                i, k = i + 1, 0
                continue
            break
        if k:
            self._split_run(chunk, i, k)
            i += 1
        cid = stamp[2]
        runs.insert(i, (stamp, start, length, text, True))
        chunk.changes.insert(i, cid)
        where = self._where.get(cid)
        if where is None:
            self._where[cid] = chunk
        elif where is not chunk and not (isinstance(where, list) and chunk in where):
            self._where[cid] = [*where, chunk] if isinstance(where, list) else [where, chunk]
        self._changed(chunk, length)
        if len(runs) > MAX_RUNS_PER_CHUNK:
            self._split_chunk(chunk)

    def delete(self, span: Span) -> int:
        """Tombstone the elements of `span` (all must exist); returns how many were visible."""
        change, pos, end = span.change, span.start, span.start + span.length
        removed = 0
        while pos < end:
            found = self._find(change, pos)
            assert found is not None, "deleted elements must exist"
            chunk, i, k = found
            stamp, start, length, _, alive = chunk.runs[i]
            take = min(length - k, end - pos)
            if alive:
                if k:
                    self._split_run(chunk, i, k)
                    i += 1
                if take < chunk.runs[i][2]:
                    self._split_run(chunk, i, take)
                stamp, start, length, _, _ = chunk.runs[i]
                chunk.runs[i] = (stamp, start, length, "", False)
                removed += take
                self._changed(chunk, -take)
            pos += take
        return removed

    def _changed(self, chunk: _Chunk, delta: int) -> None:
        chunk.live += delta
        self.live += delta
        if chunk is not self._cursor:
            # We cannot tell cheaply whether `chunk` lies before the cursor; start over.
            self._cursor, self._cursor_start = self._first, 0

    @staticmethod
    def _split_run(chunk: _Chunk, i: int, k: int) -> None:
        stamp, start, length, text, alive = chunk.runs[i]
        chunk.runs[i] = (stamp, start, k, text[:k], alive)
        chunk.runs.insert(i + 1, (stamp, start + k, length - k, text[k:], alive))
        chunk.changes.insert(i + 1, stamp[2])

    def _split_chunk(self, chunk: _Chunk) -> None:
        half = len(chunk.runs) // 2
        new = _Chunk()
        new.runs = chunk.runs[half:]
        new.changes = chunk.changes[half:]
        del chunk.runs[half:]
        del chunk.changes[half:]
        new.live = sum(run[2] for run in new.runs if run[4])
        chunk.live -= new.live
        new.prev, new.next = chunk, chunk.next
        if chunk.next is not None:
            chunk.next.prev = new
        chunk.next = new
        for cid in set(new.changes):
            where = self._where[cid]
            holders = [c for c in (where if isinstance(where, list) else [where]) if c is not chunk]
            if cid in chunk.changes:
                holders.append(chunk)
            holders.append(new)
            self._where[cid] = holders[0] if len(holders) == 1 else holders

    # ---- lookups by visible position ----------------------------------------------------------

    def _seek(self, pos: int) -> tuple[_Chunk, int, int]:
        """(chunk, run position, offset in run) of visible element `pos`."""
        if not 0 <= pos < self.live:
            raise IndexError(f"position {pos} is outside 0..{self.live - 1}")
        chunk, start = self._cursor, self._cursor_start
        while pos < start:
            prev = chunk.prev
            assert prev is not None
            chunk = prev
            start -= chunk.live
        while pos >= start + chunk.live:
            start += chunk.live
            nxt = chunk.next
            assert nxt is not None
            chunk = nxt
        self._cursor, self._cursor_start = chunk, start
        offset = pos - start
        for i, run in enumerate(chunk.runs):
            if run[4]:
                if offset < run[2]:
                    return chunk, i, offset
                offset -= run[2]
        raise AssertionError("chunk live count out of step with its runs")

    def id_at(self, pos: int) -> OpId:
        """The id of the visible element at `pos`."""
        chunk, i, offset = self._seek(pos)
        run = chunk.runs[i]
        return OpId(run[0][2], run[1] + offset)

    def spans_at(self, pos: int, count: int) -> list[Span]:
        """The ids of visible elements `pos … pos+count-1`, as spans."""
        if count <= 0 or pos + count > self.live:
            raise IndexError(f"range {pos}..{pos + count - 1} is outside 0..{self.live - 1}")
        found: _Chunk | None
        found, i, offset = self._seek(pos)
        spans = []
        while count:
            assert found is not None
            runs = found.runs
            while i < len(runs) and count:
                stamp, start, length, _, alive = runs[i]
                if alive:
                    take = min(length - offset, count)
                    spans.append(Span(stamp[2], start + offset, take))
                    count -= take
                    offset = 0
                i += 1
            found, i = found.next, 0
        return spans

    def _visible_runs(self) -> Iterator[Run]:
        chunk: _Chunk | None = self._first
        while chunk is not None:
            for run in chunk.runs:
                if run[4]:
                    yield run
            chunk = chunk.next

    def ids(self) -> list[OpId]:
        """Ids of all visible elements, in order."""
        return [OpId(run[0][2], run[1] + k) for run in self._visible_runs() for k in range(run[2])]

    def text(self) -> str:
        """The visible characters of a text sequence."""
        return "".join(run[3] for run in self._visible_runs())
