"""Batch verification on real worker processes."""

import pytest

from huskies.crdt import Document, Rejected, RejectReason, VerifiedChange, decode_signed
from huskies.verify import BatchVerifier

from .crdt.support import key, set_key

A = key(1)


def make_changes(count: int):
    doc = Document()
    return doc, [set_key(doc, A, "k", n) for n in range(count)]


@pytest.mark.parametrize("workers", [0, 2])
def test_results_match_decode_signed_in_order(workers):
    author, changes = make_changes(40)
    forged = changes[17]._replace(signature=bytes(64))
    malformed = changes[30]._replace(body=b"\xff")
    stream = [*changes[:17], forged, *changes[17:30], malformed, *changes[30:]]
    with BatchVerifier(workers=workers, batch_size=8) as verifier:
        results = list(verifier.verify(iter(stream)))
    assert len(results) == len(stream)
    for item, result in zip(stream, results, strict=True):
        expected = decode_signed(item)
        assert type(result) is type(expected)
        if isinstance(expected, Rejected):
            assert isinstance(result, Rejected)
            assert result.reason is expected.reason
        else:
            assert isinstance(result, VerifiedChange)
            assert result.id == expected.id
    assert isinstance(results[17], Rejected)
    assert results[17].reason is RejectReason.BAD_SIGNATURE
    assert isinstance(results[31], Rejected)
    replica = Document()
    for result in results:
        if isinstance(result, VerifiedChange):
            replica.apply_verified(result)
    assert replica.view() == author.view()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="batch_size"):
        BatchVerifier(workers=0, batch_size=0)
    with pytest.raises(ValueError, match="workers"):
        BatchVerifier(workers=-1)
