"""A node with a data directory survives a restart: identity, table, records, schedule."""

from __future__ import annotations

import functools
from contextlib import AsyncExitStack
from pathlib import Path

import trio
import trio.testing

from qdht import Config, open_node
from qdht.identity import Identity
from qdht.node import ROUTING_FILE
from qdht.testing import MemoryNetwork

DIFFICULTY = 0


@functools.cache
def identity(n: int) -> Identity:
    return Identity.generate(DIFFICULTY)


async def test_restart_keeps_identity_table_records_and_schedule(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    net = MemoryNetwork(seed=7)
    data_dir = tmp_path / "node"
    async with AsyncExitStack() as others:
        peers = []
        for i in range(8):
            transport = await others.enter_async_context(net.open_transport())
            config = Config(identity=identity(i), puzzle_difficulty=DIFFICULTY)
            peers.append(await others.enter_async_context(open_node(config, transport=transport)))
        for peer in peers[1:]:
            assert await peer.bootstrap([peers[0].contact]) == 1
        persistent = Config(
            data_dir=data_dir, puzzle_difficulty=DIFFICULTY, bootstrap=(peers[0].contact,)
        )

        async with (
            net.open_transport() as transport,
            open_node(persistent, transport=transport) as node,
        ):
            node_id = node.node_id
            own = await node.put_mutable(b"mine", salt=b"s")
            # values published by others that this node now holds as a replica
            held = [await peers[i].put_immutable(f"v{i}".encode()) for i in range(8)]
            held = [k for k in held if node.core.local_records(k, trio.current_time())]
            table = node.stats()["routing_table_size"]
        assert held, "the node should hold some of the 8 values"
        assert table >= 5
        assert (data_dir / ROUTING_FILE).exists()

        # Restarted without any bootstrap contact: it rejoins through the peers it
        # remembers, and still holds and serves what it held.
        again = Config(data_dir=data_dir, puzzle_difficulty=DIFFICULTY)
        async with net.open_transport() as transport, open_node(again, transport=transport) as node:
            assert node.node_id == node_id
            assert node.stats()["bootstrap"]["answered"] >= 1
            assert node.stats()["routing_table_size"] >= 5
            now = trio.current_time()
            assert all(node.core.local_records(k, now) for k in held)
            assert own in node.published()
            for key in held:
                assert await peers[3].get(key) is not None
            await trio.sleep(60)  # the round started on return (republish_now) ends
            replication = node.stats()["replication"]
            assert replication["rounds"] >= 1
            assert replication["last_rounds"][0]["keys"] >= len(held)
            # its mutable record continues at the next sequence number
            await node.put_mutable(b"mine, v2", salt=b"s")
            record = await peers[5].get_record(own)
            assert record is not None
            assert (record.seq, record.value) == (1, b"mine, v2")
