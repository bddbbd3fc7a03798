"""Remote input never raises out of the mixnet cores: it is dropped and counted."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from qdht.mixnet import (
    KIND_COVER,
    KIND_MESSAGE,
    KIND_REPLY_FRAGMENT,
    KIND_REQUEST,
    KIND_REQUEST_FRAGMENT,
    MixClient,
    MixnetConfig,
    MixRole,
    decode_payload,
)
from qdht.wire import MixDelivery

from ._support import seeded

T0 = 1_750_000_000.0
CONFIG = MixnetConfig()
GEOMETRY = CONFIG.geometry


def _mix() -> MixRole:
    return MixRole(seeded("fuzz-mix"), CONFIG, now=T0, random_source=random.Random(0))


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=64), st.integers(0, GEOMETRY.packet_size - 64))
def test_junk_packets_of_every_size_are_counted_never_raised(junk: bytes, at: int) -> None:
    mix = _mix()
    full = bytearray(seeded("fuzz-base", GEOMETRY.packet_size))
    full[:2] = b"\x00\x01"
    full[at : at + len(junk)] = junk
    mix.receive_packet(bytes(full), seeded("peer"), T0)
    mix.receive_packet(bytes(full[: at + 1]), seeded("peer"), T0)
    drops = mix.stats()["drops"]
    assert sum(drops.values()) == 2
    assert set(drops) <= {"wrong-size", "bad-version", "bad-kem", "bad-mac"}
    assert mix.packets_to_send(T0 + 100) == []


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=1024, max_size=8000), st.binary(min_size=16, max_size=16))
def test_junk_deliveries_are_counted_never_raised(payload: bytes, surb: bytes) -> None:
    client = MixClient(seeded("fuzz-client"), CONFIG, now=T0, random_source=random.Random(0))
    client.receive_delivery(MixDelivery(payload, surb), T0)
    client.receive_delivery(MixDelivery(payload), T0)
    assert client.stats()["drops"] == {"unknown-surb": 1, "unexpected-delivery": 1}
    assert client.next_event() is None


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=GEOMETRY.payload_size + 1))
def test_junk_payloads_decode_to_none_or_a_message(data: bytes) -> None:
    padded = data.ljust(GEOMETRY.payload_size, b"\x00") if len(data) < 40 else data
    message = decode_payload(GEOMETRY, padded)
    kinds = (KIND_COVER, KIND_MESSAGE, KIND_REQUEST, KIND_REQUEST_FRAGMENT, KIND_REPLY_FRAGMENT)
    assert message is None or message.kind in kinds
