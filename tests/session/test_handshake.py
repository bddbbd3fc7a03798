"""pqXX and pqIK handshakes through the sans-IO endpoint (04-handshake.md)."""

from __future__ import annotations

import random

import pytest

from qdht.errors import HandshakeError, SessionError
from qdht.session import (
    PQIK,
    PQXX,
    HandshakeFailed,
    HandshakeState,
    MessageReceived,
    SessionConfig,
    SessionEndpoint,
    SessionEstablished,
    SymmetricState,
    cookie_mac,
    mac1_key,
    protocol_name,
)
from qdht.wire import decode

from ._support import Wire, events, identity

A, B, C = ("a", 1), ("b", 2), ("c", 3)


def test_protocol_name_initialises_h_padded_to_hashlen() -> None:
    ss = SymmetricState(protocol_name(PQXX))
    assert protocol_name(PQXX) == b"Noise_pqXX_XWing_ChaChaPoly_BLAKE2b"
    assert ss.h == protocol_name(PQXX).ljust(64, b"\x00")
    assert ss.ck == ss.h


@pytest.mark.parametrize("pattern", [PQXX, PQIK])
def test_handshake_states_agree_on_keys_and_hash(pattern: str) -> None:
    a, b = identity(0).xwing, identity(1).xwing
    rs = b.public_key_bytes() if pattern == PQIK else None
    init = HandshakeState(pattern, initiator=True, prologue=b"p", s=a, rs=rs)
    resp = HandshakeState(pattern, initiator=False, prologue=b"p", s=b)
    writer, reader = init, resp
    step = 0
    while not init.complete:
        msg = writer.write_message(f"payload {step}".encode())
        assert reader.read_message(msg) == f"payload {step}".encode()
        writer, reader = reader, writer
        step += 1
    assert resp.complete
    assert init.split() == tuple(reversed(resp.split()))
    assert init.handshake_hash == resp.handshake_hash
    assert resp.rs == a.public_key_bytes()
    assert init.rs == b.public_key_bytes()


def test_tampered_handshake_message_fails_and_leaves_state_unchanged() -> None:
    a, b = identity(0).xwing, identity(1).xwing
    init = HandshakeState(PQXX, initiator=True, prologue=b"", s=a)
    resp = HandshakeState(PQXX, initiator=False, prologue=b"", s=b)
    resp.read_message(init.write_message(b""))
    msg2 = resp.write_message(b"x")
    before = init.ss.snapshot()
    with pytest.raises(HandshakeError):
        init.read_message(msg2[:-1] + bytes([msg2[-1] ^ 1]))
    assert init.ss.snapshot() == before
    assert init.read_message(msg2) == b"x"


def test_different_prologues_do_not_complete() -> None:
    a, b = identity(0).xwing, identity(1).xwing
    init = HandshakeState(PQXX, initiator=True, prologue=b"v1", s=a)
    resp = HandshakeState(PQXX, initiator=False, prologue=b"v2", s=b)
    resp.read_message(init.write_message(b""))
    with pytest.raises(HandshakeError):
        init.read_message(resp.write_message(b""))


def test_pqxx_establishes_verified_session_and_delivers_queued_message() -> None:
    wire = Wire()
    ea, eb = wire.add(A, identity(0)), wire.add(B, identity(1))
    ea.send_message(identity(1).node_id, b"hello", wire.now, addr=B)
    wire.pump()
    got_a, got_b = events(ea), events(eb)
    assert isinstance(got_a[0], SessionEstablished)
    assert got_a[0] == SessionEstablished(
        identity(1).node_id, B, True, PQXX, got_a[0].handshake_hash
    )
    est_b = [e for e in got_b if isinstance(e, SessionEstablished)]
    assert est_b[0].node_id == identity(0).node_id
    assert est_b[0].pattern == PQXX
    assert est_b[0].handshake_hash == got_a[0].handshake_hash
    assert MessageReceived(identity(0).node_id, A, b"hello") in got_b
    assert ea.stats()["drops"] == {}
    assert eb.stats()["drops"] == {}


def test_pqik_one_round_trip_with_early_data_flagged() -> None:
    wire = Wire()
    ea, eb = wire.add(A, identity(0)), wire.add(B, identity(1))
    static = identity(1).xwing.public_key_bytes()
    ea.send_message(
        identity(1).node_id, b"find", 0.0, addr=B, responder_static=static, idempotent=True
    )
    wire.pump()
    got_a, got_b = events(ea), events(eb)
    assert isinstance(got_a[0], SessionEstablished)
    assert got_a[0].pattern == PQIK
    assert got_b[0] == MessageReceived(identity(0).node_id, A, b"find", early=True)
    assert isinstance(got_b[1], SessionEstablished)
    assert got_b[1].pattern == PQIK
    eb.send_message(identity(0).node_id, b"answer", 0.0)
    wire.pump()
    assert events(ea) == [MessageReceived(identity(1).node_id, B, b"answer")]


def test_initiator_aborts_when_peer_is_not_the_expected_node() -> None:
    wire = Wire()
    ea = wire.add(A, identity(0))
    impostor = wire.add(B, identity(1))
    # mac1 keys are derived from public node IDs: an impostor can compute them.
    impostor._mac1_key = mac1_key(identity(2).node_id)
    ea.send_message(identity(2).node_id, b"secret", 0.0, addr=B)
    wire.pump()
    failed = events(ea)
    assert failed == [HandshakeFailed(identity(2).node_id, B, "wrong-identity", 1)]
    assert ea.stats()["sessions"] == 0
    assert ea.index_count() == 0
    assert impostor.stats()["sessions"] == 0


def test_node_at_wrong_address_ignores_first_message_with_bad_mac1() -> None:
    wire = Wire()
    ea = wire.add(A, identity(0))
    eb = wire.add(B, identity(1))
    ea.send_message(identity(2).node_id, b"secret", 0.0, addr=B)
    wire.advance(11.0)
    assert [(type(e), getattr(e, "reason", "")) for e in events(ea)] == [
        (HandshakeFailed, "timeout")
    ]
    assert eb.stats()["drops"]["bad-mac1"] >= 2


def test_pqik_to_wrong_static_key_never_completes_and_times_out() -> None:
    wire = Wire()
    ea = wire.add(A, identity(0))
    eb = wire.add(B, identity(1))
    wrong = identity(2).xwing.public_key_bytes()
    ea.send_message(identity(1).node_id, b"x", 0.0, addr=B, responder_static=wrong)
    wire.advance(30.0)
    assert [type(e) for e in events(ea)] == [HandshakeFailed]
    assert eb.stats()["drops"].get("bad-handshake", 0) >= 1
    assert eb.stats()["sessions"] == 0


def test_responder_keeps_no_per_initiator_state_before_message_3() -> None:
    wire = Wire()
    ea, eb = wire.add(A, identity(0)), wire.add(B, identity(1))
    ea.connect(B, identity(1).node_id, 0.0)
    for data, _ in ea.datagrams_to_send(0.0):
        eb.receive_datagram(data, A, 0.0)
    # msg1 processed, msg2 sent: nothing held for the initiator.
    msg2 = eb.datagrams_to_send(0.0)
    assert msg2
    assert eb.index_count() == 0
    assert eb.stats()["peers"] == 0
    assert eb.stats()["handshake_buffer"] == 0
    for data, _ in msg2:
        ea.receive_datagram(data, B, 0.0)
    msg3 = ea.datagrams_to_send(0.0)
    for data, _ in msg3[:-1]:
        eb.receive_datagram(data, A, 0.0)
    assert eb.index_count() == 0
    assert eb.stats()["peers"] == 0
    eb.receive_datagram(msg3[-1][0], A, 0.0)
    assert eb.index_count() == 1
    assert eb.stats()["peers"] == 1


def test_replayed_message_3_is_rejected_or_answered_with_the_same_message_4() -> None:
    wire = Wire()
    ea, eb = wire.add(A, identity(0)), wire.add(B, identity(1))
    ea.connect(B, identity(1).node_id, 0.0)
    wire.pump()
    msg3 = [d for d, src, dst in wire.captured if dst == B][2:]
    first_msg4 = [d for d, src, dst in wire.captured if src == B][-1]
    # Replaying msg3 from the same address only re-sends the cached msg4 ...
    wire.captured.clear()
    for data in msg3:
        eb.receive_datagram(data, A, 0.1)
    assert any(d == first_msg4 for d, _ in eb.datagrams_to_send(0.1)) or (
        eb.stats()["drops"].get("replayed-biscuit", 0) == 1
    )
    # ... and from another address it is refused by the biscuit.
    for data in msg3:
        eb.receive_datagram(data, C, 0.2)
    assert eb.stats()["drops"]["bad-biscuit"] == 1
    assert eb.stats()["peers"] == 1


def test_lost_handshake_messages_are_retransmitted() -> None:
    wire = Wire(seed=3, loss=0.3)
    ea, eb = wire.add(A, identity(0)), wire.add(B, identity(1))
    ea.connect(B, identity(1).node_id, 0.0)
    wire.advance(9.0)
    assert [type(e) for e in events(ea)] == [SessionEstablished]
    # Messages are datagrams (best effort): resend until one arrives.
    got_b: list[object] = []
    while MessageReceived(identity(0).node_id, A, b"through loss") not in got_b:
        ea.send_message(identity(1).node_id, b"through loss", wire.now)
        wire.advance(0.1)
        got_b += events(eb)
    assert any(isinstance(e, SessionEstablished) for e in got_b)
    assert ea.stats()["handshake_retransmits"] >= 1


def test_handshake_times_out_when_nobody_answers() -> None:
    wire = Wire()
    ea = wire.add(A, identity(0), SessionConfig(handshake_timeout=5.0))
    ea.send_message(identity(1).node_id, b"1", 0.0, addr=B)
    ea.send_message(identity(1).node_id, b"2", 0.0)
    wire.advance(6.0)
    assert events(ea) == [HandshakeFailed(identity(1).node_id, B, "timeout", 2)]
    assert ea.get_timer() is None


def test_cookie_required_under_load_then_handshake_completes() -> None:
    wire = Wire()
    ea = wire.add(A, identity(0))
    eb = wire.add(B, identity(1), SessionConfig(under_load_handshakes_per_s=1))
    ec = wire.add(C, identity(2))
    ec.connect(B, identity(1).node_id, 0.0)  # uses up the second's budget
    wire.pump()
    ea.send_message(identity(1).node_id, b"after cookie", 0.0, addr=B)
    wire.pump()
    assert eb.stats()["cookies_sent"] >= 1
    assert eb.stats()["drops"]["cookie-required"] >= 1
    assert ea.stats()["cookies_received"] == 1
    assert MessageReceived(identity(0).node_id, A, b"after cookie") in events(eb)


def test_forged_cookie_reply_is_dropped() -> None:
    wire = Wire()
    ea = wire.add(A, identity(0))
    ea.connect(B, identity(1).node_id, 0.0)
    first = ea.datagrams_to_send(0.0)
    from qdht.wire import CookieReply, HandshakeFragment, decode, encode

    frag = decode(first[0][0])
    assert isinstance(frag, HandshakeFragment)
    ea.receive_datagram(encode(CookieReply(frag.sid, bytes(16), bytes(32))), B, 0.0)
    assert ea.stats()["drops"] == {"bad-cookie": 1}


def test_replies_to_unvalidated_address_stay_within_three_times() -> None:
    wire = Wire()
    wire.add(A, identity(0))
    eb = wire.add(B, identity(1))
    wire.endpoints[A].connect(B, identity(1).node_id, 0.0)
    sent_to_b = sum(len(d) for d, _ in wire.endpoints[A].datagrams_to_send(0.0))
    wire.endpoints[A].handle_timer(0.0)
    wire.endpoints[A].connect(B, identity(1).node_id, 0.0)
    assert sent_to_b > 0
    wire.endpoints[A].datagrams_to_send(0.0)
    # Feed msg1 again and measure the reply.
    wire.endpoints[A]._by_index.clear()
    ea2 = wire.add(("a2", 9), identity(0))
    ea2.connect(B, identity(1).node_id, 0.0)
    received = 0
    for data, _ in ea2.datagrams_to_send(0.0):
        received += len(data)
        eb.receive_datagram(data, ("a2", 9), 0.0)
    reply = sum(len(d) for d, _ in eb.datagrams_to_send(0.0))
    assert 0 < reply <= 3 * received


def test_reply_larger_than_three_times_is_not_sent() -> None:
    wire = Wire()
    ea = wire.add(A, identity(0))
    eb = wire.add(B, identity(1), SessionConfig(amplification_factor=1))
    ea.connect(B, identity(1).node_id, 0.0)
    for data, _ in ea.datagrams_to_send(0.0):
        eb.receive_datagram(data, A, 0.0)
    assert eb.datagrams_to_send(0.0) == []
    assert eb.stats()["drops"] == {"amplification-limit": 1}


def test_sending_to_ourselves_or_oversized_is_local_misuse() -> None:
    wire = Wire()
    ea = wire.add(A, identity(0))
    with pytest.raises(SessionError, match="own node ID"):
        ea.send_message(identity(0).node_id, b"", 0.0, addr=B)
    with pytest.raises(SessionError, match="max_message_size"):
        ea.send_message(identity(1).node_id, bytes(73_729), 0.0, addr=B)
    with pytest.raises(SessionError, match="pass addr"):
        ea.send_message(identity(1).node_id, b"", 0.0)


def test_fragment_mac1_covers_every_field_but_the_macs() -> None:
    from qdht.wire import HandshakeFragment

    wire = Wire()
    ea = wire.add(A, identity(0))
    ea.connect(B, identity(1).node_id, 0.0)
    frag = decode(ea.datagrams_to_send(0.0)[0][0])
    assert isinstance(frag, HandshakeFragment)
    key = mac1_key(identity(1).node_id)
    assert cookie_mac(key, frag.mac_input()) == frag.mac1
    assert frag.mac_input()[:7] == b"qdht-hs"
    tampered = HandshakeFragment(
        frag.kind, frag.sid, 1, frag.index, frag.count, frag.body, frag.mac1
    )
    assert cookie_mac(key, tampered.mac_input()) != frag.mac1


def test_global_handshake_buffer_is_bounded_and_evicts_oldest() -> None:
    config = SessionConfig(
        handshake_reassembly_slots=8,
        under_load_handshakes_per_s=10_000,
        handshake_burst_per_address=10_000,
    )
    wire = Wire()
    eb = wire.add(B, identity(1), config)
    for n in range(50):  # first fragments of 50 first messages, never completed
        ea = SessionEndpoint(identity(0), rng=random.Random(n).randbytes)
        ea.connect(B, identity(1).node_id, 0.0)
        eb.receive_datagram(ea.datagrams_to_send(0.0)[0][0], ("x", n), 0.0)
    stats = eb.stats()
    assert stats["handshake_buffer"] == 8
    assert stats["drops"]["handshake-buffer-evicted"] == 42
    assert stats["peers"] == 0
    eb.handle_timer(11.0)
    assert eb.stats()["handshake_buffer"] == 0
    assert eb.stats()["handshake_buffer_bytes"] == 0
