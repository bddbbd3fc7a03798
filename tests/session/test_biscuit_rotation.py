"""The responder's biscuit across secret rotations (04-handshake.md §5.3)."""

from __future__ import annotations

from collections.abc import Hashable

from qdht.session import SessionConfig, SessionEndpoint, SessionEstablished

from ._support import Wire, events, identity

A, B, C = ("a", 1), ("b", 2), ("c", 3)
ROTATION = 2.0


def _msg3(
    wire: Wire, initiator: SessionEndpoint, addr: Hashable, peer: int, t: float
) -> list[bytes]:
    """Run messages 1 and 2 at time ``t``; return message 3 (undelivered)."""
    responder = wire.endpoints[B]
    initiator.connect(B, identity(peer).node_id, t)
    for data, _ in initiator.datagrams_to_send(t):
        responder.receive_datagram(data, addr, t)
    for data, _ in responder.datagrams_to_send(t):
        initiator.receive_datagram(data, B, t)
    return [data for data, _ in initiator.datagrams_to_send(t)]


def _deliver(wire: Wire, datagrams: list[bytes], addr: Hashable, t: float) -> None:
    for data in datagrams:
        wire.endpoints[B].receive_datagram(data, addr, t)


def test_biscuit_opens_under_the_previous_secret_and_not_older_ones() -> None:
    wire = Wire()
    config = SessionConfig(secret_rotation=ROTATION)
    ea, ec = wire.add(A, identity(0)), wire.add(C, identity(2))
    eb = wire.add(B, identity(1), config)
    msg3_a = _msg3(wire, ea, A, 1, 0.0)  # biscuit under the first secret
    wire.now = 1.5 * ROTATION
    _deliver(wire, msg3_a, A, wire.now)  # one rotation later: the previous secret
    wire.pump()  # message 4 and the confirming keepalive
    msg3_c = _msg3(wire, ec, C, 1, wire.now)  # biscuit under the second secret
    wire.now = 3.9 * ROTATION
    _deliver(wire, msg3_c, C, wire.now)  # two rotations after the second: gone
    wire.pump()
    assert eb.stats()["drops"].get("bad-biscuit", 0) == 1
    established = [e for e in events(eb) if isinstance(e, SessionEstablished)]
    assert [e.node_id for e in established] == [identity(0).node_id]
    assert [type(e) for e in events(ea)] == [SessionEstablished]


def test_handshakes_keep_completing_across_many_rotations() -> None:
    wire = Wire()
    eb = wire.add(B, identity(1), SessionConfig(secret_rotation=ROTATION))
    for step in range(6):
        t = step * 0.8 * ROTATION
        initiator = SessionEndpoint(identity(0))
        wire.endpoints[A] = initiator
        _deliver(wire, _msg3(wire, initiator, A, 1, t), A, t + 0.5 * ROTATION)
        assert eb.stats()["drops"].get("bad-biscuit", 0) == 0
        assert eb.stats()["handshakes_responded"] == step + 1
