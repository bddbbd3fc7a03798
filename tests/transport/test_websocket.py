"""The WebSocket transport on loopback: both directions, replies, disconnects, limits."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from trio_websocket import open_websocket

from qdht.errors import ConfigError, TransportError
from qdht.testing import FaultInjector, check_datagram_transport
from qdht.transport import (
    WEBSOCKET_PATH,
    DatagramTransport,
    WebSocketTransport,
    open_websocket_transport,
)
from qdht.wire import Address


def _v6_skip() -> str | None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError as exc:
        return f"cannot bind TCP on ::1: {exc}"
    return None


V6_SKIP = _v6_skip()


async def _settle(done: Callable[[], bool], rounds: int = 500) -> None:
    """Let the loopback kernel and every task make progress until ``done()``."""
    for _ in range(rounds):
        if done():
            return
        await trio.testing.wait_all_tasks_blocked()
    raise AssertionError("the connection state never settled")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@asynccontextmanager
async def _ws_pair(
    host: str = "127.0.0.1", **kwargs: float
) -> AsyncIterator[tuple[WebSocketTransport, WebSocketTransport]]:
    async with (
        open_websocket_transport(host, 0, **kwargs) as a,  # type: ignore[arg-type]
        open_websocket_transport(host, 0, **kwargs) as b,  # type: ignore[arg-type]
    ):
        yield a, b


async def test_websocket_conforms() -> None:
    @asynccontextmanager
    async def pair() -> AsyncIterator[tuple[DatagramTransport, DatagramTransport]]:
        async with _ws_pair() as (a, b):
            yield a, b

    await check_datagram_transport(pair)


@pytest.mark.skipif(V6_SKIP is not None, reason=V6_SKIP or "")
async def test_websocket_ipv6_conforms() -> None:
    @asynccontextmanager
    async def pair() -> AsyncIterator[tuple[DatagramTransport, DatagramTransport]]:
        async with _ws_pair("::1") as (a, b):
            yield a, b

    await check_datagram_transport(pair)


async def test_both_directions_and_reply_on_the_inbound_connection() -> None:
    async with _ws_pair() as (client, server):
        server_addr = server.local_addresses[0]
        await client.send(b"hello", server_addr)
        data, peer = await server.receive()
        assert data == b"hello"
        # The client is known by its connection's TCP source, not by its listener.
        assert peer.transport == "ws"
        assert peer.host == "127.0.0.1"
        assert peer != client.local_addresses[0]
        await server.send(b"reply", peer)
        assert await client.receive() == (b"reply", server_addr)
        # The reply used the inbound connection: the server dialled nobody.
        assert server.stats()["connections_dialled"] == 0
        assert server.stats()["connections_accepted"] == 1
        # The server can also dial the client's advertised address: a second connection.
        await server.send(b"dialled", client.local_addresses[0])
        data, src = await client.receive()
        assert data == b"dialled"
        assert src.port != server_addr.port
        assert server.stats()["connections_dialled"] == 1


async def test_disconnected_peer_is_forgotten() -> None:
    async with open_websocket_transport("127.0.0.1", 0) as server:
        async with open_websocket_transport("127.0.0.1", 0) as client:
            await client.send(b"hi", server.local_addresses[0])
            _, peer = await server.receive()
            assert server.connections == (peer,)
        await _settle(lambda: not server.connections)
        await server.send(b"anyone?", peer)  # dials the dead port: counted, not raised
        assert server.stats()["drop_connect-failed"] == 1


async def test_text_and_oversize_messages_are_dropped() -> None:
    async with open_websocket_transport("127.0.0.1", 0, max_datagram_size=1500) as t:
        port = t.local_addresses[0].port
        async with open_websocket("127.0.0.1", port, WEBSOCKET_PATH, use_ssl=False) as ws:
            await ws.send_message("text is not a datagram")
            await ws.send_message(b"x" * 1501)
            await ws.send_message(b"fine")
            data, _ = await t.receive()
        assert data == b"fine"
        assert t.stats()["drop_text-message"] == 1
        assert t.stats()["drop_oversize"] == 1


async def test_wrong_path_is_rejected() -> None:
    async with open_websocket_transport("127.0.0.1", 0) as t:
        port = t.local_addresses[0].port
        # A raw upgrade request (trio-websocket's own client leaks its socket on rejection).
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(
                b"GET /other HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            response = await stream.receive_some(4096)
        assert response.startswith(b"HTTP/1.1 404")
        assert t.stats()["drop_bad-path"] == 1


async def test_connection_cache_is_bounded() -> None:
    async with (
        open_websocket_transport("127.0.0.1", 0, max_connections=2) as hub,
        open_websocket_transport("127.0.0.1", 0) as p1,
        open_websocket_transport("127.0.0.1", 0) as p2,
        open_websocket_transport("127.0.0.1", 0) as p3,
    ):
        for peer in (p1, p2, p3):
            await hub.send(b"x", peer.local_addresses[0])
            await peer.receive()
        assert hub.connections == (p2.local_addresses[0], p3.local_addresses[0])
        assert hub.stats()["connections_evicted"] == 1


async def test_idle_connections_expire(mock_clock: trio.testing.MockClock) -> None:
    async with (
        open_websocket_transport("127.0.0.1", 0, idle_timeout=60) as a,
        open_websocket_transport("127.0.0.1", 0) as b,
    ):
        await a.send(b"x", b.local_addresses[0])
        await b.receive()
        mock_clock.jump(30)
        await trio.testing.wait_all_tasks_blocked()
        assert len(a.connections) == 1
        mock_clock.jump(60)
        await _settle(lambda: not a.connections)
        assert a.stats()["connections_idle_closed"] == 1
        # A new send just dials again.
        await a.send(b"y", b.local_addresses[0])
        assert (await b.receive())[0] == b"y"


async def test_unreachable_peer_is_counted_and_not_redialled_at_once() -> None:
    async with open_websocket_transport("127.0.0.1", 0) as t:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = Address("ws", "127.0.0.1", s.getsockname()[1])
        await t.send(b"x", dead)
        await t.send(b"x", dead)
        assert t.stats()["drop_connect-failed"] == 2
        assert t.connections == ()


async def test_misuse_raises() -> None:
    async with open_websocket_transport("127.0.0.1", 0, max_datagram_size=2000) as t:
        with pytest.raises(TransportError, match="2000"):
            await t.send(b"x" * 2001, t.local_addresses[0])
        with pytest.raises(ConfigError, match="transport"):
            await t.send(b"x", Address("udp", "127.0.0.1", 9))
    with pytest.raises(ConfigError, match="literal"):
        async with open_websocket_transport("localhost", 0):
            pass
    async with open_websocket_transport("127.0.0.1", 0) as t:
        with pytest.raises(TransportError, match="listen"):
            async with open_websocket_transport("127.0.0.1", t.local_addresses[0].port):
                pass


async def test_body_errors_are_not_wrapped_and_sockets_are_closed() -> None:
    before = _open_fds()

    async def fail_inside() -> None:
        async with _ws_pair() as (a, b):
            await a.send(b"x", b.local_addresses[0])
            await b.receive()
            raise KeyError("boom")

    with pytest.raises(KeyError):
        await fail_inside()
    assert _open_fds() == before


async def test_fault_injector_works_over_websocket() -> None:
    async with _ws_pair() as (raw, b):
        a = FaultInjector(raw, seed=3, loss=0.5, corrupt=1.0)
        for i in range(200):
            await a.send(bytes([i]) * 16, b.local_addresses[0])
        stats = a.stats()
        assert stats["fault_lost"] + stats["datagrams_sent"] == 200
        for _ in range(stats["datagrams_sent"]):
            data, _ = await b.receive()
            assert len(set(data)) == 2  # one bit flipped in 16 equal bytes
