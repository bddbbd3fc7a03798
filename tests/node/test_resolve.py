"""``node.resolve_identity``: a node's certificate by its node ID over the network."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
import trio
import trio.testing

from qdht import Config, Node, open_node
from qdht.errors import LookupFailedError, NodeStateError
from qdht.identity import Identity, ResolveConfig, certificate_node_id
from qdht.testing import MemoryNetwork


@functools.cache
def identity(n: int) -> Identity:
    return Identity.generate(0)


@asynccontextmanager
async def running(count: int, *, resolve: bool = True) -> AsyncIterator[list[Node]]:
    net = MemoryNetwork(seed=count)
    async with AsyncExitStack() as stack:
        nodes = []
        for i in range(count):
            transport = await stack.enter_async_context(net.open_transport())
            config = Config(
                identity=identity(i),
                puzzle_difficulty=0,
                resolve=ResolveConfig() if resolve else None,
            )
            nodes.append(await stack.enter_async_context(open_node(config, transport=transport)))
        for node in nodes[1:]:
            assert await node.bootstrap([nodes[0].contact]) == 1
        yield nodes


async def test_a_node_resolves_another_by_node_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(12) as nodes:
        asker, target = nodes[3], nodes[9]
        cert = await asker.resolve_identity(target.node_id)
        assert certificate_node_id(cert) == target.node_id
        assert cert.xwing_public == target.identity.xwing.public_key_bytes()
        assert cert.mldsa_public == target.identity.mldsa.public_key_bytes()
        # The second time from the cache; its own ID needs no network either.
        assert await asker.resolve_identity(target.node_id) == cert
        assert asker.resolver.core.stats()["cache_hits"] == 1
        own = await asker.resolve_identity(asker.node_id)
        assert certificate_node_id(own) == asker.node_id
        assert target.resolver.core.stats()["answered"] >= 1


async def test_an_unknown_node_id_fails(autojump_clock: trio.testing.MockClock) -> None:
    async with running(6) as nodes:
        with pytest.raises(LookupFailedError, match="resolve"):
            await nodes[1].resolve_identity(bytes(32))


async def test_the_layer_is_off_by_default(autojump_clock: trio.testing.MockClock) -> None:
    async with running(2, resolve=False) as nodes:
        with pytest.raises(NodeStateError, match="resolve layer is off"):
            await nodes[1].resolve_identity(nodes[0].node_id)
