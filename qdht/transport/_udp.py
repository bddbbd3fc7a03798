"""The UDP transport: one non-blocking socket, IPv4 or IPv6, driven by Trio.

The hot path matters (the session benchmark pushes tens of thousands of
datagrams per second through the whole stack), so this module calls the
stdlib socket's non-blocking ``sendto``/``recvfrom`` directly with Trio's
checkpoint and I/O-wait primitives, exactly like ``trio.socket`` does
internally, but without ``trio.socket``'s per-call address resolution.  There
is no reader task: :meth:`UdpTransport.receive` reads the socket, one
``recvfrom`` per datagram, and the kernel's receive buffer is the bounded queue
(overflow is dropped by the kernel, as on any UDP host).
"""

from __future__ import annotations

import array
import errno
import ipaddress
import logging
import math
import socket
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import trio

from qdht.errors import ConfigError, ContactError, TransportError
from qdht.transport._base import DropCounter, check_payload
from qdht.transport._bpf import (
    MAX_FILTER_SOURCES,
    SourceRule,
    pack_bpf_program,
    source_filter_program,
)
from qdht.wire import Address

__all__ = [
    "DEFAULT_RECEIVE_BUFFER_SIZE",
    "MAX_UDP_PAYLOAD_V4",
    "MAX_UDP_PAYLOAD_V6",
    "UdpTransport",
    "open_udp_transport",
]

#: Largest UDP payload over IPv4 (65535 - 20 byte IP header - 8 byte UDP header).
MAX_UDP_PAYLOAD_V4: Final = 65507
#: Largest UDP payload over IPv6 without jumbograms (65535 - 8 byte UDP header).
MAX_UDP_PAYLOAD_V6: Final = 65527
#: SO_RCVBUF we ask for; the kernel may cap it (net.core.rmem_max on Linux).
DEFAULT_RECEIVE_BUFFER_SIZE: Final = 1 << 21
#: Datagrams from muted sources dropped in a row before a read yields.
MAX_DROPS_PER_TAKE: Final = 1024
#: Most sender addresses whose parsed :class:`Address` is cached.
ADDRESS_CACHE_SIZE: Final = 4096
#: Seconds between two rebuilds of the kernel filter for new sources.
KERNEL_FILTER_INTERVAL: Final = 0.1

# linux/socket.h (asm-generic): not in the socket module.
_SO_ATTACH_FILTER: Final = 26
_SO_DETACH_FILTER: Final = 27
_SO_MEMINFO: Final = 55
_SK_MEMINFO_DROPS: Final = 8
#: Sources the transport counts drops of between two filter builds, at most.
_MAX_WEIGHTS: Final = 4096

logger = logging.getLogger(__name__)

_REMOTE_ERRNOS: Final = {
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "refused",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETUNREACH: "unreachable",
    errno.EHOSTDOWN: "unreachable",
    errno.ENETDOWN: "unreachable",
    errno.EADDRNOTAVAIL: "unreachable",
    errno.EAFNOSUPPORT: "address-family",
    errno.EINVAL: "invalid-destination",
    errno.EACCES: "not-permitted",
    errno.EPERM: "not-permitted",
    errno.EMSGSIZE: "too-big-for-path",
    errno.ENOBUFS: "no-buffer",
}


class UdpTransport:
    """Datagrams over one UDP socket; see :class:`~qdht.transport.DatagramTransport`.

    One task at a time may wait in :meth:`receive` (a second concurrent
    receiver raises ``trio.BusyResourceError``); any number may :meth:`send`.
    """

    __slots__ = (
        "_addr_cache",
        "_blocked",
        "_bytes_received",
        "_bytes_sent",
        "_closed",
        "_drops",
        "_dual_stack",
        "_family",
        "_keep",
        "_kernel",
        "_kernel_builds",
        "_kernel_due",
        "_kernel_keys",
        "_kernel_next",
        "_kernel_stale",
        "_kernel_weights",
        "_local",
        "_max",
        "_muted",
        "_received",
        "_recv_size",
        "_sent",
        "_sock",
    )

    def __init__(
        self,
        sock: socket.socket,
        *,
        max_datagram_size: int,
        dual_stack: bool,
        kernel_filter: bool = True,
    ) -> None:
        self._sock = sock
        self._family = sock.family
        self._dual_stack = dual_stack
        self._max = max_datagram_size
        # One byte more than the limit, so an oversize datagram is seen (and dropped).
        self._recv_size = max_datagram_size + 1
        self._closed = False
        self._drops = DropCounter()
        self._sent = self._bytes_sent = self._received = self._bytes_received = 0
        self._addr_cache: dict[Any, Address] = {}
        self._muted: Mapping[Any, float] = {}
        self._blocked: Mapping[Any, float] = {}
        self._keep = b""
        # The kernel filter (04 §5.5): on Linux, muted and blocked sources are
        # dropped before they reach the socket's queue.
        self._kernel = kernel_filter and sys.platform == "linux"
        self._kernel_keys: frozenset[tuple[bool, Hashable]] = frozenset()
        self._kernel_due = math.inf  # when to rebuild it (a source missed, a rule ends)
        self._kernel_next = -math.inf  # the earliest rebuild for a missed source
        self._kernel_weights: dict[tuple[bool, Hashable], int] = {}
        self._kernel_builds = 0
        self._kernel_stale = False
        host, port = sock.getsockname()[:2]
        self._local = (Address("udp", host, port),)

    # -- DatagramTransport ------------------------------------------------

    @property
    def local_addresses(self) -> tuple[Address, ...]:
        return self._local

    @property
    def max_datagram_size(self) -> int:
        return self._max

    @property
    def socket(self) -> socket.socket:
        """The underlying socket (for options and tests; do not read from it)."""
        return self._sock

    async def send(self, data: bytes, addr: Address) -> None:
        if len(data) > self._max or addr.transport != "udp" or self._closed:
            if self._closed:
                await trio.lowlevel.checkpoint()
                raise trio.ClosedResourceError("UDP transport is closed")
            check_payload(data, addr, self._max, "udp", "UDP transport")
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._try_send(data, addr):
            # The send buffer is full: wait (a real checkpoint) and retry.
            await self._wait(trio.lowlevel.wait_writable)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def send_batch(self, datagrams: Iterable[tuple[bytes, Any]]) -> None:
        """Send each ``(data, addr)`` in order, with one checkpoint for the batch.

        The hot path of a sender: :meth:`send` yields to the scheduler per
        datagram.  A datagram :meth:`send` would refuse (oversize, not a UDP
        address) is dropped and counted (``"oversize"``, ``"wrong-transport"``)
        instead, so one bad entry cannot lose the rest of the batch.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("UDP transport is closed")
        await trio.lowlevel.checkpoint_if_cancelled()
        limit = self._max
        for data, addr in datagrams:
            if len(data) > limit:
                self._drops.drop("oversize")
            elif not isinstance(addr, Address) or addr.transport != "udp":
                self._drops.drop("wrong-transport")
            else:
                while not self._try_send(data, addr):
                    await self._wait(trio.lowlevel.wait_writable)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def _try_send(self, data: bytes, addr: Address) -> bool:
        """sendto without waiting; False only if the send buffer is full (retry later)."""
        host = addr.host
        if self._family == socket.AF_INET6:
            if ":" not in host:
                if not self._dual_stack:
                    self._drops.drop("address-family")
                    return True
                host = "::ffff:" + host
        elif ":" in host:
            self._drops.drop("address-family")
            return True
        try:
            self._sock.sendto(data, (host, addr.port))
        except BlockingIOError:
            return False
        except OSError as exc:
            if self._closed:
                raise trio.ClosedResourceError("UDP transport is closed") from None
            self._drops.drop(_REMOTE_ERRNOS.get(exc.errno or 0, "send-error"))
            return True
        self._sent += 1
        self._bytes_sent += len(data)
        return True

    async def receive(self) -> tuple[bytes, Address]:
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("UDP transport is closed")
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while (item := self._take(trio.current_time())) is None:
            # wait_readable raises ClosedResourceError if aclose() runs meanwhile
            # (or rebind(): then the wait moves to the new socket).
            if self._kernel_due < math.inf:
                # Wake when a rule of the kernel filter ends: its source is heard again.
                with trio.move_on_at(self._kernel_due):
                    await self._wait(trio.lowlevel.wait_readable)
            else:
                await self._wait(trio.lowlevel.wait_readable)
            waited = True
        if not waited:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return item

    async def receive_batch(self, max_count: int = 64) -> list[tuple[bytes, Address]]:
        """Wait for one datagram, then take up to ``max_count`` in all that are already queued.

        One checkpoint per batch instead of one per datagram (the receive hot path).
        """
        if type(max_count) is not int or max_count < 1:
            raise ConfigError(f"max_count must be a positive integer, got {max_count!r}")
        batch = [await self.receive()]
        take, now = self._take, trio.current_time()
        while len(batch) < max_count and (item := take(now)) is not None:
            batch.append(item)
        return batch

    def receive_queued(self, max_count: int = 64) -> list[tuple[bytes, Address]]:
        """Up to ``max_count`` datagrams already queued in the socket, without waiting.

        What a driver reads before it declares requests timed out after its
        process stalled (the answers may have arrived meanwhile).
        """
        if type(max_count) is not int or max_count < 1:
            raise ConfigError(f"max_count must be a positive integer, got {max_count!r}")
        if self._closed:
            return []
        batch: list[tuple[bytes, Address]] = []
        take, now = self._take, trio.current_time()
        while len(batch) < max_count and (item := take(now)) is not None:
            batch.append(item)
        return batch

    def _take(self, now: float) -> tuple[bytes, Address] | None:
        """The next valid queued datagram, or None if the socket has none now
        (``now``: the Trio time, for the source filter)."""
        if now >= self._kernel_due:
            self._build_kernel_filter(now)
        sock = self._sock
        muted, blocked = self._muted, self._blocked
        dropped = 0
        while True:
            try:
                data, sockaddr = sock.recvfrom(self._recv_size)
            except BlockingIOError:
                return None
            except OSError as exc:
                if self._closed:
                    raise trio.ClosedResourceError("UDP transport is closed") from None
                # Linux reports ICMP port-unreachable for an earlier sendto here.
                self._drops.drop(_REMOTE_ERRNOS.get(exc.errno or 0, "receive-error"))
                continue
            # O(1) before any parsing: a flood from a muted or blocked source
            # costs its recvfrom and a dictionary lookup or two.
            reason = None
            if blocked and now < blocked.get(sockaddr, -math.inf):
                reason, key = "source-blocked", (True, sockaddr)
            elif muted:
                source = sockaddr
                until = muted.get(source)
                if until is None:
                    source = sockaddr[0]
                    until = muted.get(source)
                if until is not None and now < until and data[:1] not in self._keep:
                    reason, key = "source-muted", (False, source)
            if reason is not None:
                self._received += 1
                self._drops.drop(reason)
                if self._kernel and key not in self._kernel_keys:
                    self._kernel_missed(key, now)
                dropped += 1
                if dropped >= MAX_DROPS_PER_TAKE:
                    return None  # let other tasks run; the caller comes back
                continue
            if len(data) > self._max:
                self._drops.drop("oversize")
                continue
            addr = self._addr_cache.get(sockaddr)
            if addr is None:
                addr = self._parse_sender(sockaddr)
                if addr is None:
                    continue
            self._received += 1
            self._bytes_received += len(data)
            return data, addr

    async def _wait(self, wait: Callable[[Any], Awaitable[None]]) -> None:
        """Wait for the socket; after a :meth:`rebind` meanwhile, return to retry on the new one."""
        sock = self._sock
        try:
            await wait(sock)
        except trio.ClosedResourceError:
            if self._closed or self._sock is sock:
                raise

    def rebind(self, port: int = 0) -> Address:
        """Move to a fresh socket on the same local host (``port`` 0: a new ephemeral one).

        What a phone's peers see when it changes networks: its datagrams come
        from a new address.  Sessions follow it (an authenticated packet moves
        the peer's address, 05-transport.md) or are handshaken again; a task
        waiting to receive or send carries on with the new socket.  Datagrams
        still queued on the old socket are lost.  Returns the new address.
        """
        if self._closed:
            raise trio.ClosedResourceError("UDP transport is closed")
        old = self._sock
        host = old.getsockname()[0]
        self._sock = _bind_socket(
            host, port, dual_stack=self._dual_stack, receive_buffer_size=DEFAULT_RECEIVE_BUFFER_SIZE
        )
        self._addr_cache.clear()
        if self._kernel:  # the filter stayed with the old socket
            self._kernel_keys = frozenset()
            self._kernel_stale = True
            self._build_kernel_filter(trio.current_time())
        new_host, new_port = self._sock.getsockname()[:2]
        self._local = (Address("udp", new_host, new_port),)
        trio.lowlevel.notify_closing(old)  # a waiting task moves to the new socket
        old.close()
        return self._local[0]

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            # Wakes a task blocked in receive()/send() with ClosedResourceError.
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()
        await trio.lowlevel.checkpoint()

    def stats(self) -> dict[str, int]:
        """The counters of :class:`~qdht.transport.DatagramTransport`, and of the
        kernel filter: ``kernel_filter_sources`` (sources it names now),
        ``kernel_filter_builds`` (programs attached) and, on Linux,
        ``datagrams_dropped_in_kernel`` (the socket's drop counter: datagrams
        the filter dropped and those that found the receive buffer full)."""
        stats = {
            "datagrams_sent": self._sent,
            "bytes_sent": self._bytes_sent,
            "datagrams_received": self._received,
            "bytes_received": self._bytes_received,
            "kernel_filter_sources": len(self._kernel_keys),
            "kernel_filter_builds": self._kernel_builds,
            **self._drops.as_stats(),
        }
        if sys.platform == "linux" and not self._closed:
            try:
                info = self._sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, 64)
            except OSError:
                pass
            else:
                if len(info) > 4 * _SK_MEMINFO_DROPS:
                    (drops,) = struct.unpack_from("=I", info, 4 * _SK_MEMINFO_DROPS)
                    stats["datagrams_dropped_in_kernel"] = drops
        return stats

    def set_source_filter(
        self,
        muted: Mapping[Any, float],
        keep: bytes,
        blocked: Mapping[Any, float] | None = None,
    ) -> None:
        """Drop datagrams from muted and blocked sources as they are read, before
        anything parses them.

        ``muted`` and ``blocked`` (read live, never changed here) map a source
        to when its mute or block ends: in ``muted`` an IP address string or an
        IPv4 ``(host, port)`` pair, as the session layer keys its rate limits;
        in ``blocked`` an IPv4 ``(host, port)`` pair.  A datagram from a blocked
        source is dropped (``source-blocked``); one from a muted source is
        dropped (``source-muted``) unless its first byte is in ``keep``.  What
        this misses (IPv6 and IPv4-mapped senders) the session layer still
        drops itself, only later.
        """
        self._muted = muted
        self._keep = keep
        self._blocked = {} if blocked is None else blocked
        if self._kernel:
            self._kernel_stale = True  # new tables, maybe new keep bytes: attach anew
            try:
                now = trio.current_time()
            except RuntimeError:  # outside Trio: at the first read
                self._kernel_due = -math.inf
            else:
                self._build_kernel_filter(now)

    # -- the kernel filter (04 §5.5) ----------------------------------------

    def _kernel_missed(self, key: tuple[bool, Hashable], now: float) -> None:
        """A datagram from ``key``'s source was dropped here, not in the kernel:
        count it, and rebuild the kernel filter soon."""
        weights = self._kernel_weights
        if key in weights or len(weights) < _MAX_WEIGHTS:
            weights[key] = weights.get(key, 0) + 1
        due = now if now >= self._kernel_next else self._kernel_next
        if due < self._kernel_due:
            self._kernel_due = due

    def _build_kernel_filter(self, now: float) -> None:
        """Attach a filter naming the live muted and blocked sources (the busiest
        :data:`MAX_FILTER_SOURCES` by the datagrams dropped here), or detach it."""
        live: list[tuple[int, bool, float, tuple[bool, Hashable], SourceRule]] = []
        weights, installed = self._kernel_weights, self._kernel_keys
        for is_blocked, table in ((True, self._blocked), (False, self._muted)):
            for source, until in table.items():
                if until > now:
                    rule = _rule(source, is_blocked)
                    if rule is not None:
                        key = (is_blocked, source)
                        live.append((weights.get(key, 0), key in installed, until, key, rule))
        if len(live) > MAX_FILTER_SOURCES:
            live.sort(key=lambda c: (c[0], c[1], c[2]), reverse=True)
            del live[MAX_FILTER_SOURCES:]
        keys = frozenset(c[3] for c in live)
        if keys != installed or self._kernel_stale:
            if not self._attach_kernel_filter([c[4] for c in live]):
                return
            self._kernel_keys = keys
            self._kernel_stale = False
        # Halve the counts, so that a source that stopped gives way in time.
        self._kernel_weights = {
            k: n // 2 for k, n in weights.items() if n > 1 and (k[1] in self._table(k[0]))
        }
        self._kernel_next = now + KERNEL_FILTER_INTERVAL
        # Next rebuild: when the first of its rules ends (no timer otherwise: an
        # idle node does not wake for it).
        self._kernel_due = min(c[2] for c in live) if live else math.inf

    def _table(self, is_blocked: bool) -> Mapping[Any, float]:
        return self._blocked if is_blocked else self._muted

    def _attach_kernel_filter(self, rules: list[SourceRule]) -> bool:
        """Attach the program for ``rules`` (none: detach); False if the
        system refuses (the filter is then off, and Python drops everything)."""
        sock = self._sock
        try:
            if rules:
                program = source_filter_program(
                    rules, self._keep, ipv6_socket=self._family == socket.AF_INET6
                )
                code = array.array("B", pack_bpf_program(program))
                fprog = struct.pack("@HP", len(program), code.buffer_info()[0])
                sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
            else:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, _SO_DETACH_FILTER, 0)
                except OSError as exc:
                    if exc.errno != errno.ENOENT:  # ENOENT: none was attached
                        raise
        except OSError as exc:
            if self._closed:
                return False
            logger.warning("kernel source filter off: %s", exc)
            self._kernel = False
            self._kernel_due = math.inf
            self._kernel_keys = frozenset()
            return False
        self._kernel_builds += 1
        return True

    # -- internals --------------------------------------------------------

    def _parse_sender(self, sockaddr: Any) -> Address | None:
        host, port = sockaddr[0], sockaddr[1]
        try:
            ip = ipaddress.ip_address(host)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                host = str(ip.ipv4_mapped)
            addr = Address("udp", host, port)
        except (ValueError, ContactError):
            self._drops.drop("bad-source")
            return None
        if len(self._addr_cache) >= ADDRESS_CACHE_SIZE:
            self._addr_cache.clear()
        self._addr_cache[sockaddr] = addr
        return addr

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<UdpTransport {self._local[0]} {state}>"


def _rule(source: Any, blocked: bool) -> SourceRule | None:
    """The kernel rule for a key of the muted or blocked table (None: none fits)."""
    try:
        if type(source) is str:
            return SourceRule(source, None, blocked)
        if type(source) is tuple and len(source) >= 2 and type(source[0]) is str:
            return SourceRule(source[0], source[1], blocked)
    except ConfigError:
        pass
    return None


def _bind_socket(
    host: str, port: int, *, dual_stack: bool, receive_buffer_size: int | None
) -> socket.socket:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"host must be an IPv4 or IPv6 literal, got {host!r}") from None
    if type(port) is not int or not 0 <= port <= 65535:
        raise ConfigError(f"port must be an integer in 0..65535, got {port!r}")
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    if dual_stack and family != socket.AF_INET6:
        raise ConfigError(f"dual_stack needs an IPv6 host such as '::', got {host!r}")
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM)
    except OSError as exc:
        raise TransportError(f"cannot create a UDP socket for {host!r}: {exc}") from exc
    try:
        sock.setblocking(False)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
        if receive_buffer_size is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_size)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise TransportError(f"cannot bind UDP {host!r} port {port}: {exc}") from exc
    return sock


@asynccontextmanager
async def open_udp_transport(
    host: str = "0.0.0.0",
    port: int = 6881,
    *,
    max_datagram_size: int = MAX_UDP_PAYLOAD_V4,
    dual_stack: bool = False,
    receive_buffer_size: int | None = DEFAULT_RECEIVE_BUFFER_SIZE,
    kernel_filter: bool = True,
) -> AsyncIterator[UdpTransport]:
    """Bind a UDP socket on ``host``/``port`` (port 0: an ephemeral port).

    ``host`` is an IP literal; ``"::"`` binds IPv6 only unless ``dual_stack`` is
    true, in which case IPv4 peers appear as IPv4 addresses.  The socket is
    closed when the block exits.  With ``kernel_filter`` (the default; Linux
    only) the sources :meth:`UdpTransport.set_source_filter` names are dropped
    by a socket filter in the kernel, at most :data:`MAX_FILTER_SOURCES` of them
    at a time, the rest as they are read (``04-handshake.md`` §5.5).
    """
    limit = MAX_UDP_PAYLOAD_V6 if ":" in host else MAX_UDP_PAYLOAD_V4
    if type(max_datagram_size) is not int or not 1 <= max_datagram_size <= limit:
        raise ConfigError(f"max_datagram_size must be in 1..{limit}, got {max_datagram_size!r}")
    if receive_buffer_size is not None and receive_buffer_size < 1:
        raise ConfigError(f"receive_buffer_size must be positive, got {receive_buffer_size!r}")
    sock = _bind_socket(host, port, dual_stack=dual_stack, receive_buffer_size=receive_buffer_size)
    transport = UdpTransport(
        sock,
        max_datagram_size=max_datagram_size,
        dual_stack=dual_stack,
        kernel_filter=kernel_filter,
    )
    try:
        yield transport
    finally:
        with trio.CancelScope(shield=True):
            await transport.aclose()
