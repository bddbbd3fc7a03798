"""``qdht-bench adversarial``: honest gets in a network where 10/20/30 % of the nodes lie.

A core-level simulation (:class:`qdht.testing.AdversarialNetwork`: production
``DhtCore`` s in a discrete-event loop, sessions and the ID puzzle not run —
the simulator vouches for node IDs).  One network of ``--nodes`` is built with
the largest fraction of (still honest-behaving) adversaries joined in random
order, and copied (pickled) for every cell, so cells are independent.  In a
cell the first ``pct`` % of the network's nodes turn adversarial with one
strategy, and the honest nodes, split at random into a d = 1 and a d = 4
half (disjoint lookup paths, S/Kademlia), each

1. publish ``--values`` mutable records (seq 1), then an update (seq 2):
   a ``stale`` adversary keeps seq 1 and replays it;
2. get them back from other honest nodes of the same half (``--gets`` each).

A get succeeds when it returns the seq-2 value; ``success_<pct>_d<d>`` is the
worst strategy's (eclipse apart).  ``forged_accepted`` counts
gets, over all cells, that returned a value never published (a forged record
accepted as valid), ``stale_accepted`` those that returned the superseded
version (seq 1): both must be 0; the notes name the cells where either
occurred, and ``not_wrong`` is the fraction of all gets (every cell) that
returned the latest value or none, with its trial count and lower bound.
``combined`` deals drop, misroute, forge, stale and flood round-robin among
the adversaries.  ``flood`` adversaries also send FIND_NODE at
``--flood-rate`` per second to one honest node each during the cell's first
``--flood-seconds``.

``eclipse`` is measured apart: after the values are published, ``pct`` % of
the network joins with IDs sharing ``ceil(log2 N) + 3`` leading bits with
the first value's key (closer than any honest node) and misroutes, and
acknowledges STOREs without keeping them; ``success_eclipse_*`` is the
success of gets for that key, ``eclipse_detected_<pct>`` the fraction of
those gets whose getter flagged the key as an ID cluster
(``stats()["clusters"]``), and ``eclipse_puzzle_hashes_<pct>`` what minting
those IDs would cost at the default puzzle difficulty (2^(b+19) each).
"""

from __future__ import annotations

import argparse
import math
import pickle
import random
import sys
import time
from typing import Any

from qdht.crypto import MLDSAPrivateKey
from qdht.dht import LookupConfig, sign_mutable
from qdht.identity import DEFAULT_PUZZLE_DIFFICULTY
from qdht.testing import (
    AdversarialNetwork,
    AdversaryCore,
    SimCore,
    SimOperation,
    eclipse_puzzle_cost,
)
from qdht_bench._common import BenchResult, Target

DESCRIPTION = "honest get success with 10/20/30 percent adversaries per strategy, d = 1 and 4"

STRATEGIES = ("drop", "misroute", "forge", "stale", "flood", "combined")
PATHS = (1, 4)
#: Records live a day from the simulation's Unix epoch.
LIFETIME = 86_400


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=2000, help="nodes in the network")
    parser.add_argument("--values", type=int, default=20, help="records published per half")
    parser.add_argument("--gets", type=int, default=100, help="gets per half per cell")
    parser.add_argument(
        "--fractions", default="10,20,30", help="adversary percentages, comma-separated"
    )
    parser.add_argument(
        "--strategies", default=",".join(STRATEGIES), help="comma-separated strategies"
    )
    parser.add_argument("--no-eclipse", action="store_true", help="skip the eclipse cells")
    parser.add_argument("--flood-rate", type=float, default=100.0, help="requests/s per flooder")
    parser.add_argument("--flood-seconds", type=float, default=2.0)
    parser.add_argument(
        "--window", type=int, default=None, help="LookupConfig.window of honest nodes (default k)"
    )
    parser.add_argument("--seed", type=int, default=1)


class _Cell:
    """One strategy at one fraction: puts, updates and gets in both halves."""

    def __init__(
        self,
        net: AdversarialNetwork,
        rng: random.Random,
        signer: MLDSAPrivateKey,
        window: int | None = None,
    ) -> None:
        self.net = net
        self.rng = rng
        self.signer = signer
        honest = net.honest
        rng.shuffle(honest)
        half = len(honest) // 2
        self.halves = {1: honest[:half], 4: honest[half:]}
        for d, nodes in self.halves.items():
            config = LookupConfig(disjoint_paths=d, window=window)
            for node in nodes:
                node.core.lookup_config = config
        # d -> [(key, latest value)]
        self.records: dict[int, list[tuple[bytes, bytes]]] = {1: [], 4: []}
        # key -> the superseded (seq 1) value: a get returning it returned a stale value
        self.superseded: dict[bytes, bytes] = {}

    def publish(self, values: int) -> None:
        net, rng = self.net, self.rng
        expires = int(net.now) + LIFETIME
        versions: list[tuple[SimCore, Any, Any]] = []
        for d, nodes in self.halves.items():
            for _ in range(values):
                salt = rng.randbytes(8)
                first = sign_mutable(
                    self.signer, salt=salt, seq=1, value=rng.randbytes(64), expires=expires
                )
                second = sign_mutable(
                    self.signer, salt=salt, seq=2, value=rng.randbytes(64), expires=expires
                )
                versions.append((rng.choice(nodes), first, second))
                self.records[d].append((first.key(), second.value))
                self.superseded[first.key()] = first.value
        net.wait([net.start_put_record(node, first) for node, first, _ in versions])
        net.wait([net.start_put_record(node, second) for node, _, second in versions])

    def gets(
        self, count: int, *, keys: dict[int, bytes] | None = None
    ) -> dict[int, list[tuple[SimOperation, bytes]]]:
        """``count`` gets per half: of random published keys, or of ``keys[d]``."""
        net, rng = self.net, self.rng
        ops: dict[int, list[tuple[SimOperation, bytes]]] = {}
        for d, nodes in self.halves.items():
            latest = dict(self.records[d])
            ops[d] = []
            for _ in range(count):
                key = rng.choice(self.records[d])[0] if keys is None else keys[d]
                getter = rng.choice(nodes)
                ops[d].append((net.start_lookup(getter, key, kind="get"), latest[key]))
        net.wait([op for half in ops.values() for op, _ in half])
        return ops


def _success(
    ops: list[tuple[SimOperation, bytes]], superseded: dict[bytes, bytes]
) -> tuple[float, int, int]:
    """The fraction of gets that returned the latest value, and how many returned
    a forged value (one never published) or a stale one (the superseded version)."""
    ok = forged = stale = 0
    for op, value in ops:
        if op.value == value:
            ok += 1
        elif op.value is not None:
            if op.value == superseded.get(op.target):
                stale += 1
            else:
                forged += 1
    return ok / len(ops), forged, stale


def run(args: argparse.Namespace) -> BenchResult:
    result = BenchResult("adversarial")
    fractions = [int(x) for x in args.fractions.split(",") if x]
    strategies = [s for s in args.strategies.split(",") if s]
    unknown = set(strategies) - set(STRATEGIES)
    if unknown or not fractions or not all(0 < f < 50 for f in fractions):
        raise SystemExit(f"bad --strategies/--fractions: {sorted(unknown)} {fractions}")
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 100_000))
    started = time.perf_counter()
    rng = random.Random(args.seed)
    signer = MLDSAPrivateKey.generate()
    base = AdversarialNetwork(seed=args.seed)
    base.build_mixed(args.nodes, max(fractions) / 100)
    frozen = pickle.dumps(base, protocol=pickle.HIGHEST_PROTOCOL)
    build_s = time.perf_counter() - started
    del base

    forged_accepted = stale_accepted = gets_done = 0
    wrong_cells: list[str] = []
    table: dict[tuple[str, int], dict[int, float]] = {}
    for strategy in strategies:
        for pct in fractions:
            net: AdversarialNetwork = pickle.loads(frozen)
            net.activate(strategy, pct / 100)
            if strategy in ("flood", "combined"):
                net.flood(rate=args.flood_rate, duration=args.flood_seconds)
            cell = _Cell(net, rng, signer, args.window)
            cell.publish(args.values)
            ops = cell.gets(args.gets)
            row = table.setdefault((strategy, pct), {})
            for d in PATHS:
                success, forged, stale = _success(ops[d], cell.superseded)
                forged_accepted += forged
                stale_accepted += stale
                if forged or stale:
                    wrong_cells.append(f"{strategy} {pct} % d={d}: {forged} forged, {stale} stale")
                row[d] = success
                n = len(ops[d])
                gets_done += n
                result.add_rate(f"success_{strategy}_{pct}_d{d}", round(success * n), n)
            print(f"  {strategy:>9} {pct:>3} %  {row}", file=sys.stderr, flush=True)

    if not args.no_eclipse:
        for pct in fractions:
            net = pickle.loads(frozen)
            net.activate(None)
            cell = _Cell(net, rng, signer, args.window)
            cell.publish(args.values)
            shared = math.ceil(math.log2(args.nodes)) + 3
            count = round(args.nodes * pct / 100)
            keys = {d: cell.records[d][0][0] for d in PATHS}
            detected: dict[int, float] = {}
            for d in PATHS:
                sybils = net.add_eclipse(keys[d], count // 2, shared_bits=shared)
                for node in sybils:
                    assert isinstance(node.core, AdversaryCore)
                    node.core.set_strategy("eclipse")
            net.run_until(net.now + 30.0)
            before = {id(n): n.core.clusters.suspicious for n in net.honest}
            ops_by_d = cell.gets(args.gets, keys=keys)
            for d in PATHS:
                flagged = sum(
                    1
                    for op, _ in ops_by_d[d]
                    if op.node.core.clusters.suspicious > before.get(id(op.node), 0)
                )
                detected[d] = flagged / len(ops_by_d[d])
            row = table.setdefault(("eclipse", pct), {})
            for d in PATHS:
                success, forged, stale = _success(ops_by_d[d], cell.superseded)
                forged_accepted += forged
                stale_accepted += stale
                if forged or stale:
                    wrong_cells.append(f"eclipse {pct} % d={d}: {forged} forged, {stale} stale")
                row[d] = success
                n = len(ops_by_d[d])
                gets_done += n
                result.add_rate(f"success_eclipse_{pct}_d{d}", round(success * n), n)
            result.add(f"eclipse_detected_{pct}", min(detected.values()))
            result.add(
                f"eclipse_puzzle_hashes_{pct}",
                eclipse_puzzle_cost(shared, DEFAULT_PUZZLE_DIFFICULTY, count // 2),
            )
            print(f"  {'eclipse':>9} {pct:>3} %  {row} detected {detected}", file=sys.stderr)

    # Headline cells: the worst strategy measured at that fraction (eclipse, which
    # measures gets of one targeted key, is reported on its own).
    for pct in fractions:
        for d in PATHS:
            worst = min(row[d] for (s, p), row in table.items() if p == pct and s != "eclipse")
            target = Target(">=", 0.99) if (pct, d) == (20, 4) else None
            result.add(f"success_{pct}_d{d}", worst, target)
    result.add("forged_accepted", forged_accepted, Target("==", 0))
    result.add("stale_accepted", stale_accepted, Target("==", 0))
    # Every get of every cell: returned the latest value or none, never a wrong one.
    result.add_rate("not_wrong", gets_done - forged_accepted - stale_accepted, gets_done)
    result.add("build_seconds", round(build_s, 1))
    result.add("total_seconds", round(time.perf_counter() - started, 1))
    header = "strategy   pct   " + "  ".join(f"d={d:<5}" for d in PATHS)
    result.notes.append(header)
    for (strategy, pct), row in table.items():
        cells = "  ".join(f"{row[d]:<7.3f}" for d in PATHS)
        result.notes.append(f"{strategy:<9} {pct:>3} %  {cells}")
    result.notes.extend(f"wrong values: {line}" for line in wrong_cells)
    result.notes.append(
        f"{args.nodes} nodes, {args.values} records and {args.gets} gets per half per cell; "
        "core-level simulation: sessions and the ID puzzle not run (eclipse IDs are placed; "
        "eclipse_puzzle_hashes is what minting them would cost)"
    )
    return result
