"""An honest get while strangers flood the network (issue 20 item 5; 04 §5.5).

Sixteen source addresses send every node garbage and handshake first messages
with a valid mac1, each source under nothing but its own share, together far
over the budget a node spends on unauthenticated datagrams.  The admission
rules mute them all; the nodes' sessions are neither charged nor delayed, so a
get takes no more round trips (no request times out) than it does without the
flood.
"""

from __future__ import annotations

import random
import socket
import sys

import pytest
import trio
import trio.testing

from qdht import Config, Node, open_node
from qdht.identity import Identity
from qdht.session import SessionConfig, SessionEndpoint
from qdht.testing import MemoryNetwork, build_network
from qdht.transport import open_udp_transport

NODES = 20
K = 4
SOURCES = 16
#: Datagrams each source sends each node per second, and in all 16 * 20 * 60 =
#: 19,200 a second: each source over its own limit, all of them 10 times over
#: the budget for all sources, both scaled down (LIMITS) to keep the test quick.
RATE = 60
STEP = 0.05
LIMITS = SessionConfig(
    unauthenticated_per_address=20.0,
    unauthenticated_burst_per_address=20,
    unauthenticated_global=100.0,
    unauthenticated_burst_global=100,
)


async def _flood(network: MemoryNetwork, nodes: list[Node], sent: list[int]) -> None:
    rng = random.Random(3)
    stranger = Identity.generate(difficulty=0)
    packets: list[list[bytes]] = []
    for node in nodes:  # a pqXX first message to each node (valid mac1), and garbage
        initiator = SessionEndpoint(stranger, rng=rng.randbytes)
        initiator.connect(node.contact.addresses[0], node.node_id, 0.0)
        handshake = [data for data, _ in initiator.datagrams_to_send(0.0)]
        packets.append(handshake + [rng.randbytes(rng.randint(1, 1200)) for _ in range(8)])
    sources = [network.bind() for _ in range(SOURCES)]
    per_step = round(RATE * STEP)
    n = 0
    while True:
        for source in sources:
            for node, own in zip(nodes, packets, strict=True):
                for _ in range(per_step):
                    n += 1
                    await source.send(own[n % len(own)], node.contact.addresses[0])
                    sent[0] += 1
        await trio.sleep(STEP)


async def _gets(flood: bool) -> tuple[list[float], list[int], dict[str, int]]:
    """Puts and timed gets on a fresh network (the same one every time: fixed
    seeds, mock clock), with or without the flood during the gets."""
    rng = random.Random(11)
    sent = [0]
    took = []
    async with build_network(NODES, seed=11, config=Config(k=K, session=LIMITS)) as sim:
        stored = []
        for i in range(6):
            value = rng.randbytes(64)
            stored.append((await sim.nodes[i % NODES].put(value), value))
        async with trio.open_nursery() as nursery:
            if flood:
                nursery.start_soon(_flood, sim.network, sim.nodes, sent)
            await trio.sleep(0.5)
            for i, (key, value) in enumerate(stored):
                start = trio.current_time()
                assert await sim.nodes[(i + 5) % NODES].get(key) == value
                took.append(trio.current_time() - start)
            nursery.cancel_scope.cancel()
        drops: dict[str, int] = {}
        for node in sim.nodes:
            for reason, n in node.stats()["drops"].items():
                drops[reason] = drops.get(reason, 0) + n
    return took, sent, drops


async def test_an_honest_get_keeps_its_round_trips_under_a_flood_from_16_sources(
    autojump_clock: trio.testing.MockClock,
) -> None:
    base, _, _ = await _gets(flood=False)
    flooded, sent, drops = await _gets(flood=True)
    assert sent[0] > 10_000
    # Every get took as long as on the quiet network: no request timed out or
    # was retransmitted (the shortest request timeout is 0.2 s).
    assert flooded == pytest.approx(base, abs=0.01)
    # Most of the flood was dropped unread; the sources were muted although the
    # budget for all of them, not each one's own, is what they overran first.
    assert drops["session.source-muted"] > sent[0] // 2
    assert drops["session.unauthenticated-global"] >= SOURCES
    parsed = sent[0] - drops["session.source-muted"] - drops["session.unauthenticated-global"]
    assert parsed < sent[0] // 4


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel filter is Linux's")
async def test_a_node_on_udp_drops_a_muted_flooder_in_the_kernel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The session layer mutes the source; the transport names it in its socket
    # filter (04 §5.5), so the rest of the flood never reaches the node.
    config = Config(puzzle_difficulty=0, session=LIMITS)
    async with (
        open_udp_transport("127.0.0.1", 0) as udp,
        open_node(config, transport=udp) as node,
    ):
        dst = node.contact.addresses[0]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flooder:
            flooder.bind(("127.0.0.2", 0))
            rng = random.Random(5)
            for _ in range(LIMITS.unauthenticated_burst_per_address * 2):
                flooder.sendto(rng.randbytes(64), (dst.host, dst.port))
            await trio.sleep(0.1)  # the node reads them and mutes the source (for 1 s)
            # The next datagram is dropped as it is read, and the filter names the source.
            flooder.sendto(rng.randbytes(64), (dst.host, dst.port))
            await trio.sleep(0.2)
            assert udp.stats()["kernel_filter_sources"] == 1
            before = node.stats()["drops"].get("session.malformed", 0)
            for _ in range(500):  # (none begins with 0xa4, a transport packet's first byte)
                flooder.sendto(b"\x00" + rng.randbytes(63), (dst.host, dst.port))
            await trio.sleep(0.1)
        stats = udp.stats()
        assert stats["datagrams_dropped_in_kernel"] == 500
        assert node.stats()["drops"].get("session.malformed", 0) == before
