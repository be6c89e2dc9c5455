"""What `Document.apply` tells its caller."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class RejectReason(Enum):
    """Why a change was refused. Each value is also a short code for logs and the wire."""

    TOO_LARGE = "too_large"
    BAD_ID = "bad_id"
    MALFORMED = "malformed"
    MALFORMED_OP = "malformed_op"
    NON_CANONICAL = "non_canonical"
    SIGNER_NOT_AUTHOR = "signer_not_author"
    BAD_SIGNATURE = "bad_signature"
    BAD_LAMPORT = "bad_lamport"
    BAD_REFERENCE = "bad_reference"
    DEPENDS_ON_REJECTED = "depends_on_rejected"
    PENDING_FULL = "pending_full"


# Reasons that depend only on the change's own bytes and signature. A change refused for one of
# these may be a damaged copy of a good change with the same id, so the id is never blacklisted.
INTRINSIC_REASONS = frozenset(
    {
        RejectReason.TOO_LARGE,
        RejectReason.BAD_ID,
        RejectReason.MALFORMED,
        RejectReason.MALFORMED_OP,
        RejectReason.NON_CANONICAL,
        RejectReason.SIGNER_NOT_AUTHOR,
        RejectReason.BAD_SIGNATURE,
    }
)


@dataclass(frozen=True, slots=True)
class Applied:
    """The change was applied. `ids` lists it first, then any held changes it released, in the
    order they were applied."""

    ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class AlreadySeen:
    """The change was applied before; nothing changed."""

    id: bytes


@dataclass(frozen=True, slots=True)
class Pending:
    """The change is valid so far but waits for changes this replica does not have yet.

    `missing` are the change ids it names that are absent; `after_seq` is set when it waits for
    its author's previous change (`after_seq` is that change's seq) whose id it does not name.
    """

    id: bytes
    missing: frozenset[bytes]
    after_seq: int | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """The change was refused and not stored. `detail` says what was wrong, for people."""

    reason: RejectReason
    detail: str
    id: bytes = b""

    def __str__(self) -> str:
        return f"rejected ({self.reason.value}): {self.detail}"


ApplyResult = Applied | AlreadySeen | Pending | Rejected
