"""The sync protocol machine, without sockets: two sessions wired together in memory, each over
a real document, and hostile input for every frame and error path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cbor2
import pytest

from huskies.crdt import (
    Document,
    NodeKey,
    ObjKind,
    Rejected,
    RejectReason,
    SignedChange,
    Transaction,
)
from huskies.sync.frames import (
    PROTOCOL,
    Auth,
    Bye,
    Changes,
    Clock,
    Frame,
    FrameError,
    Hello,
    Ping,
    Pong,
    Ready,
    Resync,
    auth_message,
    decode_frame,
    encode_frame,
)
from huskies.sync.protocol import (
    Action,
    CaughtUp,
    CheckPeer,
    Close,
    Deliver,
    Limits,
    Send,
    Session,
    State,
)

from ..crdt.support import key, set_key, tamper_body


@dataclass
class End:
    """One side: its key, document, session, and what happened to it."""

    name: str
    key: NodeKey
    doc: Document
    session: Session
    allow: Callable[[bytes, str | None], tuple[bool, str]]
    closed: list[Close] = field(default_factory=list)
    caught_up: int = 0
    frames: list[object] = field(default_factory=list)


def end(n: int, *, token: str | None = None, limits: Limits | None = None, allow=None) -> End:
    signer = key(n)
    return End(
        f"node{n}",
        signer,
        Document(),
        Session(signer, bytes([n]) * 32, 0.0, token=token, limits=limits),
        allow or (lambda peer, token: (True, "")),
    )


def run(a: End, b: End, actions: list[Action], source: End, now: float = 0.0) -> None:
    """Carry out `source`'s actions, delivering its sends to the other end, until quiet."""
    pump(a, b, [(source, action) for action in actions], now)


def pump(a: End, b: End, queue: list[tuple[End, Action]], now: float = 0.0) -> None:
    """Carry out actions in order (sends arrive in the order sent), until quiet."""
    while queue:
        who, action = queue.pop(0)
        other = b if who is a else a
        match action:
            case Send(data):
                other.frames.append(decode_frame(data, 1 << 30))
                queue += [(other, x) for x in other.session.receive(data, now, other.doc)]
            case CheckPeer(peer, token):
                allowed, reason = who.allow(peer, token)
                queue += [(who, x) for x in who.session.peer_checked(allowed, reason, who.doc)]
            case Deliver(changes):
                results = [who.doc.apply(c) for c in changes]
                queue += [(who, x) for x in who.session.delivered(results)]
            case CaughtUp():
                who.caught_up += 1
            case Close():
                who.closed.append(action)


def connect(a: End, b: End) -> None:
    """Both ends send Hello as they connect, before reading anything."""
    starts = [(a, x) for x in a.session.start()] + [(b, x) for x in b.session.start()]
    pump(a, b, starts)


def edits(doc: Document, signer: NodeKey, count: int, prefix: str) -> list[SignedChange]:
    return [set_key(doc, signer, f"{prefix}{i}", i) for i in range(count)]


def test_two_nodes_authenticate_and_exchange_only_what_the_other_lacks():
    a, b = end(1), end(2)
    shared = edits(a.doc, a.key, 3, "s")
    for change in shared:
        b.doc.apply(change)
    edits(a.doc, a.key, 4, "a")
    edits(b.doc, b.key, 2, "b")
    connect(a, b)
    assert a.session.state is b.session.state is State.OPEN
    assert (a.session.peer, b.session.peer) == (b.key.public_key, a.key.public_key)
    assert a.caught_up == b.caught_up == 1
    assert a.doc.view() == b.doc.view()
    assert a.doc.clock() == b.doc.clock()
    sent_to_b = [c for f in b.frames if isinstance(f, Changes) for c in f.changes]
    assert len(sent_to_b) == 4  # the three shared changes were not sent again
    assert not a.closed
    assert not b.closed


def test_catch_up_is_chunked_and_live_changes_follow():
    a, b = end(1, limits=Limits(max_chunk_changes=100)), end(2)
    edits(a.doc, a.key, 250, "k")
    connect(a, b)
    chunks = [f for f in b.frames if isinstance(f, Changes)]
    assert [len(c.changes) for c in chunks] == [100, 100, 50]
    assert isinstance(b.frames[-1], Ready | Clock | Auth)
    live = set_key(a.doc, a.key, "live", 1)
    run(a, b, a.session.publish(live), a)
    assert b.doc.get(("live",)) == 1
    # A change the peer itself made is not echoed back to it.
    own = set_key(b.doc, b.key, "mine", 1)
    a.doc.apply(own)
    assert a.session.publish(own) == []


def test_chunks_respect_the_byte_limit():
    a, b = end(1, limits=Limits(max_chunk_bytes=20_000)), end(2)
    for i in range(10):
        set_key(a.doc, a.key, f"big{i}", "x" * 5_000)
    connect(a, b)
    chunks = [f for f in b.frames if isinstance(f, Changes)]
    assert len(chunks) >= 3
    assert all(sum(len(c.body) for c in chunk.changes) <= 20_000 for chunk in chunks)
    assert a.doc.view() == b.doc.view()


def test_nothing_is_sent_live_before_the_peer_has_its_catch_up():
    a, b = end(1), end(2)
    early = set_key(a.doc, a.key, "early", 1)
    assert a.session.publish(early) == []  # not open yet: the catch-up will carry it
    connect(a, b)
    assert b.doc.get(("early",)) == 1


def test_a_peer_the_driver_does_not_allow_is_told_and_cut():
    a = end(1, token="bad-token")
    b = end(2, allow=lambda peer, token: (False, f"key not trusted and token {token!r} is unknown"))
    connect(a, b)
    assert b.session.state is a.session.state is State.CLOSED
    assert b.closed[0].peer_fault
    assert "bad-token" in b.closed[0].reason
    assert "peer closed: peer not allowed" in a.closed[0].reason
    assert not any(isinstance(f, Changes) for f in a.frames + b.frames)
    assert not any(isinstance(f, Clock) for f in a.frames)  # b never showed its clock


def test_a_signature_that_does_not_verify_fails_authentication():
    honest = end(1)
    honest_hello = honest.session.start()
    forger = key(9)
    hello = Hello(forger.public_key, bytes(32))
    replies = honest.session.receive(encode_frame(hello), 0, honest.doc)
    assert isinstance(decode_frame(replies[0].data, 1 << 20), Auth)  # type: ignore[union-attr]
    # The forger signs something other than honest's nonce (a replayed Auth, say).
    stale = forger.sign(auth_message(bytes(32), forger.public_key, honest.key.public_key))
    actions = honest.session.receive(encode_frame(Auth(stale)), 0, honest.doc)
    assert isinstance(actions[-1], Close)
    assert "authentication failed" in actions[-1].reason
    assert honest.session.peer is None
    assert honest_hello  # the honest side spoke first, as both sides do


def test_a_signature_by_another_key_than_the_hello_claims_fails():
    honest = end(1)
    impostor, victim = key(8), key(7)
    honest.session.receive(encode_frame(Hello(victim.public_key, bytes(32))), 0, honest.doc)
    message = auth_message(bytes([1]) * 32, victim.public_key, honest.key.public_key)
    actions = honest.session.receive(encode_frame(Auth(impostor.sign(message))), 0, honest.doc)
    assert isinstance(actions[-1], Close)
    assert "authentication failed" in actions[-1].reason


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (Clock({}), "Clock before the handshake finished"),
        (Changes(()), "Changes before the handshake finished"),
        (Ready(), "Ready before the handshake finished"),
        (Resync(), "Resync before the handshake finished"),
        (Auth(bytes(64)), "Auth out of order"),
    ],
)
def test_frames_out_of_order_cut_the_peer(frame, problem):
    honest = end(1)
    actions = honest.session.receive(encode_frame(frame), 0, honest.doc)
    assert isinstance(actions[0], Send)
    assert decode_frame(actions[0].data, 1 << 20) == Bye(problem)
    assert actions[1] == Close(problem, peer_fault=True)
    assert honest.session.receive(encode_frame(Ping(1)), 0, honest.doc) == []  # closed for good


def test_a_second_hello_or_one_with_our_own_key_cuts_the_peer():
    honest = end(1)
    hello = encode_frame(Hello(key(2).public_key, bytes(32)))
    honest.session.receive(hello, 0, honest.doc)
    actions = honest.session.receive(hello, 0, honest.doc)
    assert actions[-1] == Close("a second Hello", peer_fault=True)
    mirror = end(3)
    actions = mirror.session.receive(
        encode_frame(Hello(mirror.key.public_key, bytes(32))), 0, mirror.doc
    )
    assert actions[-1] == Close("the peer claims this node's own key", peer_fault=True)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\xff\x00garbage", "not valid CBOR"),
        (cbor2.dumps({"not": "an array"}), "must be an array"),
        (cbor2.dumps([2, 4]), "version 2"),
        (cbor2.dumps([1, 99]), "unknown frame kind 99"),
        (cbor2.dumps([1, 0, "other/1", bytes(32), bytes(32), None]), "protocol 'other/1'"),
        (cbor2.dumps([1, 0, PROTOCOL, bytes(31), bytes(32), None]), "key must be 32 bytes"),
        (cbor2.dumps([1, 0, PROTOCOL, bytes(32), bytes(32), "t" * 257]), "at most 256"),
        (cbor2.dumps([1, 1, bytes(63)]), "signature must be 64 bytes"),
        (cbor2.dumps([1, 2, [[bytes(32), -1, bytes(32)]]]), "seq must be an integer"),
        (cbor2.dumps([1, 2, [[bytes(32), 1, bytes(32)], [bytes(32), 2, bytes(32)]]]), "twice"),
        (cbor2.dumps([1, 3, [[bytes(32), b"", bytes(32)]]]), "expected 4 fields"),
        (cbor2.dumps([1, 3, [[bytes(32), "body", bytes(32), bytes(64)]]]), "body must be bytes"),
        (cbor2.dumps([1, 4, "extra"]), "expected 0 fields"),
        (cbor2.dumps([1, 5, True]), "ping nonce must be an integer"),
        (cbor2.dumps([1, 8, 7]), "reason must be a string"),
    ],
)
def test_malformed_frames_are_refused_with_what_is_wrong(data, problem):
    with pytest.raises(FrameError, match=problem):
        decode_frame(data, 1 << 20)
    honest = end(1)
    actions = honest.session.receive(data, 0, honest.doc)
    assert isinstance(actions[-1], Close)
    assert actions[-1].peer_fault
    assert problem.split("'")[0] in actions[-1].reason


def test_an_oversized_frame_is_refused_before_decoding():
    honest = end(1, limits=Limits(max_frame_bytes=1000))
    actions = honest.session.receive(b"\x00" * 1001, 0, honest.doc)
    assert isinstance(actions[-1], Close)
    assert "1001 bytes is over the limit of 1000" in actions[-1].reason


# Each is refused by walking its headers, before the CBOR decoder could build anything from it.
HOSTILE_CBOR = [
    pytest.param(b"\x81" * 100_000 + b"\x00", "nests arrays more than 4 deep", id="100k-nested"),
    pytest.param(
        b"\x82\x01\x9b" + (1 << 32).to_bytes(8, "big"), "array of 4294967296 items", id="2^32-items"
    ),
    pytest.param(
        b"\x9a" + (1 << 20).to_bytes(4, "big") + bytes(1 << 20),
        "more than 65536 items: item 1 is an array of 1048576",
        id="1M-items",
    ),
    pytest.param(
        cbor2.dumps([1, [0] * 40_000, *[[]] * 30_000]), "more than 65536 items", id="70k-items"
    ),
    pytest.param(b"\x9f" * 1000 + b"\xff" * 1000, "indefinite-length array", id="indefinite-array"),
    pytest.param(
        b"\x83\x01\x08\x7f\x61a\xff", "indefinite-length text string", id="indefinite-text"
    ),
    pytest.param(
        b"\x82\x01\x5b" + (1 << 62).to_bytes(8, "big"),
        "a string of 4611686018427387904 bytes",
        id="2^62-byte-string",
    ),
    pytest.param(
        b"\x82\x01\x5a" + (1 << 31).to_bytes(4, "big") + b"x" * 100,
        "with 100 left",
        id="2^31-bytes-short",
    ),
    pytest.param(cbor2.dumps([1, 8, {"a": 1}]), "a CBOR map", id="map"),
    pytest.param(cbor2.dumps([1, 5, 1 << 70]), "a CBOR tag", id="bignum-tag"),
    pytest.param(cbor2.dumps([1, 5, 1.5]), "float or simple value", id="float"),
    pytest.param(cbor2.dumps([1, 5, 7]) + b"\x00", "1 bytes after its end", id="trailing"),
    pytest.param(b"\x82\x81\x00", "ends inside an array", id="truncated"),
    pytest.param(b"", "frame is empty", id="empty"),
]


@pytest.mark.parametrize(("data", "problem"), HOSTILE_CBOR)
def test_hostile_cbor_is_refused_before_the_decoder_sees_it(data, problem, monkeypatch):
    a, b = end(1), end(2)
    connect(a, b)  # authenticated: these limits hold for every frame, not only the handshake's
    monkeypatch.setattr(cbor2, "loads", lambda *_: pytest.fail("the CBOR decoder was called"))
    with pytest.raises(FrameError, match=problem):
        decode_frame(data, 8 << 20)
    actions = b.session.receive(data, 0, b.doc)
    assert isinstance(actions[-1], Close)
    assert problem in actions[-1].reason


def test_the_largest_honest_frames_pass_the_structure_check():
    doc, signer = Document(), key(1)
    chunk = edits(doc, signer, 512, "k")  # a full catch-up chunk
    clock = {bytes([n % 256, n // 256]) * 16: doc.clock()[signer.public_key] for n in range(16_000)}
    hello = Hello(bytes(32), bytes(32), "é" * 256)
    for frame in (Changes(tuple(chunk)), Clock(clock), hello, Bye("€" * 512)):
        assert decode_frame(encode_frame(frame), 4 << 20) == frame


def test_before_authentication_a_frame_over_the_small_limit_is_cut_unread(monkeypatch):
    limits = Limits()
    doc, liar = Document(), key(9)
    big = set_key(doc, liar, "big", "x" * 5_000)
    frame = encode_frame(Changes((big,)))
    assert limits.max_handshake_frame_bytes < len(frame) < limits.max_frame_bytes
    honest = end(1)
    with monkeypatch.context() as patched:
        patched.setattr("huskies.sync.frames.check_structure", lambda *_: pytest.fail("walked"))
        patched.setattr(cbor2, "loads", lambda *_: pytest.fail("decoded"))
        actions = honest.session.receive(frame, 0, honest.doc)
    limit = limits.max_handshake_frame_bytes
    problem = f"before authentication: frame of {len(frame)} bytes is over the limit of {limit}"
    assert isinstance(actions[-1], Close)
    assert problem in actions[-1].reason
    # The same frame after authentication is an ordinary chunk of changes.
    a, b = end(1), end(2)
    connect(a, b)
    [deliver] = b.session.receive(frame, 0, b.doc)
    assert deliver == Deliver((big,))


def test_before_authentication_a_frame_of_many_items_is_cut():
    honest = end(1)
    actions = honest.session.receive(cbor2.dumps([1, 5, *range(20)]), 0, honest.doc)
    assert isinstance(actions[-1], Close)
    assert "before authentication: frame holds more than 16 items" in actions[-1].reason


def test_the_handshake_must_finish_by_its_deadline_whatever_the_peer_sends():
    honest = end(1, limits=Limits(handshake_timeout_s=10))
    honest.session.start()
    for second in range(1, 10):
        [pong] = honest.session.receive(encode_frame(Ping(second)), second, honest.doc)
        assert decode_frame(pong.data, 1 << 20) == Pong(second)  # type: ignore[union-attr]
        assert honest.session.tick(second + 0.5) == []
    hello = encode_frame(Hello(key(2).public_key, bytes(32)))
    honest.session.receive(hello, 9.9, honest.doc)  # authenticating late does not help either
    bye, close = honest.session.tick(10)
    reason = "handshake not finished within 10 s of connecting"
    assert decode_frame(bye.data, 1 << 20) == Bye(reason)  # type: ignore[union-attr]
    assert close == Close(reason, peer_fault=True)
    assert honest.session.state is State.CLOSED


def test_an_admitted_peer_is_past_the_handshake_deadline():
    limits = Limits(handshake_timeout_s=10, ping_interval_s=30, ping_timeout_s=60)
    a, b = end(1, limits=limits), end(2, limits=limits)
    connect(a, b)
    assert a.session.tick(25) == []
    assert a.session.state is State.OPEN
    # A peer still waiting for the driver's verdict is not admitted yet.
    checking = end(3, limits=limits, allow=lambda peer, token: (True, ""))
    checking.session.receive(encode_frame(Hello(key(4).public_key, bytes(32))), 0, checking.doc)
    message = auth_message(bytes([3]) * 32, key(4).public_key, checking.key.public_key)
    [check] = checking.session.receive(encode_frame(Auth(key(4).sign(message))), 1, checking.doc)
    assert isinstance(check, CheckPeer)
    assert isinstance(checking.session.tick(10)[-1], Close)


def test_every_frame_survives_the_wire():
    signed = set_key(Document(), key(1), "x", 1)
    frames: list[Frame] = [
        Hello(bytes(32), bytes([7]) * 32, "token"),
        Hello(bytes(32), bytes(32)),
        Auth(bytes(64)),
        Clock(Document().clock()),
        Changes((signed,)),
        Ready(),
        Ping(3),
        Pong(3),
        Resync(),
        Bye("done"),
    ]
    for frame in frames:
        assert decode_frame(encode_frame(frame), 1 << 20) == frame


def test_a_forged_change_cuts_the_peer_but_a_full_pending_set_does_not():
    a, b = end(1), end(2)
    connect(a, b)
    forged = tamper_body(
        set_key(a.doc, a.key, "x", 1), lambda body: body.__setitem__(5, 9), rehash=True
    )
    b_actions = b.session.receive(encode_frame(Changes((forged,))), 0, b.doc)
    assert isinstance(b_actions[0], Deliver)
    results = [b.doc.apply(c) for c in b_actions[0].changes]
    assert isinstance(results[0], Rejected)
    assert results[0].reason is RejectReason.BAD_SIGNATURE
    cut = b.session.delivered(results)
    assert isinstance(cut[-1], Close)
    assert cut[-1].peer_fault
    assert "bad_signature" in cut[-1].reason
    c, d = end(3), end(4)
    connect(c, d)
    full = Rejected(RejectReason.PENDING_FULL, "full", bytes(32))
    assert d.session.delivered([full]) == []
    assert d.session.state is State.OPEN


def test_keepalive_pings_answers_and_cuts_a_silent_peer():
    limits = Limits(ping_interval_s=30, ping_timeout_s=60)
    a, b = end(1, limits=limits), end(2, limits=limits)
    connect(a, b)
    assert a.session.tick(10) == []
    [ping] = a.session.tick(30)
    assert isinstance(ping, Send)
    assert decode_frame(ping.data, 1 << 20) == Ping(1)
    [pong] = b.session.receive(ping.data, 30, b.doc)
    assert isinstance(pong, Send)
    assert decode_frame(pong.data, 1 << 20) == Pong(1)
    assert a.session.receive(pong.data, 31, a.doc) == []
    [closed] = a.session.tick(91.5)  # nothing heard since 31
    assert closed == Close("peer silent for 60 s", peer_fault=True)
    assert a.session.tick(200) == []


def test_a_peer_that_fell_behind_is_caught_up_again_not_dropped():
    a, b = end(1), end(2)
    connect(a, b)
    a.session.fell_behind()
    missed = edits(a.doc, a.key, 5, "m")
    assert all(a.session.publish(c) == [] for c in missed)  # the driver's queue is full
    assert b.doc.view() != a.doc.view()
    resync = a.session.drained()
    assert a.session.drained() == []  # asked once
    run(a, b, resync, a)  # Resync → b's clock → a's catch-up of what b missed
    assert b.doc.view() == a.doc.view()
    assert a.session.sending_live


def test_an_equivocating_author_converges_everywhere():
    """Author 9 signs two different changes with one seq; each node has one of them."""
    liar = key(9)
    first, second = Document(), Document()
    one = set_key(first, liar, "x", "one")
    two = set_key(second, liar, "x", "two")
    assert one.id != two.id
    a, b = end(1), end(2)
    a.doc.apply(one)
    b.doc.apply(two)
    connect(a, b)
    assert a.doc.view() == b.doc.view()
    assert a.doc.changes_since(b.doc.clock()) == []
    assert not a.closed
    assert not b.closed


def test_bye_closes_without_blame_and_close_tells_the_peer():
    a, b = end(1), end(2)
    connect(a, b)
    run(a, b, a.session.close("shutting down"), a)
    assert a.closed == [Close("shutting down", peer_fault=False)]
    assert b.closed == [Close("peer closed: shutting down", peer_fault=False)]
    assert a.session.publish(set_key(a.doc, a.key, "late", 1)) == []


def test_transactions_made_on_both_sides_while_live_converge():
    a, b = end(1), end(2)
    tx = Transaction(a.doc)
    tx.make((), "t", ObjKind.TEXT)
    tx.commit(a.key, 0)
    connect(a, b)
    for i in range(20):
        source = a if i % 2 else b
        tx = Transaction(source.doc)
        tx.insert_text(("t",), 0, f"{i},")
        change = tx.commit(source.key, i)
        run(a, b, source.session.publish(change), source)
    assert a.doc.view() == b.doc.view()
    assert len(str(a.doc.get(("t",)))) > 20
