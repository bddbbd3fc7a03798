"""Client mode on a phone: an idle client wakes rarely, sends nothing, and survives suspend.

Simulated time (``autojump_clock``) on the in-memory network: hours pass in
a moment.  A task of the client counts as a wake-up at each distinct time
it runs (a trio instrument watching the client's task tree); the real
process-level figures are ``qdht-bench mobile``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import trio.testing

from qdht import Config, Node, open_node
from qdht.testing import MemoryTransport, SimNetwork, build_network

HOUR = 3600.0


class ClientWakeups(trio.abc.Instrument):
    """Distinct moments at which any task of one node ran, by task."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.by_task: Counter[str] = Counter()
        self._last = -1.0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.startswith(self.tag):
            now = trio.current_time()
            if now != self._last:
                self._last = now
                self.by_task[task.name[len(self.tag) :].strip()] += 1

    @property
    def total(self) -> int:
        return sum(self.by_task.values())


@asynccontextmanager
async def joined_client(sim: SimNetwork) -> AsyncIterator[tuple[Node, MemoryTransport]]:
    """A client node on its own simulated host, joined through the network's first node."""
    config = Config(client_mode=True, puzzle_difficulty=0)
    async with (
        sim.network.open_transport() as transport,
        open_node(config, transport=transport) as client,
    ):
        await client.bootstrap([sim.nodes[0].contact])
        yield client, transport


async def test_an_idle_client_sends_nothing_and_barely_wakes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with build_network(10, seed=19, difficulty=0) as sim:
        key = await sim.nodes[3].put(b"on a phone")
        async with joined_client(sim) as (client, _):
            assert await client.get(key) == b"on a phone"
            # The first refresh after use still runs (the app used the table).
            await trio.sleep(1.2 * HOUR)
            wakeups = ClientWakeups(f"qdht node {client.node_id.hex()[:8]}")
            trio.lowlevel.add_instrument(wakeups)
            before = client.stats()
            await trio.sleep(3 * HOUR)
            after = client.stats()
            trio.lowlevel.remove_instrument(wakeups)
            assert after["bytes_sent"] == before["bytes_sent"]
            assert after["bytes_received"] == before["bytes_received"]
            assert after["lookups"]["by_kind"]["refresh"] == before["lookups"]["by_kind"]["refresh"]
            # Three idle hours: a handful of timer runs (session keys expiring), no more.
            assert wakeups.total <= 10, wakeups.by_task


async def test_the_refresh_an_idle_client_skipped_runs_with_its_next_lookup(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with build_network(10, seed=20, difficulty=0) as sim:
        key = await sim.nodes[5].put(b"later")
        async with joined_client(sim) as (client, _):
            await trio.sleep(2.5 * HOUR)
            refreshes = client.stats()["lookups"]["by_kind"]["refresh"]["started"]
            assert await client.get(key) == b"later"
            assert client.stats()["lookups"]["by_kind"]["refresh"]["started"] > refreshes


async def test_an_idle_serving_node_still_refreshes_its_buckets(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with build_network(8, seed=21, difficulty=0) as sim:
        node = sim.nodes[4]
        refreshes = node.stats()["lookups"]["by_kind"]["refresh"]["started"]
        await trio.sleep(2.2 * HOUR)
        assert node.stats()["lookups"]["by_kind"]["refresh"]["started"] > refreshes


async def test_after_suspend_and_a_new_address_a_client_gets_again_without_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with build_network(10, seed=22, difficulty=0) as sim:
        key = await sim.nodes[7].put(b"still here")
        async with joined_client(sim) as (client, transport):
            assert await client.get(key) == b"still here"
            old = transport.local_addresses[0]
            handshakes = client.endpoint.stats()["handshakes_completed"]
            # Suspended for ten minutes: every session key expired on both sides
            # meanwhile; the phone wakes up on another network.
            autojump_clock.jump(600)
            new = sim.network.move(transport)
            assert new != old
            resumed = trio.current_time()
            with trio.fail_after(2):
                assert await client.get(key) == b"still here"
            assert trio.current_time() - resumed < 2
            # It re-handshook from its new address (peers answered there).
            assert client.endpoint.stats()["handshakes_completed"] > handshakes
            assert client.stats()["routing_table_size"] > 0
