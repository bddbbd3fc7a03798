"""``qdht-bench durability``: do records survive two days of churn with replication on?

A core-level simulation (:class:`qdht.testing.CoreNetwork`: production
``DhtCore`` s in simulated time, sessions not simulated) of ``--nodes``
nodes.  ``--records`` immutable records are put from random nodes; then for
``--hours`` simulated hours nodes leave and new ones join (one replaced at
a time, evenly spread, until ``--churn`` of the network was replaced: a node
that leaves loses everything it stored, a new one bootstraps from a random
live node), while every holder runs its republish rounds and hands records
to new close nodes (``protocol-spec/07-records.md`` §10).  At the end every
record is fetched from a random live node: ``retrievable_<pct>`` is the
fraction found.  Records expire after the run (``exp`` beyond it), so this
measures the holders' replication alone, without any publisher putting its
records again.

Replication cost: ``republish_lookups_per_h`` and ``republish_stores_per_h``
are the region lookups and STOREs of every node's republish rounds, per
simulated hour over the whole network; ``handoff_stores_per_h`` the STOREs
handed to new close nodes.  ``replicas_*`` count the live nodes holding each
record at the end (k = 20 is the goal).
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
import time
from typing import Any

from qdht.dht._records import make_immutable
from qdht.testing import ChurnSchedule, CoreNetwork, SimOperation
from qdht.wire import immutable_key
from qdht_bench._common import BenchResult, Target, median, percentile

DESCRIPTION = "records retrievable after 48 simulated hours of churn, with replication"

#: Unix time at simulated time 0 (records carry absolute expiry times).
UNIX_START = 1_800_000_000
_HOUR = 3600.0
_TARGETS = {30: 0.999, 50: 0.99}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=2000)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=48.0, help="simulated hours of churn")
    parser.add_argument(
        "--churn",
        type=float,
        nargs="+",
        default=[0.3, 0.5],
        help="fractions of the network replaced over the run (one run each)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--join-interval", type=float, default=0.05, help="simulated seconds between joins"
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="print wall time and messages per simulated hour to stderr",
    )


def replacement_schedule(nodes: int, fraction: float, seconds: float) -> ChurnSchedule:
    """``fraction`` of ``nodes`` replaced one at a time, evenly over ``seconds``."""
    count = round(nodes * fraction)
    events: list[tuple[float, Any]] = []
    for i in range(count):
        at = (i + 0.5) * seconds / count
        events.append((at, "leave"))
        events.append((at, "join"))
    return ChurnSchedule.explicit(events)


def _replication_totals(net: CoreNetwork) -> dict[str, int]:
    totals = {"round_lookups": 0, "round_stores": 0, "handoff_stores": 0, "stores_sent": 0}
    for node in net.nodes:
        counts = node.core.replication.counts
        for name in totals:
            totals[name] += counts[name]
    return totals


def _report_hourly(
    net: CoreNetwork, keys: list[bytes], start: float, hours: float, wall: float
) -> None:
    """Print one progress line to stderr at every simulated hour of the churn phase;
    every sixth hour also the live replicas per record (read off the nodes' stores,
    no messages sent, so the run is not disturbed)."""

    def report(hour: int) -> None:
        stats = net.stats()
        line = (
            f"durability: hour {hour}/{hours:g} wall {time.perf_counter() - wall:.0f} s "
            f"messages {stats['delivered']} alive {stats['alive']}"
        )
        if hour % 6 == 0:
            replicas = [float(len(net.holders(key))) for key in keys]
            line += f" replicas min {min(replicas):g} median {median(replicas):g}"
        print(line, file=sys.stderr, flush=True)

    for hour in range(1, int(hours) + 1):
        net.call_at(start + hour * _HOUR, functools.partial(report, hour))


def run_one(
    *,
    nodes: int,
    records: int,
    hours: float,
    churn: float,
    seed: int,
    join_interval: float,
    progress: bool = False,
) -> dict[str, float]:
    """One simulated run; returns its flat metrics (without the churn suffix)."""
    rng = random.Random(seed)
    wall = time.perf_counter()
    net = CoreNetwork(seed=seed, core_options={"unix_offset": float(UNIX_START)})
    net.build(nodes, join_interval=join_interval)
    built_at = net.now
    expires = UNIX_START + round(built_at + (hours + 24) * _HOUR)
    puts: list[SimOperation] = []
    keys: list[tuple[bytes, bytes]] = []
    for _ in range(records):
        value = rng.randbytes(64)
        record = make_immutable(value, expires)
        puts.append(net.start_put_record(rng.choice(net.alive), record))
        keys.append((immutable_key(value), value))
    net.wait(puts)
    put_ok = sum(op.succeeded for op in puts) / len(puts)
    before = _replication_totals(net)
    start = net.now
    if progress:
        _report_hourly(net, [key for key, _ in keys], start, hours, wall)
    net.run_churn(replacement_schedule(nodes, churn, hours * _HOUR))
    net.run_until(start + hours * _HOUR)
    after = _replication_totals(net)
    gets = [
        (net.start_lookup(rng.choice(net.alive), key, kind="get"), value) for key, value in keys
    ]
    net.wait([op for op, _ in gets])
    found = sum(op.value == value for op, value in gets)
    replicas = [float(len(net.holders(key))) for key, _ in keys]
    spent = {name: after[name] - before[name] for name in after}
    return {
        "put_success": put_ok,
        "retrievable": found / len(keys),
        "replicas_median": median(replicas),
        "replicas_p1": percentile(replicas, 1),
        "replicas_min": min(replicas),
        "republish_lookups_per_h": spent["round_lookups"] / hours,
        "republish_stores_per_h": spent["round_stores"] / hours,
        "handoff_stores_per_h": spent["handoff_stores"] / hours,
        "stores_sent_per_h": spent["stores_sent"] / hours,
        "nodes_replaced": round(nodes * churn),
        "messages": net.stats()["delivered"],
        "wall_s": time.perf_counter() - wall,
    }


def run(args: argparse.Namespace) -> BenchResult:
    result = BenchResult("durability")
    result.add("nodes", args.nodes)
    result.add("records", args.records)
    result.add("hours", args.hours)
    for fraction in args.churn:
        pct = round(fraction * 100)
        metrics = run_one(
            nodes=args.nodes,
            records=args.records,
            hours=args.hours,
            churn=fraction,
            seed=args.seed,
            join_interval=args.join_interval,
            progress=args.progress,
        )
        for name, value in metrics.items():
            target = None
            if name == "retrievable" and pct in _TARGETS:
                target = Target(">=", _TARGETS[pct])
            result.add(f"{name}_{pct}", value, target)
    result.notes.append(
        "core level (CoreNetwork, MockClock-style simulated time, sessions not simulated); "
        "immutable records with exp after the run: holders' replication only, no publisher "
        "re-puts; churn replaces nodes one at a time, evenly over the run"
    )
    return result
