"""A whole mixnet in nodes: mixes, directory authorities and clients, started together.

Used by the tests, ``qdht demo --mixnet`` and ``qdht-bench mixnet``::

    async with open_mix_network(mixes=6, clients=2, seed=1, network=MemoryNetwork(seed=1)) as mn:
        await mn.publish_directory()              # descriptors → directory → clients
        value = await mn.clients[0].anonymous.get(key)

With ``network=None`` every node gets its own UDP socket on 127.0.0.1.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

import attrs
import trio

from qdht.config import Config
from qdht.errors import ConfigError, QdhtError
from qdht.identity import Identity
from qdht.mixnet import MixnetConfig
from qdht.node import Node, open_node
from qdht.session import SessionConfig
from qdht.testing._memory import MemoryNetwork
from qdht.testing._sim import seeded_identity

if TYPE_CHECKING:
    from qdht.messaging import MessagingConfig

__all__ = ["AnonymousOutcomes", "MixNetwork", "loop_latencies", "open_mix_network", "percentile"]


@attrs.define
class MixNetwork:
    """The nodes of a running mixnet, by role (authorities and clients are not mixes)."""

    authorities: list[Node]
    mixes: list[Node]
    clients: list[Node]
    config: MixnetConfig

    @property
    def nodes(self) -> list[Node]:
        return [*self.authorities, *self.mixes, *self.clients]

    async def publish_directory(self) -> int:
        """One directory round in order: mixes publish, authorities sign, all fetch.

        Returns how many nodes accepted a directory.
        """
        await _each(self.mixes, lambda node: node.anonymous.update_directory())
        await _each(self.authorities, lambda node: node.anonymous.update_directory())
        accepted = await _each(self.nodes, lambda node: node.anonymous.update_directory())
        return sum(1 for ok in accepted if ok)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@attrs.define
class AnonymousOutcomes:
    """Outcomes of anonymous puts and gets, and of plain gets of the same keys."""

    latencies: dict[str, list[float]] = attrs.Factory(
        lambda: {"anonymous put": [], "anonymous get": [], "plain get": []}
    )
    ok: dict[str, int] = attrs.Factory(
        lambda: {"anonymous put": 0, "anonymous get": 0, "plain get": 0}
    )
    total: dict[str, int] = attrs.Factory(
        lambda: {"anonymous put": 0, "anonymous get": 0, "plain get": 0}
    )
    failures: list[str] = attrs.Factory(list)

    def record(self, name: str, started: float, ok: bool, why: str = "") -> None:
        self.total[name] = self.total.get(name, 0) + 1
        self.ok.setdefault(name, 0)
        self.latencies.setdefault(name, [])
        if ok:
            self.ok[name] += 1
            self.latencies[name].append(trio.current_time() - started)
        else:
            self.failures.append(f"{name}: {why}")

    def summary(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "total": self.total[name],
                "ok": self.ok[name],
                "success_rate": self.ok[name] / self.total[name] if self.total[name] else None,
                "latency_median_s": percentile(self.latencies[name], 50),
                "latency_p95_s": percentile(self.latencies[name], 95),
            }
            for name in self.total
        }

    async def run(
        self,
        network: MixNetwork,
        count: int,
        *,
        seed: int,
        op_timeout: float,
        value_size: int = 64,
        signed: bool = False,
    ) -> None:
        """``count`` rounds, at most one per client at once: an anonymous put by one
        client, then an anonymous get and a plain get of its key by another.

        ``signed``: the puts are signed mutable records (each round its own
        salt; ~5.3 KB with the key and signature, so in fragments at the
        default geometry), counted as ``"anonymous signed put"`` and
        ``"anonymous signed get"``.
        """
        prefix = "anonymous signed" if signed else "anonymous"
        rng = random.Random(seed)
        clients = network.clients
        if len(clients) < 2:
            raise ConfigError("measuring anonymous operations needs at least two clients")
        plans = [
            (
                rng.randrange(len(clients)),
                rng.randrange(len(clients) - 1),
                rng.randbytes(value_size),
            )
            for _ in range(count)
        ]
        limiter = trio.CapacityLimiter(len(clients))

        async def timed(name: str, call: Any, check: Any) -> Any:
            started = trio.current_time()
            try:
                with trio.fail_after(op_timeout):
                    result = await call()
            except (QdhtError, trio.TooSlowError) as exc:
                self.record(name, started, False, f"{type(exc).__name__}: {exc}")
                return None
            self.record(name, started, check(result), "wrong or missing value")
            return result

        async def one(putter: int, other: int, value: bytes) -> None:
            async with limiter:
                writer = clients[putter]
                reader = [c for c in clients if c is not writer][other]
                if signed:
                    salt = b"qdht/bench/signed/" + value[:8].hex().encode()
                    put = functools.partial(writer.anonymous.put_mutable, value, salt=salt, seq=0)
                else:
                    put = functools.partial(writer.anonymous.put_immutable, value)
                key = await timed(f"{prefix} put", put, lambda k: k is not None)
                if key is None:
                    return
                await timed(f"{prefix} get", lambda: reader.anonymous.get(key), value.__eq__)
                await timed("plain get", lambda: reader.get(key), value.__eq__)

        async with trio.open_nursery() as nursery:
            for plan in plans:
                nursery.start_soon(one, *plan)


def loop_latencies(network: MixNetwork) -> list[float]:
    """Every client's recent loop latencies: the one-way latency of an L-hop path."""
    samples: list[float] = []
    for node in network.clients:
        samples.extend(node.anonymous.core.client.loop_latencies())
    return samples


async def _each(nodes: Sequence[Node], call: Any) -> list[Any]:
    results: list[Any] = [None] * len(nodes)

    async def one(i: int) -> None:
        results[i] = await call(nodes[i])

    async with trio.open_nursery() as nursery:
        for i in range(len(nodes)):
            nursery.start_soon(one, i)
    return results


@asynccontextmanager
async def open_mix_network(
    mixes: int,
    clients: int,
    *,
    seed: int,
    authorities: int = 1,
    threshold: int | None = None,
    silent: int = 0,
    relay_streams: bool = False,
    mixnet: MixnetConfig | None = None,
    network: MemoryNetwork | None = None,
    difficulty: int = 0,
    k: int = 5,
    clients_config: dict[str, Any] | None = None,
    messaging: MessagingConfig | None = None,
    session: SessionConfig | None = None,
) -> AsyncIterator[MixNetwork]:
    """Start the nodes, bootstrap them off the first authority, yield the network.

    ``mixnet`` gives the network-wide parameters (its ``directory_keys``,
    ``directory_threshold``, ``mix`` and ``authority`` are set here per
    node); ``threshold`` defaults to every authority.  ``silent`` more
    directory keys are listed whose holders never run (to test the threshold).
    Mixes and authorities send no client streams (Loopix: a mix's cover is its
    own loops) unless ``relay_streams``; they then cannot send anonymous
    requests themselves, which the clients do.  ``clients_config``: more
    ``Config`` fields for the clients (another layer on top, such as groups).
    ``messaging`` runs the messaging
    layer on every node: clients deliver through the mixnet, mixes serve as
    exits and hold mailboxes, and mixes and authorities deliver their own
    requests directly (they send no client streams).  ``session``: every
    node's session layer (larger datagrams on loopback, say).
    """
    if mixes < 1 or clients < 0 or authorities < 1:
        raise ConfigError("a mix network needs at least one mix and one authority")
    rng = random.Random(seed)
    base = mixnet or MixnetConfig()
    roles = ["authority"] * authorities + ["mix"] * mixes + ["client"] * clients
    identities: list[Identity] = [seeded_identity(rng, difficulty) for _ in roles]
    absent = [seeded_identity(rng, difficulty) for _ in range(silent)]
    keys = tuple(i.mldsa.public_key_bytes() for i in [*identities[:authorities], *absent])
    shared = attrs.evolve(
        base, directory_keys=keys, directory_threshold=threshold or authorities + silent
    )
    async with AsyncExitStack() as stack:
        nodes: list[Node] = []
        for index, (role, identity) in enumerate(zip(roles, identities, strict=True)):
            layer = (index - authorities) % 8 if role == "mix" else 0
            own = attrs.evolve(
                shared,
                mix=role == "mix",
                authority=role == "authority",
                layer=layer,
                random_seed=rng.getrandbits(64),  # paths, delays and cover times replay
            )
            if role != "client" and not relay_streams:
                # Loopix: mixes send their own loops (λ_M), not client streams.
                own = attrs.evolve(
                    own,
                    lambda_payload=0.0,
                    lambda_loop=0.0,
                    lambda_drop=0.0,
                    lambda_dummy_lookup=0.0,
                )
            changes: dict[str, Any] = dict(clients_config or {}) if role == "client" else {}
            if messaging is not None:
                changes["messaging"] = (
                    messaging
                    if role == "client" or relay_streams
                    else attrs.evolve(messaging, delivery="direct")
                )
            if network is None:
                # Every node shares 127.0.0.1: the per-address handshake limit,
                # meant for one host, would throttle the whole mesh at once.
                changes["listen"] = ("udp://127.0.0.1:0",)
                changes["session"] = SessionConfig(
                    handshake_rate_per_address=1000.0, handshake_burst_per_address=1000
                )
            if session is not None:
                changes["session"] = session
            config = Config(
                identity=identity, puzzle_difficulty=difficulty, k=k, mixnet=own, **changes
            )
            transport = None
            if network is not None:
                transport = await stack.enter_async_context(network.open_transport())
            nodes.append(await stack.enter_async_context(open_node(config, transport=transport)))
        first = nodes[0].contact
        async with trio.open_nursery() as nursery:
            for node in nodes[1:]:
                nursery.start_soon(node.bootstrap, [first])
        yield MixNetwork(
            nodes[:authorities],
            nodes[authorities : authorities + mixes],
            nodes[authorities + mixes :],
            shared,
        )
