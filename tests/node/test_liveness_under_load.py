"""Liveness under load (issue 20 item 6): a node whose process stalls keeps its peers.

A busy machine stops a node's event loop for a while, then lets it run again.
During the stall no peer's answer is read and no peer can answer in time
either, so every request in flight looks lost when the timer task runs first.
The test below stalls the whole in-process network (a task that moves the mock
clock forward without yielding: time passes, nothing runs) while the nodes
put and get, and asserts that every operation succeeds and that no routing
table lost its peers.
"""

from __future__ import annotations

import random

import trio
import trio.testing

from qdht import Config
from qdht.testing import build_network

NODES = 12
K = 4
#: Seconds the loop stalls, every STALL_EVERY seconds of running time: longer
#: than any request timeout (RoutingConfig.max_timeout is 5 s).
STALL = 6.0
STALL_EVERY = 0.25


async def _hog(clock: trio.testing.MockClock) -> None:
    """The CPU taken by another process: time passes while this loop cannot run."""
    while True:
        await trio.sleep(STALL_EVERY)
        clock.jump(STALL)  # no checkpoint: no other task runs meanwhile


async def test_a_stalling_network_keeps_working(autojump_clock: trio.testing.MockClock) -> None:
    rng = random.Random(5)
    async with build_network(NODES, seed=5, config=Config(k=K)) as sim:
        before = [len(node.core.routing) for node in sim.nodes]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_hog, autojump_clock)
            stored = []
            for _ in range(10):
                value = rng.randbytes(64)
                key = await rng.choice(sim.nodes).put(value)
                stored.append((key, value))
            got = [await rng.choice(sim.nodes).get(key) for key, _ in stored]
            nursery.cancel_scope.cancel()
        after = [len(node.core.routing) for node in sim.nodes]
        timeouts = sum(node.stats().get("timeouts", 0) for node in sim.nodes)
    assert got == [value for _, value in stored]
    assert min(after) >= min(before), (before, after, timeouts)
