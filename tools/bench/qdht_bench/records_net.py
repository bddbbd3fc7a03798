"""``qdht-bench records``: signed records on a real loopback network, and their storage.

``--nodes`` full nodes (default 50) in this process, each on its own UDP
socket on 127.0.0.1, every channel a post-quantum session; node 0 is the
bootstrap node.  Identities are minted at puzzle difficulty 0 (minting is
``qdht-bench identity``'s business, not this one's).  Then, with
``--concurrency`` operations in flight, from random nodes:

* ``put_per_s``: ``put_immutable`` of ``--puts`` values of ``--value-size``
  bytes (a lookup for the key, then STOREs to the k closest);
* ``mutable_put_per_s``: ``put_mutable`` (explicit ``seq``, so no get first)
  of as many signed records — an ML-DSA-65 signature per record and a
  verification at each holder;
* ``get_per_s`` and ``mutable_get_per_s``: ``get`` of every key from another
  random node (a mutable get asks several holders and picks the highest
  sequence number), ``get_success`` the fraction found with the right value;
* ``set_get_success``: a set of ``--set-publishers`` entries (default 32,
  the default ``max_set_entries``) of 4000-byte values, one per publishing
  node: only 7 fit one answer, so a get reads the rest page by page
  (02-dht-rpc.md §4.2); the fraction of ``get_set`` calls, from random
  nodes, that returned every entry, and ``set_get_ms_median``;
* medians of each operation's latency (``*_ms_median``), and each as a ratio
  to the same run's median FIND_NODE lookup (``*_vs_find_node``; the lookup
  is ``find_node_per_s`` / ``find_node_ms_median``), the figure to compare
  across machines and loads.

Republish cost (07-records.md §10.2), in a core-level simulation of
``--republish-nodes`` nodes: ``republish_batched_<n>_*`` for a publisher of
``<n>`` records (``--republish-records``) that stores them again batched by
keyspace region, ``republish_per_record_<n>_*`` for one put per record (the
same run's baseline): lookups and messages sent per record, and the fraction
held by at least k/2 nodes afterwards.

Storage, on one core: ``sqlite_writes_per_s`` (acknowledged puts into a
fresh SQLite store, WAL; target ≥ 5,000) and ``bytes_per_record`` (Python
heap per 1 KiB record held in memory), as ``qdht-bench records-store`` measures
them in more detail.
"""

from __future__ import annotations

import argparse
import collections
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio

from qdht import Config, Node, open_node
from qdht.identity import Identity
from qdht_bench._common import BenchResult, Target, median
from qdht_bench._republish import republish_cost
from qdht_bench.records_store import memory_bytes_per_record, sqlite_writes_per_s

__all__ = ["DESCRIPTION", "add_arguments", "run", "spawn_node"]

DESCRIPTION: Final = "record puts/gets per second on a loopback network, SQLite writes, bytes"
#: Set gets measured (each fetches every entry of the set).
SET_GETS: Final = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=50, help="nodes on loopback UDP")
    parser.add_argument("--puts", type=int, default=200, help="records of each kind")
    parser.add_argument("--concurrency", type=int, default=8, help="operations in flight")
    parser.add_argument("--value-size", type=int, default=1024, help="bytes per value")
    parser.add_argument("--seed", type=int, default=1, help="seed of identities and choices")
    parser.add_argument("--store-count", type=int, default=2000, help="puts per SQLite batch")
    parser.add_argument(
        "--set-publishers", type=int, default=32, help="publishers of the set that get_set reads"
    )
    parser.add_argument(
        "--republish-records",
        default="1000,10000",
        help="published record counts whose republish cost is measured (empty: skip)",
    )
    parser.add_argument(
        "--republish-nodes", type=int, default=300, help="nodes of the republish simulation"
    )
    parser.add_argument(
        "--republish-baseline",
        type=int,
        default=1000,
        help="records republished one put each, the same run's baseline (0: skip)",
    )


async def spawn_node(nursery: trio.Nursery, config: Config) -> Node:
    """Run a node with ``config`` in ``nursery`` until it is cancelled; the node."""

    async def run(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with open_node(config) as node:
            task_status.started(node)
            await trio.sleep_forever()

    node: Node = await nursery.start(run)
    return node


async def _timed(
    count: int,
    concurrency: int,
    failures: collections.Counter[str],
    operation: Callable[[int], Awaitable[bool]],
) -> tuple[float, list[float], int]:
    """Run ``operation(i)`` for every i; (operations per second, latencies in ms, successes).

    Exceptions are counted in ``failures`` by type and message."""
    limit = trio.Semaphore(concurrency)
    latencies: list[float] = []
    ok = 0

    async def one(i: int) -> None:
        nonlocal ok
        async with limit:
            start = time.perf_counter()
            try:
                succeeded = await operation(i)
            except Exception as exc:  # a failure is a measured outcome, reported by kind
                failures[f"{type(exc).__name__}: {exc}"[:120]] += 1
            else:
                ok += succeeded  # after the await: ``ok += await ...`` would lose updates
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(count):
            nursery.start_soon(one, i)
    return count / (time.perf_counter() - start), latencies, ok


async def _network(
    args: argparse.Namespace, failures: collections.Counter[str]
) -> dict[str, float]:
    rng = random.Random(args.seed)
    figures: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        nodes: list[Node] = []
        for _ in range(args.nodes):
            identity = Identity.generate(0)
            config = Config(listen=("udp://127.0.0.1:0",), identity=identity, puzzle_difficulty=0)
            nodes.append(await spawn_node(nursery, config))
        for node in nodes[1:]:
            await node.bootstrap([nodes[0].contact])
        count, size = args.puts, args.value_size
        values = [rng.randbytes(size) for _ in range(count)]
        putters = [rng.randrange(args.nodes) for _ in range(count)]
        getters = [(p + 1 + rng.randrange(args.nodes - 1)) % args.nodes for p in putters]
        keys: list[bytes] = [b""] * count

        async def put(i: int) -> bool:
            keys[i] = await nodes[putters[i]].put_immutable(values[i])
            return True

        async def get(i: int) -> bool:
            got = await nodes[getters[i]].get(keys[i])
            return bool(got == values[i])

        # Baseline, same network and load: a FIND_NODE lookup for a random ID (what
        # every put and get starts with), so the record figures read as ratios too.
        targets = [rng.randbytes(32) for _ in range(count)]

        async def find(i: int) -> bool:
            return bool(await nodes[putters[i]].find_node(targets[i]))

        rate, ms, ok = await _timed(count, args.concurrency, failures, find)
        figures |= {"find_node_per_s": rate, "find_node_ms_median": median(ms)}
        rate, ms, ok = await _timed(count, args.concurrency, failures, put)
        figures |= {"put_per_s": rate, "put_ms_median": median(ms), "put_success": ok / count}
        rate, ms, ok = await _timed(count, args.concurrency, failures, get)
        figures |= {"get_per_s": rate, "get_ms_median": median(ms), "get_success": ok / count}

        salts = [i.to_bytes(4, "big") for i in range(count)]
        mkeys: list[bytes] = [b""] * count

        async def put_mutable(i: int) -> bool:
            mkeys[i] = await nodes[putters[i]].put_mutable(values[i], salt=salts[i], seq=1)
            return True

        async def get_mutable(i: int) -> bool:
            got = await nodes[getters[i]].get(mkeys[i])
            return bool(got == values[i])

        rate, ms, ok = await _timed(count, args.concurrency, failures, put_mutable)
        figures |= {"mutable_put_per_s": rate, "mutable_put_ms_median": median(ms)}
        figures["mutable_put_success"] = ok / count
        rate, ms, ok = await _timed(count, args.concurrency, failures, get_mutable)
        figures |= {"mutable_get_per_s": rate, "mutable_get_ms_median": median(ms)}
        figures["mutable_get_success"] = ok / count

        publishers = rng.sample(range(args.nodes), min(args.set_publishers, args.nodes))
        topic = b"qdht-bench set"
        entries = {
            nodes[p].identity.mldsa_public_hash: bytes([i % 256]) * 4000
            for i, p in enumerate(publishers)
        }

        async def put_entry(i: int) -> bool:
            node = nodes[publishers[i]]
            await node.put_set_entry(topic, entries[node.identity.mldsa_public_hash], seq=1)
            return True

        async def get_set(i: int) -> bool:
            got = await nodes[getters[i]].get_set(topic)
            return {e.owner: e.value for e in got} == entries

        await _timed(len(publishers), args.concurrency, failures, put_entry)
        gets = min(count, SET_GETS)
        rate, ms, ok = await _timed(gets, args.concurrency, failures, get_set)
        figures |= {"set_get_ms_median": median(ms), "set_get_success": ok / gets}
        base = figures["find_node_ms_median"]
        for op in ("put", "get", "mutable_put", "mutable_get", "set_get"):
            figures[f"{op}_vs_find_node"] = figures[f"{op}_ms_median"] / base
        nursery.cancel_scope.cancel()
    return figures


def run(args: argparse.Namespace) -> BenchResult:
    if args.nodes < 2 or args.puts < 1 or args.concurrency < 1 or args.set_publishers < 1:
        raise SystemExit(
            "qdht-bench records: --nodes ≥ 2, --puts ≥ 1, --concurrency ≥ 1, --set-publishers ≥ 1"
        )
    result = BenchResult("records")
    started = time.perf_counter()
    failures: collections.Counter[str] = collections.Counter()
    figures = trio.run(_network, args, failures)
    for name, value in figures.items():
        if name.endswith("_success"):
            trials = min(args.puts, SET_GETS) if name == "set_get_success" else args.puts
            result.add_rate(name, round(value * trials), trials, target=0.999)
        else:
            result.add(name, value)
    result.add("network_wall_s", time.perf_counter() - started)
    result.add(
        "sqlite_writes_per_s",
        sqlite_writes_per_s(args.store_count, args.value_size, 3),
        Target(">=", 5000),
    )
    result.add("bytes_per_record", memory_bytes_per_record(args.store_count, args.value_size))
    counts = [int(x) for x in args.republish_records.split(",") if x]
    runs = [(n, True) for n in counts]
    if args.republish_baseline:
        runs.append((args.republish_baseline, False))
    for records, batched in runs:
        cost = republish_cost(args.republish_nodes, records, batched=batched, seed=args.seed)
        how = "batched" if batched else "per_record"
        for name, value in cost.items():
            result.add(f"republish_{how}_{records}_{name}", round(value, 4))
    if counts and args.republish_baseline:
        per = result.metrics.get(
            f"republish_per_record_{args.republish_baseline}_messages_per_record"
        )
        own = result.metrics.get(f"republish_batched_{args.republish_baseline}_messages_per_record")
        if per and own:
            result.add("republish_messages_ratio_to_per_record", round(own / per, 3))
    for failure, count in failures.most_common(5):
        result.notes.append(f"failed {count}x: {failure}")
    result.notes.append(
        f"{args.nodes} nodes on 127.0.0.1 UDP in one process (2 cores shared), "
        f"{args.puts} records of {args.value_size} bytes per kind, "
        f"{args.concurrency} operations in flight; bytes_per_record includes the value; "
        f"a set of {min(args.set_publishers, args.nodes)} entries of 4000 bytes read by "
        f"{min(args.puts, 50)} get_set calls"
    )
    result.notes.append(
        f"republish: core-level simulation of {args.republish_nodes} nodes, one publisher "
        "storing its records again batched by keyspace region, against one put per record"
    )
    return result
