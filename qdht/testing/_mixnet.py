"""A whole mixnet in nodes: mixes, directory authorities and clients, started together.

Used by the tests, ``qdht demo --mixnet`` and ``qdht-bench mixnet``::

    async with open_mix_network(mixes=6, clients=2, seed=1, network=MemoryNetwork(seed=1)) as mn:
        await mn.publish_directory()              # descriptors → directory → clients
        value = await mn.clients[0].anonymous.get(key)

With ``network=None`` every node gets its own UDP socket on 127.0.0.1.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import trio

from qdht.config import Config
from qdht.errors import ConfigError
from qdht.identity import Identity
from qdht.mixnet import MixnetConfig
from qdht.node import Node, open_node
from qdht.testing._memory import MemoryNetwork
from qdht.testing._sim import seeded_identity

__all__ = ["MixNetwork", "open_mix_network"]


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
    mixnet: MixnetConfig | None = None,
    network: MemoryNetwork | None = None,
    difficulty: int = 0,
    k: int = 5,
) -> AsyncIterator[MixNetwork]:
    """Start the nodes, bootstrap them off the first authority, yield the network.

    ``mixnet`` gives the network-wide parameters (its ``directory_keys``,
    ``directory_threshold``, ``mix`` and ``authority`` are set here per
    node); ``threshold`` defaults to every authority.  ``silent`` more
    directory keys are listed whose holders never run (to test the threshold).
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
                shared, mix=role == "mix", authority=role == "authority", layer=layer
            )
            changes: dict[str, Any] = {}
            if network is None:
                changes["listen"] = ("udp://127.0.0.1:0",)
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
