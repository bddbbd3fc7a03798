"""``qdht-bench dht-sim``: lookups in a simulated network of N nodes, before and after 30 % die.

Two levels, both in memory and seeded:

* **core level** (``--nodes``, 10,000 for the targets): N production
  ``DhtCore`` s driven by :class:`qdht.testing.CoreNetwork`'s discrete-event
  loop in simulated time.  Sessions are *not* run: messages travel over an
  authenticated channel where the simulator vouches for node IDs (see that
  class).  Every node joins like a real one (ping a random live node, look up
  its own ID); no routing table is built by an oracle.
* **full stack** (``--full-stack-nodes``): real ``Node`` s with PQNoise
  sessions on a ``MemoryNetwork`` under ``MockClock``
  (:func:`qdht.testing.build_network`), at a size that fits in a run.

A "lookup" is a get: ``--values`` immutable values are put from random nodes,
then each is fetched by a random other node.  ``lookup_success`` is the
fraction of gets that return the value; ``hops`` is the hop count of the node
that returned it (initial contacts are hop 1); ``rpcs_per_lookup`` counts the
get's requests.  FIND_NODE lookups for random targets (``--lookups``) measure
whether the true closest live node is found.  Then 30 % of the nodes are
killed at once (their routing-table entries are still everywhere) and
everything is measured again.

``bytes_per_node``: growth of the process's resident memory (RSS) over
building the core-level network, divided by N (``--memory tracemalloc`` uses
traced Python allocations instead and prints the top allocation sites).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import time
import tracemalloc

import trio
import trio.testing

from qdht.testing import CoreNetwork, SimOperation, build_network
from qdht_bench._common import BenchResult, Target, median, percentile

DESCRIPTION = (
    "DHT lookups at N simulated nodes (core level + full stack), then with 30 percent killed"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=1000, help="core-level nodes (targets: 10000)")
    parser.add_argument("--values", type=int, default=200, help="values put, then got back")
    parser.add_argument("--lookups", type=int, default=200, help="FIND_NODE lookups per phase")
    parser.add_argument("--kill", type=float, default=0.3, help="fraction of nodes killed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--join-interval", type=float, default=0.05, help="simulated seconds between joins"
    )
    parser.add_argument(
        "--full-stack-nodes", type=int, default=200, help="full-stack nodes (0: skip)"
    )
    parser.add_argument(
        "--full-stack-values", type=int, default=50, help="values put and got in the full stack"
    )
    parser.add_argument("--memory", choices=("rss", "tracemalloc"), default="rss")


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _core_phase(
    net: CoreNetwork, rng: random.Random, keys: list[tuple[bytes, bytes]], lookups: int
) -> tuple[tuple[int, int], dict[str, float]]:
    """((gets that found the value, gets), the phase's other figures)."""
    gets: list[tuple[SimOperation, bytes]] = []
    for key, value in keys:
        gets.append((net.start_lookup(rng.choice(net.alive), key, kind="get"), value))
    finds = [net.start_lookup(rng.choice(net.alive), rng.randbytes(32)) for _ in range(lookups)]
    net.wait([op for op, _ in gets] + finds)
    ok = [op.value == value for op, value in gets]
    hops = [float(op.trace.hops) for op, _ in gets if op.trace is not None and op.value is not None]
    rpcs = [float(op.trace.rpcs) for op, _ in gets if op.trace is not None]
    ms = [1000 * (op.finished_at - op.started_at) for op, _ in gets if op.finished_at is not None]
    found = 0
    recall = 0.0
    for op in finds:
        truth = net.true_closest(op.target, 20, exclude=op.node)
        got = [c.node_id for c in op.contacts]
        found += bool(got) and got[0] == truth[0]
        recall += len(set(got) & set(truth)) / len(truth)
    find_rpcs = [float(op.trace.rpcs) for op in finds if op.trace is not None]
    return (sum(ok), len(ok)), {
        "hops_median": median(hops),
        "hops_p99": percentile(hops, 99),
        "rpcs_per_lookup_median": median(rpcs),
        "get_ms_median": median(ms),
        "get_ms_p99": percentile(ms, 99),
        "closest_found": found / len(finds) if finds else float("nan"),
        "k_closest_recall": recall / len(finds) if finds else float("nan"),
        "rpcs_per_find_node_median": median(find_rpcs),
    }


def _core_level(args: argparse.Namespace, result: BenchResult) -> None:
    rng = random.Random(args.seed)
    gc.collect()
    if args.memory == "tracemalloc":
        tracemalloc.start(8)
        snapshot = tracemalloc.take_snapshot()
        base = tracemalloc.get_traced_memory()[0]
    else:
        base = _rss()
    start = time.perf_counter()
    net = CoreNetwork(seed=args.seed)
    net.build(args.nodes, join_interval=args.join_interval)
    build_s = time.perf_counter() - start
    gc.collect()
    if args.memory == "tracemalloc":
        grown = tracemalloc.get_traced_memory()[0] - base
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        top = after.compare_to(snapshot, "lineno")[:12]
        for stat in top:
            result.notes.append(f"tracemalloc: {stat}")
    else:
        grown = _rss() - base
    sizes = sorted(len(n.core.routing) for n in net.nodes)
    result.add("nodes", args.nodes)
    result.add("build_s", build_s)
    result.add("bytes_per_node", grown / args.nodes, Target("<=", 64 * 1024))
    result.add("routing_table_median", median([float(s) for s in sizes]))
    result.add("joined", sum(1 for n in net.nodes if n.joined) / args.nodes)

    puts = []
    for _ in range(args.values):
        value = rng.randbytes(64)
        puts.append((net.start_put(rng.choice(net.alive), value), value))
    net.wait([op for op, _ in puts])
    result.add_rate("put_success", sum(op.succeeded for op, _ in puts), len(puts))
    keys = [(op.target, value) for op, value in puts]

    t0 = time.perf_counter()
    delivered = net.stats()["delivered"]
    (ok, n), figures = _core_phase(net, rng, keys, args.lookups)
    result.add_rate("lookup_success", ok, n)
    result.add("lookup_failures", n - ok, Target("==", 0))
    for name, figure in figures.items():
        result.add(name, figure, {"hops_median": Target("<=", 4)}.get(name))
    measure_s = time.perf_counter() - t0
    killed = int(args.nodes * args.kill)
    net.kill_random(killed)
    suffix = f"_killed{round(args.kill * 100)}"
    (ok, n), figures = _core_phase(net, rng, keys, args.lookups)
    result.add_rate(f"lookup_success{suffix}", ok, n, target=0.99)
    for name, figure in figures.items():
        result.add(f"{name}{suffix}", figure)
    stats = net.stats()
    result.add("sim_seconds", net.now)
    result.add("messages", stats["delivered"])
    result.add("core_wall_s", time.perf_counter() - start)
    result.notes.append(
        f"core level: {args.nodes} DhtCores, sessions not simulated (authenticated "
        "channel: the simulator vouches for node IDs); tables built by real joins "
        f"(ping + own-ID lookup), one join every {args.join_interval} s simulated"
    )
    result.notes.append(
        f"bytes_per_node = {args.memory} growth over building the network / N; "
        f"{stats['delivered'] - delivered} messages in the first measuring phase took "
        f"{measure_s:.1f} s wall"
    )


async def _full_stack(args: argparse.Namespace, result: BenchResult) -> None:
    rng = random.Random(args.seed)
    n = args.full_stack_nodes
    gc.collect()
    rss0 = _rss()
    start = time.perf_counter()
    async with build_network(n, seed=args.seed) as sim:
        build_s = time.perf_counter() - start
        result.add("fs_nodes", n)
        result.add("fs_build_s", build_s)
        result.add("fs_bytes_per_node", (_rss() - rss0) / n)
        keys = []
        for _ in range(args.full_stack_values):
            value = rng.randbytes(64)
            keys.append((await rng.choice(sim.nodes).put(value), value))

        async def phase(suffix: str) -> None:
            ok = 0
            hops: list[float] = []
            latency: list[float] = []
            for key, value in keys:
                node = rng.choice(sim.nodes)
                t = trio.current_time()
                got = await node.get(key)
                latency.append(1000 * (trio.current_time() - t))
                ok += got == value
                trace = node.last_lookup_trace
                if got == value and trace is not None and trace.found_value:
                    hops.append(float(trace.hops))
            result.add_rate(f"fs_lookup_success{suffix}", ok, len(keys))
            if not suffix:
                result.add("fs_lookup_failures", len(keys) - ok, Target("==", 0))
            result.add(f"fs_hops_median{suffix}", median(hops))
            result.add(f"fs_get_ms_median{suffix}", median(latency))
            result.add(f"fs_get_ms_p99{suffix}", percentile(latency, 99))

        await phase("")
        await sim.kill_random(int(n * args.kill))
        await phase(f"_killed{round(args.kill * 100)}")
        result.add("fs_wall_s", time.perf_counter() - start)
    result.notes.append(
        f"full stack: {n} Nodes with PQNoise sessions on a MemoryNetwork under MockClock "
        "(puzzle difficulty 0); get latencies are simulated milliseconds; "
        "fs_hops counts only gets answered by a remote node"
    )


def run(args: argparse.Namespace) -> BenchResult:
    result = BenchResult("dht-sim")
    _core_level(args, result)
    if args.full_stack_nodes > 0:
        trio.run(_full_stack, args, result, clock=trio.testing.MockClock(autojump_threshold=0))
    return result
