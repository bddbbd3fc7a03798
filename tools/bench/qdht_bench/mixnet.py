"""``qdht-bench mixnet``: a mixnet of real nodes on loopback UDP, measured end to end.

One process runs an authority, ``--mixes`` mixes (9-30) and ``--clients``
clients, each node on its own UDP socket on 127.0.0.1
(``qdht.testing.open_mix_network``), with mixing on (3 hops, mean delay
50 ms per hop, Loopix's rates of one packet per second per stream).  After
the directory round it measures, in the same run:

* ``loop_*_ms``: the one-way latency of a 3-hop path: the clients' loop
  packets, from sending to return (three mixes' delays, the links, the
  work), over ``--duration`` seconds;
* ``anon_get_*`` and ``plain_get_*``: ``--ops`` rounds of an anonymous put
  by one client, then an anonymous get and a plain get of its key by
  another; success rates and latencies, and their ratio.

Every node shares one core with the rest of this process (and whatever else
the machine runs): ``cpu_share`` is the process CPU time over the wall time
of the measured phase, to read the latencies against.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Any, Final

import trio

from qdht.errors import ConfigError
from qdht.mixnet import MixnetConfig
from qdht.testing import AnonymousOutcomes, loop_latencies, open_mix_network
from qdht_bench._common import BenchResult, Target, median, percentile

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION: Final = "mixnet in nodes on loopback UDP: 3-hop latency, anonymous get vs plain get"
#: The default network: 3 hops, 2 KiB payload (the values put are small).
NETWORK: Final = MixnetConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mixes", type=int, default=9, help="mixes, 9..30 (default 9)")
    parser.add_argument("--clients", type=int, default=4, help="clients (default 4)")
    parser.add_argument("--ops", type=int, default=200, help="put/get rounds (default 200)")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds of loop traffic (default 20)"
    )
    parser.add_argument(
        "--signed", type=int, default=20, help="rounds with signed records (default 20)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the network and values")
    parser.add_argument(
        "--quick", action="store_true", help="9 mixes, 10 rounds, 5 s of loops (a smoke run)"
    )


async def _measure(args: argparse.Namespace, result: BenchResult) -> dict[str, Any]:
    outcomes = AnonymousOutcomes()
    async with open_mix_network(
        args.mixes, args.clients, seed=args.seed, mixnet=NETWORK, difficulty=0
    ) as network:
        accepted = await network.publish_directory()
        result.notes.append(f"directory accepted by {accepted} of {len(network.nodes)} nodes")
        for node in network.clients:  # samples from the measured phase only
            node.anonymous.core.client._loops.latencies.clear()
        for node in network.mixes:
            if node.anonymous.core.role is not None:
                node.anonymous.core.role.release_lateness.clear()
        wall, cpu = time.perf_counter(), time.process_time()
        await trio.sleep(args.duration)
        loops = loop_latencies(network)
        lateness = [
            late
            for node in network.mixes
            if node.anonymous.core.role is not None
            for late in node.anonymous.core.role.release_lateness
        ]
        await outcomes.run(network, args.ops, seed=args.seed, op_timeout=30.0)
        if args.signed > 0:
            await outcomes.run(network, args.signed, seed=args.seed, op_timeout=60.0, signed=True)
        share = (time.process_time() - cpu) / (time.perf_counter() - wall)
        stats = [node.stats()["mixnet"] for node in network.nodes]
    return {
        "loops": loops,
        "lateness": lateness,
        "summary": outcomes.summary(),
        "failures": outcomes.failures,
        "latencies": outcomes.latencies,
        "cpu_share": share,
        "mixed": sum(s["mixed"] for s in stats),
        "replays": sum(s["replays"] for s in stats),
    }


def run(args: argparse.Namespace) -> BenchResult:
    if args.quick:
        args.mixes, args.ops, args.duration, args.signed = 9, 10, 5.0, 2
    if not 9 <= args.mixes <= 30:
        raise ConfigError("--mixes must be in 9..30")
    if args.clients < 2:
        raise ConfigError("--clients must be at least 2")
    result = BenchResult("mixnet")
    got = trio.run(_measure, args, result)
    loops = got["loops"]
    result.add("loop_samples", len(loops))
    result.add("loop_median_ms", median(loops) * 1000)
    result.add("loop_p95_ms", percentile(loops, 95) * 1000, Target("<=", 500))
    # Where the excess over the drawn delays goes: how late the mixes' timers
    # released packets (the process could not run), over the loop phase.
    late = got["lateness"]
    result.add("release_late_samples", len(late))
    result.add("release_late_median_ms", median(late) * 1000)
    result.add("release_late_p95_ms", percentile(late, 95) * 1000)
    summary = got["summary"]
    anon, put = summary["anonymous get"], summary["anonymous put"]
    # Rates with their evidence: trials and the 95 % Wilson lower bound.
    result.add_rate("anon_put_success", put["ok"], put["total"])
    result.add_rate("anon_get_success", anon["ok"], anon["total"], target=0.99)
    if args.signed > 0:
        # Signed records (~5.3 KB): in fragments at the default 2 KiB payload (§14.6).
        for name, label in (("put", "signed_put"), ("get", "signed_get")):
            rate = summary[f"anonymous signed {name}"]
            result.add_rate(f"anon_{label}_success", rate["ok"], rate["total"])
            latencies = got["latencies"][f"anonymous signed {name}"]
            result.add(f"anon_{label}_median_ms", median(latencies) * 1000)
    anon_median = median(got["latencies"]["anonymous get"])
    plain_median = median(got["latencies"]["plain get"])
    result.add("anon_get_median_ms", anon_median * 1000)
    result.add("anon_get_p95_ms", percentile(got["latencies"]["anonymous get"], 95) * 1000)
    result.add("plain_get_median_ms", plain_median * 1000)
    result.add("anon_vs_plain_get_ratio", anon_median / plain_median)
    if got["failures"]:
        reasons = Counter(got["failures"])
        result.notes.append(
            "failures: " + "; ".join(f"{why} ({n})" for why, n in reasons.most_common())
        )
    result.add("packets_mixed", got["mixed"])
    result.add("replays_dropped", got["replays"])
    result.add("cpu_share", got["cpu_share"])
    result.notes.append(
        f"{args.mixes} mixes, {args.clients} clients, {args.ops} rounds, seed {args.seed}; "
        f"anonymous gets wait for a payload slot (λ_P = 1/s) and cross 6 mixes"
    )
    return result
