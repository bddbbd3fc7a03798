"""Several transports as one: a node that listens on UDP *and* WebSocket.

Sends go to the transport named by ``addr.transport``; receives come from all
of them through one bounded channel fed by a reader task per transport; the
local addresses are all of theirs, so a node advertises every way to reach it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final

import trio

from qdht.errors import ConfigError, TransportError
from qdht.transport._base import DatagramTransport
from qdht.wire import Address

__all__ = ["MultiTransport"]

#: Received datagrams buffered between the reader tasks and receive().
DEFAULT_RECEIVE_QUEUE: Final = 256


class MultiTransport:
    """Several :class:`DatagramTransport` s as one; use as ``async with MultiTransport([...])``.

    One transport per address kind (``"udp"``, ``"ws"``).  Leaving the block
    stops the reader tasks and closes the wrapped transports.
    """

    def __init__(
        self, transports: Sequence[DatagramTransport], *, receive_queue: int = DEFAULT_RECEIVE_QUEUE
    ) -> None:
        if not transports:
            raise ConfigError("transports must name at least one transport")
        if receive_queue < 1:
            raise ConfigError(f"receive_queue must be positive, got {receive_queue!r}")
        self._by_kind: dict[str, DatagramTransport] = {}
        for transport in transports:
            kinds = {a.transport for a in transport.local_addresses}
            if not kinds:
                raise ConfigError(f"{transport!r} has no local address")
            for kind in kinds:
                if kind in self._by_kind:
                    raise ConfigError(f"two transports for {kind!r} addresses")
                self._by_kind[kind] = transport
        self.transports = tuple(transports)
        self._local = tuple(a for t in transports for a in t.local_addresses)
        self._send_channel, self._receive_channel = trio.open_memory_channel[tuple[bytes, Address]](
            receive_queue
        )
        self._nursery_manager = trio.open_nursery()
        self._max = min(t.max_datagram_size for t in transports)
        self._closed = False

    async def __aenter__(self) -> MultiTransport:
        nursery = await self._nursery_manager.__aenter__()
        for transport in self.transports:
            nursery.start_soon(self._read, transport, name=f"MultiTransport reader {transport!r}")
        self._nursery = nursery
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        # The body's own exception propagates unwrapped (not in an ExceptionGroup):
        # the readers are stopped and the nursery closed as if the body had succeeded.
        self._nursery.cancel_scope.cancel()
        try:
            await self._nursery_manager.__aexit__(None, None, None)
        finally:
            with trio.CancelScope(shield=True):
                await self.aclose()
        return None

    async def _read(self, transport: DatagramTransport) -> None:
        send = self._send_channel.send
        try:
            while True:
                item = await transport.receive()
                await send(item)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return

    @property
    def local_addresses(self) -> tuple[Address, ...]:
        return self._local

    @property
    def max_datagram_size(self) -> int:
        return self._max

    def transport_for(self, addr: Address) -> DatagramTransport | None:
        """The wrapped transport that sends to ``addr``, if any."""
        return self._by_kind.get(addr.transport)

    def set_source_filter(
        self, muted: Mapping[Any, float], keep: bytes, blocked: Mapping[Any, float] | None = None
    ) -> None:
        """Pass the session layer's muted and blocked sources to every wrapped
        transport that can drop them as it reads (``UdpTransport.set_source_filter``)."""
        for transport in self.transports:
            source_filter = getattr(transport, "set_source_filter", None)
            if source_filter is not None:
                source_filter(muted, keep, blocked)

    async def send(self, data: bytes, addr: Address) -> None:
        if len(data) > self._max:
            await trio.lowlevel.checkpoint()
            raise TransportError(
                f"data is {len(data)} bytes; this multi-transport sends at most "
                f"{self._max} bytes per datagram (max_datagram_size)"
            )
        transport = self._by_kind.get(addr.transport)
        if transport is None:
            await trio.lowlevel.checkpoint()
            raise ConfigError(
                f"addr {addr} uses transport {addr.transport!r}; this node has "
                f"{sorted(self._by_kind)}"
            )
        await transport.send(data, addr)

    async def receive(self) -> tuple[bytes, Address]:
        try:
            return await self._receive_channel.receive()
        except trio.EndOfChannel:
            raise trio.ClosedResourceError("multi-transport is closed") from None

    def receive_queued(self, max_count: int = 64) -> list[tuple[bytes, Address]]:
        """Up to ``max_count`` datagrams already received, without waiting."""
        if type(max_count) is not int or max_count < 1:
            raise ConfigError(f"max_count must be a positive integer, got {max_count!r}")
        batch: list[tuple[bytes, Address]] = []
        while len(batch) < max_count:
            try:
                batch.append(self._receive_channel.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        return batch

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._send_channel.aclose()
            await self._receive_channel.aclose()
            for transport in self.transports:
                await transport.aclose()
        await trio.lowlevel.checkpoint()

    def stats(self) -> dict[str, int]:
        """The wrapped transports' counters, summed."""
        total: dict[str, int] = {}
        for transport in self.transports:
            for key, value in transport.stats().items():
                total[key] = total.get(key, 0) + value
        return total
