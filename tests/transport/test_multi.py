"""Several transports as one: UDP and WebSocket side by side."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from qdht.errors import ConfigError
from qdht.testing import check_datagram_transport
from qdht.transport import (
    DatagramTransport,
    MultiTransport,
    open_udp_transport,
    open_websocket_transport,
)
from qdht.wire import Address


@asynccontextmanager
async def _node() -> AsyncIterator[MultiTransport]:
    async with (
        open_udp_transport("127.0.0.1", 0) as udp,
        open_websocket_transport("127.0.0.1", 0) as ws,
        MultiTransport([udp, ws]) as multi,
    ):
        yield multi


async def test_multi_transport_conforms() -> None:
    @asynccontextmanager
    async def pair() -> AsyncIterator[tuple[DatagramTransport, DatagramTransport]]:
        async with _node() as a, _node() as b:
            yield a, b

    await check_datagram_transport(pair)


async def test_sends_by_address_kind_and_receives_from_all() -> None:
    async with _node() as a, _node() as b:
        assert [x.transport for x in b.local_addresses] == ["udp", "ws"]
        b_udp, b_ws = b.local_addresses
        await a.send(b"over udp", b_udp)
        await a.send(b"over ws", b_ws)
        got = {await b.receive() for _ in range(2)}
        kinds = {data: src.transport for data, src in got}
        assert kinds == {b"over udp": "udp", b"over ws": "ws"}
        stats = b.stats()
        assert stats["datagrams_received"] == 2


async def test_unknown_kind_raises_and_body_errors_are_unwrapped() -> None:
    async with open_udp_transport("127.0.0.1", 0) as udp:

        async def use() -> None:
            async with MultiTransport([udp]) as multi:
                with pytest.raises(ConfigError, match="ws"):
                    await multi.send(b"x", Address("ws", "127.0.0.1", 9))
                raise KeyError("boom")

        with pytest.raises(KeyError):
            await use()
        assert udp.socket.fileno() == -1  # closing the multi-transport closed what it holds
    with pytest.raises(ConfigError, match="at least one"):
        MultiTransport([])


async def test_the_source_filter_reaches_the_udp_transport() -> None:
    async with (
        open_udp_transport("127.0.0.1", 0) as udp,
        open_udp_transport("127.0.0.1", 0) as flooder,
        MultiTransport([udp]) as multi,
    ):
        f = flooder.local_addresses[0]
        multi.set_source_filter({(f.host, f.port): trio.current_time() + 60}, b"\xa4")
        await flooder.send(b"garbage", udp.local_addresses[0])
        await flooder.send(b"\xa4kept", udp.local_addresses[0])
        assert await multi.receive() == (b"\xa4kept", f)
        # Dropped in the kernel (Linux: its socket filter) or as it was read.
        stats = udp.stats()
        dropped = stats.get("drop_source-muted", 0) + stats.get("datagrams_dropped_in_kernel", 0)
        assert dropped == 1
