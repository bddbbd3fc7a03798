"""Transport packets, replay window, fragmentation, rekey and bad input (05-transport.md)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdht.session import (
    MessageReceived,
    ReplayWindow,
    SessionClosed,
    SessionConfig,
    SessionEndpoint,
)
from qdht.wire import DataPacket, decode, dumps_canonical, encode

from ._support import Wire, events, identity

A, B = ("a", 1), ("b", 2)


def established(config: SessionConfig | None = None, **faults: float) -> Wire:
    wire = Wire(seed=int(faults.pop("seed", 0)), **faults)
    ea, eb = wire.add(A, identity(0), config), wire.add(B, identity(1), config)
    ea.connect(B, identity(1).node_id, 0.0)
    wire.advance(10.0)
    events(ea), events(eb)
    assert ea.stats()["sessions"] == 1
    assert eb.stats()["sessions"] == 1
    return wire


def one_data_packet(wire: Wire, payload: bytes = b"x") -> bytes:
    ea = wire.endpoints[A]
    ea.send_message(identity(1).node_id, payload, wire.now)
    ((data, _),) = ea.datagrams_to_send(wire.now)
    return data


def test_replay_window_accepts_each_counter_once_within_the_window() -> None:
    window = ReplayWindow(2048)
    for n in (5, 3, 4, 2047 + 5, 10):
        assert window.check(n) is None
        window.mark(n)
        assert window.check(n) == "replayed"
    assert window.check(4) == "out-of-window"
    assert window.check(6) is None
    window.mark(10_000)
    assert window.check(10_000 - 2048) == "out-of-window"
    assert window.check(10_000 - 2047) is None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (
            lambda d: d[:-1] + bytes([d[-1] ^ 1]),
            "malformed",
        ),  # breaks CBOR length? no: last ct byte
        (lambda d: d[: len(d) // 2], "malformed"),
        (lambda d: b"\xff" + d, "malformed"),
    ],
)
def test_truncated_and_garbled_packets_are_dropped(mutate: object, reason: str) -> None:
    wire = established()
    data = one_data_packet(wire)
    eb = wire.endpoints[B]
    before = dict(eb.stats()["drops"])
    assert callable(mutate)
    eb.receive_datagram(mutate(data), A, wire.now)
    drops = eb.stats()["drops"]
    assert sum(drops.values()) == sum(before.values()) + 1
    assert events(eb) == [] or reason != "malformed"


def _packet(data: bytes) -> DataPacket:
    packet = decode(data, expect=(DataPacket,))
    assert isinstance(packet, DataPacket)
    return packet


def test_tampered_forged_replayed_and_unknown_index_packets_are_dropped_by_reason() -> None:
    wire = established()
    eb = wire.endpoints[B]
    data = one_data_packet(wire, b"genuine")
    p = _packet(data)
    tampered = encode(DataPacket(p.rid, p.n, p.ct[:-1] + bytes([p.ct[-1] ^ 1])))
    forged = encode(DataPacket(p.rid, p.n + 1, bytes(len(p.ct))))
    unknown = encode(DataPacket(p.rid ^ 0xFFFF, p.n, p.ct))
    for packet in (tampered, forged, unknown, data, data):
        eb.receive_datagram(packet, A, wire.now)
    assert eb.stats()["drops"] == {"bad-tag": 2, "unknown-index": 1, "replayed": 1}
    assert events(eb) == [MessageReceived(identity(0).node_id, A, b"genuine")]


def test_out_of_window_and_oversized_datagrams_are_dropped() -> None:
    wire = established()
    eb = wire.endpoints[B]
    old = one_data_packet(wire, b"old")
    for _ in range(2100):
        one_data_packet(wire)
    newest = one_data_packet(wire, b"new")
    eb.receive_datagram(newest, A, wire.now)
    eb.receive_datagram(old, A, wire.now)
    eb.receive_datagram(bytes(1201), A, wire.now)
    assert eb.stats()["drops"] == {"out-of-window": 1, "oversized": 1}
    assert events(eb) == [MessageReceived(identity(0).node_id, A, b"new")]


def test_keys_older_than_reject_after_are_refused() -> None:
    wire = established()
    eb = wire.endpoints[B]
    stale = one_data_packet(wire, b"stale")
    wire.advance(200.0)
    eb.receive_datagram(stale, A, wire.now)
    assert sum(eb.stats()["drops"].values()) == 1
    assert not [e for e in events(eb) if isinstance(e, MessageReceived)]


@pytest.mark.parametrize("size", [0, 1, 1087, 1088, 1089, 5000, 65_535, 65_536, 73_728])
def test_messages_of_every_size_cross_in_both_directions(size: int) -> None:
    wire = established()
    payload = random.Random(size).randbytes(size)
    for src, dst, node in ((A, B, identity(0)), (B, A, identity(1))):
        other = identity(1) if node is identity(0) else identity(0)
        wire.endpoints[src].send_message(other.node_id, payload, wire.now)
        wire.pump()
        assert events(wire.endpoints[dst]) == [MessageReceived(node.node_id, src, payload)]


def test_fragmented_messages_survive_duplication_and_reordering() -> None:
    wire = established(seed=7, duplicate=0.2, reorder=0.5)
    rng = random.Random(1)
    sent = [rng.randbytes(rng.randrange(0, 65_537)) for _ in range(12)]
    for payload in sent:
        wire.endpoints[A].send_message(identity(1).node_id, payload, wire.now)
    wire.pump()
    got = [e.payload for e in events(wire.endpoints[B]) if isinstance(e, MessageReceived)]
    assert sorted(got) == sorted(sent)
    assert wire.endpoints[B].stats()["reassembly_bytes"] == 0


def test_fragmented_messages_through_loss_arrive_with_resends_and_partials_expire() -> None:
    wire = established(seed=11, loss=0.05, duplicate=0.05, reorder=0.3)
    rng = random.Random(2)
    wanted = {rng.randbytes(size) for size in (10, 3000, 20_000, 65_536)}
    got: set[bytes] = set()
    for _ in range(100):
        for payload in wanted - got:
            wire.endpoints[A].send_message(identity(1).node_id, payload, wire.now)
        wire.advance(0.5)
        got |= {e.payload for e in events(wire.endpoints[B]) if isinstance(e, MessageReceived)}
        if got == wanted:
            break
    assert got == wanted
    wire.advance(30.0)
    assert wire.endpoints[B].stats()["reassembly_bytes"] == 0


def test_reassembly_caps_bound_memory_per_peer() -> None:
    config = SessionConfig(reassembly_peer_bytes=10_000)
    wire = established(config)
    ea, eb = wire.endpoints[A], wire.endpoints[B]
    ea.send_message(identity(1).node_id, bytes(30_000), wire.now)
    datagrams = ea.datagrams_to_send(wire.now)
    for data, _ in datagrams[:-1]:  # everything but the last fragment
        eb.receive_datagram(data, A, wire.now)
    assert eb.stats()["reassembly_bytes"] <= 10_000
    assert eb.stats()["drops"]["reassembly-full"] >= 1
    wire.advance(11.0)
    assert eb.stats()["reassembly_bytes"] == 0
    assert eb.stats()["drops"]["reassembly-timeout"] == 1


def test_rekey_every_120_s_loses_no_message() -> None:
    wire = established()
    ea, eb = wire.endpoints[A], wire.endpoints[B]
    sent_a, sent_b = [], []
    for i in range(400):
        ea.send_message(identity(1).node_id, b"a%d" % i, wire.now)
        eb.send_message(identity(0).node_id, b"b%d" % i, wire.now)
        sent_a.append(b"a%d" % i)
        sent_b.append(b"b%d" % i)
        wire.advance(1.0)
    got_b = [e.payload for e in events(eb) if isinstance(e, MessageReceived)]
    got_a = [e.payload for e in events(ea) if isinstance(e, MessageReceived)]
    assert got_b == sent_a
    assert got_a == sent_b
    assert ea.stats()["rekeys"] + eb.stats().get("rekeys", 0) >= 3
    assert ea.stats()["drops"] == {}
    assert eb.stats()["drops"] == {}


def test_rekey_after_message_count() -> None:
    wire = established(SessionConfig(rekey_after_messages=50))
    ea = wire.endpoints[A]
    for i in range(120):
        ea.send_message(identity(1).node_id, b"%d" % i, wire.now)
        wire.pump()
    got = [e.payload for e in events(wire.endpoints[B]) if isinstance(e, MessageReceived)]
    assert got == [b"%d" % i for i in range(120)]
    assert ea.stats()["rekeys"] >= 2


def test_idle_session_expires_and_reports_closed() -> None:
    wire = established()
    wire.advance(200.0)
    assert SessionClosed(identity(1).node_id, "expired") in events(wire.endpoints[A])
    assert wire.endpoints[A].stats()["sessions"] == 0
    assert wire.endpoints[A].get_timer() is None


def test_close_tells_the_peer() -> None:
    wire = established()
    wire.endpoints[A].close(identity(1).node_id, wire.now)
    wire.pump()
    assert events(wire.endpoints[B]) == [SessionClosed(identity(0).node_id, "closed-by-peer")]
    assert wire.endpoints[B].stats()["sessions"] == 0


def _mutations(data: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=1300),
        st.tuples(st.integers(0, max(0, len(data) - 1)), st.integers(1, 255)).map(
            lambda t: data[: t[0]] + bytes([data[t[0]] ^ t[1]]) + data[t[0] + 1 :]
        ),
        st.integers(0, len(data)).map(lambda n: data[:n]),
    )


_FUZZ_WIRE: list[Wire] = []
_FUZZ_SAMPLES: list[bytes] = []


def _fuzz_wire() -> Wire:
    if not _FUZZ_WIRE:
        wire = established()
        _FUZZ_SAMPLES.extend(d for d, _, _ in wire.captured)
        _FUZZ_SAMPLES.append(one_data_packet(wire, b"sample"))
        events(wire.endpoints[B])
        _FUZZ_WIRE.append(wire)
    return _FUZZ_WIRE[0]


@given(data=st.data())
def test_fuzzed_datagrams_only_cause_drops_and_never_disturb_the_session(
    data: st.DataObject,
) -> None:
    wire = _fuzz_wire()
    sample = data.draw(st.sampled_from(_FUZZ_SAMPLES))
    packet = data.draw(_mutations(sample))
    for endpoint in (wire.endpoints[A], wire.endpoints[B]):
        endpoint.receive_datagram(packet, ("evil", 6), wire.now)
        endpoint.receive_datagram(packet, A if endpoint is wire.endpoints[B] else B, wire.now)
    for endpoint in wire.endpoints.values():
        assert "internal-error" not in endpoint.stats()["drops"]
        for event in events(endpoint):
            assert not isinstance(event, SessionClosed)
        endpoint.datagrams_to_send(wire.now)
    payload = data.draw(st.binary(max_size=3000))
    wire.endpoints[A].send_message(identity(1).node_id, payload, wire.now)
    wire.pump()
    got = [e for e in events(wire.endpoints[B]) if isinstance(e, MessageReceived)]
    assert got[-1].payload == payload


def test_datagram_size_is_configurable() -> None:
    config = SessionConfig(datagram_size=700)
    wire = established(config)
    wire.endpoints[A].send_message(identity(1).node_id, bytes(10_000), wire.now)
    wire.pump()
    assert max(len(d) for d, _, _ in wire.captured) <= 700
    assert [
        len(e.payload) for e in events(wire.endpoints[B]) if isinstance(e, MessageReceived)
    ] == [10_000]


def test_endpoint_is_deterministic_under_a_seeded_rng() -> None:
    def run() -> list[bytes]:
        wire = Wire(seed=5)
        wire.add(A, identity(0))
        wire.add(B, identity(1))
        wire.endpoints[A].connect(B, identity(1).node_id, 0.0)
        first = wire.endpoints[A].datagrams_to_send(0.0)
        return [d for d, _ in first]

    assert run() == run()
    assert isinstance(SessionEndpoint, type)
    assert dumps_canonical({"type": "keepalive"})


def test_fragment_ids_continue_across_a_rekey_so_partials_never_collide() -> None:
    # 05 §4: ids are per peer and keep counting across rekeys, because the
    # receiver reassembles per (peer, id) whichever keys carried a fragment.
    wire = established()
    ea, eb = wire.endpoints[A], wire.endpoints[B]
    wire.advance(121.0)  # the keys are now due for a rekey
    first, second = bytes([1]) * 3000, bytes([2]) * 3000
    ea.send_message(identity(1).node_id, first, wire.now)  # sent on old keys, starts a rekey
    out = ea.datagrams_to_send(wire.now)
    fragments = [d for d, _ in out if decode(d).TYPE == "data"]
    held = fragments.pop()  # the last fragment of `first` is late
    for data, _ in out:
        if data != held:
            eb.receive_datagram(data, A, wire.now)
    wire.pump()
    assert ea.stats()["rekeys"] == 1
    ea.send_message(identity(1).node_id, second, wire.now)  # on the new keys
    wire.pump()
    eb.receive_datagram(held, A, wire.now)
    got = [e.payload for e in events(eb) if isinstance(e, MessageReceived)]
    assert sorted(got) == [first, second]
    assert "bad-fragment" not in eb.stats()["drops"]
    assert "duplicate-fragment" not in eb.stats()["drops"]


def test_a_restarted_sender_does_not_complete_a_stale_partial_message() -> None:
    # 05 §4: ids start at random, so a node that restarts (losing its id
    # counter) does not reuse the id of a partial message the receiver holds.
    wire = established()
    eb = wire.endpoints[B]
    stale = bytes([1]) * 3000
    wire.endpoints[A].send_message(identity(1).node_id, stale, wire.now)
    for data, _ in wire.endpoints[A].datagrams_to_send(wire.now)[:-1]:  # last fragment lost
        eb.receive_datagram(data, A, wire.now)
    restarted = wire.add(A, identity(0))
    fresh = bytes([2]) * 3000
    restarted.send_message(identity(1).node_id, fresh, wire.now, addr=B)
    wire.advance(1.0)
    got = [e.payload for e in events(eb) if isinstance(e, MessageReceived)]
    assert got == [fresh]
