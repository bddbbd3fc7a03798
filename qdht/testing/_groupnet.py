"""Group members on one network, with or without mixes, each restartable from its data directory.

Used by ``qdht demo --groups`` and ``qdht-bench groups``::

    async with open_group_network(10, groups=GroupsConfig(...), mixes=5, seed=1,
                                  data_dir=tmp, watcher=watch) as gn:
        gid = await gn.nodes[0].groups.create()
        await gn.stop(9)       # offline: its node closes, its state is on disk
        await gn.start(9)      # back, from the same identity and data directory

With ``mixes`` > 0 an authority and the mixes are started first
(:func:`open_mix_network`) and every member runs the mixnet as a client, so
its group records go through exits (``GroupsConfig.delivery`` "auto").
With ``network=None`` every node gets its own UDP socket on 127.0.0.1.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from qdht.config import Config
from qdht.errors import ConfigError
from qdht.mixnet import MixnetConfig
from qdht.node import Node, open_node
from qdht.session import SessionConfig
from qdht.testing._memory import MemoryNetwork
from qdht.testing._mixnet import MixNetwork, open_mix_network
from qdht.testing._sim import seeded_identity

__all__ = ["GroupNetwork", "open_group_network"]

#: Runs beside a member's node while it is up (its events, say): ``(index, node)``.
Watcher = Callable[[int, Node], Awaitable[None]]


class GroupNetwork:
    """Member nodes (``nodes[i]``, None while stopped), the nodes that only hold
    records, and the mixnet when there is one."""

    def __init__(
        self,
        nursery: trio.Nursery,
        configs: list[Config],
        network: MemoryNetwork | None,
        watcher: Watcher | None,
        mix: MixNetwork | None,
    ) -> None:
        self._nursery = nursery
        self._configs = configs
        self._network = network
        self._watcher = watcher
        self._scopes: dict[int, trio.CancelScope] = {}
        self._stopped: dict[int, trio.Event] = {}
        self.nodes: list[Node | None] = [None] * len(configs)
        self.holders: list[Node] = []
        self.mix = mix

    def member(self, i: int) -> Node:
        """Member ``i``'s running node; ConfigError while it is stopped."""
        node = self.nodes[i]
        if node is None:
            raise ConfigError(f"member {i} is stopped")
        return node

    @property
    def bootstrap(self) -> Node:
        return self.mix.authorities[0] if self.mix is not None else self.holders[0]

    async def start(self, i: int) -> Node:
        """Start member ``i`` (again: same identity, same data directory), joined."""
        if self.nodes[i] is not None:
            raise ConfigError(f"member {i} is running")
        node: Node = await self._nursery.start(self._run, i)
        await node.bootstrap([self.bootstrap.contact])
        if self.mix is not None:
            await node.anonymous.update_directory()
        return node

    async def stop(self, i: int) -> None:
        """Close member ``i``'s node, as a user quitting (its state stays on disk)."""
        self._scopes[i].cancel()
        await self._stopped[i].wait()

    async def _run(self, i: int, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._stopped[i] = stopped = trio.Event()
        try:
            with trio.CancelScope() as scope:
                self._scopes[i] = scope
                async with AsyncExitStack() as stack:
                    transport = None
                    if self._network is not None:
                        transport = await stack.enter_async_context(self._network.open_transport())
                    node = await stack.enter_async_context(
                        open_node(self._configs[i], transport=transport)
                    )
                    self.nodes[i] = node
                    task_status.started(node)
                    if self._watcher is not None:
                        await self._watcher(i, node)
                    await trio.sleep_forever()
        finally:
            self.nodes[i] = None
            stopped.set()


@asynccontextmanager
async def open_group_network(
    members: int,
    *,
    groups: Any,
    seed: int,
    mixes: int = 0,
    holders: int = 3,
    mixnet: MixnetConfig | None = None,
    data_dir: Path | None = None,
    network: MemoryNetwork | None = None,
    watcher: Watcher | None = None,
) -> AsyncIterator[GroupNetwork]:
    """Start the network and the ``members`` nodes (``groups`` is their
    ``qdht.groups.GroupsConfig``); ``holders`` more nodes without mixes only
    hold records.  ``data_dir``: member i keeps its state in ``data_dir/i``."""
    if members < 1 or mixes < 0 or (mixes == 0 and holders < 1):
        raise ConfigError("a group network needs a member and a mix or a holder")
    rng = random.Random(seed)
    changes: dict[str, Any] = {}
    if network is None:
        changes["listen"] = ("udp://127.0.0.1:0",)
        changes["session"] = SessionConfig(
            handshake_rate_per_address=1000.0, handshake_burst_per_address=1000
        )
    async with AsyncExitStack() as stack:
        mix = None
        if mixes:
            mix = await stack.enter_async_context(
                open_mix_network(mixes, 0, seed=rng.getrandbits(32), mixnet=mixnet, network=network)
            )
            await mix.publish_directory()
        client = None if mix is None else attrs.evolve(mix.config, mix=False, authority=False)
        configs = []
        for i in range(members):
            configs.append(
                Config(
                    identity=seeded_identity(rng, 0),
                    puzzle_difficulty=0,
                    data_dir=None if data_dir is None else _dir(data_dir / str(i)),
                    groups=groups,
                    mixnet=client,
                    **changes,
                )
            )
        nursery = await stack.enter_async_context(trio.open_nursery())
        gn = GroupNetwork(nursery, configs, network, watcher, mix)
        if mix is None:
            for _ in range(holders):
                gn.holders.append(await _holder(stack, rng, network, changes))
            for node in gn.holders[1:]:
                await node.bootstrap([gn.holders[0].contact])
        for i in range(members):
            await gn.start(i)
        try:
            yield gn
        finally:
            nursery.cancel_scope.cancel()


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _holder(
    stack: AsyncExitStack,
    rng: random.Random,
    network: MemoryNetwork | None,
    changes: dict[str, Any],
) -> Node:
    transport = None
    if network is not None:
        transport = await stack.enter_async_context(network.open_transport())
    config = Config(identity=seeded_identity(rng, 0), puzzle_difficulty=0, **changes)
    node: Node = await stack.enter_async_context(open_node(config, transport=transport))
    return node
