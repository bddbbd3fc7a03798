"""KEM-Sphinx packets: every hop role, constant size, tampering, reply blocks."""

from __future__ import annotations

import pytest

from qdht.crypto import xwing
from qdht.errors import ConfigError
from qdht.mixnet import (
    Deliver,
    Drop,
    Forward,
    Geometry,
    create_packet,
    create_surb,
    open_surb_reply,
    surb_reply_packet,
    unwrap,
)

from ._support import path_for, seeded

RECIPIENT = seeded("recipient")


def _walk(
    geometry: Geometry, keys: list[xwing.XWingPrivateKey], packet: bytes
) -> list[Forward | Deliver | Drop]:
    out: list[Forward | Deliver | Drop] = []
    for key in keys[: geometry.hops]:
        result = unwrap(geometry, key, packet)
        out.append(result)
        if not isinstance(result, Forward):
            break
        packet = result.packet
    return out


def _packet(geometry: Geometry, keys: list[xwing.XWingPrivateKey]) -> bytes:
    return create_packet(
        geometry, path_for(geometry, keys), RECIPIENT, bytes(geometry.payload_size)
    )


def _flipped(data: bytes, offset: int, mask: int = 1) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


@pytest.mark.parametrize("hops", [3, 5])
def test_packet_travels_every_hop_at_constant_size(
    hops: int, mix_keys: list[xwing.XWingPrivateKey]
) -> None:
    geometry = Geometry(hops=hops)
    path = path_for(geometry, mix_keys)
    payload = seeded("payload", geometry.payload_size)
    packet = create_packet(geometry, path, RECIPIENT, payload)
    assert len(packet) == geometry.packet_size
    steps = _walk(geometry, mix_keys, packet)
    assert len(steps) == hops
    for i, step in enumerate(steps[:-1]):
        assert isinstance(step, Forward)
        assert step.next_hop == path[i + 1].node_id
        assert step.delay_ms == path[i].delay_ms
        assert len(step.packet) == geometry.packet_size
    last = steps[-1]
    assert isinstance(last, Deliver)
    assert (last.recipient, last.surb_id, last.payload) == (RECIPIENT, None, payload)
    assert last.delay_ms == path[-1].delay_ms


def test_sizes_of_the_default_geometries() -> None:
    three, five = Geometry(), Geometry(hops=5)
    assert (three.header_size, three.surb_size, three.packet_size) == (4724, 4788, 11595)
    assert (five.header_size, five.surb_size, five.packet_size) == (7104, 7168, 16355)


def test_a_hop_with_the_wrong_key_drops_bad_mac(mix_keys: list[xwing.XWingPrivateKey]) -> None:
    geometry = Geometry()
    assert unwrap(geometry, mix_keys[1], _packet(geometry, mix_keys)) == Drop("bad-mac")


@pytest.mark.parametrize("offset", [0, 1, 2, 1200, 3000, 4700, 4723])
def test_tampered_header_dies_at_the_first_hop(
    offset: int, mix_keys: list[xwing.XWingPrivateKey]
) -> None:
    geometry = Geometry()
    packet = _flipped(_packet(geometry, mix_keys), offset, 0x40)
    result = unwrap(geometry, mix_keys[0], packet)
    assert isinstance(result, Drop)
    assert result.reason in {"bad-version", "bad-mac", "bad-kem"}


@pytest.mark.parametrize("offset", [4724, 4724 + 40, 11594])
def test_tampered_payload_is_caught_by_the_exit_tag(
    offset: int, mix_keys: list[xwing.XWingPrivateKey]
) -> None:
    geometry = Geometry()
    steps = _walk(geometry, mix_keys, _flipped(_packet(geometry, mix_keys), offset))
    assert all(isinstance(step, Forward) for step in steps[:-1])
    assert steps[-1] == Drop("bad-payload")


def test_tampering_after_the_first_hop_dies_at_the_next(
    mix_keys: list[xwing.XWingPrivateKey],
) -> None:
    geometry = Geometry()
    first = unwrap(geometry, mix_keys[0], _packet(geometry, mix_keys))
    assert isinstance(first, Forward)
    assert unwrap(geometry, mix_keys[1], _flipped(first.packet, 3000)) == Drop("bad-mac")


def test_wrong_size_and_version_are_dropped(mix_keys: list[xwing.XWingPrivateKey]) -> None:
    geometry = Geometry()
    packet = _packet(geometry, mix_keys)
    assert unwrap(geometry, mix_keys[0], packet[:-1]) == Drop("wrong-size")
    assert unwrap(geometry, mix_keys[0], packet + b"\x00") == Drop("wrong-size")
    assert unwrap(geometry, mix_keys[0], b"\x00\x02" + packet[2:]) == Drop("bad-version")
    # A packet of another geometry never verifies: the geometry salts every key.
    five = Geometry(hops=5)
    assert unwrap(five, mix_keys[0], packet) == Drop("wrong-size")


def test_surb_reply_reaches_its_creator_who_alone_opens_it(
    mix_keys: list[xwing.XWingPrivateKey],
) -> None:
    geometry = Geometry()
    path = path_for(geometry, mix_keys)
    creator = seeded("creator")
    surb, keys = create_surb(geometry, path, creator)
    assert len(surb.to_bytes()) == geometry.surb_size
    carried = type(surb).from_bytes(geometry, surb.to_bytes())
    assert carried == surb
    reply = seeded("reply", geometry.payload_size)
    first_hop, packet = surb_reply_packet(geometry, surb, reply)
    assert first_hop == path[0].node_id
    steps = _walk(geometry, mix_keys, packet)
    last = steps[-1]
    assert isinstance(last, Deliver)
    assert (last.recipient, last.surb_id) == (creator, keys.surb_id)
    assert last.payload != reply  # the exit sees only ciphertext
    assert open_surb_reply(geometry, keys, last.payload) == reply
    garbled = bytes([last.payload[0] ^ 1]) + last.payload[1:]
    assert open_surb_reply(geometry, keys, garbled) is None
    assert open_surb_reply(geometry, keys, last.payload[:-1]) is None


def test_local_misuse_raises_config_error(mix_keys: list[xwing.XWingPrivateKey]) -> None:
    geometry = Geometry()
    path = path_for(geometry, mix_keys)
    with pytest.raises(ConfigError, match="payload"):
        create_packet(geometry, path, RECIPIENT, b"short")
    with pytest.raises(ConfigError, match="3 hops"):
        create_packet(geometry, path[:2], RECIPIENT, bytes(geometry.payload_size))
    with pytest.raises(ConfigError, match="recipient"):
        create_packet(geometry, path, b"short", bytes(geometry.payload_size))
    with pytest.raises(ConfigError, match="hops"):
        Geometry(hops=4)
