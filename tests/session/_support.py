"""Shared helpers of the session tests: identities, a seeded in-memory wire, a pump."""

from __future__ import annotations

import functools
import random
from collections.abc import Hashable

from qdht.identity import Identity
from qdht.session import Event, SessionConfig, SessionEndpoint

DIFFICULTY = 2


@functools.cache
def identity(n: int) -> Identity:
    """The n-th test identity (cached: ML-DSA key generation is slow)."""
    return Identity.generate(difficulty=DIFFICULTY)


def seeded_rng(seed: int) -> random.Random:
    return random.Random(seed)


class Wire:
    """Two or more endpoints on a lossy, duplicating, reordering in-memory wire."""

    def __init__(
        self,
        *,
        seed: int = 0,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
    ) -> None:
        self.endpoints: dict[Hashable, SessionEndpoint] = {}
        self.random = random.Random(seed)
        self.loss, self.duplicate, self.reorder = loss, duplicate, reorder
        self.now = 0.0
        self.captured: list[tuple[bytes, Hashable, Hashable]] = []

    def add(
        self, addr: Hashable, ident: Identity, config: SessionConfig | None = None
    ) -> SessionEndpoint:
        endpoint = SessionEndpoint(ident, config, rng=self.random.randbytes)
        self.endpoints[addr] = endpoint
        return endpoint

    def pump(self, rounds: int = 50) -> None:
        """Move datagrams until the wire is quiet, applying the configured faults."""
        for _ in range(rounds):
            batch: list[tuple[bytes, Hashable, Hashable]] = []
            for src, endpoint in self.endpoints.items():
                for data, dst in endpoint.datagrams_to_send(self.now):
                    assert len(data) <= endpoint.config.datagram_size
                    self.captured.append((data, src, dst))
                    if self.random.random() < self.loss:
                        continue
                    batch.append((data, src, dst))
                    if self.random.random() < self.duplicate:
                        batch.append((data, src, dst))
            if not batch:
                return
            if self.reorder:
                for i in range(len(batch) - 1):
                    if self.random.random() < self.reorder:
                        j = self.random.randrange(i, len(batch))
                        batch[i], batch[j] = batch[j], batch[i]
            for data, src, dst in batch:
                if dst in self.endpoints:
                    self.endpoints[dst].receive_datagram(data, src, self.now)

    def advance(self, seconds: float) -> None:
        """Let time pass in timer-sized steps, firing timers and pumping."""
        end = self.now + seconds
        self.pump()
        while True:
            timers = [t for e in self.endpoints.values() if (t := e.get_timer()) is not None]
            step = min([end, *timers])
            self.now = max(self.now, step)
            for endpoint in self.endpoints.values():
                timer = endpoint.get_timer()
                if timer is not None and timer <= self.now:
                    endpoint.handle_timer(self.now)
            self.pump()
            if self.now >= end:
                return


def events(endpoint: SessionEndpoint) -> list[Event]:
    out = []
    while (event := endpoint.next_event()) is not None:
        out.append(event)
    return out
