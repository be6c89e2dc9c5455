"""Per-author logs and the clock that summarises them.

A document applies an author's change at seq n only after one of that author's changes at seq n-1,
so an author's applied changes always cover seqs 1..n. An equivocating author may have several
changes at one seq; all are kept (they are just concurrent changes).

The clock entry of an author is `(n, digest)`, where the digest is SHA-256 over the author's change
ids for seqs 1..n in seq order, several ids at one seq in byte order. Equal counts with different
digests mean one side holds a change of that author the other lacks.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple


class AuthorClock(NamedTuple):
    seq: int
    digest: bytes


class AuthorLog:
    """The ids of one author's applied changes, by seq."""

    __slots__ = ("_forks", "_hashed", "_hasher", "ids")

    def __init__(self) -> None:
        self.ids: list[bytes] = []  # ids[s - 1] is the first change applied at seq s
        self._forks: dict[int, list[bytes]] = {}  # seq -> every id at that seq, when more than one
        self._hasher = hashlib.sha256()
        self._hashed = 0  # how many leading seqs _hasher covers (forks disable it)

    @property
    def seq(self) -> int:
        return len(self.ids)

    def add(self, seq: int, change_id: bytes) -> None:
        if seq == len(self.ids) + 1:
            self.ids.append(change_id)
            return
        if not 1 <= seq <= len(self.ids):
            raise ValueError(f"seq {seq} applied before seq {seq - 1}")
        at_seq = self._forks.setdefault(seq, [self.ids[seq - 1]])
        at_seq.append(change_id)
        at_seq.sort()

    def ids_at(self, seq: int) -> list[bytes]:
        return self._forks.get(seq) or [self.ids[seq - 1]]

    def ids_after(self, seq: int) -> list[bytes]:
        """Every id with a seq greater than `seq`."""
        out = self.ids[seq:]
        for fork_seq, ids in self._forks.items():
            if fork_seq > seq:
                first = self.ids[fork_seq - 1]
                out.extend(i for i in ids if i != first)
        return out

    def fork_ids(self) -> list[bytes]:
        """Every id at a seq that holds more than one change."""
        return [i for ids in self._forks.values() for i in ids]

    def digest(self, seq: int) -> bytes:
        """The digest of seqs 1..seq."""
        if not self._forks:
            if seq >= self._hashed:
                self._hasher.update(b"".join(self.ids[self._hashed : seq]))
                self._hashed = seq
                return self._hasher.digest()
            return hashlib.sha256(b"".join(self.ids[:seq])).digest()
        hasher = hashlib.sha256()
        for s in range(1, seq + 1):
            hasher.update(b"".join(self.ids_at(s)))
        return hasher.digest()

    def clock(self) -> AuthorClock:
        return AuthorClock(len(self.ids), self.digest(len(self.ids)))
