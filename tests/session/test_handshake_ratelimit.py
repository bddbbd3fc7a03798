"""Handshake rate limits of the responder: per source address, global, per node ID (04 §5.5)."""

from __future__ import annotations

import random
from collections.abc import Hashable

import pytest

from qdht.errors import ConfigError, SessionError
from qdht.session import MessageReceived, SessionConfig, SessionEndpoint, SessionEstablished

from ._support import Wire, events, identity

B = ("10.0.0.2", 6881)
#: Cookies are never demanded below this: each test looks at one limit only.
NO_LOAD = 1_000_000


def first_message(seed: int) -> list[bytes]:
    """The datagrams of a fresh pqXX first message to identity 1 (a new ephemeral each time)."""
    initiator = SessionEndpoint(identity(0), rng=random.Random(seed).randbytes)
    initiator.connect(B, identity(1).node_id, 0.0)
    return [data for data, _ in initiator.datagrams_to_send(0.0)]


def offer(responder: SessionEndpoint, seed: int, src: Hashable, now: float = 0.0) -> None:
    for data in first_message(seed):
        responder.receive_datagram(data, src, now)


def responder(**limits: float) -> SessionEndpoint:
    config = SessionConfig(under_load_handshakes_per_s=NO_LOAD, **limits)  # type: ignore[arg-type]
    return SessionEndpoint(identity(1), config, rng=random.Random(99).randbytes)


def test_per_address_limit_ignores_the_port_and_spares_other_addresses() -> None:
    eb = responder(handshake_burst_per_address=3, handshake_rate_per_address=1.0)
    for port in range(5):  # one host, five ports: one budget
        offer(eb, port, ("192.0.2.7", 1000 + port))
    offer(eb, 10, ("192.0.2.8", 1000))
    stats = eb.stats()
    assert stats["responder_msg2"] == 4  # three from the flooder, one from its neighbour
    assert stats["drops"]["handshake-rate-address"] == 2
    assert stats["cookies_sent"] == 2  # each refusal tells the source how to validate itself


def test_per_address_bucket_refills_at_its_rate() -> None:
    eb = responder(handshake_burst_per_address=1, handshake_rate_per_address=2.0)
    offer(eb, 1, ("192.0.2.7", 1), 0.0)
    offer(eb, 2, ("192.0.2.7", 1), 0.1)
    offer(eb, 3, ("192.0.2.7", 1), 0.6)
    assert eb.stats()["responder_msg2"] == 2
    assert eb.stats()["drops"]["handshake-rate-address"] == 1


def test_spoofed_flood_does_not_lock_out_the_real_owner_of_the_address() -> None:
    """Forged initiations drain the unvalidated bucket only; the owner's cookie opens its own."""
    wire = Wire()
    a_addr = ("192.0.2.1", 5000)
    config = SessionConfig(
        under_load_handshakes_per_s=NO_LOAD,
        handshake_burst_per_address=2,
        handshake_rate_per_address=0.001,
    )
    ea = wire.add(a_addr, identity(0))
    eb = wire.add(B, identity(1), config)
    for seed in range(4):  # an off-path attacker forging the owner's address
        offer(eb, 100 + seed, a_addr)
    eb.datagrams_to_send(0.0)  # its cookies go to the owner, who did not ask: lost
    ea.send_message(identity(1).node_id, b"hello", 0.0, addr=B)
    wire.pump()
    assert eb.stats()["drops"]["handshake-rate-address"] >= 1
    assert ea.stats()["cookies_received"] == 1
    assert any(isinstance(e, SessionEstablished) for e in events(ea))


def test_global_limit_caps_initiations_from_all_sources() -> None:
    eb = responder(handshake_burst_global=2, handshake_rate_global=1.0)
    for n in range(4):  # four different hosts
        offer(eb, n, (f"198.51.100.{n}", 7000))
    assert eb.stats()["responder_msg2"] == 2
    assert eb.stats()["drops"]["handshake-rate-global"] == 2
    offer(eb, 9, ("198.51.100.9", 7000), 1.0)  # a second later one token is back
    assert eb.stats()["responder_msg2"] == 3


def test_per_node_limit_refuses_an_identity_that_rehandshakes_too_often() -> None:
    wire = Wire()
    config = SessionConfig(handshake_burst_per_node=1, handshake_rate_per_node=0.01)
    eb = wire.add(B, identity(1), config)
    first = wire.add(("192.0.2.1", 1), identity(0))
    first.send_message(identity(1).node_id, b"one", 0.0, addr=B)
    wire.pump()
    assert any(isinstance(e, SessionEstablished) for e in events(eb))
    # The same node ID again from a new endpoint (a restarted or cloned node).
    second = wire.add(("192.0.2.2", 1), identity(0))
    second.send_message(identity(1).node_id, b"two", 0.0, addr=B)
    wire.pump()
    assert eb.stats()["drops"]["handshake-rate-node"] == 1
    assert not any(isinstance(e, SessionEstablished) for e in events(second))
    # Another identity is not affected.
    third = wire.add(("192.0.2.3", 1), identity(2))
    third.send_message(identity(1).node_id, b"three", 0.0, addr=B)
    wire.pump()
    assert any(isinstance(e, SessionEstablished) for e in events(third))


def test_limits_cost_no_kem_work_when_refused() -> None:
    """A refused initiation never reaches the responder's KEM (no message 2, no biscuit)."""
    eb = responder(handshake_burst_global=1, handshake_rate_global=0.001)
    for n in range(50):
        offer(eb, n, (f"203.0.113.{n}", 1))
    assert eb.stats()["responder_msg2"] == 1
    assert eb.stats()["drops"]["handshake-rate-global"] == 49
    assert eb.stats()["handshake_buffer"] <= 50  # later fragments wait, bounded


@pytest.mark.parametrize(
    "field",
    [
        "handshake_burst_per_address",
        "handshake_burst_global",
        "handshake_burst_per_node",
        "handshake_rate_keys",
    ],
)
def test_bursts_must_be_integers(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        SessionConfig(**{field: 2.5})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "field", ["handshake_rate_per_address", "handshake_rate_global", "handshake_rate_per_node"]
)
def test_rates_must_be_positive(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        SessionConfig(**{field: 0})


A_ADDR = ("192.0.2.1", 5000)


def established(
    config: SessionConfig | None = None,
) -> tuple[Wire, SessionEndpoint, SessionEndpoint]:
    """A (identity 0, at A_ADDR) with a session to B (identity 1, ``config``)."""
    wire = Wire()
    ea = wire.add(A_ADDR, identity(0))
    eb = wire.add(B, identity(1), config)
    ea.send_message(identity(1).node_id, b"before", 0.0, addr=B)
    wire.pump()  # the handshake's few datagrams fit in any burst below
    assert any(isinstance(e, SessionEstablished) for e in events(eb))
    return wire, ea, eb


def test_a_garbage_flood_mutes_its_source_but_not_its_sessions() -> None:
    config = SessionConfig(unauthenticated_per_address=1.0, unauthenticated_burst_per_address=10)
    wire, ea, eb = established(config)
    a_addr = A_ADDR
    for n in range(200):  # garbage from A's address (A itself, or a forger)
        eb.receive_datagram(bytes([n % 256]) * 40, a_addr, 0.0)
    assert eb.stats()["drops"]["source-muted"] >= 180
    assert eb.stats()["sources_muted"] == 1
    # A's authenticated packets still pass, other sources are not muted.
    ea.send_message(identity(1).node_id, b"during", 0.0)
    wire.pump()
    assert MessageReceived(identity(0).node_id, a_addr, b"during") in events(eb)
    offer(eb, 5, ("192.0.2.50", 1))
    assert eb.stats()["responder_msg2"] >= 1
    # After mute_time the source is heard again.
    muted = eb.stats()["drops"]["source-muted"]
    eb.receive_datagram(b"\x00" * 40, a_addr, 1.5)
    assert eb.stats()["drops"]["source-muted"] == muted
    assert eb.stats()["drops"]["malformed"] >= 1


def test_a_refused_peer_is_dropped_before_decryption_until_the_refusal_ends() -> None:
    wire, ea, eb = established()
    eb.refuse(identity(0).node_id, until=5.0)
    ea.send_message(identity(1).node_id, b"while banned", 0.0)
    wire.pump()
    assert not any(isinstance(e, MessageReceived) for e in events(eb))
    assert eb.stats()["drops"]["refused-peer"] == 1
    assert "source-muted" not in eb.stats()["drops"]  # its packets are not garbage
    wire.now = 6.0
    ea.send_message(identity(1).node_id, b"after", 6.0)
    wire.pump()
    assert MessageReceived(identity(0).node_id, A_ADDR, b"after") in events(eb)


def test_refuse_checks_its_argument() -> None:
    eb = responder()
    with pytest.raises(SessionError, match="node_id"):
        eb.refuse(b"short", 1.0)


def test_a_repeat_offender_is_muted_twice_as_long_each_time_up_to_the_maximum() -> None:
    config = SessionConfig(
        unauthenticated_per_address=1.0,
        unauthenticated_burst_per_address=5,
        mute_time=1.0,
        max_mute_time=4.0,
    )
    eb = SessionEndpoint(identity(1), config)
    src = ("192.0.2.9", 7000)
    key = "192.0.2.9"  # sources are counted by IP address (the port is ignored)
    now = 0.0
    lengths = []
    for _ in range(4):
        while key not in eb.muted_sources:  # garbage until the source is muted
            eb.receive_datagram(b"\x00" * 40, src, now)
        lengths.append(eb.muted_sources[key] - now)
        now = eb.muted_sources[key] + 0.1  # offends again just after its mute ends
        eb.receive_datagram(b"\x00" * 40, src, now)  # heard again: not muted
        assert eb.stats()["drops"]["malformed"] >= 1
    assert lengths == pytest.approx([1.0, 2.0, 4.0, 4.0])
    # A source that stays quiet as long as its last mute lasted starts again at mute_time.
    quiet = now + 4.5
    while eb.muted_sources.get(key, 0.0) <= quiet:
        eb.receive_datagram(b"\x00" * 40, src, quiet)
    assert eb.muted_sources[key] - quiet == pytest.approx(1.0)


def test_many_sources_under_their_own_limit_share_one_budget_and_get_muted() -> None:
    config = SessionConfig(unauthenticated_global=100.0, unauthenticated_burst_global=50)
    wire, ea, eb = established(config)
    sources = [(f"198.51.100.{i}", 9000) for i in range(1, 17)]
    for n in range(10):  # 16 sources, 10 datagrams each: far under 200/s apiece
        for src in sources:
            eb.receive_datagram(bytes([n]) * 40, src, 0.01 * n)
    drops = eb.stats()["drops"]
    assert drops["malformed"] + drops["unauthenticated-global"] <= 160
    assert drops["malformed"] <= 50 + 1  # the burst, and what refilled meanwhile
    assert drops["unauthenticated-global"] >= 1
    muted = [src for src in sources if src[0] in eb.muted_sources]
    assert len(muted) == len(sources)  # every source of the overload
    assert drops["source-muted"] >= 16 * 5
    # The established session is not charged and not queued behind them.
    ea.send_message(identity(1).node_id, b"during", 0.1)
    wire.pump()
    assert MessageReceived(identity(0).node_id, A_ADDR, b"during") in events(eb)


def test_a_refused_peer_blocks_its_own_address_only() -> None:
    _, ea, eb = established()
    eb.refuse(identity(0).node_id, until=5.0)
    ea.send_message(identity(1).node_id, b"flood", 1.0)
    packets = ea.datagrams_to_send(1.0)
    for data, _ in packets:  # the same packet from a forged address: no block
        eb.receive_datagram(data, ("203.0.113.5", 1), 1.0)
    assert eb.blocked_sources == {}
    for data, _ in packets:
        eb.receive_datagram(data, A_ADDR, 1.0)
    assert eb.blocked_sources == {A_ADDR: 5.0}
    assert eb.stats()["drops"]["refused-peer"] >= 2
