"""Run a :class:`~qdht_bench._dht_plan.DhtPlan` on the PyPI ``kademlia`` package.

Started as a subprocess by ``qdht-bench dht-vs-kademlia`` (``kademlia`` runs
on asyncio, qdht on Trio): reads the plan as JSON on stdin, runs N
``kademlia.network.Server`` s on 127.0.0.1 in this one process, and writes
the outcome as JSON on stdout.  ``kademlia`` is a bench-only dependency.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

from qdht_bench._dht_plan import DhtPlan


async def _run(plan: DhtPlan, concurrency: int) -> dict[str, Any]:
    from kademlia.network import Server  # bench-only extra; untyped (pyproject mypy override)

    servers: list[Any] = []
    addrs: list[tuple[str, int]] = []
    t0 = time.perf_counter()
    try:
        for _ in range(plan.nodes):
            server = Server(ksize=20, alpha=3)
            await server.listen(0, "127.0.0.1")
            servers.append(server)
            addrs.append(server.transport.get_extra_info("sockname")[:2])
        for i in range(1, plan.nodes):
            await servers[i].bootstrap([addrs[plan.bootstrap_from[i]]])
        t1 = time.perf_counter()
        put_ok = 0
        for key, value, putter in zip(plan.keys, plan.values, plan.putters, strict=True):
            put_ok += bool(await servers[putter].set(key, value))
        t2 = time.perf_counter()
        gets = await _gets(servers, plan, plan.getters, concurrency)
        t3 = time.perf_counter()
        for n in sorted(plan.stopped):
            servers[n].stop()
        churn = await _gets(servers, plan, plan.churn_getters, concurrency)
        t4 = time.perf_counter()
    finally:
        for server in servers:
            server.stop()
    return {
        "bootstrap_s": t1 - t0,
        "put_s": t2 - t1,
        "get_s": t3 - t2,
        "churn_get_s": t4 - t3,
        "put_ok": put_ok,
        "gets": gets,
        "churn_gets": churn,
    }


async def _gets(
    servers: list[Any], plan: DhtPlan, getters: tuple[int, ...], concurrency: int
) -> list[tuple[bool, float]]:
    limit = asyncio.Semaphore(concurrency)
    out: list[tuple[bool, float]] = [(False, 0.0)] * len(plan.keys)

    async def one(i: int) -> None:
        async with limit:
            start = time.perf_counter()
            value = await servers[getters[i]].get(plan.keys[i])
            out[i] = (value == plan.values[i], (time.perf_counter() - start) * 1000)

    await asyncio.gather(*(one(i) for i in range(len(plan.keys))))
    return out


def main() -> None:
    logging.disable(logging.CRITICAL)
    request = json.load(sys.stdin)
    plan = DhtPlan.from_json(request["plan"])
    result = asyncio.run(_run(plan, int(request["concurrency"])))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
