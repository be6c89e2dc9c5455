import pytest

from huskies.crdt import NodeKey, node_id, parse_node_id, verify_signature


def test_node_id_is_lowercase_hex_of_the_public_key():
    k = NodeKey(bytes(32))
    assert k.node_id == k.public_key.hex()
    assert k.node_id == k.node_id.lower()
    assert len(k.node_id) == 64
    assert parse_node_id(k.node_id) == k.public_key
    assert node_id(k.public_key) == k.node_id


def test_keys_come_from_the_seed_argument_only():
    assert NodeKey(bytes(32)).public_key == NodeKey(bytes(32)).public_key
    assert NodeKey(bytes(32)).public_key != NodeKey(bytes([1]) * 32).public_key
    assert NodeKey(bytes([7]) * 32).seed == bytes([7]) * 32


def test_seed_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="32 bytes"):
        NodeKey(b"short")


def test_signatures_verify_only_for_their_key_and_message():
    a, b = NodeKey(bytes(32)), NodeKey(bytes([1]) * 32)
    sig = a.sign(b"message")
    assert verify_signature(a.public_key, b"message", sig)
    assert not verify_signature(a.public_key, b"massage", sig)
    assert not verify_signature(b.public_key, b"message", sig)
    assert not verify_signature(a.public_key, b"message", sig[:-1])
    assert not verify_signature(b"short", b"message", sig)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "64 hex characters"),
        ("A" * 64, "lowercase"),
        ("zz" * 32, "not hexadecimal"),
    ],
)
def test_bad_node_ids_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_node_id(text)
