"""The replicated document: a pure, sans-I/O Byzantine-fault-tolerant JSON CRDT.

Nothing in this package does I/O, reads the clock or draws randomness: times, seeds and keys
come in as arguments.
"""

from huskies.crdt.builder import Transaction
from huskies.crdt.change import (
    Change,
    EncodedChange,
    SignedChange,
    VerifiedChange,
    decode_signed,
    encode_change,
    sign_change,
    signed_from_bytes,
)
from huskies.crdt.clock import AuthorClock
from huskies.crdt.document import ChangeRefused, Document, Outcome, StoredChange
from huskies.crdt.encoding import EncodingError, Json
from huskies.crdt.identity import NodeKey, Signer, node_id, parse_node_id, verify_signature
from huskies.crdt.ops import ObjKind, OpId, Path, Span
from huskies.crdt.results import (
    AlreadySeen,
    Applied,
    ApplyResult,
    Pending,
    Rejected,
    RejectReason,
)
from huskies.crdt.snapshot import SnapshotError

__all__ = [
    "AlreadySeen",
    "Applied",
    "ApplyResult",
    "AuthorClock",
    "Change",
    "ChangeRefused",
    "Document",
    "EncodedChange",
    "EncodingError",
    "Json",
    "NodeKey",
    "ObjKind",
    "OpId",
    "Outcome",
    "Path",
    "Pending",
    "RejectReason",
    "Rejected",
    "SignedChange",
    "Signer",
    "SnapshotError",
    "Span",
    "StoredChange",
    "Transaction",
    "VerifiedChange",
    "decode_signed",
    "encode_change",
    "node_id",
    "parse_node_id",
    "sign_change",
    "signed_from_bytes",
    "verify_signature",
]
