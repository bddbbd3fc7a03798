"""``qdht-bench walk``: does the random walk repair a table that lying contacts biased?

``02-dht-rpc.md`` §8 says the hourly random walk "repairs a table biased by
a lying bootstrap contact or an eclipse attempt over time".  This measures
that claim, and what the walk's width costs, in a core-level simulation
(:class:`qdht.testing.AdversarialNetwork`, 5 % message loss, no churn so
that nothing but the node's own maintenance and other nodes' traffic can
repair a table): ``--nodes`` nodes of which ``--adversaries`` (a fraction)
answer every FIND_NODE with each other only (``misroute``); then
``--victims`` honest newcomers join through ``--lying`` adversaries and one
honest node each.  A victim whose routing table holds no honest node after
its join is *eclipsed*; ``repaired_<mode>`` is the fraction of those whose
table holds an honest node ``--hours`` later, and
``found_nearest_<mode>`` the fraction of ten FIND_NODE lookups per victim
(random targets, at the end) whose answer includes the live honest node
nearest the target.  ``messages_<mode>`` counts every message the network
delivered over the hours.  Modes: ``full`` (every refresh lookup, the
walk's and idle buckets', ends when the k = 20 closest it found answered: the
reference implementation before session 11), ``narrow`` (the default
``LookupConfig.refresh_window`` = 5), ``none`` (no walk; idle buckets are
still refreshed, narrow).  Every mode starts from the same seed, so the same network
and the same victims.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from typing import Final

from qdht.dht import LookupConfig, RoutingConfig
from qdht.testing import AdversarialNetwork, SimCore
from qdht_bench._common import BenchResult

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION: Final = "does the random walk repair eclipsed routing tables, and at what cost"

MODES: Final = ("full", "narrow", "none")
LOOKUPS_PER_VICTIM: Final = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=1000, help="nodes before the victims join")
    parser.add_argument("--adversaries", type=float, default=0.2, help="fraction misrouting")
    parser.add_argument("--victims", type=int, default=100, help="newcomers joining biased")
    parser.add_argument("--lying", type=int, default=8, help="lying bootstrap contacts each")
    parser.add_argument("--hours", type=float, default=6.0, help="simulated hours to repair")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated modes")
    parser.add_argument("--seed", type=int, default=1)


def _core_options(mode: str) -> dict[str, object]:
    if mode == "full":
        return {"lookup": LookupConfig(refresh_window=LookupConfig().k)}
    if mode == "none":
        return {"routing": RoutingConfig(random_walk_interval=None)}
    return {}


def _eclipsed(victims: list[SimCore], adversaries: set[bytes]) -> set[int]:
    """Indexes of the victims whose routing tables hold no honest node."""
    return {
        i for i, v in enumerate(victims) if all(c.node_id in adversaries for c in v.core.routing)
    }


def _one(args: argparse.Namespace, mode: str) -> dict[str, float]:
    started = time.process_time()
    net = AdversarialNetwork(
        seed=args.seed, loss=0.05, pass_objects=True, core_options=_core_options(mode)
    )
    net.build_mixed(args.nodes, args.adversaries)
    net.activate("misroute")
    rng = random.Random(args.seed + 1)
    honest = net.honest
    liars = list(net.adversaries)
    adversaries = {a.node_id for a in liars}
    victims = []
    for _ in range(args.victims):
        boot = [*rng.sample(liars, min(args.lying, len(liars))), rng.choice(honest)]
        victims.append(net.add_node(bootstrap=boot))
        net.run_until(net.now + 0.5)
    eclipsed = _eclipsed(victims, adversaries)
    delivered = net.stats()["delivered"]
    net.run_until(net.now + args.hours * 3600)
    messages = net.stats()["delivered"] - delivered
    still = _eclipsed(victims, adversaries)
    ops = []
    for victim in victims:
        for _ in range(LOOKUPS_PER_VICTIM):
            target = rng.randbytes(32)
            ops.append((net.start_lookup(victim, target), target))
    net.wait([op for op, _ in ops])
    live = [int.from_bytes(n.node_id, "big") for n in net.honest]
    found = 0
    for op, target in ops:
        t = int.from_bytes(target, "big")
        nearest = min(live, key=lambda x: x ^ t).to_bytes(32, "big")
        found += any(c.node_id == nearest for c in op.contacts)
    return {
        "eclipsed": len(eclipsed),
        "repaired": len(eclipsed - still),
        "found": found,
        "lookups": len(ops),
        "messages": messages,
        "cpu_s": time.process_time() - started,
    }


def run(args: argparse.Namespace) -> BenchResult:
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        raise SystemExit(f"unknown modes {sorted(unknown)}; choose from {MODES}")
    result = BenchResult("walk")
    for mode in modes:
        row = _one(args, mode)
        print(f"  {mode:>6}: {row}", file=sys.stderr)
        result.add(f"eclipsed_{mode}", row["eclipsed"])
        result.add_rate(f"repaired_{mode}", int(row["repaired"]), int(row["eclipsed"]))
        result.add_rate(f"found_nearest_{mode}", int(row["found"]), int(row["lookups"]))
        result.add(f"messages_{mode}", row["messages"])
        result.add(f"cpu_s_{mode}", round(row["cpu_s"], 1))
    if "full" in modes:
        for mode in modes:
            if mode != "full":
                result.add(
                    f"messages_ratio_{mode}_vs_full",
                    round(result.metrics[f"messages_{mode}"] / result.metrics["messages_full"], 3),
                )
    result.notes.append(
        f"{args.nodes} nodes, {args.adversaries:.0%} misrouting, {args.victims} victims joining "
        f"through {args.lying} liars and 1 honest node, {args.hours:g} simulated hours, "
        "5 % loss, no churn; every mode from the same seed"
    )
    return result
