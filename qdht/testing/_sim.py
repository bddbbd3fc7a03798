"""Full-stack simulation: N real nodes on one in-memory network, in one Trio run.

Every node is a real :class:`qdht.Node` (PQNoise sessions over X-Wing, the
DHT core, its Trio tasks) on a :class:`~qdht.testing.MemoryNetwork`
transport, optionally behind a :class:`~qdht.testing.FaultInjector`.  Run
it under ``trio.testing.MockClock`` (pytest-trio's ``autojump_clock``) and
simulated minutes take only the CPU time the nodes really spend.

Identities are minted from the network's seed at a low puzzle difficulty
(``difficulty``, 0 by default: minting at the production difficulty costs
about a second per node), so the same seed gives the same node IDs, the same
bootstrap order and the same churn victims.  (Trio's scheduler and the
sessions' ephemeral keys are not seeded, so message interleavings may differ
between runs; outcomes that depend only on the seeded choices repeat.)
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import attrs
import trio

from qdht.config import Config
from qdht.crypto.hashes import sha3_256
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.crypto.xwing import XWingPrivateKey
from qdht.errors import ConfigError
from qdht.identity import NONCE_SIZE, Identity, compute_node_id, puzzle_ok
from qdht.node import Node, open_node
from qdht.testing._churn import ChurnSchedule
from qdht.testing._faults import FaultInjector
from qdht.testing._memory import MemoryNetwork
from qdht.transport import DatagramTransport
from qdht.wire import Address

__all__ = ["SimNetwork", "build_network", "seeded_identity"]

#: Nodes that bootstrap at the same time while a network is built: enough to
#: overlap their round trips, few enough that early nodes are not swamped.
BUILD_CONCURRENCY: Final = 16
#: Bootstrap contacts a joining node is given (random live nodes).
BOOTSTRAP_CONTACTS: Final = 1


def seeded_identity(rng: random.Random, difficulty: int) -> Identity:
    """An identity whose keys and puzzle nonce come from ``rng`` (simulations only).

    ``Identity.generate`` starts its nonce search at a random counter; here the
    search starts at a counter from ``rng``, so a seed always yields the same ID.
    """
    xwing = XWingPrivateKey(rng.randbytes(32))
    mldsa = MLDSAPrivateKey.from_seed(rng.randbytes(32))
    xwing_public = xwing.public_key_bytes()
    mldsa_hash = sha3_256(mldsa.public_key_bytes())
    counter = rng.getrandbits(64)
    while True:
        nonce = counter.to_bytes(NONCE_SIZE, "little")
        if puzzle_ok(compute_node_id(xwing_public, mldsa_hash, nonce), difficulty):
            return Identity(xwing, mldsa, nonce, difficulty)
        counter = (counter + 1) & ((1 << 64) - 1)


@attrs.define(eq=False)
class _Slot:
    index: int
    identity: Identity
    transport: DatagramTransport
    node: Node | None = None
    scope: trio.CancelScope | None = None
    stopped: trio.Event = attrs.field(factory=trio.Event)
    alive: bool = True


class SimNetwork:
    """A running full-stack network; get one from :func:`build_network`.

    ``nodes`` are the live nodes, oldest first; ``network`` is the
    :class:`MemoryNetwork` they share.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        network: MemoryNetwork,
        *,
        seed: int,
        difficulty: int,
        config: Config,
        faults: Mapping[str, Any] | None,
    ) -> None:
        self._nursery = nursery
        self.network = network
        self.seed = seed
        self.rng = random.Random(seed)
        self.difficulty = difficulty
        self.config = config
        self.faults = dict(faults) if faults is not None else None
        self._slots: list[_Slot] = []
        self._by_id: dict[bytes, _Slot] = {}

    @property
    def nodes(self) -> list[Node]:
        """The live nodes, in the order they were started."""
        return [s.node for s in self._slots if s.alive and s.node is not None]

    @property
    def stopped(self) -> list[bytes]:
        """The node IDs of nodes that were killed, in order."""
        return [s.identity.node_id for s in self._slots if not s.alive]

    def __len__(self) -> int:
        return sum(1 for s in self._slots if s.alive)

    # -- starting nodes --------------------------------------------------------------

    async def start_node(self) -> Node:
        """Start one more node (not yet bootstrapped) on its own fresh host."""
        index = len(self._slots)
        identity = seeded_identity(self.rng, self.difficulty)
        transport: DatagramTransport = self.network.bind(self.network.allocate_host(), 6881)
        if self.faults is not None:
            transport = FaultInjector(transport, seed=self.rng.getrandbits(64), **self.faults)
        slot = _Slot(index, identity, transport)
        self._slots.append(slot)
        node: Node = await self._nursery.start(self._run_node, slot)
        self._by_id[node.node_id] = slot
        return node

    async def _run_node(self, slot: _Slot, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        config = attrs.evolve(
            self.config, identity=slot.identity, puzzle_difficulty=self.difficulty, bootstrap=()
        )
        try:
            with trio.CancelScope() as scope:
                slot.scope = scope
                async with open_node(config, transport=slot.transport) as node:
                    slot.node = node
                    task_status.started(node)
                    await trio.sleep_forever()
        finally:
            slot.alive = False
            with trio.CancelScope(shield=True):
                await slot.transport.aclose()
            slot.stopped.set()

    async def join(self, count: int = 1, *, through: Iterable[Node] | None = None) -> list[Node]:
        """Start ``count`` nodes and bootstrap each through a random live node
        (or the ``through`` nodes), ``BUILD_CONCURRENCY`` at a time."""
        if type(count) is not int or count < 0:
            raise ConfigError(f"count must be a non-negative integer, got {count!r}")
        live = list(through) if through is not None else self.nodes
        plans = []
        for _ in range(count):
            contacts = [
                n.contact for n in self.rng.sample(live, min(BOOTSTRAP_CONTACTS, len(live)))
            ]
            plans.append((await self.start_node(), contacts))
        limit = trio.Semaphore(BUILD_CONCURRENCY)

        async def bootstrap(node: Node, contacts: list[Any]) -> None:
            async with limit:
                if contacts:
                    await node.bootstrap(contacts)

        async with trio.open_nursery() as nursery:
            for node, contacts in plans:
                nursery.start_soon(bootstrap, node, contacts)
        return [node for node, _ in plans]

    # -- stopping nodes ----------------------------------------------------------------

    async def kill(self, node: Node) -> None:
        """Stop ``node`` abruptly: its tasks end and its address goes silent."""
        slot = self._by_id.get(getattr(node, "node_id", b""))
        if slot is None or slot.node is not node:
            raise ConfigError(f"{node!r} is not a node of this network")
        if slot.scope is not None:
            slot.scope.cancel()
        await slot.stopped.wait()

    async def kill_random(self, count: int) -> list[Node]:
        """Kill ``count`` live nodes chosen by the network's seeded generator."""
        live = self.nodes
        if type(count) is not int or not 0 <= count <= len(live):
            raise ConfigError(f"count must be an integer in 0..{len(live)}, got {count!r}")
        victims = self.rng.sample(live, count)
        for node in victims:
            await self.kill(node)
        return victims

    async def run_churn(self, schedule: ChurnSchedule) -> tuple[list[bytes], list[bytes]]:
        """Apply ``schedule`` starting now (on the Trio clock); return the node IDs
        that (left, joined)."""
        base = trio.current_time()
        left: list[bytes] = []
        joined: list[bytes] = []
        for event in schedule:
            await trio.sleep_until(base + event.at)
            if event.action == "leave":
                victims = await self.kill_random(min(event.count, len(self) - 1))
                left.extend(n.node_id for n in victims)
            else:
                joined.extend(n.node_id for n in await self.join(event.count))
        return left, joined


def _access_latency(seed: int, low: float, high: float) -> Callable[[Address, Address], float]:
    """Per-link latency: the sum of both hosts' access delays.

    A host's delay is a function of the seed and the host alone, so it does not
    depend on the order in which the scheduler first routes to it.
    """
    delays: dict[str, float] = {}

    def latency(src: Address, dst: Address) -> float:
        total = 0.0
        for host in (src.host, dst.host):
            delay = delays.get(host)
            if delay is None:
                delay = delays[host] = random.Random(f"{seed}/{host}").uniform(low, high)
            total += delay
        return total

    return latency


@asynccontextmanager
async def build_network(
    n: int,
    *,
    seed: int,
    difficulty: int = 0,
    faults: Mapping[str, Any] | None = None,
    config: Config | None = None,
    access_latency: tuple[float, float] = (0.005, 0.020),
) -> AsyncIterator[SimNetwork]:
    """Start ``n`` full-stack nodes on a fresh in-memory network and bootstrap them.

    Node 0 starts the network; every later node bootstraps through a random
    live node.  ``faults`` are :class:`FaultInjector` keyword arguments (``loss``,
    ``delay``, ``duplicate``, ...) applied to every node's transport.  Each
    host has an access delay drawn from ``access_latency``; a datagram takes the
    sum of both ends'.  Leaving the block stops every node.
    """
    if type(n) is not int or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    low, high = access_latency
    if not 0 <= low <= high:
        raise ConfigError("access_latency must be (low, high) with 0 <= low <= high")
    rng = random.Random(seed)
    network = MemoryNetwork(
        seed=rng.getrandbits(64), latency=_access_latency(rng.getrandbits(64), low, high)
    )
    base = config if config is not None else Config()
    async with trio.open_nursery() as nursery:
        sim = SimNetwork(
            nursery,
            network,
            seed=rng.getrandbits(64),
            difficulty=difficulty,
            config=base,
            faults=faults,
        )
        try:
            await sim.start_node()
            while len(sim) < n:
                await sim.join(min(BUILD_CONCURRENCY, n - len(sim)))
            yield sim
        finally:
            nursery.cancel_scope.cancel()
