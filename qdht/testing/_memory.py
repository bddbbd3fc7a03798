"""The in-memory network: thousands of simulated UDP hosts in one process.

A :class:`MemoryNetwork` is one simulated internet.  Each
:class:`MemoryTransport` is a host's UDP socket on it: datagrams go into the
destination's bounded receive queue (overflow is dropped and counted, like a
kernel socket buffer), optionally after a per-link latency scheduled on the
Trio clock, so simulations run under ``trio.testing.MockClock`` in no wall
time.  Datagrams to an address nobody listens on vanish, as to a dead host.
All randomness (address allocation, jitter) comes from the network's seed.

A transport costs a few hundred bytes plus its queue (allocated on first
use), so the 64 KiB-per-node budget of a whole DHT node is not spent here.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Final, TypeAlias

import outcome
import trio

from qdht.errors import ConfigError, TransportError
from qdht.testing._delay import DelayLine
from qdht.transport import check_payload
from qdht.wire import Address

__all__ = [
    "DEFAULT_QUEUE_SIZE",
    "MemoryNetwork",
    "MemoryTransport",
]

#: Datagrams a memory transport queues before dropping (about a default Linux SO_RCVBUF).
DEFAULT_QUEUE_SIZE: Final = 256
#: First port handed out for ``port=0``.
EPHEMERAL_PORT_FIRST: Final = 49152

Latency: TypeAlias = float | Callable[[Address, Address], float]
#: Something that names a host in :meth:`MemoryNetwork.partition`.
HostLike: TypeAlias = "str | Address | MemoryTransport"

_Closed = trio.ClosedResourceError


class MemoryTransport:
    """One simulated UDP socket on a :class:`MemoryNetwork`.

    One task at a time may wait in :meth:`receive` (a second raises
    ``trio.BusyResourceError``), like :class:`~qdht.transport.UdpTransport`.
    """

    __slots__ = (
        "_addr",
        "_bytes_received",
        "_bytes_sent",
        "_closed",
        "_dropped_full",
        "_local",
        "_network",
        "_queue",
        "_received",
        "_sent",
        "_waiter",
    )

    def __init__(self, network: MemoryNetwork, addr: Address) -> None:
        self._network = network
        self._addr = addr
        self._local = (addr,)
        self._queue: list[tuple[bytes, Address]] | None = None
        self._waiter: trio.lowlevel.Task | None = None
        self._closed = False
        self._sent = self._bytes_sent = self._received = self._bytes_received = 0
        self._dropped_full = 0

    @property
    def local_addresses(self) -> tuple[Address, ...]:
        return self._local

    @property
    def max_datagram_size(self) -> int:
        return self._network.max_datagram_size

    @property
    def network(self) -> MemoryNetwork:
        return self._network

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, data: bytes, addr: Address) -> None:
        network = self._network
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise _Closed("memory transport is closed")
        if len(data) > network.max_datagram_size or addr.transport != "udp":
            check_payload(data, addr, network.max_datagram_size, "udp", "memory transport")
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise _Closed("memory transport is closed")
        self._sent += 1
        self._bytes_sent += len(data)
        network._route(bytes(data), self._addr, addr)

    async def receive(self) -> tuple[bytes, Address]:
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise _Closed("memory transport is closed")
        queue = self._queue
        if queue:
            await trio.lowlevel.checkpoint()
            if self._closed:
                raise _Closed("memory transport is closed")
            if queue:
                item = queue.pop(0)
                self._received += 1
                self._bytes_received += len(item[0])
                return item
        if self._waiter is not None:
            raise trio.BusyResourceError("another task is already receiving on this transport")
        self._waiter = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        item = await trio.lowlevel.wait_task_rescheduled(abort)
        self._received += 1
        self._bytes_received += len(item[0])
        return item  # type: ignore[no-any-return]

    def receive_queued(self, max_count: int = 64) -> list[tuple[bytes, Address]]:
        """Up to ``max_count`` datagrams already queued, without waiting."""
        if type(max_count) is not int or max_count < 1:
            raise ConfigError(f"max_count must be a positive integer, got {max_count!r}")
        queue = self._queue
        if self._closed or not queue:
            return []
        batch = queue[:max_count]
        del queue[:max_count]
        self._received += len(batch)
        self._bytes_received += sum(len(data) for data, _ in batch)
        return batch

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue = None
            self._network._unbind(self)
            if self._waiter is not None:
                task, self._waiter = self._waiter, None
                trio.lowlevel.reschedule(
                    task, outcome.Error(_Closed("memory transport was closed"))
                )
        await trio.lowlevel.checkpoint()

    def stats(self) -> dict[str, int]:
        stats = {
            "datagrams_sent": self._sent,
            "bytes_sent": self._bytes_sent,
            "datagrams_received": self._received,
            "bytes_received": self._bytes_received,
        }
        if self._dropped_full:
            stats["drop_queue-full"] = self._dropped_full
        return stats

    def _enqueue(self, data: bytes, src: Address) -> None:
        if self._waiter is not None:
            task, self._waiter = self._waiter, None
            trio.lowlevel.reschedule(task, outcome.Value((data, src)))
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = []
        if len(queue) >= self._network.queue_size:
            self._dropped_full += 1
        else:
            queue.append((data, src))

    def __repr__(self) -> str:
        return f"<MemoryTransport {self._addr}{' closed' if self._closed else ''}>"


class MemoryNetwork:
    """A simulated network of UDP hosts; seeded, and driven by the Trio clock.

    ``latency`` is seconds per datagram, or a function ``(src, dst) -> seconds``
    for per-link latencies; ``jitter`` adds a uniform random ``[0, jitter)``
    seconds per datagram (which reorders, as on real paths).  With no latency
    and no jitter delivery is immediate.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        latency: Latency = 0.0,
        jitter: float = 0.0,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_datagram_size: int = 65507,
    ) -> None:
        if not callable(latency) and not latency >= 0:
            raise ConfigError(f"latency must be >= 0 seconds, got {latency!r}")
        if not jitter >= 0:
            raise ConfigError(f"jitter must be >= 0 seconds, got {jitter!r}")
        if type(queue_size) is not int or queue_size < 1:
            raise ConfigError(f"queue_size must be a positive integer, got {queue_size!r}")
        if type(max_datagram_size) is not int or not 1 <= max_datagram_size <= 65507:
            raise ConfigError(f"max_datagram_size must be in 1..65507, got {max_datagram_size!r}")
        self.seed = seed
        self.latency = latency
        self.jitter = jitter
        self.queue_size = queue_size
        self.max_datagram_size = max_datagram_size
        self._rng = random.Random(seed)
        self._bound: dict[Address, MemoryTransport] = {}
        self._hosts: dict[str, int] = {}  # host -> open transports on it
        self._next_port: dict[str, int] = {}
        self._groups: dict[str, int] = {}
        self._in_flight: DelayLine[tuple[bytes, Address, Address]] = DelayLine(self._deliver_later)
        self.delivered = 0
        self.vanished = 0
        self.partitioned = 0
        self.in_flight_dropped = 0

    # -- hosts and transports ---------------------------------------------

    def allocate_host(self) -> str:
        """A fresh IPv4 address in 10.0.0.0/8, spread at random over its /16s and /24s."""
        rng = self._rng
        while True:
            n = rng.getrandbits(24)
            if 0 < n & 0xFF < 255:
                host = f"10.{n >> 16}.{(n >> 8) & 0xFF}.{n & 0xFF}"
                if host not in self._hosts:
                    return host

    @asynccontextmanager
    async def open_transport(
        self, host: str | None = None, port: int = 6881
    ) -> AsyncIterator[MemoryTransport]:
        """Bind a simulated UDP socket; ``host=None`` allocates a fresh host, port 0 a free port."""
        transport = self.bind(host, port)
        try:
            yield transport
        finally:
            with trio.CancelScope(shield=True):
                await transport.aclose()

    def bind(self, host: str | None = None, port: int = 6881) -> MemoryTransport:
        """Like :meth:`open_transport`, for callers that manage closing themselves."""
        if host is None:
            host = self.allocate_host()
        else:
            try:
                host = ipaddress.ip_address(host).compressed
            except ValueError:
                raise ConfigError(f"host must be an IP literal, got {host!r}") from None
        if type(port) is not int or not 0 <= port <= 65535:
            raise ConfigError(f"port must be an integer in 0..65535, got {port!r}")
        if port == 0:
            port = self._ephemeral_port(host)
        addr = Address("udp", host, port)
        if addr in self._bound:
            raise TransportError(f"address already in use on the memory network: {addr}")
        transport = MemoryTransport(self, addr)
        self._bound[addr] = transport
        self._hosts[host] = self._hosts.get(host, 0) + 1
        return transport

    def move(self, transport: MemoryTransport, host: str | None = None) -> Address:
        """Give ``transport`` a new address (a fresh host unless ``host``), as a phone
        gets when it changes networks; datagrams to the old address are lost.
        Returns the new address; the transport stays open."""
        if self._bound.get(transport._addr) is not transport:
            raise TransportError("move: the transport is not bound on this network")
        fresh = self.bind(host, 0 if host is not None else 6881)
        del self._bound[fresh._addr]
        self._unbind(transport)
        transport._addr = fresh._addr
        transport._local = (fresh._addr,)
        self._bound[fresh._addr] = transport
        return fresh._addr

    def _ephemeral_port(self, host: str) -> int:
        port = self._next_port.get(host, EPHEMERAL_PORT_FIRST)
        for _ in range(65536 - EPHEMERAL_PORT_FIRST):
            candidate = port
            port = port + 1 if port < 65535 else EPHEMERAL_PORT_FIRST
            if Address("udp", host, candidate) not in self._bound:
                self._next_port[host] = port
                return candidate
        raise TransportError(f"no free ephemeral port on memory host {host}")

    def _unbind(self, transport: MemoryTransport) -> None:
        addr = transport._addr
        if self._bound.get(addr) is transport:
            del self._bound[addr]
            left = self._hosts[addr.host] - 1
            if left:
                self._hosts[addr.host] = left
            else:
                del self._hosts[addr.host]
        if not self._bound:
            self._in_flight.close()
            self._in_flight = DelayLine(self._deliver_later)

    def transport_at(self, addr: Address) -> MemoryTransport | None:
        """The open transport bound to ``addr``, if any."""
        return self._bound.get(addr)

    def __len__(self) -> int:
        """How many transports are open."""
        return len(self._bound)

    # -- partitions ---------------------------------------------------------

    def partition(self, *groups: Iterable[HostLike]) -> None:
        """Split the network: hosts in different groups cannot reach each other.

        Hosts not named in any group form one more group together.  Replaces
        any earlier partition; :meth:`heal` removes it.  Applies to datagrams
        still in flight too.
        """
        mapping: dict[str, int] = {}
        for index, group in enumerate(groups, start=1):
            for member in group:
                host = _host_of(member)
                if mapping.setdefault(host, index) != index:
                    raise ConfigError(f"host {host} is in more than one partition group")
        self._groups = mapping

    def heal(self) -> None:
        """Remove the partition: every host can reach every other again."""
        self._groups = {}

    def can_reach(self, src: HostLike, dst: HostLike) -> bool:
        """Whether the current partition lets ``src`` reach ``dst``."""
        groups = self._groups
        return groups.get(_host_of(src), 0) == groups.get(_host_of(dst), 0)

    # -- delivery -----------------------------------------------------------

    def _route(self, data: bytes, src: Address, dst: Address) -> None:
        latency = self.latency
        delay = latency(src, dst) if callable(latency) else latency
        if self.jitter:
            delay += self._rng.random() * self.jitter
        if delay > 0:
            if not self._in_flight.push(trio.current_time() + delay, (data, src, dst)):
                self.in_flight_dropped += 1
        else:
            self._deliver(data, src, dst)

    def _deliver(self, data: bytes, src: Address, dst: Address) -> None:
        groups = self._groups
        if groups and groups.get(src.host, 0) != groups.get(dst.host, 0):
            self.partitioned += 1
            return
        transport = self._bound.get(dst)
        if transport is None:
            self.vanished += 1
            return
        self.delivered += 1
        transport._enqueue(data, src)

    async def _deliver_later(self, item: tuple[bytes, Address, Address]) -> None:
        self._deliver(*item)

    def stats(self) -> dict[str, int]:
        """Network-wide counters: delivered, vanished (no listener), partitioned, in flight."""
        return {
            "transports": len(self._bound),
            "delivered": self.delivered,
            "vanished": self.vanished,
            "partitioned": self.partitioned,
            "in_flight": len(self._in_flight),
            "in_flight_dropped": self.in_flight_dropped,
        }


def _host_of(member: HostLike) -> str:
    if isinstance(member, MemoryTransport):
        return member.local_addresses[0].host
    if isinstance(member, Address):
        return member.host
    if isinstance(member, str):
        try:
            return ipaddress.ip_address(member).compressed
        except ValueError:
            pass
    raise ConfigError(f"partition members are hosts, Addresses or transports, got {member!r}")
