"""The mix role: every hop role, delays, replays, epochs, limits, drops by reason."""

from __future__ import annotations

import random

import pytest

from qdht.mixnet import (
    KIND_MESSAGE,
    KIND_REQUEST,
    Deliver,
    Forward,
    KeysRotated,
    Message,
    MessageReceived,
    MixnetConfig,
    MixRole,
    PathHop,
    create_packet,
    create_surb,
    decode_payload,
    encode_payload,
    open_surb_reply,
    surb_reply_packet,
    unwrap,
)
from qdht.wire import MixDelivery, MixPacket

from ._support import MemoryMixnet, seeded

T0 = 1_750_000_000.0  # inside epoch 1458333 of a 1200 s period
PEER = seeded("peer")


def _roles(count: int, config: MixnetConfig, now: float = T0) -> list[MixRole]:
    return [
        MixRole(seeded(f"node-{i}"), config, now=now, random_source=random.Random(i))
        for i in range(count)
    ]


def _path(roles: list[MixRole], epoch: int, delays: tuple[int, ...]) -> list[PathHop]:
    return [
        PathHop(r.node_id, r.keys.public_keys()[epoch], d)
        for r, d in zip(roles, delays, strict=True)
    ]


def _message(config: MixnetConfig, data: bytes) -> bytes:
    return encode_payload(config.geometry, KIND_MESSAGE, data)


def test_each_hop_holds_for_its_delay_then_forwards_and_the_exit_receives() -> None:
    config = MixnetConfig()
    roles = _roles(3, config)
    epoch = roles[0].keys.current
    packet = create_packet(
        config.geometry,
        _path(roles, epoch, (100, 40, 10)),
        roles[2].node_id,
        _message(config, b"hello exit"),
    )
    roles[0].receive_packet(packet, PEER, T0)
    assert roles[0].get_timer() == pytest.approx(T0 + 0.1)
    assert roles[0].packets_to_send(T0 + 0.099) == []
    (out,) = roles[0].packets_to_send(T0 + 0.1)
    assert out.peer == roles[1].node_id
    assert isinstance(out.message, MixPacket)
    roles[1].receive_packet(out.message.data, roles[0].node_id, T0 + 0.1)
    (out,) = roles[1].packets_to_send(T0 + 0.15)  # its timer ran 10 ms late
    assert list(roles[0].release_lateness) == [pytest.approx(0.0, abs=1e-6)]
    assert list(roles[1].release_lateness) == [pytest.approx(0.01, abs=1e-6)]
    assert out.peer == roles[2].node_id
    assert isinstance(out.message, MixPacket)
    roles[2].receive_packet(out.message.data, roles[1].node_id, T0 + 0.14)
    assert roles[2].packets_to_send(T0 + 0.15) == []
    events = []
    while (event := roles[2].next_event()) is not None:
        events.append(event)
    received = [e for e in events if isinstance(e, MessageReceived)]
    assert [e.message.data for e in received] == [b"hello exit"]
    assert roles[2].stats()["messages_received"] == 1
    assert [r.stats()["mixed"] for r in roles] == [1, 1, 1]


def test_replay_is_dropped_even_after_the_packet_left() -> None:
    config = MixnetConfig()
    roles = _roles(3, config)
    epoch = roles[0].keys.current
    packet = create_packet(
        config.geometry, _path(roles, epoch, (0, 0, 0)), roles[2].node_id, _message(config, b"x")
    )
    roles[0].receive_packet(packet, PEER, T0)
    assert len(roles[0].packets_to_send(T0)) == 1
    roles[0].receive_packet(packet, PEER, T0 + 5)
    assert roles[0].packets_to_send(T0 + 5) == []
    assert roles[0].stats()["drops"] == {"replay": 1}


def test_tampered_wrong_size_and_foreign_packets_are_dropped_by_reason() -> None:
    config = MixnetConfig()
    roles = _roles(3, config)
    epoch = roles[0].keys.current
    packet = create_packet(
        config.geometry, _path(roles, epoch, (0, 0, 0)), roles[2].node_id, _message(config, b"x")
    )
    mix = roles[0]
    mix.receive_packet(packet[:-1], PEER, T0)
    flipped = bytearray(packet)
    flipped[2000] ^= 1
    mix.receive_packet(bytes(flipped), PEER, T0)
    mix.receive_packet(b"\x00\x07" + packet[2:], PEER, T0)
    roles[1].receive_packet(packet, PEER, T0)  # not built for this mix
    assert mix.stats()["drops"] == {"wrong-size": 1, "bad-mac": 1, "bad-version": 1}
    assert roles[1].stats()["drops"] == {"bad-mac": 1}
    # The tampered copy was not remembered: the genuine packet still goes through.
    mix.receive_packet(packet, PEER, T0)
    assert len(mix.packets_to_send(T0)) == 1


def test_tampered_payload_dies_at_the_exit_as_bad_payload() -> None:
    config = MixnetConfig()
    net = MemoryMixnet(config, 3, now=T0)
    roles = list(net.mixes.values())
    epoch = roles[0].keys.current
    packet = bytearray(
        create_packet(
            config.geometry,
            _path(roles, epoch, (0, 0, 0)),
            roles[2].node_id,
            _message(config, b"x"),
        )
    )
    packet[-5] ^= 0x80
    roles[0].receive_packet(bytes(packet), PEER, T0)
    net.run(T0 + 0.05)
    assert roles[2].stats()["drops"] == {"bad-payload": 1}
    assert not [e for _, e in net.events if isinstance(e, MessageReceived)]


def test_packets_for_the_previous_and_next_epoch_keys_unwrap_older_ones_do_not() -> None:
    config = MixnetConfig(epoch_period=60.0)
    roles = _roles(3, config)
    mix = roles[0]
    first = mix.keys.current
    keys_then = mix.keys.public_keys()
    assert sorted(keys_then) == [first, first + 1]

    def packet_for(epoch: int, keys: dict[int, bytes]) -> bytes:
        path = [PathHop(mix.node_id, keys[epoch], 0)] + [
            PathHop(r.node_id, r.keys.public_keys()[first], 0) for r in roles[1:]
        ]
        return create_packet(config.geometry, path, roles[2].node_id, _message(config, b"e"))

    for_next = packet_for(first + 1, keys_then)
    for_current = packet_for(first, keys_then)
    mix.handle_timer(T0 + 60)  # one epoch later
    assert any(isinstance(e, KeysRotated) for e in iter(mix.next_event, None))
    mix.receive_packet(for_next, PEER, T0 + 60)  # now the current key
    mix.receive_packet(for_current, PEER, T0 + 60)  # now the previous key
    assert mix.stats()["mixed"] == 2
    late = packet_for(first, keys_then)
    mix.handle_timer(T0 + 120)  # two epochs later: the first key is erased
    mix.receive_packet(late, PEER, T0 + 120)
    assert mix.stats()["drops"] == {"bad-mac": 1}
    assert sorted(mix.keys.public_keys()) == [first + 1, first + 2, first + 3]


def test_surb_is_single_use_at_its_first_hop() -> None:
    config = MixnetConfig()
    net = MemoryMixnet(config, 3, now=T0)
    roles = list(net.mixes.values())
    epoch = roles[0].keys.current
    requester = seeded("requester")
    surb, _ = create_surb(config.geometry, _path(roles, epoch, (0, 0, 0)), requester)
    first_hop, packet = surb_reply_packet(config.geometry, surb, _message(config, b"a"))
    _, again = surb_reply_packet(config.geometry, surb, _message(config, b"b"))
    mix = net.mixes[first_hop]
    mix.receive_packet(packet, PEER, T0)
    mix.receive_packet(again, PEER, T0)
    assert mix.stats()["drops"] == {"replay": 1}
    assert mix.stats()["mixed"] == 1


def test_exit_replies_through_the_request_reply_block() -> None:
    config = MixnetConfig()
    net = MemoryMixnet(config, 3, now=T0)
    roles = list(net.mixes.values())
    epoch = roles[0].keys.current
    requester = seeded("requester")
    surb, keys = create_surb(config.geometry, _path(roles[::-1], epoch, (0, 0, 0)), requester)
    payload = encode_payload(config.geometry, KIND_REQUEST, b"get k", surb)
    packet = create_packet(
        config.geometry, _path(roles, epoch, (0, 0, 0)), roles[2].node_id, payload
    )
    roles[0].receive_packet(packet, PEER, T0)
    net.run(T0 + 0.02)
    (request,) = [e for _, e in net.events if isinstance(e, MessageReceived)]
    assert request.message.data == b"get k"
    assert request.message.surb == surb
    assert request.message.surb is not None
    roles[2].reply(request.message.surb, b"value", T0)
    # The reply path starts at this very mix: it mixes the reply itself, then
    # forwards it to the path's second hop.
    (out,) = roles[2].packets_to_send(T0)
    assert out.peer == roles[1].node_id
    assert roles[2].stats()["replies_sent"] == 1
    assert isinstance(out.message, MixPacket)
    data = out.message.data
    for role in roles[1::-1]:
        step = unwrap(config.geometry, role.keys.candidates()[0].key, data)
        if isinstance(step, Forward):
            data = step.packet
    assert isinstance(step, Deliver)
    assert (step.recipient, step.surb_id) == (requester, keys.surb_id)
    opened = open_surb_reply(config.geometry, keys, step.payload)
    assert opened is not None
    assert decode_payload(config.geometry, opened) == Message(KIND_MESSAGE, b"value")


def test_rate_limit_per_session_and_bounded_queue() -> None:
    config = MixnetConfig(decap_rate=1.0, decap_burst=2, max_queue=1)
    roles = _roles(3, config)
    epoch = roles[0].keys.current
    packets = [
        create_packet(
            config.geometry,
            _path(roles, epoch, (1000, 0, 0)),
            roles[2].node_id,
            _message(config, bytes([i])),
        )
        for i in range(4)
    ]
    mix = roles[0]
    for packet in packets[:3]:
        mix.receive_packet(packet, PEER, T0)
    mix.receive_packet(packets[3], seeded("other-peer"), T0)
    assert mix.stats()["drops"] == {"rate-limited": 1, "queue-full": 2}
    assert mix.stats()["queued"] == 1


def test_unexpected_delivery_is_counted() -> None:
    config = MixnetConfig()
    (mix,) = _roles(1, config)
    mix.receive_delivery(MixDelivery(bytes(2000), bytes(16)), T0)
    mix.receive_delivery(MixDelivery(bytes(2000)), T0)
    assert mix.stats()["drops"] == {"unexpected-delivery": 2}


def test_replay_across_epoch_boundaries_is_never_accepted() -> None:
    config = MixnetConfig(epoch_period=60.0)
    roles = _roles(3, config)
    mix = roles[0]
    epoch = mix.keys.current
    packet = create_packet(
        config.geometry, _path(roles, epoch, (0, 0, 0)), roles[2].node_id, _message(config, b"r")
    )
    mix.receive_packet(packet, PEER, T0)
    assert len(mix.packets_to_send(T0)) == 1
    mix.handle_timer(T0 + 60)  # its key is now the previous epoch's, its filter kept
    mix.receive_packet(packet, PEER, T0 + 60)
    mix.handle_timer(T0 + 120)  # key and filter erased: the replay cannot verify
    mix.receive_packet(packet, PEER, T0 + 120)
    assert mix.stats()["drops"] == {"replay": 1, "bad-mac": 1}
    assert mix.stats()["mixed"] == 1
