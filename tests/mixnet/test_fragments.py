"""Requests and answers larger than one payload (10-mixnet.md §14.6).

Fragment framing and the bounded reassembler alone, then signed records put
and got anonymously at the default 2 KiB geometry, a lost fragment, and a
flood of partial messages, on ``qdht.testing.MemoryNetwork`` under the
autojump clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from qdht.errors import ConfigError, LookupFailedError
from qdht.mixnet import (
    DEFAULT_PAYLOAD_SIZE,
    FRAGMENT_HEADER_SIZE,
    KIND_REPLY_FRAGMENT,
    KIND_REQUEST_FRAGMENT,
    Fragment,
    Geometry,
    MixnetConfig,
    Reassembled,
    Reassembler,
    decode_payload,
    encode_payload,
    fragment_chunk_size,
    fragment_count,
    parse_fragment,
    split_message,
)
from qdht.testing import MemoryNetwork, MixNetwork, open_mix_network
from qdht.wire import AnonAnswer, decode, encode

from .test_node import LIGHT

GEOMETRY = Geometry()
MID = hashlib.sha256(b"message id").digest()[:16]

#: The default geometry (2 KiB user payload), light cover traffic.
DEFAULT_LIGHT = attrs.evolve(LIGHT, user_payload_size=DEFAULT_PAYLOAD_SIZE)


def _data(size: int) -> bytes:
    return hashlib.shake_256(b"fragment data").digest(size)


# ------------------------------------------------------------ framing


def test_a_message_splits_into_full_payloads_and_joins_back() -> None:
    data = _data(5300)
    fragments = split_message(GEOMETRY, data, MID)
    size = fragment_chunk_size(GEOMETRY)
    assert size == DEFAULT_PAYLOAD_SIZE - FRAGMENT_HEADER_SIZE
    assert len(fragments) == fragment_count(GEOMETRY, len(data)) == 3
    assert [len(f.to_bytes()) for f in fragments[:-1]] == [DEFAULT_PAYLOAD_SIZE] * 2
    assert b"".join(f.chunk for f in fragments) == data
    for f in fragments:
        assert parse_fragment(GEOMETRY, f.to_bytes()) == f
        payload = encode_payload(GEOMETRY, KIND_REPLY_FRAGMENT, f.to_bytes())
        assert len(payload) == GEOMETRY.payload_size  # one packet each, like any other
        message = decode_payload(GEOMETRY, payload)
        assert message is not None
        assert message.kind == KIND_REPLY_FRAGMENT
        assert message.data == f.to_bytes()


def test_a_request_may_ask_for_more_fragments_than_its_data_needs() -> None:
    fragments = split_message(GEOMETRY, b"short", MID, count=3)
    assert [(f.index, f.count, f.chunk) for f in fragments] == [
        (0, 3, b"short"),
        (1, 3, b""),
        (2, 3, b""),
    ]
    with pytest.raises(ConfigError, match="fragments"):
        split_message(GEOMETRY, _data(5000), MID, count=2)
    with pytest.raises(ConfigError, match="message id"):
        split_message(GEOMETRY, b"x", b"short id")


def test_a_request_fragment_carries_a_reply_block_and_a_reply_fragment_none() -> None:
    fragment = split_message(GEOMETRY, b"x", MID, count=2)[0].to_bytes()
    with pytest.raises(ConfigError, match="reply block"):
        encode_payload(GEOMETRY, KIND_REQUEST_FRAGMENT, fragment)
    # A request fragment whose SURB slot is zero does not decode.
    bad = bytearray(encode_payload(GEOMETRY, KIND_REPLY_FRAGMENT, fragment))
    bad[0] = KIND_REQUEST_FRAGMENT
    assert decode_payload(GEOMETRY, bytes(bad)) is None


@pytest.mark.parametrize(
    ("comment", "data"),
    [
        ("shorter than the header", MID + b"\x00"),
        ("count zero", MID + bytes([0, 0]) + b"x"),
        ("index past count", MID + bytes([3, 3]) + b"x"),
        ("longer than a payload", MID + bytes([0, 1]) + bytes(DEFAULT_PAYLOAD_SIZE)),
    ],
)
def test_an_invalid_fragment_header_is_refused(comment: str, data: bytes) -> None:
    assert parse_fragment(GEOMETRY, data) is None, comment


# ------------------------------------------------------------ reassembly


def test_fragments_reassemble_in_any_order() -> None:
    data = _data(7000)
    fragments = split_message(GEOMETRY, data, MID)
    store = Reassembler(max_fragments=8, max_open=4, timeout=30.0)
    results = [store.add(f, None, 1.0) for f in reversed(fragments)]
    assert results[:-1] == [None] * (len(fragments) - 1)
    assert results[-1] == Reassembled(MID, data, ())
    assert len(store) == 0


def test_reassembly_refuses_duplicates_mismatches_and_too_many() -> None:
    store = Reassembler(max_fragments=4, max_open=4, timeout=30.0)
    first = Fragment(MID, 0, 3, bytes(fragment_chunk_size(GEOMETRY)))
    assert store.add(first, None, 0.0) is None
    assert store.add(first, None, 0.0) is None
    assert store.add(attrs.evolve(first, index=1, count=2), None, 0.0) is None
    assert store.add(Fragment(b"\x01" * 16, 0, 5, b""), None, 0.0) is None
    assert dict(store.drops) == {
        "fragment-duplicate": 1,
        "fragment-mismatch": 1,
        "fragment-too-many": 1,
    }


def test_a_flood_of_partial_messages_stays_bounded() -> None:
    store = Reassembler(max_fragments=8, max_open=64, timeout=30.0)
    for i in range(10_000):
        fragment = Fragment(i.to_bytes(16, "big"), 0, 8, bytes(fragment_chunk_size(GEOMETRY)))
        assert store.add(fragment, None, i * 0.001) is None
        assert len(store) <= 64
    assert store.drops["fragment-evicted"] == 10_000 - 64
    # An honest message still completes in the middle of the flood ...
    honest = split_message(GEOMETRY, _data(3000), MID)
    assert store.add(honest[0], None, 10.0) is None
    assert store.add(honest[1], None, 10.0) == Reassembled(MID, _data(3000), ())
    # ... and what is left times out.
    assert store.get_timer() is not None
    store.expire(1000.0)
    assert len(store) == 0
    assert store.get_timer() is None
    assert store.drops["fragment-evicted"] == 10_000 - 64 + 1  # the honest one took a slot
    assert store.drops["fragment-timeout"] == 63


# ------------------------------------------------------------ in a network


def _stats(node: Any) -> dict[str, Any]:
    stats: dict[str, Any] = node.stats()["mixnet"]
    return stats


async def test_a_signed_record_is_put_and_got_anonymously_at_the_default_geometry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    assert DEFAULT_LIGHT.user_payload_size == DEFAULT_PAYLOAD_SIZE
    net = MemoryNetwork(seed=31)
    async with open_mix_network(5, 2, seed=31, network=net, mixnet=DEFAULT_LIGHT) as mn:
        assert await mn.publish_directory() == len(mn.nodes)
        alice, bob = mn.clients
        value = b"a signed profile, " * 20
        key = await alice.anonymous.put_mutable(value, salt=b"profile")
        assert key == alice.mutable_key(b"profile")
        record = await bob.anonymous.get_record(key)
        assert record is not None
        assert (record.value, record.seq) == (value, 0)
        # A second version: put_mutable reads the current one anonymously first.
        await alice.anonymous.put_mutable(b"version 1", salt=b"profile")
        assert await bob.anonymous.get(key) == b"version 1"
        # Small records still take one packet each way.
        small = await alice.anonymous.put_immutable(b"small")
        assert await bob.anonymous.get(small) == b"small"
        exits = sum(_stats(m).get("exit_answer_fragments", 0) for m in mn.mixes)
        assert exits >= 3  # at least one answer came back in fragments
        assert sum(_stats(m).get("exit_too_large", 0) for m in mn.mixes) >= 1
        for node in mn.clients:
            stats = _stats(node)
            assert stats["pending_operations"] == 0
            assert stats["open_fragmented"] == 0
            assert stats["drops"].get("forged-record", 0) == 0
        assert _stats(alice)["fragmented_requests"] >= 4  # two signed puts, two exits each
        assert _stats(bob)["anonymous_retries"] == 2


def _lose_index(store: Reassembler, index: int) -> Callable[..., Reassembled | None]:
    add = store.add

    def lossy(fragment: Fragment, surb: Any, now: float) -> Reassembled | None:
        if fragment.index == index:
            return None  # this fragment never arrived
        return add(fragment, surb, now)

    return lossy


async def _lossy_network(net: MemoryNetwork, mn: MixNetwork, *, at_exits: bool) -> None:
    assert await mn.publish_directory() == len(mn.nodes)
    if at_exits:
        for mix in mn.mixes:
            core = mix.anonymous.core
            core.exit_fragments.add = _lose_index(core.exit_fragments, 1)  # type: ignore[method-assign]
    else:
        core = mn.clients[1].anonymous.core
        core.reply_fragments.add = _lose_index(core.reply_fragments, 2)  # type: ignore[method-assign]


async def test_a_lost_request_fragment_fails_the_put_and_leaves_no_state(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=32)
    async with open_mix_network(5, 1, seed=32, network=net, mixnet=DEFAULT_LIGHT) as mn:
        await _lossy_network(net, mn, at_exits=True)
        alice = mn.clients[0]
        with pytest.raises(LookupFailedError, match="no exit stored"):
            await alice.anonymous.put_mutable(b"never whole", salt=b"lost", seq=0)
        await trio.sleep(DEFAULT_LIGHT.fragment_timeout + 1)
        stats = _stats(alice)
        assert stats["pending_operations"] == 0
        assert stats["open_fragmented"] == 0
        assert stats["client"]["pending_replies"] == 0
        assert sum(_stats(m)["open_fragmented"] for m in mn.mixes) == 0
        assert sum(_stats(m)["drops"].get("fragment-timeout", 0) for m in mn.mixes) == 2
        assert sum(_stats(m).get("exit_requests", 0) for m in mn.mixes) == 0


async def test_a_lost_answer_fragment_fails_the_get_and_leaves_no_state(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=33)
    async with open_mix_network(5, 2, seed=33, network=net, mixnet=DEFAULT_LIGHT) as mn:
        alice, bob = mn.clients
        await _lossy_network(net, mn, at_exits=False)
        key = await alice.anonymous.put_mutable(b"x" * 300, salt=b"lost answer")
        with pytest.raises(LookupFailedError, match="no exit answered"):
            await bob.anonymous.get_record(key)
        stats = _stats(bob)
        assert stats["pending_operations"] == 0
        assert stats["open_fragmented"] == 0
        assert stats["client"]["pending_replies"] == 0
        assert stats["anonymous_failed"] == 1


async def test_a_request_beyond_max_fragments_is_refused_locally(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = attrs.evolve(DEFAULT_LIGHT, max_fragments=2)
    net = MemoryNetwork(seed=34)
    async with open_mix_network(4, 1, seed=34, network=net, mixnet=config) as mn:
        await mn.publish_directory()
        with pytest.raises(ConfigError, match="max_fragments 2"):
            await mn.clients[0].anonymous.put_mutable(b"big", salt=b"s", seq=0)


def test_too_large_answers_name_their_fragment_count() -> None:
    answer = AnonAnswer("too-large", fragments=3)
    assert decode(encode(answer)) == answer
    with pytest.raises(ConfigError, match="fragments"):
        AnonAnswer("too-large")
    with pytest.raises(ConfigError, match="fragments"):
        AnonAnswer("not-found", fragments=3)
    with pytest.raises(ConfigError, match=r"2\.\.255"):
        AnonAnswer("too-large", fragments=1)
    with pytest.raises(ConfigError, match="max_fragments must be at most 255"):
        MixnetConfig(max_fragments=256)
