"""The loopback UDP part of ``qdht-bench models``: fetching over a real network.

``--nodes`` (50) nodes in this process, each on its own UDP socket on
127.0.0.1, joined through the first; node 0 publishes a ``--net-size-mb``
(50) MiB model of ten float32 tensors through its ``models`` service.

* ``net_fetch_mb_per_s_1_holder``: a fresh node fetches it (provider lookup,
  parallel ``get_chunk`` from the holders, every chunk verified and written to
  its chunk store; the final file is not assembled) while the publisher is the
  only holder; then ``--seeds`` (4) further nodes fetch it and announce
  themselves, and ``net_fetch_mb_per_s_5_holders`` is a fresh node's fetch
  from the five holders.
* ``session_mb_per_s``: the baseline, measured in the same run on two more
  nodes of the same network: the same ``get_chunk``/``chunk`` exchange with
  the same window (``max_in_flight``, 16) over one session, answered from
  memory and not checked: what the session layer moves between two nodes of
  this process.  ``net_5_holders_vs_session`` is the ratio (issue 17's
  target: ≥ 0.5).
* ``net_fetch_peak_mib``: the Python heap's peak (tracemalloc) over the whole
  process during one more 5-holder fetch, holders' serving included, and
  ``net_fetch_peak_fraction`` that over the model's size.

Every node runs in one Python process on one core, so the holders, the
fetcher and the session crypto of both ends share it: the figures are a
floor for separate machines.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from collections.abc import Hashable
from typing import Any, Final

import numpy as np
import trio

import qdht
from qdht.identity import Identity
from qdht.models import FetchLimits, ModelsConfig
from qdht.node import Node, Outgoing, Service, ServiceContext
from qdht.wire import Chunk, GetChunk, decode, encode

__all__ = ["network_fetch"]

DIFFICULTY: Final = 4
MIB: Final = 2**20
CHUNK: Final = 65536


class _BlastCore:
    """The baseline: answers ``get_chunk`` from memory; as a client keeps a window full."""

    def __init__(self) -> None:
        self._data = os.urandom(CHUNK)
        self._out: list[Outgoing] = []
        self._events: list[object] = []
        self.peer: tuple[bytes, Hashable] | None = None
        self.remaining = 0
        self.received = 0
        self._rid = 0

    def start(self, node_id: bytes, addr: Hashable, count: int, window: int) -> None:
        self.peer = (node_id, addr)
        self.remaining = count
        for _ in range(min(window, count)):
            self._ask()

    def _ask(self) -> None:
        assert self.peer is not None
        self._rid += 1
        rid = self._rid.to_bytes(8, "big")
        self._out.append((*self.peer, encode(GetChunk(rid, bytes(32)))))

    def receive_message(
        self, node_id: bytes, addr: Hashable, payload: bytes, now: float, *, early: bool = False
    ) -> None:
        message = decode(payload, expect=(GetChunk, Chunk))
        if type(message) is GetChunk:
            self._out.append((node_id, addr, encode(Chunk(message.rid, self._data))))
            return
        assert type(message) is Chunk
        assert message.data is not None
        self.received += len(message.data)
        self.remaining -= 1
        if self.remaining == 0:
            self._events.append("done")
        elif self.remaining >= 16:
            self._ask()

    def messages_to_send(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> object | None:
        return self._events.pop(0) if self._events else None

    @property
    def new_deadline(self) -> float:
        return float("inf")

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        return None

    def peer_unreachable(self, node_id: bytes, now: float, reason: str) -> None:
        raise RuntimeError("the baseline's peer is unreachable")

    def stats(self) -> dict[str, Any]:
        return {"received": self.received, "drops": {}}


class _Blast:
    def __init__(self) -> None:
        self.core = _BlastCore()
        self.done = trio.Event()

    def factory(self, context: ServiceContext) -> Service:
        def on_event(event: object) -> None:
            self.done.set()

        return Service("blast", self.core, {"get_chunk", "chunk"}, on_event=on_event)


def _model(size_mb: int) -> dict[str, Any]:
    per_tensor = size_mb * MIB // 10 // 4
    rng = np.random.default_rng(1)
    return {f"layer{i}": rng.standard_normal(per_tensor, np.float32) for i in range(10)}


def _config(identity: Identity, models: ModelsConfig | None) -> qdht.Config:
    return qdht.Config(
        identity=identity,
        listen=("udp://127.0.0.1:0",),
        puzzle_difficulty=DIFFICULTY,
        models=models,
    )


async def _network(
    nodes: int, size_mb: int, seeds: int, publisher: Identity, results: dict[str, float]
) -> None:
    trusted = ModelsConfig(trusted=(publisher.mldsa.public_key_bytes(),), fetch=FetchLimits())
    identities = [publisher] + [Identity.generate(DIFFICULTY) for _ in range(nodes + 1)]
    blast_server, blast_client = _Blast(), _Blast()
    async with trio.open_nursery() as nursery:
        running: list[Node] = []
        stop = trio.Event()

        async def run(config: qdht.Config, services: list[Any], *, task_status: Any) -> None:
            async with qdht.open_node(config, services=services) as node:
                task_status.started(node)
                await stop.wait()

        started = time.perf_counter()
        for n in range(nodes):
            node = await nursery.start(run, _config(identities[n], trusted), [])
            if running:
                await node.bootstrap([running[0].contact])
            running.append(node)
        server = await nursery.start(run, _config(identities[nodes], None), [blast_server.factory])
        client = await nursery.start(
            run, _config(identities[nodes + 1], None), [blast_client.factory]
        )
        results["net_setup_s"] = time.perf_counter() - started

        # The baseline: the same exchange over one session, from memory, unchecked.
        count = size_mb * MIB // CHUNK
        await client.bootstrap([server.contact])
        started = time.perf_counter()
        blast_client.core.start(server.node_id, server.contact.addresses[0], count, 16)
        await client.flush()
        await blast_client.done.wait()
        session = blast_client.core.received / MIB / (time.perf_counter() - started)
        results["session_mb_per_s"] = session

        owner = running[0].identity.mldsa_public_hash
        started = time.perf_counter()
        manifest = await running[0].models.publish("bench", _model(size_mb))
        results["net_publish_s"] = time.perf_counter() - started
        size = sum(t.nbytes for t in manifest.tensors) / MIB

        async def timed_fetch(node: Node, *, announce: bool) -> float:
            begin = time.perf_counter()
            result = await node.models.fetch(owner, "bench", announce=announce)
            assert result.received_bytes >= size * MIB
            return size / (time.perf_counter() - begin)

        one = await timed_fetch(running[-1], announce=False)
        results["net_fetch_mb_per_s_1_holder"] = one
        for n in range(1, seeds + 1):
            await timed_fetch(running[n], announce=True)
        five = await timed_fetch(running[-2], announce=False)
        results["net_fetch_mb_per_s_5_holders"] = five
        tracemalloc.start()
        try:
            await timed_fetch(running[-3], announce=False)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        results["net_fetch_peak_mib"] = peak / MIB
        results["net_fetch_peak_fraction"] = peak / MIB / size
        results["net_model_mib"] = size
        stop.set()


def network_fetch(*, nodes: int = 50, size_mb: int = 50, seeds: int = 4) -> dict[str, float]:
    """Run the loopback network measurements; returns the figures by name."""
    if nodes < seeds + 4:
        raise ValueError(f"--nodes must be at least {seeds + 4}")
    results: dict[str, float] = {}
    publisher = Identity.generate(DIFFICULTY)
    trio.run(_network, nodes, size_mb, seeds, publisher, results)
    results["net_5_holders_vs_session"] = (
        results["net_fetch_mb_per_s_5_holders"] / results["session_mb_per_s"]
    )
    results["net_1_holder_vs_session"] = (
        results["net_fetch_mb_per_s_1_holder"] / results["session_mb_per_s"]
    )
    return results
