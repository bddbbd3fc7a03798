"""The workload of ``qdht-bench dht-vs-kademlia``, the same for both systems.

Everything random comes from one seed, so qdht and the PyPI ``kademlia``
package run exactly the same operations: who bootstraps from whom, which
node puts which key, which node gets it back, which nodes are stopped.
"""

from __future__ import annotations

import random

import attrs

__all__ = ["DhtPlan", "make_plan"]


@attrs.frozen
class DhtPlan:
    """Bootstrap order, puts, gets, and the churn phase of one run."""

    nodes: int
    #: ``bootstrap_from[i]`` is the already running node node ``i`` joins through
    #: (node 0 starts the network and has none: -1).
    bootstrap_from: tuple[int, ...]
    keys: tuple[bytes, ...]
    values: tuple[bytes, ...]
    putters: tuple[int, ...]
    getters: tuple[int, ...]
    #: Nodes stopped before the churn phase.
    stopped: frozenset[int]
    #: Live nodes that get every key again after the stop.
    churn_getters: tuple[int, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "nodes": self.nodes,
            "bootstrap_from": list(self.bootstrap_from),
            "keys": [k.hex() for k in self.keys],
            "values": [v.hex() for v in self.values],
            "putters": list(self.putters),
            "getters": list(self.getters),
            "stopped": sorted(self.stopped),
            "churn_getters": list(self.churn_getters),
        }

    @classmethod
    def from_json(cls, obj: dict[str, object]) -> DhtPlan:
        def ints(name: str) -> tuple[int, ...]:
            value = obj[name]
            assert isinstance(value, list)
            return tuple(int(x) for x in value)

        def blobs(name: str) -> tuple[bytes, ...]:
            value = obj[name]
            assert isinstance(value, list)
            return tuple(bytes.fromhex(x) for x in value)

        nodes = obj["nodes"]
        assert isinstance(nodes, int)
        return cls(
            nodes=nodes,
            bootstrap_from=ints("bootstrap_from"),
            keys=blobs("keys"),
            values=blobs("values"),
            putters=ints("putters"),
            getters=ints("getters"),
            stopped=frozenset(ints("stopped")),
            churn_getters=ints("churn_getters"),
        )


def make_plan(nodes: int, operations: int, *, seed: int, stop_fraction: float = 0.3) -> DhtPlan:
    """``operations`` puts and gets over ``nodes`` nodes, then ``stop_fraction`` stopped."""
    if nodes < 2:
        raise ValueError("nodes must be at least 2")
    rng = random.Random(seed)
    bootstrap_from = (-1, *(rng.randrange(i) for i in range(1, nodes)))
    keys = tuple(rng.randbytes(32) for _ in range(operations))
    values = tuple(rng.randbytes(64) for _ in range(operations))
    putters = tuple(rng.randrange(nodes) for _ in range(operations))
    getters = tuple(rng.choice([n for n in rng.sample(range(nodes), 2) if n != p]) for p in putters)
    stopped = frozenset(rng.sample(range(nodes), int(nodes * stop_fraction)))
    live = [n for n in range(nodes) if n not in stopped]
    churn_getters = tuple(rng.choice(live) for _ in range(operations))
    return DhtPlan(nodes, bootstrap_from, keys, values, putters, getters, stopped, churn_getters)
