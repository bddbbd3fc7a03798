"""``qdht demo --mixnet``: mixes, an authority and clients on loopback UDP, measured.

Starts one directory authority, ``--mixes`` mixes and ``--clients`` clients
(each its own UDP socket on 127.0.0.1, ``qdht.testing.open_mix_network``),
lets the mixes publish their descriptors, the authority sign the directory
and everyone fetch it, then runs ``--values`` rounds of an anonymous put,
an anonymous get of its key by another client and a plain get, and prints
their success and latency with the one-way latency of the clients' 3-hop
loops.  Exit status 1 if any operation failed.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any, Final

import attrs
import trio

from qdht.cli._common import usage_error
from qdht.cli._output import Output, format_seconds
from qdht.mixnet import MixnetConfig
from qdht.testing import AnonymousOutcomes, loop_latencies, open_mix_network, percentile

__all__ = ["DEMO_MIXNET", "run_mixnet_demo"]

#: The default network: 3 hops, 2 KiB payload (the values put are small).
DEMO_MIXNET: Final = MixnetConfig()


async def _demo(args: argparse.Namespace, seed: int, out: Output) -> dict[str, Any]:
    outcomes = AnonymousOutcomes()
    report: dict[str, Any] = {"seed": seed, "mixes": args.mixes, "clients": args.clients}
    mixnet = attrs.evolve(DEMO_MIXNET, anonymous_timeout=args.timeout)
    async with open_mix_network(
        args.mixes,
        args.clients,
        seed=seed,
        mixnet=mixnet,
        difficulty=args.difficulty,
        k=args.k,
    ) as network:
        started = time.perf_counter()
        accepted = await network.publish_directory()
        report["directory_s"] = time.perf_counter() - started
        report["directory_accepted"] = f"{accepted}/{len(network.nodes)}"
        out.note(f"directory: accepted by {accepted} of {len(network.nodes)} nodes")
        await outcomes.run(network, args.values, seed=seed, op_timeout=args.timeout)
        report["operations"] = outcomes.summary()
        report["failures"] = outcomes.failures
        samples = loop_latencies(network)
        report["loop_latency"] = {
            "samples": len(samples),
            "median_s": percentile(samples, 50),
            "p95_s": percentile(samples, 95),
        }
        stats = [node.stats()["mixnet"] for node in network.nodes]
        report["mixed"] = sum(s["mixed"] for s in stats)
        report["exit_requests"] = sum(s.get("exit_requests", 0) for s in stats)
        report["replays"] = sum(s["replays"] for s in stats)
    return report


def run_mixnet_demo(args: argparse.Namespace, out: Output) -> int:
    if not 4 <= args.mixes <= 40:
        raise usage_error("--mixes must be in 4..40")
    if not 2 <= args.clients <= 50:
        raise usage_error("--clients must be in 2..50")
    if args.values is None:
        args.values = 10
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    out.note(
        f"qdht demo --mixnet: 1 authority, {args.mixes} mixes, {args.clients} clients on "
        f"loopback UDP, 3 hops, 50 ms mean delay per hop, seed {seed}"
    )
    report = trio.run(_demo, args, seed, out)
    rows = []
    for name, summary in report["operations"].items():
        rate = summary["success_rate"]
        rows.append(
            [
                name,
                f"{summary['ok']}/{summary['total']}",
                "-" if rate is None else f"{100 * rate:.1f} %",
                format_seconds(summary["latency_median_s"]),
                format_seconds(summary["latency_p95_s"]),
            ]
        )
    loops = report["loop_latency"]
    rows.append(
        [
            "3-hop loop (one way)",
            str(loops["samples"]),
            "-",
            format_seconds(loops["median_s"]),
            format_seconds(loops["p95_s"]),
        ]
    )
    out.table(
        "mixnet operations",
        ["operation", "ok", "success", "latency median", "latency p95"],
        rows,
    )
    out.note(
        f"packets mixed {report['mixed']}, exit requests {report['exit_requests']} "
        f"(with dummy lookups), replays dropped {report['replays']}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        out.note(f"wrote {args.json}")
    for failure in report["failures"]:
        out.error(f"failed: {failure}")
    return 1 if report["failures"] else 0
