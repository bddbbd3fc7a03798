"""The Trio driver: runs a :class:`SessionEndpoint` over any datagram transport.

Thin by design (STYLE: trio-websocket over wsproto): one reader task feeds
datagrams to the core, one timer task calls ``handle_timer``, and every
datagram the core produces is written to the transport.  Nothing the network
sends raises out of here; it is counted in :meth:`SessionHost.stats`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol

import trio

from qdht.errors import TransportError
from qdht.identity import Identity
from qdht.session._config import SessionConfig
from qdht.session._endpoint import SessionEndpoint
from qdht.session._events import Event, MessageReceived

__all__ = ["DatagramTransportLike", "SessionHost", "open_session_host"]

logger = logging.getLogger(__name__)

#: Most datagrams the reader takes from the transport between two flushes.
READ_BATCH: Final = 64


class DatagramTransportLike(Protocol):
    """What the driver needs of a transport (``qdht.transport.DatagramTransport``)."""

    async def send(self, data: bytes, addr: Any) -> None: ...

    async def receive(self) -> tuple[bytes, Any]: ...


class SessionHost:
    """Sessions of one identity over one transport; create with :func:`open_session_host`."""

    def __init__(
        self, transport: DatagramTransportLike, endpoint: SessionEndpoint, inbound_buffer: int
    ) -> None:
        self.transport = transport
        self.endpoint = endpoint
        self._inbound_send, self._inbound = trio.open_memory_channel[MessageReceived](
            inbound_buffer
        )
        self._events_send, self.events = trio.open_memory_channel[Event](inbound_buffer)
        self._wake = trio.Event()
        self._timer_at = -math.inf  # when the timer task sleeps until (-inf: not yet asleep)
        self._writing = False
        self.driver_drops: dict[str, int] = {}
        # Batch entry points of transports that have them (UdpTransport does).
        self._send_batch = getattr(transport, "send_batch", None)
        self._receive_batch = getattr(transport, "receive_batch", None)

    def _drop(self, reason: str) -> None:
        self.driver_drops[reason] = self.driver_drops.get(reason, 0) + 1

    async def send(
        self,
        node_id: bytes,
        payload: bytes,
        *,
        addr: Hashable | None = None,
        responder_static: bytes | None = None,
        idempotent: bool = False,
    ) -> None:
        """Send ``payload`` to the verified node ``node_id`` (handshaking first if needed)."""
        self.endpoint.send_message(
            node_id,
            payload,
            trio.current_time(),
            addr=addr,
            responder_static=responder_static,
            idempotent=idempotent,
        )
        await self._flush()

    async def connect(
        self, node_id: bytes, addr: Hashable, *, responder_static: bytes | None = None
    ) -> None:
        """Start a handshake with ``node_id`` at ``addr`` (no-op if a session exists)."""
        self.endpoint.connect(addr, node_id, trio.current_time(), responder_static=responder_static)
        await self._flush()

    async def receive(self) -> MessageReceived:
        """The next application message from a verified (or, if ``early``, claimed) node."""
        return await self._inbound.receive()

    def stats(self) -> dict[str, Any]:
        stats = self.endpoint.stats()
        stats["driver_drops"] = dict(self.driver_drops)
        return stats

    async def _flush(self) -> None:
        endpoint = self.endpoint
        while (event := endpoint.next_event()) is not None:
            channel: Any = (
                self._inbound_send if type(event) is MessageReceived else self._events_send
            )
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                self._drop("inbound-full" if type(event) is MessageReceived else "events-full")
        if not self._writing:
            # One writer at a time keeps datagrams in order; others leave theirs
            # in the endpoint's outbox for the active writer to drain.
            self._writing = True
            send_batch = self._send_batch
            try:
                while batch := endpoint.datagrams_to_send(trio.current_time()):
                    if send_batch is not None and len(batch) > 1:
                        # One checkpoint for the lot (a 64 KiB message is ~60 datagrams).
                        try:
                            await send_batch(batch)
                        except (TransportError, OSError) as exc:
                            self._drop("send-error")
                            logger.debug("batch send failed: %s", exc)
                        continue
                    for data, addr in batch:
                        try:
                            await self.transport.send(data, addr)
                        except (TransportError, OSError) as exc:
                            self._drop("send-error")
                            logger.debug("send to %r failed: %s", addr, exc)
            finally:
                self._writing = False
        if endpoint.new_deadline < self._timer_at:
            self._wake.set()

    async def _receive_one(self, max_count: int) -> list[tuple[bytes, Any]]:
        """``receive_batch`` for transports without one."""
        return [await self.transport.receive()]

    async def _reader(self) -> None:
        endpoint = self.endpoint
        receive_batch = self._receive_batch or self._receive_one
        while True:
            # Datagrams already queued in the socket are processed together and
            # their events and replies flushed once: one checkpoint per batch.
            batch = await receive_batch(READ_BATCH)
            now = trio.current_time()
            for data, addr in batch:
                endpoint.receive_datagram(data, addr, now)
            if endpoint.has_output() or endpoint.new_deadline < self._timer_at:
                await self._flush()

    async def _timer(self) -> None:
        endpoint = self.endpoint
        while True:
            deadline = endpoint.get_timer()
            self._wake = trio.Event()
            self._timer_at = math.inf if deadline is None else deadline
            with trio.move_on_at(self._timer_at):
                await self._wake.wait()
            if deadline is not None and trio.current_time() >= deadline:
                endpoint.handle_timer(trio.current_time())
                await self._flush()


@asynccontextmanager
async def open_session_host(
    transport: DatagramTransportLike,
    identity: Identity,
    config: SessionConfig | None = None,
    *,
    rng: Callable[[int], bytes] = os.urandom,
    inbound_buffer: int = 1024,
) -> AsyncIterator[SessionHost]:
    """Run sessions for ``identity`` over ``transport`` until the block exits."""
    host = SessionHost(transport, SessionEndpoint(identity, config, rng=rng), inbound_buffer)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(host._reader)
        nursery.start_soon(host._timer)
        try:
            yield host
        finally:
            nursery.cancel_scope.cancel()
