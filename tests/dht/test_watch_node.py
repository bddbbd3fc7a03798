"""``node.watch(key)`` on full-stack nodes (real sessions, in-memory network, MockClock)."""

from __future__ import annotations

import time

import pytest
import trio

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import WatchUpdate, sign_mutable, sign_tombstone
from qdht.errors import NodeStateError
from qdht.node import KeyWatch, Node
from qdht.testing import build_network

SALT = b"presence"


async def publish(node: Node, record: object) -> None:
    await node._run(lambda now: node.core.start_put_record(record, now))  # type: ignore[arg-type]


async def next_update(watch: KeyWatch) -> WatchUpdate:
    with trio.fail_after(60):
        return await watch.__anext__()


async def test_node_watch_reports_updates_deletion_and_stops_on_exit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    owner = MLDSAPrivateKey.from_seed(bytes(range(7, 39)))
    exp = int(time.time()) + 3600  # the driver's Unix clock is the wall clock
    first = sign_mutable(owner, salt=SALT, seq=1, value=b"online", expires=exp)
    key = first.key()
    async with build_network(12, seed=3) as sim:
        watcher, publisher = sim.nodes[4], sim.nodes[9]
        async with watcher.watch(key) as updates:
            await trio.sleep(5)
            await publish(publisher, first)
            got = await next_update(updates)
            assert (got.kind, got.value) == ("update", b"online")
            await publish(
                publisher, sign_mutable(owner, salt=SALT, seq=2, value=b"away", expires=exp)
            )
            got = await next_update(updates)
            assert (got.kind, got.value) == ("update", b"away")
            await publish(publisher, sign_tombstone(owner, salt=SALT, seq=3, expires=exp))
            got = await next_update(updates)
            assert (got.kind, got.record.seq) == ("deleted", 3)
        await trio.sleep(5)
        assert key not in watcher.core.watching
        held = sum(n.core.watches.stats()["subscriptions"] for n in sim.nodes)
        assert held == 0


async def test_a_slow_consumer_loses_the_oldest_updates_not_the_newest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    owner = MLDSAPrivateKey.from_seed(bytes(range(50, 82)))
    exp = int(time.time()) + 3600
    key = sign_mutable(owner, salt=SALT, seq=0, value=b"", expires=exp).key()
    async with build_network(8, seed=4) as sim:
        watcher, publisher = sim.nodes[2], sim.nodes[6]
        async with watcher.watch(key, buffer=4) as updates:
            await trio.sleep(5)
            for seq in range(1, 8):
                record = sign_mutable(owner, salt=SALT, seq=seq, value=bytes([seq]), expires=exp)
                await publish(publisher, record)
                await trio.sleep(1)
            seen = [(await next_update(updates)).record.seq for _ in range(4)]
            assert seen == [4, 5, 6, 7]  # buffer of 4: the newest kept
            assert updates.dropped == 3


async def test_second_local_watch_starts_from_the_known_record_and_cancel_releases(
    autojump_clock: trio.testing.MockClock,
) -> None:
    owner = MLDSAPrivateKey.from_seed(bytes(range(90, 122)))
    exp = int(time.time()) + 3600
    record = sign_mutable(owner, salt=SALT, seq=5, value=b"here", expires=exp)
    key = record.key()
    async with build_network(8, seed=6) as sim:
        watcher, publisher = sim.nodes[1], sim.nodes[5]
        async with watcher.watch(key) as first:
            await trio.sleep(5)
            await publish(publisher, record)
            assert (await next_update(first)).value == b"here"
            with trio.CancelScope() as scope:
                async with watcher.watch(key) as second:
                    assert (await next_update(second)).value == b"here"
                    scope.cancel()
                    await trio.sleep_forever()
            assert key in watcher.core.watching  # the first watch still holds the key
        await trio.sleep(1)
        assert key not in watcher.core.watching
        with pytest.raises(NodeStateError, match="context manager"):
            await watcher.watch(key).__anext__()
