import math

import cbor2
import pytest

from huskies.crdt import (
    Change,
    Document,
    ObjKind,
    Rejected,
    RejectReason,
    Transaction,
    decode_signed,
    sign_change,
)
from huskies.crdt.change import change_id
from huskies.crdt.encoding import EncodingError, check_json, encode
from huskies.crdt.ops import MapSet

from .support import key


def test_map_encoding_does_not_depend_on_insertion_order():
    forwards = {"a": 1, "bb": [1, 2], "c": {"x": None, "y": True}}
    backwards = {"c": {"y": True, "x": None}, "bb": [1, 2], "a": 1}
    assert list(forwards) != list(backwards)
    assert encode(forwards) == encode(backwards)


def test_floats_encode_in_their_shortest_exact_form():
    assert encode(1.5) == bytes.fromhex("f93e00")  # half precision is exact
    assert encode(0.1) == bytes.fromhex("fb3fb999999999999a")  # needs double precision
    assert cbor2.loads(encode(0.1)) == 0.1


def test_integers_and_floats_stay_distinct():
    assert encode(1) != encode(1.0)
    assert type(cbor2.loads(encode(1.0))) is float


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(bad):
    with pytest.raises(EncodingError, match="non-finite"):
        check_json({"x": [bad]}, "value")


@pytest.mark.parametrize("bad", [2**63, -(2**63) - 1, 10**30])
def test_integers_beyond_64_bits_are_refused(bad):
    with pytest.raises(EncodingError, match="64 bits"):
        check_json(bad, "value")


@pytest.mark.parametrize(
    ("bad", "message"),
    [({1: "x"}, "not a string"), (b"bytes", "not a JSON value"), ({1, 2}, "not a JSON value")],
)
def test_non_json_values_are_refused_with_their_location(bad, message):
    with pytest.raises(EncodingError, match=message) as caught:
        check_json({"outer": [bad]}, "value")
    assert "value.outer[0]" in str(caught.value)


def test_deep_nesting_is_refused():
    value: object = 1
    for _ in range(40):
        value = [value]
    with pytest.raises(EncodingError, match="nested deeper"):
        check_json(value, "value")


def _signed_with_value(value: object):
    author = key(1)
    change = Change(author.public_key, 1, 1, (), 0, (MapSet((), "k", value),))  # type: ignore[arg-type]
    return sign_change(change, author).signed


def test_same_logical_change_has_one_id_whatever_the_dict_order():
    one = _signed_with_value({"a": 1, "b": 2})
    two = _signed_with_value({"b": 2, "a": 1})
    assert one.id == two.id
    assert one.body == two.body


def test_non_canonical_bytes_are_rejected():
    """An integer written in a longer form than needed is the same number but not our encoding,
    so even a validly signed change in that form is refused: one change, one id."""
    author = key(1)
    signed = _signed_with_value(5)
    # The value 5 ends the body as the byte 0x05; rewrite it in the two-byte form 0x18 0x05.
    assert signed.body.endswith(b"\x05")
    body = signed.body[:-1] + b"\x18\x05"
    assert cbor2.loads(body) == cbor2.loads(signed.body)
    forged = signed._replace(id=change_id(body), body=body)
    forged = forged._replace(signature=author.sign(forged.id))
    result = decode_signed(forged)
    assert isinstance(result, Rejected)
    assert result.reason is RejectReason.NON_CANONICAL
    doc = Document()
    assert doc.apply(forged) == result
    assert doc.view() == {}
    assert doc.change_count == 0


def test_builder_refuses_unencodable_values_and_writes_nothing():
    doc = Document()
    tx = Transaction(doc)
    tx.make((), "m", ObjKind.MAP)
    with pytest.raises(ValueError, match="non-finite"):
        tx.set(("m",), "x", math.nan)
    assert len(tx) == 1
    assert doc.change_count == 0
