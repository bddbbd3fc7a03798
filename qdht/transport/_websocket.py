"""The WebSocket transport: qdht datagrams as binary WebSocket messages.

For networks that block UDP.  Each binary message on path ``/qdht/v1`` is one
datagram; the session layer above is the same as over UDP.  A transport both
serves (inbound connections) and dials (outbound ones):

* sending to a ``ws`` address with no open connection dials it (bounded by
  ``connect_timeout``) and caches the connection; at most
  ``max_connections`` are kept (the least recently used is closed first) and
  one idle for ``idle_timeout`` seconds is closed;
* datagrams arriving on an inbound connection come from the peer's TCP
  ``(ip, port)`` as a ``ws`` address, and replies to that address go back on
  the same connection; datagrams on an outbound connection come from the
  address dialled;
* text messages and messages over ``max_datagram_size`` are dropped and
  counted; a peer that disconnects is forgotten; failures to dial are counted
  (and not retried for ``retry_after`` seconds), never raised.

Received datagrams go through one bounded queue; when it is full, readers
wait, which backpressures the peers over TCP.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    WebSocketServer,
    wrap_client_stream,
)

from qdht.errors import ConfigError, TransportError
from qdht.transport._base import DropCounter, check_payload
from qdht.wire import Address

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "WEBSOCKET_PATH",
    "WebSocketTransport",
    "open_websocket_transport",
]

logger = logging.getLogger(__name__)

#: The HTTP path qdht serves and dials.
WEBSOCKET_PATH: Final = "/qdht/v1"
#: Open connections kept (inbound and outbound together).
DEFAULT_MAX_CONNECTIONS: Final = 256
#: Seconds without traffic before a connection is closed.
DEFAULT_IDLE_TIMEOUT: Final = 300.0
#: Seconds a dial (TCP + WebSocket handshake) may take.
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
#: Seconds before an address that failed to connect is dialled again.
DEFAULT_RETRY_AFTER: Final = 5.0
#: Datagrams buffered between the connection readers and receive().
DEFAULT_RECEIVE_QUEUE: Final = 256
#: Most addresses remembered as recently unreachable.
MAX_FAILED_DIALS: Final = 4096
#: Messages trio-websocket buffers per connection before its reader waits.
_WS_MESSAGE_QUEUE: Final = 16
#: Bytes read from the TCP stream at a time.
_WS_RECEIVE_BUFFER: Final = 65536
#: Seconds allowed for closing handshakes when the transport closes.
_CLOSE_TIMEOUT: Final = 2.0


class _Link:
    """One open WebSocket connection to or from a peer address."""

    __slots__ = ("addr", "conn", "last_used", "outbound")

    def __init__(self, addr: Address, conn: WebSocketConnection, *, outbound: bool) -> None:
        self.addr = addr
        self.conn = conn
        self.outbound = outbound
        self.last_used = trio.current_time()


def _peer_address(host: object, port: int) -> Address:
    ip = ipaddress.ip_address(str(host))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return Address("ws", ip.compressed, port)


class WebSocketTransport:
    """Datagrams over WebSocket connections; see :class:`~qdht.transport.DatagramTransport`."""

    def __init__(
        self,
        nursery: trio.Nursery,
        local: tuple[Address, ...],
        *,
        max_datagram_size: int,
        max_connections: int,
        idle_timeout: float,
        connect_timeout: float,
        retry_after: float,
        receive_queue: int,
    ) -> None:
        self._nursery = nursery
        self._local = local
        self._max = max_datagram_size
        self._max_connections = max_connections
        self._idle_timeout = idle_timeout
        self._connect_timeout = connect_timeout
        self._retry_after = retry_after
        self._links: OrderedDict[Address, _Link] = OrderedDict()
        self._dialing: dict[Address, trio.Event] = {}
        self._failed: OrderedDict[Address, float] = OrderedDict()
        self._send_channel, self._receive_channel = trio.open_memory_channel[tuple[bytes, Address]](
            receive_queue
        )
        self._closed = False
        self._drops = DropCounter()
        self._sent = self._bytes_sent = self._received = self._bytes_received = 0
        self._opened_in = self._opened_out = self._evicted = self._idle_closed = 0

    # -- DatagramTransport ------------------------------------------------

    @property
    def local_addresses(self) -> tuple[Address, ...]:
        return self._local

    @property
    def max_datagram_size(self) -> int:
        return self._max

    @property
    def connections(self) -> tuple[Address, ...]:
        """Peers with an open connection, least recently used first."""
        return tuple(self._links)

    async def send(self, data: bytes, addr: Address) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("WebSocket transport is closed")
        if len(data) > self._max or addr.transport != "ws":
            check_payload(data, addr, self._max, "ws", "WebSocket transport")
        link = self._links.get(addr)
        if link is None:
            link = await self._dial(addr)
            if link is None:
                return
        else:
            self._links.move_to_end(addr)
        try:
            await link.conn.send_message(bytes(data))
        except ConnectionClosed:
            self._forget(link)
            self._drops.drop("connection-closed")
            return
        link.last_used = trio.current_time()
        self._sent += 1
        self._bytes_sent += len(data)

    async def receive(self) -> tuple[bytes, Address]:
        try:
            item = await self._receive_channel.receive()
        except trio.EndOfChannel:
            raise trio.ClosedResourceError("WebSocket transport is closed") from None
        self._received += 1
        self._bytes_received += len(item[0])
        return item

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        await self._receive_channel.aclose()
        await self._send_channel.aclose()
        links = list(self._links.values())
        self._links.clear()
        with trio.move_on_after(_CLOSE_TIMEOUT) as scope:
            scope.shield = True
            async with trio.open_nursery() as nursery:
                for link in links:
                    nursery.start_soon(link.conn.aclose)
        self._nursery.cancel_scope.cancel()

    def stats(self) -> dict[str, int]:
        return {
            "datagrams_sent": self._sent,
            "bytes_sent": self._bytes_sent,
            "datagrams_received": self._received,
            "bytes_received": self._bytes_received,
            "connections_open": len(self._links),
            "connections_accepted": self._opened_in,
            "connections_dialled": self._opened_out,
            "connections_evicted": self._evicted,
            "connections_idle_closed": self._idle_closed,
            **self._drops.as_stats(),
        }

    # -- connections --------------------------------------------------------

    async def _dial(self, addr: Address) -> _Link | None:
        pending = self._dialing.get(addr)
        if pending is not None:
            await pending.wait()
            link = self._links.get(addr)
            if link is None:
                self._drops.drop("connect-failed")
            return link
        retry_at = self._failed.get(addr)
        if retry_at is not None:
            if trio.current_time() < retry_at:
                await trio.lowlevel.checkpoint()
                self._drops.drop("connect-failed")
                return None
            del self._failed[addr]
        event = self._dialing[addr] = trio.Event()
        link = None
        try:
            with trio.move_on_after(self._connect_timeout):
                link = await self._nursery.start(self._run_outbound, addr)
        except Exception as exc:  # a remote failure of any kind: refused, reset, rejected
            logger.debug("cannot connect to %s: %r", addr, exc)
        finally:
            del self._dialing[addr]
            event.set()
        if link is None:
            self._drops.drop("connect-failed")
            self._failed[addr] = trio.current_time() + self._retry_after
            if len(self._failed) > MAX_FAILED_DIALS:
                self._failed.popitem(last=False)
        return link

    async def _run_outbound(
        self, addr: Address, *, task_status: trio.TaskStatus[_Link] = trio.TASK_STATUS_IGNORED
    ) -> None:
        stream = await trio.open_tcp_stream(addr.host, addr.port)
        started = False
        try:
            async with trio.open_nursery() as conn_nursery:
                conn = await wrap_client_stream(
                    conn_nursery,
                    stream,
                    addr.authority,
                    WEBSOCKET_PATH,
                    message_queue_size=_WS_MESSAGE_QUEUE,
                    max_message_size=2 * self._max,
                    receive_buffer_size=_WS_RECEIVE_BUFFER,
                )
                link = self._register(addr, conn, outbound=True)
                self._opened_out += 1
                task_status.started(link)
                started = True
                await self._pump(link)
                # Let the reader finish the closing handshake, but not forever.
                conn_nursery.cancel_scope.deadline = trio.current_time() + _CLOSE_TIMEOUT
        except Exception as exc:
            if not started:
                raise
            # The peer broke the connection mid-way (protocol error, reset, ...).
            logger.debug("connection to %s failed: %r", addr, exc)
            self._drops.drop("connection-error")
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _handle_request(self, request: WebSocketRequest) -> None:
        try:
            await self._serve_inbound(request)
        except Exception as exc:  # whatever the peer did, it must not stop the server
            logger.debug("inbound WebSocket connection failed: %r", exc)
            self._drops.drop("connection-error")

    async def _serve_inbound(self, request: WebSocketRequest) -> None:
        if request.path != WEBSOCKET_PATH:
            self._drops.drop("bad-path")
            await request.reject(404)
            return
        if self._closed:
            await request.reject(503)
            return
        conn = await request.accept()
        remote = conn.remote
        if isinstance(remote, str):  # not a socket: cannot name the peer
            self._drops.drop("bad-source")
            return
        addr = _peer_address(remote.address, remote.port)
        link = self._register(addr, conn, outbound=False)
        self._opened_in += 1
        await self._pump(link)

    def _register(self, addr: Address, conn: WebSocketConnection, *, outbound: bool) -> _Link:
        old = self._links.pop(addr, None)
        if old is not None:
            self._nursery.start_soon(old.conn.aclose)
        while len(self._links) >= self._max_connections:
            _, evicted = self._links.popitem(last=False)
            self._evicted += 1
            self._nursery.start_soon(evicted.conn.aclose)
        link = _Link(addr, conn, outbound=outbound)
        self._links[addr] = link
        return link

    def _forget(self, link: _Link) -> None:
        if self._links.get(link.addr) is link:
            del self._links[link.addr]

    async def _pump(self, link: _Link) -> None:
        """Move one connection's messages into the receive queue until it closes."""
        conn, addr, limit = link.conn, link.addr, self._max
        send = self._send_channel.send
        try:
            while True:
                message = await conn.get_message()
                if type(message) is not bytes:
                    self._drops.drop("text-message")
                    continue
                if len(message) > limit:
                    self._drops.drop("oversize")
                    continue
                link.last_used = trio.current_time()
                await send((message, addr))
        except (ConnectionClosed, trio.ClosedResourceError, trio.BrokenResourceError):
            pass
        finally:
            self._forget(link)

    async def _expire_idle(self) -> None:
        """Close connections idle for longer than ``idle_timeout``."""
        while True:
            await trio.sleep(max(self._idle_timeout / 4, 0.01))
            cutoff = trio.current_time() - self._idle_timeout
            for link in [lk for lk in self._links.values() if lk.last_used < cutoff]:
                self._forget(link)
                self._idle_closed += 1
                self._nursery.start_soon(link.conn.aclose)


@asynccontextmanager
async def open_websocket_transport(
    host: str,
    port: int,
    *,
    max_datagram_size: int = 65507,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    retry_after: float = DEFAULT_RETRY_AFTER,
    receive_queue: int = DEFAULT_RECEIVE_QUEUE,
) -> AsyncIterator[WebSocketTransport]:
    """Serve qdht over WebSocket on ``host``/``port`` (port 0: ephemeral) and dial peers.

    ``host`` is an IP literal.  Leaving the block closes every connection and
    the listener.
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"host must be an IPv4 or IPv6 literal, got {host!r}") from None
    if type(port) is not int or not 0 <= port <= 65535:
        raise ConfigError(f"port must be an integer in 0..65535, got {port!r}")
    if type(max_datagram_size) is not int or not 1 <= max_datagram_size <= 1 << 20:
        raise ConfigError(f"max_datagram_size must be in 1..{1 << 20}, got {max_datagram_size!r}")
    if max_connections < 1:
        raise ConfigError(f"max_connections must be positive, got {max_connections!r}")
    if receive_queue < 1:
        raise ConfigError(f"receive_queue must be positive, got {receive_queue!r}")
    for name, value in (("idle_timeout", idle_timeout), ("connect_timeout", connect_timeout)):
        if not value > 0:
            raise ConfigError(f"{name} must be positive seconds, got {value!r}")
    if not retry_after >= 0:
        raise ConfigError(f"retry_after must be >= 0 seconds, got {retry_after!r}")
    try:
        listeners = await trio.open_tcp_listeners(port, host=ip.compressed)
    except OSError as exc:
        raise TransportError(f"cannot listen for WebSocket on {host!r} port {port}: {exc}") from exc
    bound_port = listeners[0].socket.getsockname()[1]
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        transport = WebSocketTransport(
            nursery,
            (Address("ws", ip.compressed, bound_port),),
            max_datagram_size=max_datagram_size,
            max_connections=max_connections,
            idle_timeout=idle_timeout,
            connect_timeout=connect_timeout,
            retry_after=retry_after,
            receive_queue=receive_queue,
        )
        server = WebSocketServer(
            transport._handle_request,
            listeners,
            handler_nursery=nursery,
            message_queue_size=_WS_MESSAGE_QUEUE,
            max_message_size=2 * max_datagram_size,
            receive_buffer_size=_WS_RECEIVE_BUFFER,
            connect_timeout=connect_timeout,
        )
        await nursery.start(server.run)
        nursery.start_soon(transport._expire_idle)
        try:
            yield transport
        except BaseException as exc:
            # Re-raised below, outside the nursery, so callers see it unwrapped.
            body_error = exc
        finally:
            with trio.CancelScope(shield=True):
                await transport.aclose()
            nursery.cancel_scope.cancel()
    if body_error is not None:
        raise body_error
