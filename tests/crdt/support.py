"""Helpers shared by the CRDT tests: keys, committing edits, tampering with signed changes."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import cbor2

from huskies.crdt import (
    ApplyResult,
    Document,
    NodeKey,
    SignedChange,
    Transaction,
)
from huskies.crdt.change import change_id
from huskies.crdt.identity import Signer


def key(n: int) -> NodeKey:
    """A deterministic key for test author number `n`."""
    return NodeKey(bytes([n]) * 32)


def edit(
    doc: Document, signer: Signer, build: Callable[[Transaction], object], time: int = 0
) -> SignedChange:
    """Commit one transaction built by `build` and return its signed change."""
    tx = Transaction(doc)
    build(tx)
    return tx.commit(signer, time)


def set_key(doc: Document, signer: Signer, name: str, value: object) -> SignedChange:
    """Commit a change that sets root key `name`."""
    tx = Transaction(doc)
    tx.set((), name, value)
    return tx.commit(signer, 0)


def type_text(doc: Document, signer: Signer, pos: int, text: str) -> SignedChange:
    """Commit a change that inserts `text` at `pos` of the text at ("t",)."""
    tx = Transaction(doc)
    tx.insert_text(("t",), pos, text)
    return tx.commit(signer, 0)


def apply_all(doc: Document, changes: Iterable[SignedChange]) -> list[ApplyResult]:
    return [doc.apply(change) for change in changes]


def tamper_body(
    signed: SignedChange, mutate: Callable[[list[object]], None], *, rehash: bool
) -> SignedChange:
    """Decode the body, let `mutate` change it, re-encode canonically.

    With `rehash` the id is recomputed (the forger's best effort); the signature is kept.
    """
    body = cbor2.loads(signed.body)
    mutate(body)
    new_body = cbor2.dumps(body, canonical=True)
    new_id = change_id(new_body) if rehash else signed.id
    return signed._replace(id=new_id, body=new_body)


def resign(signed: SignedChange, signer: Signer) -> SignedChange:
    """Re-sign a (possibly altered) change with `signer`, keeping its claimed signer field."""
    return signed._replace(signature=signer.sign(signed.id))


def craft(
    signer: Signer,
    seq: int,
    lamport: int,
    deps: Iterable[bytes],
    ops: Iterable[object],
    time: int = 0,
) -> SignedChange:
    """Sign an arbitrary change, as a (possibly Byzantine) author could."""
    from huskies.crdt import Change, sign_change

    change = Change(signer.public_key, seq, lamport, tuple(sorted(deps)), time, tuple(ops))  # type: ignore[arg-type]
    return sign_change(change, signer).signed
