"""The node's record API: put_immutable/put_mutable/get/get_record/delete/sets, republish."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from qdht import Config, Node, open_node
from qdht.dht import MemoryRecordStore, sign_mutable
from qdht.errors import ConfigError, RecordRejectedError
from qdht.identity import Identity
from qdht.testing import MemoryNetwork
from qdht.wire import MutableRecord, immutable_key

DIFFICULTY = 0


@functools.cache
def identity(n: int) -> Identity:
    return Identity.generate(DIFFICULTY)


@asynccontextmanager
async def running(count: int, **changes: Any) -> AsyncIterator[list[Node]]:
    net = MemoryNetwork(seed=count)
    async with AsyncExitStack() as stack:
        nodes = []
        for i in range(count):
            transport = await stack.enter_async_context(net.open_transport())
            config = Config(identity=identity(i), puzzle_difficulty=DIFFICULTY, **changes)
            nodes.append(await stack.enter_async_context(open_node(config, transport=transport)))
        for node in nodes[1:]:
            assert await node.bootstrap([nodes[0].contact]) == 1
        yield nodes


async def test_immutable_and_mutable_records_across_the_network(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(12) as nodes:
        key = await nodes[1].put_immutable(b"hello")
        assert key == immutable_key(b"hello")
        assert await nodes[7].get(key) == b"hello"

        mkey = await nodes[2].put_mutable(b"v0", salt=b"profile")
        assert mkey == nodes[2].mutable_key(b"profile")
        first = await nodes[9].get_record(mkey)
        assert first is not None
        assert first.seq == 0
        assert first.value == b"v0"
        # seq=None takes the next one; every node sees the newest version.
        await nodes[2].put_mutable(b"v1", salt=b"profile")
        for node in (nodes[3], nodes[9], nodes[11]):
            record = await node.get_record(mkey)
            assert record is not None
            assert (record.seq, record.value) == (1, b"v1")
        assert await nodes[5].get(mkey) == b"v1"


async def test_cas_and_stale_versions_are_refused(autojump_clock: trio.testing.MockClock) -> None:
    async with running(10) as nodes:
        owner = nodes[4]
        key = await owner.put_mutable(b"a", salt=b"c", seq=5)
        # compare-and-swap against the wrong version: every holder refuses
        with pytest.raises(RecordRejectedError) as info:
            await owner.put_mutable(b"b", salt=b"c", seq=7, cas=4)
        assert info.value.reason == "cas-mismatch"
        assert await nodes[0].get(key) == b"a"
        # the right version: accepted; seq defaults to cas + 1
        await owner.put_mutable(b"b", salt=b"c", cas=5)
        record = await nodes[8].get_record(key)
        assert record is not None
        assert (record.seq, record.value) == (6, b"b")
        # an old sequence number never overwrites a newer one
        with pytest.raises(RecordRejectedError) as info:
            await owner.put_mutable(b"old", salt=b"c", seq=3)
        assert info.value.reason == "stale"
        assert await nodes[1].get(key) == b"b"


async def test_delete_leaves_a_tombstone(autojump_clock: trio.testing.MockClock) -> None:
    async with running(10) as nodes:
        owner = nodes[3]
        key = await owner.put_mutable(b"secret", salt=b"x", ttl=3600)
        await owner.delete(key)
        assert await nodes[6].get(key) is None
        record = await nodes[6].get_record(key)
        assert record is not None
        assert record.deleted
        assert record.seq == 1
        # the tombstone outlives every version it deletes
        assert record.expires >= int(trio.current_time() + owner._unix_offset) + 3600
        # a record published elsewhere under this identity: delete with its salt
        other = await owner.put_mutable(b"y", salt=b"elsewhere")
        owner._published.forget(other)
        with pytest.raises(ConfigError, match="salt="):
            await owner.delete(other)
        await owner.delete(other, salt=b"elsewhere")
        assert await nodes[1].get(other) is None
        # only the owner can delete, and immutable records cannot be deleted
        with pytest.raises(ConfigError, match="owner"):
            await nodes[5].delete(key, salt=b"x")
        ikey = await owner.put_immutable(b"forever-ish")
        with pytest.raises(ConfigError):
            await owner.delete(ikey)


async def test_set_entries_from_several_publishers(autojump_clock: trio.testing.MockClock) -> None:
    async with running(10) as nodes:
        for i in (1, 2, 3):
            await nodes[i].put_set_entry(b"mixnodes", f"descriptor {i}".encode())
        await nodes[2].put_set_entry(b"mixnodes", b"descriptor 2, updated")
        entries = await nodes[8].get_set(b"mixnodes")
        assert sorted(e.value for e in entries if e.value is not None) == [
            b"descriptor 1",
            b"descriptor 2, updated",
            b"descriptor 3",
        ]
        assert {e.owner for e in entries} == {
            nodes[i].identity.mldsa_public_hash for i in (1, 2, 3)
        }


async def test_misuse_raises_clear_errors(autojump_clock: trio.testing.MockClock) -> None:
    async with running(2) as (node, _):
        with pytest.raises(ConfigError, match="salt"):
            await node.put_mutable(b"v", salt=b"s" * 65)
        with pytest.raises(ConfigError, match="seq"):
            await node.put_mutable(b"v", seq=-1)
        with pytest.raises(ConfigError, match="cas"):
            await node.put_mutable(b"v", cas=2**64)
        with pytest.raises(ConfigError, match="ttl"):
            await node.put_immutable(b"v", ttl=8 * 86400)
        with pytest.raises(ConfigError, match="ttl"):
            await node.put_immutable(b"v", ttl=0)
        with pytest.raises(ConfigError, match="largest value"):
            await node.put_immutable(bytes(65537))
        with pytest.raises(ConfigError, match="largest value"):
            await node.put_set_entry(b"t", bytes(4097))
        with pytest.raises(ConfigError, match="topic"):
            await node.get_set(b"")
        with pytest.raises(ConfigError, match="bytes"):
            await node.put_immutable("text")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="record_ttl"):
        Config(record_ttl=30 * 86400)


async def test_publisher_republishes_until_expiry(autojump_clock: trio.testing.MockClock) -> None:
    async with running(10, republish_interval=600.0) as nodes:
        publisher = nodes[2]
        key = await publisher.put_immutable(b"keep me", ttl=3000)
        mkey = await publisher.put_mutable(b"me too", salt=b"m", ttl=3000)
        assert set(publisher.published()) == {key, mkey}
        # Every holder loses its data (replaced by nodes that know nothing).
        for node in nodes:
            if node is not publisher:
                node.core.records = MemoryRecordStore()
        assert all(not n.core.local_records(key, trio.current_time()) for n in nodes[3:])
        await trio.sleep(700)
        assert publisher._republished >= 2
        holders = [n for n in nodes if n.core.local_records(key, trio.current_time())]
        assert len(holders) >= 5
        assert await nodes[7].get(mkey) == b"me too"
        # after its expiry the record is no longer republished
        await trio.sleep(3000)
        assert publisher.published() == []
        assert await nodes[8].get(key) is None


async def test_a_publisher_republishes_by_region_not_record_by_record(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(30, republish_interval=600.0) as nodes:
        publisher = nodes[4]
        keys = [await publisher.put_immutable(b"batch %d" % i, ttl=4000) for i in range(60)]
        for node in nodes:
            if node is not publisher:
                node.core.records = MemoryRecordStore()
        puts = publisher.core.stats()["lookups"]["by_kind"]["put"]["started"]
        await trio.sleep(700)  # one republish interval: every record came due
        assert publisher.stats()["records_republished"] >= 60
        replication = publisher.core.stats()["replication"]
        assert 1 <= replication["own_lookups"] <= 60 / 4  # a lookup per region, not per record
        assert replication["own_stores"] >= 60 * 10
        # Every record is back at many of its k closest.
        now = trio.current_time()
        for key in keys:
            assert sum(1 for n in nodes if n.core.local_records(key, now)) >= 10
        assert await nodes[9].get(keys[17]) == b"batch 17"
        # No put lookup per record: the region lookups were all.
        assert publisher.core.stats()["lookups"]["by_kind"]["put"]["started"] == puts


async def test_watch_through_the_node_api(autojump_clock: trio.testing.MockClock) -> None:
    async with running(10) as nodes:
        owner, watcher = nodes[2], nodes[7]
        key = owner.mutable_key(b"status")
        async with watcher.watch(key) as updates:
            await trio.sleep(5)
            await owner.put_mutable(b"online", salt=b"status")
            with trio.fail_after(60):
                first = await updates.__anext__()
            assert (first.kind, first.value) == ("update", b"online")
            await owner.delete(key)
            with trio.fail_after(60):
                second = await updates.__anext__()
            assert second.kind == "deleted"
            assert second.record.seq == 1
        with pytest.raises(ConfigError, match="key"):
            watcher.watch(b"short")


async def test_a_get_counts_what_the_node_holds_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(2) as (a, b):
        mkey = await a.put_mutable(b"mine", salt=b"s")
        skey = await a.put_set_entry(b"topic", b"entry")
        assert a.core.local_records(mkey, trio.current_time())
        b.core.records = MemoryRecordStore()  # the only other holder forgets everything
        record = await a.get_record(mkey)
        assert record is not None
        assert record.value == b"mine"
        assert [e.value for e in await a.get_set(b"topic")] == [b"entry"]
        assert skey == a.set_key(b"topic")


def _newer(n: int, node: Node, salt: bytes, seq: int, value: bytes) -> MutableRecord:
    """A version of identity ``n``'s mutable record ``salt`` signed elsewhere."""
    expires = int(node.core.unix_time(trio.current_time())) + 5000
    return sign_mutable(identity(n).mldsa, salt=salt, seq=seq, value=value, expires=expires)


async def test_a_superseded_version_is_no_longer_republished(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(10, republish_interval=600.0) as nodes:
        publisher = nodes[2]
        held = await publisher.put_mutable(b"v0", salt=b"held", ttl=5000)
        fetched = await publisher.put_mutable(b"v0", salt=b"fetched", ttl=5000)
        replaced = await publisher.put_signed(_newer(2, publisher, b"replaced", 1, b"v1"))
        # The same identity publishes newer versions from another device.
        await nodes[6].put_signed(_newer(2, publisher, b"held", 5, b"v5"), ttl_remember=False)
        await nodes[6].put_signed(_newer(2, publisher, b"fetched", 3, b"v3"), ttl_remember=False)
        # The publisher replaces one itself without asking to keep the new one.
        await publisher.put_signed(_newer(2, publisher, b"replaced", 2, b"v2"), ttl_remember=False)
        assert replaced not in publisher.published()
        # A get that finds a newer version of a key this node republishes stops it.
        publisher.core.records = MemoryRecordStore()  # it holds no copy: only a get can tell
        record = await publisher.get_record(fetched)
        assert record is not None
        assert record.value == b"v3"
        assert fetched not in publisher.published()
        # A newer version held here (10 nodes: every node holds every key) stops
        # the republish when it comes due.
        await nodes[8].put_signed(_newer(2, publisher, b"held", 5, b"v5"), ttl_remember=False)
        assert publisher.core.local_records(held, trio.current_time())[0].seq == 5
        assert held in publisher.published()
        before = publisher.stats()["records_republished"]
        await trio.sleep(700)
        assert publisher.published() == []
        assert publisher.stats()["records_superseded"] == 3
        assert publisher.stats()["records_republished"] == before
        assert await nodes[7].get(held) == b"v5"


async def test_a_version_superseded_elsewhere_stops_after_holders_refuse_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(12, k=3, republish_interval=600.0) as nodes:
        publisher = nodes[2]
        now = trio.current_time

        # A key the publisher does not hold: it is not among the 3 closest nodes.
        def closest(key: bytes) -> list[bytes]:
            by_distance = sorted(n.node_id for n in nodes)
            by_distance.sort(key=lambda i: int.from_bytes(i, "big") ^ int.from_bytes(key, "big"))
            return by_distance[:3]

        salt = next(
            s
            for s in (b"s%d" % i for i in range(100))
            if publisher.node_id not in closest(publisher.mutable_key(s))
        )
        key = await publisher.put_mutable(b"v0", salt=salt, ttl=5000)
        await nodes[6].put_signed(_newer(2, publisher, salt, 5, b"v5"), ttl_remember=False)
        assert not publisher.core.local_records(key, now())  # only the holders know
        await trio.sleep(700)  # republished once, refused as stale by the holders
        assert key in publisher.published()
        republished = publisher.stats()["records_republished"]
        await trio.sleep(600)  # next turn: a get confirms the newer version first
        assert key not in publisher.published()
        assert publisher.stats()["records_superseded"] == 1
        assert publisher.stats()["records_republished"] == republished
        assert await nodes[9].get(key) == b"v5"
