"""The fault injector: each fault does what it says, reproducibly, on any transport."""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from qdht.errors import ConfigError, TransportError
from qdht.testing import FaultInjector, MemoryNetwork, check_datagram_transport
from qdht.transport import DatagramTransport, open_udp_transport
from qdht.wire import Address

N = 10_000


@asynccontextmanager
async def _faulty_pair(
    seed: int = 1, **faults: Any
) -> AsyncIterator[tuple[FaultInjector, DatagramTransport]]:
    network = MemoryNetwork(seed=seed, queue_size=4 * N)
    async with network.open_transport() as a, network.open_transport() as b:
        yield FaultInjector(a, seed=seed, **faults), b


async def _drain(t: DatagramTransport) -> list[bytes]:
    """Everything that arrives until the network has been idle for 10 s (trio time)."""
    got: list[bytes] = []
    while True:
        with trio.move_on_after(10):
            data, _ = await t.receive()
            got.append(data)
            continue
        return got


def _within_binomial(observed: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(observed - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


async def test_zero_faults_conforms(autojump_clock: trio.testing.MockClock) -> None:
    @asynccontextmanager
    async def pair() -> AsyncIterator[tuple[DatagramTransport, DatagramTransport]]:
        network = MemoryNetwork(seed=2)
        async with network.open_transport() as a, network.open_transport() as b:
            yield FaultInjector(a, seed=1), FaultInjector(b, seed=2)

    await check_datagram_transport(pair)


async def test_delay_and_reorder_still_conform(autojump_clock: trio.testing.MockClock) -> None:
    @asynccontextmanager
    async def pair() -> AsyncIterator[tuple[DatagramTransport, DatagramTransport]]:
        network = MemoryNetwork(seed=2)
        async with network.open_transport() as a, network.open_transport() as b:
            yield (
                FaultInjector(a, seed=1, delay=0.05, jitter=0.05, reorder=0.3),
                FaultInjector(b, seed=2, delay=0.01),
            )

    await check_datagram_transport(pair)


async def test_loss_rate_is_binomial(autojump_clock: trio.testing.MockClock) -> None:
    async with _faulty_pair(loss=0.3) as (a, b):
        for i in range(N):
            await a.send(i.to_bytes(2, "big"), b.local_addresses[0])
        got = await _drain(b)
    lost = N - len(got)
    assert _within_binomial(lost, N, 0.3)
    assert a.stats()["fault_lost"] == lost
    assert len(set(got)) == len(got)  # loss never duplicates


async def test_same_seed_same_faults(autojump_clock: trio.testing.MockClock) -> None:
    runs = []
    for _ in range(2):
        async with _faulty_pair(seed=9, loss=0.2, reorder=0.1, duplicate=0.1, jitter=0.01) as (
            a,
            b,
        ):
            for i in range(500):
                await a.send(i.to_bytes(2, "big"), b.local_addresses[0])
            runs.append(await _drain(b))
    assert runs[0] == runs[1]
    async with _faulty_pair(seed=10, loss=0.2, reorder=0.1, duplicate=0.1) as (a, b):
        for i in range(500):
            await a.send(i.to_bytes(2, "big"), b.local_addresses[0])
        assert await _drain(b) != runs[0]


async def test_duplication_rate(autojump_clock: trio.testing.MockClock) -> None:
    async with _faulty_pair(duplicate=0.25) as (a, b):
        for i in range(N):
            await a.send(i.to_bytes(2, "big"), b.local_addresses[0])
        got = await _drain(b)
    extra = len(got) - N
    assert _within_binomial(extra, N, 0.25)
    assert set(got) == {i.to_bytes(2, "big") for i in range(N)}
    assert a.stats()["fault_duplicated"] == extra


async def test_reorder_reorders_without_losing(autojump_clock: trio.testing.MockClock) -> None:
    async with _faulty_pair(reorder=0.2) as (a, b):
        sent = [i.to_bytes(2, "big") for i in range(1000)]
        for item in sent:
            await a.send(item, b.local_addresses[0])
        got = await _drain(b)
    assert sorted(got) == sent
    out_of_order = sum(1 for x, y in itertools.pairwise(got) if x > y)
    assert _within_binomial(out_of_order, 1000, 0.2, sigmas=6)
    assert a.stats()["fault_reordered"] > 0


async def test_held_datagram_is_released_without_more_traffic(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with _faulty_pair(reorder=1.0, reorder_hold=0.5) as (a, b):
        start = trio.current_time()
        await a.send(b"alone", b.local_addresses[0])
        assert trio.current_time() == start  # the sender never waits
        assert await b.receive() == (b"alone", a.local_addresses[0])
        assert trio.current_time() - start == pytest.approx(0.5)


async def test_corruption_flips_exactly_the_asked_bits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for bits in (1, 3):
        async with _faulty_pair(corrupt=1.0, corrupt_bits=bits) as (a, b):
            payload = bytes(range(256)) * 4
            for _ in range(100):
                await a.send(payload, b.local_addresses[0])
            got = await _drain(b)
        assert len(got) == 100
        for data in got:
            flipped = sum(bin(x ^ y).count("1") for x, y in zip(data, payload, strict=True))
            assert flipped == bits
        assert len(set(got)) > 90  # different bits each time


async def test_corruption_rate(autojump_clock: trio.testing.MockClock) -> None:
    async with _faulty_pair(corrupt=0.1) as (a, b):
        for _ in range(N):
            await a.send(b"\x00" * 8, b.local_addresses[0])
        got = await _drain(b)
    corrupted = sum(1 for d in got if d != b"\x00" * 8)
    assert _within_binomial(corrupted, N, 0.1)
    assert a.stats()["fault_corrupted"] == corrupted


async def test_delay_and_jitter_do_not_block_the_sender(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with _faulty_pair(delay=0.1, jitter=0.05) as (a, b):
        start = trio.current_time()
        for i in range(200):
            await a.send(i.to_bytes(2, "big"), b.local_addresses[0])
        assert trio.current_time() == start
        arrivals = []
        for _ in range(200):
            await b.receive()
            arrivals.append(trio.current_time() - start)
    assert all(0.1 <= t < 0.15 for t in arrivals)
    assert max(arrivals) - min(arrivals) > 0.03  # jitter spreads them
    assert a.stats()["fault_delayed"] == 200


async def test_partition_drops_both_ways_and_heal_restores(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with _faulty_pair() as (a, b):
        a_addr, b_addr = a.local_addresses[0], b.local_addresses[0]
        a.partition([b_addr])
        await a.send(b"out", b_addr)
        await b.send(b"in", a_addr)
        with trio.move_on_after(5) as scope:
            await a.receive()
        assert scope.cancelled_caught
        assert await _drain(b) == []
        assert a.stats()["fault_partitioned"] == 2
        a.heal()
        await a.send(b"out again", b_addr)
        assert await b.receive() == (b"out again", a_addr)
        await b.send(b"in again", a_addr)
        assert await a.receive() == (b"in again", b_addr)
        a.partition([b_addr.host])  # a whole host
        await a.send(b"host blocked", b_addr)
        assert a.stats()["fault_partitioned"] == 3


async def test_works_on_udp() -> None:
    async with open_udp_transport("127.0.0.1", 0) as raw_a, open_udp_transport("127.0.0.1", 0) as b:
        a = FaultInjector(raw_a, seed=5, loss=0.5, corrupt=0.2)
        for i in range(400):
            await a.send(i.to_bytes(2, "big"), b.local_addresses[0])
        stats = a.stats()
        delivered = stats["datagrams_sent"]
        assert delivered + stats["fault_lost"] == 400
        assert _within_binomial(stats["fault_lost"], 400, 0.5)
        for _ in range(delivered):
            await b.receive()
        await a.aclose()
        assert raw_a.socket.fileno() == -1  # the injector owns what it wraps


async def test_udp_conforms_through_injector() -> None:
    @asynccontextmanager
    async def pair() -> AsyncIterator[tuple[DatagramTransport, DatagramTransport]]:
        async with (
            open_udp_transport("127.0.0.1", 0) as a,
            open_udp_transport("127.0.0.1", 0) as b,
        ):
            yield FaultInjector(a, seed=1, delay=0.001), FaultInjector(b, seed=2)

    await check_datagram_transport(pair)


async def test_misuse_raises() -> None:
    network = MemoryNetwork(seed=0, max_datagram_size=1500)
    async with network.open_transport() as t:
        with pytest.raises(ConfigError, match="loss"):
            FaultInjector(t, seed=0, loss=1.5)
        with pytest.raises(ConfigError, match="delay"):
            FaultInjector(t, seed=0, delay=-1)
        f = FaultInjector(t, seed=0, loss=1.0)
        with pytest.raises(TransportError, match="1500"):
            await f.send(b"x" * 1501, Address("udp", "10.0.0.1", 1))
        with pytest.raises(ConfigError, match="partition"):
            f.partition([42])  # type: ignore[list-item]
        await f.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await f.send(b"x", Address("udp", "10.0.0.1", 1))
