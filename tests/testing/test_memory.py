"""The in-memory network: conformance, scale, latency, queues, partitions."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
import trio
import trio.testing

from qdht.errors import ConfigError, TransportError
from qdht.testing import MemoryNetwork, MemoryTransport, check_datagram_transport
from qdht.transport import DatagramTransport
from qdht.wire import Address


def _system_tasks() -> int:
    root = trio.lowlevel.current_root_task()
    assert root is not None
    return sum(len(nursery.child_tasks) for nursery in root.child_nurseries)


@asynccontextmanager
async def _memory_pair() -> AsyncIterator[tuple[DatagramTransport, DatagramTransport]]:
    network = MemoryNetwork(seed=7, latency=0.01)
    async with network.open_transport() as a, network.open_transport() as b:
        yield a, b


async def test_memory_transport_conforms(autojump_clock: trio.testing.MockClock) -> None:
    await check_datagram_transport(_memory_pair)


async def test_memory_transport_conforms_without_latency() -> None:
    @asynccontextmanager
    async def pair() -> AsyncIterator[tuple[DatagramTransport, DatagramTransport]]:
        network = MemoryNetwork(seed=1)
        async with network.open_transport() as a, network.open_transport() as b:
            yield a, b

    await check_datagram_transport(pair)


async def test_two_thousand_nodes_exchange_with_latency(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network = MemoryNetwork(seed=42, latency=0.05, jitter=0.02)
    n = 2000
    received = [0] * n
    async with AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(network.open_transport()) for _ in range(n)]
        start = trio.current_time()
        async with trio.open_nursery() as nursery:

            async def serve(i: int) -> None:
                # Each node hears from its predecessor and its successor.
                for _ in range(2):
                    data, src = await nodes[i].receive()
                    j = int(data)
                    assert src == nodes[j].local_addresses[0]
                    received[i] += 1

            for i in range(n):
                nursery.start_soon(serve, i)
            for i, node in enumerate(nodes):
                for j in ((i + 1) % n, (i - 1) % n):
                    await node.send(str(i).encode(), nodes[j].local_addresses[0])
        elapsed = trio.current_time() - start
    assert received == [2] * n
    # Virtual time: one latency plus jitter, not 4000 sequential deliveries.
    assert 0.05 <= elapsed < 0.07 + 0.01
    assert network.stats()["delivered"] == 2 * n
    assert len(network) == 0


async def test_addresses_are_spread_over_many_subnets() -> None:
    network = MemoryNetwork(seed=3)
    hosts = [network.bind().local_addresses[0].host for _ in range(2000)]
    assert len(set(hosts)) == 2000
    nets24 = {ipaddress.ip_network(f"{h}/24", strict=False) for h in hosts}
    nets16 = {ipaddress.ip_network(f"{h}/16", strict=False) for h in hosts}
    assert all(ipaddress.ip_address(h) in ipaddress.ip_network("10.0.0.0/8") for h in hosts)
    assert len(nets24) > 1900
    assert len(nets16) > 250
    # Same seed, same addresses: simulations replay.
    again = MemoryNetwork(seed=3)
    assert [again.bind().local_addresses[0].host for _ in range(10)] == hosts[:10]


def test_a_transport_costs_a_few_hundred_bytes() -> None:
    network = MemoryNetwork(seed=0)
    t = network.bind()
    addr = t.local_addresses[0]
    size = sys.getsizeof(t) + sys.getsizeof(t.local_addresses) + sys.getsizeof(addr)
    assert size < 400


async def test_closed_transport_makes_packets_vanish() -> None:
    network = MemoryNetwork(seed=0)
    async with network.open_transport() as a:
        async with network.open_transport() as b:
            b_addr = b.local_addresses[0]
        await a.send(b"anyone?", b_addr)
        assert network.stats()["vanished"] == 1
        assert a.stats()["datagrams_sent"] == 1


async def test_full_queue_drops_and_counts() -> None:
    network = MemoryNetwork(seed=0, queue_size=4)
    async with network.open_transport() as a, network.open_transport() as b:
        for i in range(10):
            await a.send(bytes([i]), b.local_addresses[0])
        got = [(await b.receive())[0] for _ in range(4)]
        assert got == [b"\x00", b"\x01", b"\x02", b"\x03"]
        assert b.stats()["drop_queue-full"] == 6


async def test_per_link_latency_function(autojump_clock: trio.testing.MockClock) -> None:
    def latency(src: Address, dst: Address) -> float:
        return 0.2 if dst.host == "10.9.9.9" else 0.01

    network = MemoryNetwork(seed=0, latency=latency)
    async with (
        network.open_transport("10.0.0.1") as a,
        network.open_transport("10.9.9.9") as far,
        network.open_transport("10.0.0.2") as near,
    ):
        start = trio.current_time()
        await a.send(b"far", far.local_addresses[0])
        await a.send(b"near", near.local_addresses[0])
        await near.receive()
        assert trio.current_time() - start == pytest.approx(0.01)
        await far.receive()
        assert trio.current_time() - start == pytest.approx(0.2)


async def test_partition_drops_both_ways_and_heal_restores() -> None:
    network = MemoryNetwork(seed=0)
    async with network.open_transport() as a, network.open_transport() as b:
        a_addr, b_addr = a.local_addresses[0], b.local_addresses[0]
        network.partition([a], [b_addr])
        assert not network.can_reach(a, b)
        await a.send(b"x", b_addr)
        await b.send(b"y", a_addr)
        assert network.stats()["partitioned"] == 2
        network.heal()
        await a.send(b"after heal", b_addr)
        assert await b.receive() == (b"after heal", a_addr)


async def test_partition_applies_to_datagrams_in_flight(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network = MemoryNetwork(seed=0, latency=1.0)
    async with network.open_transport() as a, network.open_transport() as b:
        await a.send(b"doomed", b.local_addresses[0])
        network.partition([a])
        await trio.sleep(2)
        assert network.stats()["partitioned"] == 1
        with trio.move_on_after(1) as scope:
            await b.receive()
        assert scope.cancelled_caught


async def test_bind_rules() -> None:
    network = MemoryNetwork(seed=0)
    async with network.open_transport("10.1.2.3", 6881) as t:
        with pytest.raises(TransportError, match="in use"):
            network.bind("10.1.2.3", 6881)
        eph = network.bind("10.1.2.3", 0)
        assert eph.local_addresses[0].port >= 49152
        assert network.transport_at(t.local_addresses[0]) is t
        await eph.aclose()
    with pytest.raises(ConfigError, match="IP literal"):
        network.bind("example.org")
    with pytest.raises(ConfigError, match="queue_size"):
        MemoryNetwork(queue_size=0)


async def test_second_concurrent_receiver_is_refused() -> None:
    network = MemoryNetwork(seed=0)
    async with network.open_transport() as t, trio.open_nursery() as nursery:
        nursery.start_soon(t.receive)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await t.receive()
        nursery.cancel_scope.cancel()


async def test_no_scheduler_task_survives_the_network(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network = MemoryNetwork(seed=0, latency=5.0)
    before = _system_tasks()
    async with network.open_transport() as a, network.open_transport() as b:
        await a.send(b"never read", b.local_addresses[0])
        assert network.stats()["in_flight"] == 1
        assert _system_tasks() == before + 1  # the one scheduler task
    await trio.testing.wait_all_tasks_blocked()
    assert network.stats()["in_flight"] == 0
    assert _system_tasks() == before
    assert isinstance(a, MemoryTransport)
