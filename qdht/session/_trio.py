"""The Trio driver: runs a :class:`SessionEndpoint` over any datagram transport.

Thin by design (STYLE: trio-websocket over wsproto): one reader task feeds
datagrams to the core, one timer task calls ``handle_timer``, and every
datagram the core produces is written to the transport.  :class:`SessionDriver`
is the only such loop; the node (``qdht.node``) and :class:`SessionHost` (a
stream of messages, for tools and tests) both run on it.  Nothing the network
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

from qdht.errors import ConfigError, TransportError
from qdht.identity import Identity
from qdht.session._config import SessionConfig
from qdht.session._endpoint import SessionEndpoint
from qdht.session._events import Event, MessageReceived

__all__ = [
    "DatagramTransportLike",
    "SessionDriver",
    "SessionHost",
    "open_session_host",
    "wait_out_stall",
]

logger = logging.getLogger(__name__)

#: Most datagrams the reader takes from the transport between two flushes.
READ_BATCH: Final = 64
#: First bytes of a datagram that may be a transport packet (a CBOR map of 4).
TRANSPORT_PACKET_FIRST_BYTES: Final = b"\xa4"
#: A timer task that wakes this much (seconds) after its deadline ran in a
#: process that could not run: the machine was busy, not the peers silent.
STALL_SLACK: Final = 0.05
#: Longest grace (seconds) a stalled timer gives the peers before it judges
#: their requests (the largest per-peer timeout, ``RoutingConfig.max_timeout``).
MAX_STALL_GRACE: Final = 5.0
#: Graces in a row when the process stalls again during one (a loop that never
#: runs long enough still judges its timers in the end).
MAX_STALL_GRACES: Final = 8


async def wait_out_stall(deadline: float, receive_queued: Callable[[], object]) -> float:
    """Before a timer judges requests due at ``deadline``: if the process stalled, let
    the peers' answers in.  Returns the time to handle the timer at.

    ``deadline`` is when the timer task was due to wake: the later of its
    deadline and the moment it went to sleep (work found overdue on purpose,
    such as a refresh a client deferred while idle, is no stall).

    On a busy machine the event loop stops for a while; every deadline that
    passes meanwhile fires the moment it runs again, before the reader task
    has read the answers that arrived during the stall, and before peers that
    stalled with it (nodes in one process) could answer at all.  Judged then,
    each of those requests is a timeout, a routing-table miss and a
    retransmission to another peer: more load, more stalls, until tables
    empty and operations fail.  A timer woken more than ``STALL_SLACK`` late
    therefore first reads what is queued (``receive_queued``), then waits as
    long again as it was late (at most ``MAX_STALL_GRACE``), and again if it
    stalled during that grace (at most ``MAX_STALL_GRACES`` times): a request
    keeps the time it was promised, counted while this process could run.
    """
    now = trio.current_time()
    late = now - deadline
    for _ in range(MAX_STALL_GRACES):
        if late <= STALL_SLACK:
            break
        receive_queued()
        grace_end = now + min(late, MAX_STALL_GRACE)
        await trio.sleep_until(grace_end)
        # Stalled again during the grace: that time did not count either.
        now = trio.current_time()
        late = now - grace_end
    return now


class DatagramTransportLike(Protocol):
    """What the driver needs of a transport (``qdht.transport.DatagramTransport``)."""

    async def send(self, data: bytes, addr: Any) -> None: ...

    async def receive(self) -> tuple[bytes, Any]: ...


class SessionDriver:
    """The one Trio driver of a :class:`SessionEndpoint` (used by the node and by
    :class:`SessionHost`).

    A reader task feeds datagrams to the endpoint in batches, a timer task
    runs its timer, and :meth:`flush` (after every batch, timer run or local
    call) first calls ``step(now)`` — the owner's chance to take the
    endpoint's events and queue replies — then writes every datagram out,
    one writer at a time, in one batch where the transport can
    (``send_batch``).  Nothing the network sends raises out of here; failed
    sends are counted in :attr:`drops`.
    """

    def __init__(
        self,
        transport: DatagramTransportLike,
        endpoint: SessionEndpoint,
        step: Callable[[float], None],
    ) -> None:
        self.transport = transport
        self.endpoint = endpoint
        self._step = step
        self._wake = trio.Event()
        self._timer_at = -math.inf  # when the timer task sleeps until (-inf: not yet asleep)
        self._writing = False
        #: Datagrams the transport could not send, by reason.
        self.drops: dict[str, int] = {}
        # Batch entry points of transports that have them (UdpTransport does).
        self._send_batch = getattr(transport, "send_batch", None)
        self._receive_batch = getattr(transport, "receive_batch", None)
        # Transports that can drop a muted source's datagrams as they read them
        # (UdpTransport does): transport packets (first byte 0xa4) still reach
        # the endpoint, which passes those of established sessions; a refused
        # peer's address loses even those until its refusal ends (04 §5.5).
        source_filter = getattr(transport, "set_source_filter", None)
        if source_filter is not None:
            source_filter(
                endpoint.muted_sources, TRANSPORT_PACKET_FIRST_BYTES, endpoint.blocked_sources
            )

    def _drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    async def flush(self) -> None:
        """Let the owner take the endpoint's events, then send every datagram queued."""
        endpoint = self.endpoint
        self._step(trio.current_time())
        if not self._writing:
            # One writer at a time keeps datagrams in order; others leave theirs
            # in the endpoint's outbox for the active writer to drain.
            self._writing = True
            try:
                while batch := endpoint.datagrams_to_send(trio.current_time()):
                    await self._write(batch)
            finally:
                self._writing = False
        if endpoint.new_deadline < self._timer_at:
            self._wake.set()

    async def _write(self, batch: list[tuple[bytes, Any]]) -> None:
        send_batch = self._send_batch
        try:
            if send_batch is not None and len(batch) > 1:
                # One checkpoint for the lot (a 64 KiB message is ~60 datagrams).
                await send_batch(batch)
                return
            for data, addr in batch:
                await self.transport.send(data, addr)
        except (TransportError, OSError, ConfigError) as exc:
            # ConfigError: an address this transport cannot reach (another kind).
            self._drop("send-error")
            logger.debug("send failed: %s", exc)
        except trio.ClosedResourceError:
            self._drop("send-after-close")

    async def _receive_one(self, max_count: int) -> list[tuple[bytes, Any]]:
        """``receive_batch`` for transports without one."""
        return [await self.transport.receive()]

    def receive_queued(self) -> bool:
        """Feed the endpoint what the transport already holds, without waiting, and
        let the owner take its events; False if there was nothing (or the
        transport cannot tell)."""
        take = getattr(self.transport, "receive_queued", None)
        if take is None:
            return False
        batch = take(READ_BATCH)
        if not batch:
            return False
        endpoint = self.endpoint
        now = trio.current_time()
        for data, addr in batch:
            endpoint.receive_datagram(data, addr, now)
        self._step(now)
        return True

    async def _reader(self) -> None:
        endpoint = self.endpoint
        receive_batch = self._receive_batch or self._receive_one
        while True:
            # Datagrams already queued in the socket are processed together and
            # their events and replies flushed once: one checkpoint per batch, so
            # a flood of cheap-to-drop packets costs its drop path only.
            try:
                batch = await receive_batch(READ_BATCH)
            except trio.ClosedResourceError:
                return
            now = trio.current_time()
            for data, addr in batch:
                endpoint.receive_datagram(data, addr, now)
            if endpoint.has_output() or endpoint.new_deadline < self._timer_at:
                await self.flush()

    async def _timer(self) -> None:
        endpoint = self.endpoint
        while True:
            deadline = endpoint.get_timer()
            asleep_at = trio.current_time()
            self._wake = trio.Event()
            self._timer_at = math.inf if deadline is None else deadline
            with trio.move_on_at(self._timer_at):
                await self._wake.wait()
            if deadline is not None and trio.current_time() >= deadline:
                # Late is measured from when the wake-up was due: a deadline
                # already past when the task went to sleep is no stall.
                now = await wait_out_stall(max(deadline, asleep_at), self.receive_queued)
                endpoint.handle_timer(now)
                await self.flush()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the reader and the timer until cancelled (``await nursery.start(driver.serve)``).

        The two tasks are named after the task that runs this one.
        """
        name = trio.lowlevel.current_task().name
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._reader, name=f"{name} reader")
            nursery.start_soon(self._timer, name=f"{name} timer")
            task_status.started()


class SessionHost:
    """Sessions of one identity over one transport, messages as a stream; create
    with :func:`open_session_host`."""

    def __init__(
        self, transport: DatagramTransportLike, endpoint: SessionEndpoint, inbound_buffer: int
    ) -> None:
        self.transport = transport
        self.endpoint = endpoint
        self.driver = SessionDriver(transport, endpoint, self._step)
        self._inbound_send, self._inbound = trio.open_memory_channel[MessageReceived](
            inbound_buffer
        )
        self._events_send, self.events = trio.open_memory_channel[Event](inbound_buffer)
        self.driver_drops = self.driver.drops

    def _step(self, now: float) -> None:
        endpoint = self.endpoint
        while (event := endpoint.next_event()) is not None:
            channel: Any = (
                self._inbound_send if type(event) is MessageReceived else self._events_send
            )
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                self.driver._drop(
                    "inbound-full" if type(event) is MessageReceived else "events-full"
                )

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
        await self.driver.flush()

    async def connect(
        self, node_id: bytes, addr: Hashable, *, responder_static: bytes | None = None
    ) -> None:
        """Start a handshake with ``node_id`` at ``addr`` (no-op if a session exists)."""
        self.endpoint.connect(addr, node_id, trio.current_time(), responder_static=responder_static)
        await self.driver.flush()

    async def receive(self) -> MessageReceived:
        """The next application message from a verified (or, if ``early``, claimed) node."""
        return await self._inbound.receive()

    def stats(self) -> dict[str, Any]:
        stats = self.endpoint.stats()
        stats["driver_drops"] = dict(self.driver.drops)
        return stats


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
        await nursery.start(host.driver.serve)
        try:
            yield host
        finally:
            nursery.cancel_scope.cancel()
