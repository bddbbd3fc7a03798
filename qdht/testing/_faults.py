"""The fault injector: a seeded bad network around any datagram transport.

:class:`FaultInjector` wraps a :class:`~qdht.transport.DatagramTransport`
(UDP, WebSocket, in-memory, another injector) and is one itself.  On the way
out it loses, corrupts, duplicates, delays (with jitter) and reorders
datagrams; partitions drop datagrams to *and* from chosen addresses.  Every
decision comes from ``random.Random(seed)``, so a failing run replays exactly.
Delays never block the sender: delayed datagrams are sent later by one
scheduler task on the Trio clock (instant under ``MockClock``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Final

import attrs
import trio

from qdht.errors import ConfigError
from qdht.testing._delay import DelayLine
from qdht.transport import DatagramTransport
from qdht.wire import Address

__all__ = ["FaultInjector"]

#: Default longest time a reordered datagram is held if no later datagram overtakes it.
DEFAULT_REORDER_HOLD: Final = 0.05
#: Held-back datagrams at most (more are sent at once, in order).
MAX_HELD: Final = 64


@attrs.define
class _Held:
    data: bytes
    addr: Address
    overtakers: int  # later datagrams still to send before this one
    released: bool = False


def _check_probability(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


class FaultInjector:
    """Loss, delay and jitter, duplication, reordering, corruption and partitions.

    Probabilities apply per datagram sent: ``loss`` drops it, ``corrupt`` flips
    ``corrupt_bits`` random bits, ``duplicate`` sends it twice, ``reorder``
    holds it back until 1-3 later datagrams have gone (or ``reorder_hold``
    seconds pass); ``delay`` + uniform ``[0, jitter)`` seconds postpones it.
    ``partition(addrs)`` drops everything to and from those addresses (or
    hosts) until ``heal()``.  Counters appear in ``stats()`` as ``fault_*``
    next to the wrapped transport's own.  Closing the injector closes the
    wrapped transport.
    """

    def __init__(
        self,
        inner: DatagramTransport,
        *,
        seed: int,
        loss: float = 0.0,
        delay: float = 0.0,
        jitter: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        corrupt: float = 0.0,
        corrupt_bits: int = 1,
        reorder_hold: float = DEFAULT_REORDER_HOLD,
    ) -> None:
        self.inner = inner
        self.seed = seed
        self._rng = random.Random(seed)
        self.loss = _check_probability("loss", loss)
        self.duplicate = _check_probability("duplicate", duplicate)
        self.reorder = _check_probability("reorder", reorder)
        self.corrupt = _check_probability("corrupt", corrupt)
        for name, value in (("delay", delay), ("jitter", jitter), ("reorder_hold", reorder_hold)):
            if not value >= 0:
                raise ConfigError(f"{name} must be >= 0 seconds, got {value!r}")
        if type(corrupt_bits) is not int or corrupt_bits < 1:
            raise ConfigError(f"corrupt_bits must be a positive integer, got {corrupt_bits!r}")
        self.delay = float(delay)
        self.jitter = float(jitter)
        self.corrupt_bits = corrupt_bits
        self.reorder_hold = float(reorder_hold)
        self._blocked_addrs: set[Address] = set()
        self._blocked_hosts: set[str] = set()
        self._held: list[_Held] = []
        self._later: DelayLine[tuple[bytes, Address] | _Held] = DelayLine(self._send_later)
        self._closed = False
        self._counts = dict.fromkeys(
            ("lost", "corrupted", "duplicated", "reordered", "delayed", "partitioned"), 0
        )
        self._delay_dropped = 0

    # -- DatagramTransport ------------------------------------------------

    @property
    def local_addresses(self) -> tuple[Address, ...]:
        return self.inner.local_addresses

    @property
    def max_datagram_size(self) -> int:
        return self.inner.max_datagram_size

    async def send(self, data: bytes, addr: Address) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("fault injector is closed")
        if len(data) > self.inner.max_datagram_size:
            # Let the wrapped transport raise its own clear error for misuse.
            await self.inner.send(data, addr)
            return
        counts = self._counts
        rng = self._rng
        if self._is_blocked(addr):
            counts["partitioned"] += 1
            await trio.lowlevel.checkpoint()
            return
        if self.loss and rng.random() < self.loss:
            counts["lost"] += 1
            await trio.lowlevel.checkpoint()
            return
        if self.corrupt and data and rng.random() < self.corrupt:
            counts["corrupted"] += 1
            data = self._flip_bits(data)
        copies = 1
        if self.duplicate and rng.random() < self.duplicate:
            counts["duplicated"] += 1
            copies = 2
        for _ in range(copies):
            await self._send_one(bytes(data), addr)

    async def receive(self) -> tuple[bytes, Address]:
        while True:
            data, src = await self.inner.receive()
            if self._is_blocked(src):
                self._counts["partitioned"] += 1
                continue
            return data, src

    async def aclose(self) -> None:
        self._closed = True
        self._later.close()
        self._held.clear()
        await self.inner.aclose()

    def stats(self) -> dict[str, int]:
        stats = dict(self.inner.stats())
        for name, n in self._counts.items():
            stats[f"fault_{name}"] = n
        if self._delay_dropped:
            stats["drop_fault-delay-full"] = self._delay_dropped
        return stats

    # -- partitions ---------------------------------------------------------

    def partition(self, members: Iterable[Address | str]) -> None:
        """Drop datagrams to and from these addresses (an IP string blocks the whole host)."""
        for member in members:
            if isinstance(member, Address):
                self._blocked_addrs.add(member)
            elif isinstance(member, str):
                self._blocked_hosts.add(Address("udp", member, 1).host)
            else:
                raise ConfigError(f"partition members are Addresses or IP strings, got {member!r}")

    def heal(self) -> None:
        """Undo every :meth:`partition`."""
        self._blocked_addrs.clear()
        self._blocked_hosts.clear()

    def _is_blocked(self, addr: Address) -> bool:
        if not self._blocked_addrs and not self._blocked_hosts:
            return False
        return addr in self._blocked_addrs or addr.host in self._blocked_hosts

    # -- faults -------------------------------------------------------------

    def _flip_bits(self, data: bytes) -> bytes:
        buf = bytearray(data)
        nbits = len(buf) * 8
        for bit in self._rng.sample(range(nbits), min(self.corrupt_bits, nbits)):
            buf[bit >> 3] ^= 1 << (bit & 7)
        return bytes(buf)

    async def _send_one(self, data: bytes, addr: Address) -> None:
        rng = self._rng
        if self.reorder and rng.random() < self.reorder and len(self._held) < MAX_HELD:
            self._counts["reordered"] += 1
            held = _Held(data, addr, overtakers=rng.randint(1, 3))
            self._held.append(held)
            if not self._later.push(trio.current_time() + self.reorder_hold, held):
                self._held.remove(held)
                await self._transmit(data, addr)
            else:
                await trio.lowlevel.checkpoint()
            return
        await self._transmit(data, addr)
        # This datagram overtook the held ones; release those whose turn has come.
        if self._held:
            due = []
            for held in self._held:
                held.overtakers -= 1
                if held.overtakers <= 0:
                    due.append(held)
            for held in due:
                self._held.remove(held)
                held.released = True
                await self._transmit(held.data, held.addr)

    async def _transmit(self, data: bytes, addr: Address) -> None:
        wait = self.delay
        if self.jitter:
            wait += self._rng.random() * self.jitter
        if wait > 0:
            self._counts["delayed"] += 1
            if not self._later.push(trio.current_time() + wait, (data, addr)):
                self._delay_dropped += 1
            await trio.lowlevel.checkpoint()
        else:
            await self.inner.send(data, addr)

    async def _send_later(self, item: tuple[bytes, Address] | _Held) -> None:
        if isinstance(item, _Held):
            # The hold timed out before enough later datagrams overtook it.
            if item.released or self._closed:
                return
            item.released = True
            self._held.remove(item)
            data, addr = item.data, item.addr
            if self.delay or self.jitter:
                await self._transmit(data, addr)
                return
        else:
            data, addr = item
        if self._closed:
            return
        try:
            await self.inner.send(data, addr)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            # The wrapped transport was closed under us: the datagram is lost.
            self._delay_dropped += 1
