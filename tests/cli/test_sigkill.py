"""A ``qdht node`` process killed with SIGKILL loses no STORE it acknowledged.

A client streams STOREs of immutable records to a real ``qdht node --data-dir``
process over UDP; the node answers STORED only after the record is committed
to its SQLite store.  The test kills the process at a random point, checks that
every acknowledged record is in a consistent store, restarts the node on the
same directory and reads some back over the network.
"""

from __future__ import annotations

import os
import random
import signal
from contextlib import ExitStack
from pathlib import Path

import pytest
import trio

from qdht import Config, Contact, open_node
from qdht.dht import RequestCompleted, SqliteRecordStore, make_immutable
from qdht.identity import Identity
from qdht.node import RECORDS_FILE

from ._procs import DIFFICULTY, qdht_node

pytestmark = pytest.mark.slow

ROUNDS = int(os.environ.get("QDHT_KILL_ROUNDS", "3"))


async def _stream_until_killed(uri: str, pid: int, kill_after: int, round_: int) -> set[bytes]:
    """STORE records to the node at ``uri``; SIGKILL it after ``kill_after`` acknowledgements."""
    holder = Contact.from_uri(uri)
    config = Config(
        listen=("udp://127.0.0.1:0",),
        identity=Identity.generate(int(DIFFICULTY)),
        puzzle_difficulty=int(DIFFICULTY),
    )
    acknowledged: set[bytes] = set()
    async with open_node(config) as client:
        assert await client.bootstrap([holder]) == 1
        expires = int(trio.current_time() + client._unix_offset) + 86_400
        n = 0
        with trio.move_on_after(30):
            async with trio.open_nursery() as nursery:

                async def store(i: int) -> None:
                    value = round_.to_bytes(2, "big") + i.to_bytes(4, "big") + bytes(1018)
                    record = make_immutable(value, expires)
                    event = await client._run(lambda now: client.core.store_at(holder, record, now))
                    if type(event) is RequestCompleted:
                        acknowledged.add(record.key())
                        if len(acknowledged) == kill_after:
                            os.kill(pid, signal.SIGKILL)
                            nursery.cancel_scope.cancel()

                # A few STOREs in flight at a time, 8 a second: under the holder's
                # flood guard (10 a second per source, 07-records.md §6.3).
                while True:
                    for _ in range(2):
                        nursery.start_soon(store, n)
                        n += 1
                    await trio.sleep(0.25)
    return acknowledged


def test_acknowledged_stores_survive_sigkill_of_the_node(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    rng = random.Random(20261121)
    acknowledged: set[bytes] = set()
    for round_ in range(ROUNDS):
        with ExitStack() as processes:
            node, uri = processes.enter_context(
                qdht_node(
                    "--listen",
                    "udp://127.0.0.1:0",
                    "--data-dir",
                    str(data_dir),
                    "--status-interval",
                    "0",
                )
            )
            acked = trio.run(
                _stream_until_killed, uri, node.popen.pid, rng.randrange(5, 60), round_
            )
            assert node.wait() == -signal.SIGKILL, node.describe()
        assert acked
        acknowledged |= acked
        with SqliteRecordStore(data_dir / RECORDS_FILE) as store:  # integrity checked on open
            assert store.integrity_check() == []
            missing = [key.hex() for key in acknowledged if not store.get(key)]
            assert missing == []

    # The restarted node serves what it acknowledged before the kills.
    async def read_back(uri: str) -> list[bytes | None]:
        config = Config(listen=("udp://127.0.0.1:0",), puzzle_difficulty=int(DIFFICULTY))
        async with open_node(config) as client:
            assert await client.bootstrap([uri]) == 1
            return [await client.get(key) for key in sorted(acknowledged)[:10]]

    with qdht_node(
        "--listen", "udp://127.0.0.1:0", "--data-dir", str(data_dir), "--status-interval", "0"
    ) as (node, uri):
        values = trio.run(read_back, uri)
        node.send_signal(signal.SIGINT)
        assert node.wait() == 0, node.describe()
    assert all(value is not None and len(value) == 1024 for value in values)
