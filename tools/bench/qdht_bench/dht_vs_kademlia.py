"""``qdht-bench dht-vs-kademlia``: qdht and the PyPI ``kademlia`` package side by side.

Real UDP on 127.0.0.1, the same workload for both (:mod:`qdht_bench._dht_plan`,
from one seed): N nodes start and join one after another, each through a
random earlier node; ``--operations`` values are put from random nodes and
got back by random other nodes (``--concurrency`` gets at a time); then 30 %
of the nodes are stopped and every value is got again from live nodes
(``*_churn``).

Both systems run N nodes in one process each, one after the other so they
never compete for the CPU: ``kademlia`` (asyncio) in a subprocess, qdht (Trio)
in this process, with full PQNoise sessions (X-Wing handshakes, AEAD) on every
link.  qdht identities are minted at puzzle difficulty 0 (the production
difficulty costs about a second per identity and is not what is compared).
``kademlia`` is a bench-only extra, never a runtime dependency.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from typing import Any

import attrs
import trio

from qdht.config import Config
from qdht.node import Node, open_node
from qdht.testing import seeded_identity
from qdht.wire import immutable_key
from qdht_bench._common import BenchResult, Target, median, percentile
from qdht_bench._dht_plan import DhtPlan, make_plan

DESCRIPTION = "qdht vs the PyPI kademlia package on loopback UDP: get success and latency"

#: Seconds the kademlia subprocess may take before it is killed.
KADEMLIA_TIMEOUT = 3600


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=50, help="nodes per system")
    parser.add_argument("--operations", type=int, default=100, help="values put and got")
    parser.add_argument("--concurrency", type=int, default=10, help="gets in flight at once")
    parser.add_argument("--stop", type=float, default=0.3, help="fraction stopped for *_churn")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--skip-kademlia", action="store_true", help="run qdht only (kademlia not installed)"
    )


def _run_kademlia(plan: DhtPlan, concurrency: int) -> dict[str, Any]:
    request = json.dumps({"plan": plan.to_json(), "concurrency": concurrency})
    proc = subprocess.run(
        [sys.executable, "-m", "qdht_bench._kademlia_worker"],
        input=request,
        capture_output=True,
        text=True,
        timeout=KADEMLIA_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kademlia worker failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@attrs.define(eq=False)
class _Running:
    node: Node
    scope: trio.CancelScope
    stopped: trio.Event


async def _start(nursery: trio.Nursery, config: Config) -> _Running:
    async def run(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        stopped = trio.Event()
        try:
            with trio.CancelScope() as scope:
                async with open_node(config) as node:
                    task_status.started(_Running(node, scope, stopped))
                    await trio.sleep_forever()
        finally:
            stopped.set()

    running: _Running = await nursery.start(run)
    return running


async def _run_qdht(plan: DhtPlan, concurrency: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    async with trio.open_nursery() as nursery:
        t0 = time.perf_counter()
        nodes: list[_Running] = []
        for _ in range(plan.nodes):
            config = Config(
                listen=("udp://127.0.0.1:0",),
                identity=seeded_identity(rng, 0),
                puzzle_difficulty=0,
            )
            nodes.append(await _start(nursery, config))
        for i in range(1, plan.nodes):
            await nodes[i].node.bootstrap([nodes[plan.bootstrap_from[i]].node.contact])
        t1 = time.perf_counter()
        put_ok = 0
        for value, putter in zip(plan.values, plan.putters, strict=True):
            try:
                await nodes[putter].node.put(value)
                put_ok += 1
            except Exception:  # a failed put is a measured outcome, not a crash
                pass
        t2 = time.perf_counter()
        hs0 = _handshakes(nodes)
        gets = await _gets(nodes, plan, plan.getters, concurrency)
        t3 = time.perf_counter()
        hs1 = _handshakes(nodes)
        for n in sorted(plan.stopped):
            nodes[n].scope.cancel()
            await nodes[n].stopped.wait()
        live = [r for i, r in enumerate(nodes) if i not in plan.stopped]
        hs2 = _handshakes(live)
        churn = await _gets(nodes, plan, plan.churn_getters, concurrency)
        t4 = time.perf_counter()
        hs3 = _handshakes(live)
        nursery.cancel_scope.cancel()
    return {
        "bootstrap_s": t1 - t0,
        "put_s": t2 - t1,
        "get_s": t3 - t2,
        "churn_get_s": t4 - t3,
        "put_ok": put_ok,
        "gets": gets,
        "churn_gets": churn,
        "handshakes_per_get": (hs1 - hs0) / len(plan.values),
        "handshakes_per_get_churn": (hs3 - hs2) / len(plan.values),
    }


def _handshakes(nodes: list[_Running]) -> int:
    """Session handshakes the nodes started so far."""
    return sum(int(r.node.endpoint.stats().get("handshakes_started", 0)) for r in nodes)


async def _gets(
    nodes: list[_Running], plan: DhtPlan, getters: tuple[int, ...], concurrency: int
) -> list[tuple[bool, float]]:
    limit = trio.Semaphore(concurrency)
    out: list[tuple[bool, float]] = [(False, 0.0)] * len(plan.values)

    async def one(i: int) -> None:
        async with limit:
            value = plan.values[i]
            start = time.perf_counter()
            got = await nodes[getters[i]].node.get(immutable_key(value))
            out[i] = (got == value, (time.perf_counter() - start) * 1000)

    async with trio.open_nursery() as nursery:
        for i in range(len(plan.values)):
            nursery.start_soon(one, i)
    return out


def _summarise(outcome: dict[str, Any]) -> tuple[dict[str, tuple[int, int]], dict[str, float]]:
    """(success rate name → (successes, trials), the other figures)."""
    rates: dict[str, tuple[int, int]] = {}
    figures: dict[str, float] = {}
    for phase, suffix in (("gets", ""), ("churn_gets", "_churn")):
        pairs = outcome[phase]
        ms = [float(m) for _, m in pairs]
        rates[f"get_success{suffix}"] = (sum(bool(ok) for ok, _ in pairs), len(pairs))
        figures[f"get_ms_median{suffix}"] = median(ms)
        figures[f"get_ms_p99{suffix}"] = percentile(ms, 99)
    figures["bootstrap_s"] = float(outcome["bootstrap_s"])
    for name in ("handshakes_per_get", "handshakes_per_get_churn"):
        if name in outcome:
            figures[name] = float(outcome[name])
    rates["put_success"] = (int(outcome["put_ok"]), len(outcome["gets"]))
    return rates, figures


def run(args: argparse.Namespace) -> BenchResult:
    result = BenchResult("dht-vs-kademlia")
    plan = make_plan(args.nodes, args.operations, seed=args.seed, stop_fraction=args.stop)
    result.add("nodes", args.nodes)
    kad: dict[str, float] = {}
    kad_rates: dict[str, tuple[int, int]] = {}
    if not args.skip_kademlia:
        t = time.perf_counter()
        kad_rates, kad = _summarise(_run_kademlia(plan, args.concurrency))
        kad["wall_s"] = time.perf_counter() - t
    t = time.perf_counter()
    q_rates, q = _summarise(trio.run(_run_qdht, plan, args.concurrency, args.seed))
    q["wall_s"] = time.perf_counter() - t
    result.notes.append(
        f"qdht session handshakes started per get: {q['handshakes_per_get']:.2f} "
        f"(after the stop: {q['handshakes_per_get_churn']:.2f}); a first request to a "
        "peer without a session waits for the pqXX/pqIK round trips and X-Wing work"
    )
    for name, (ok, n) in q_rates.items():
        result.add_rate(f"qdht_{name}", ok, n, target=0.999 if name == "get_success" else None)
        if kad_rates:
            result.add_rate(f"kademlia_{name}", *kad_rates[name])
    targets = {"get_ms_p99_churn": Target("<=", 1500)}
    for name in (
        "get_ms_median",
        "get_ms_p99",
        "get_ms_median_churn",
        "get_ms_p99_churn",
        "bootstrap_s",
        "wall_s",
    ):
        result.add(f"qdht_{name}", q[name], targets.get(name))
        if kad:
            result.add(f"kademlia_{name}", kad[name])
    if kad:
        result.add(
            "get_latency_ratio", q["get_ms_median"] / kad["get_ms_median"], Target("<=", 1.0)
        )
        result.add("get_latency_ratio_churn", q["get_ms_median_churn"] / kad["get_ms_median_churn"])
    result.notes.append(
        f"{args.nodes} nodes per system on 127.0.0.1, one process each, run one after "
        f"the other; {args.operations} puts then gets ({args.concurrency} in flight), "
        f"then {round(args.stop * 100)} % stopped and the gets repeated (*_churn); "
        "latencies are wall-clock milliseconds per get"
    )
    result.notes.append(
        "qdht: full PQNoise sessions (X-Wing) on every link, puzzle difficulty 0; "
        "kademlia: PyPI kademlia 2.2.3 (asyncio, rpcudp, no encryption), subprocess"
    )
    return result
