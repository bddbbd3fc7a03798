"""Fixed mix keys and paths for the mixnet tests (deterministic seeds)."""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable

from qdht.crypto import xwing
from qdht.mixnet import (
    DirectoryView,
    Geometry,
    MixClient,
    MixnetConfig,
    MixRole,
    Outgoing,
    PathHop,
    epoch_of,
)
from qdht.wire import Address, Contact, MixDelivery, MixEntry, MixPacket, decode, encode


def seeded(label: str, size: int = 32) -> bytes:
    """``size`` bytes fixed by ``label``."""
    return hashlib.shake_256(f"qdht/tests/mixnet/{label}".encode()).digest(size)


def make_keys(count: int = 5) -> list[xwing.XWingPrivateKey]:
    return [xwing.XWingPrivateKey.from_seed(seeded(f"mix-{i}")) for i in range(count)]


def path_for(
    geometry: Geometry, keys: list[xwing.XWingPrivateKey], delays: tuple[int, ...] = ()
) -> list[PathHop]:
    return [
        PathHop(seeded(f"node-{i}"), keys[i].public_key_bytes(), delays[i] if delays else 7 * i)
        for i in range(geometry.hops)
    ]


MixNode = MixRole | MixClient


class MemoryMixnet:
    """Mixes and clients wired by node id; ``run`` steps time and moves messages."""

    def __init__(self, config: MixnetConfig, mixes: int, *, now: float, seed: int = 1) -> None:
        self.config = config
        self.now = now
        self.rand = random.Random(seed)
        self.mixes: dict[bytes, MixRole] = {}
        self.clients: dict[bytes, MixClient] = {}
        self.dropped_links: set[bytes] = set()
        for i in range(mixes):
            node_id = seeded(f"mix-node-{i}")
            self.mixes[node_id] = MixRole(
                node_id,
                config,
                now=now,
                rng=_counter_rng(f"mix-{i}"),
                random_source=random.Random(seed * 1000 + i),
            )
        self.events: list[tuple[bytes, object]] = []

    def directory(self) -> DirectoryView:
        epoch = epoch_of(self.now, self.config.epoch_period)
        entries = [
            MixEntry(
                Contact(node_id, (Address("udp", "192.0.2.1", 4000 + i),)),
                i % self.config.hops,
                role.keys.public_keys()[epoch],
            )
            for i, (node_id, role) in enumerate(sorted(self.mixes.items()))
        ]
        return DirectoryView(epoch, tuple(entries))

    def add_client(self, name: str, **kwargs: object) -> MixClient:
        node_id = seeded(f"client-{name}")
        client = MixClient(
            node_id,
            self.config,
            now=self.now,
            rng=_counter_rng(f"client-{name}"),
            random_source=random.Random(name),
            **kwargs,  # type: ignore[arg-type]
        )
        self.clients[node_id] = client
        return client

    def publish_directory(self) -> None:
        view = self.directory()
        for client in self.clients.values():
            client.set_directory(view)
        for mix in self.mixes.values():
            mix.set_directory(view, self.now)

    def _nodes(self) -> list[tuple[bytes, MixNode]]:
        return [*self.mixes.items(), *self.clients.items()]

    def run(self, until: float, step: float = 0.005) -> None:
        """Advance to ``until`` in ``step`` increments, delivering every message at once."""
        while self.now < until:
            self.now = min(until, self.now + step)
            moved = True
            while moved:
                moved = False
                for node_id, node in self._nodes():
                    node.handle_timer(self.now)
                    for out in node.packets_to_send(self.now):
                        moved = True
                        self._deliver(node_id, out)
                    while (event := node.next_event()) is not None:
                        self.events.append((node_id, event))

    def _deliver(self, sender: bytes, out: Outgoing) -> None:
        if out.peer in self.dropped_links:
            return
        message = decode(encode(out.message))  # every message crosses the wire codec
        if isinstance(message, MixPacket):
            mix = self.mixes.get(out.peer)
            if mix is not None:
                mix.receive_packet(message.data, sender, self.now)
        elif isinstance(message, MixDelivery):
            target = self.clients.get(out.peer) or self.mixes.get(out.peer)
            if target is not None:
                target.receive_delivery(message, self.now)


def _counter_rng(label: str) -> Callable[[int], bytes]:
    counter = itertools.count()

    def rng(size: int) -> bytes:
        return seeded(f"{label}/{next(counter)}", size)

    return rng
