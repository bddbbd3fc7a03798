"""Conformance checks any transport implementation can run against itself.

Like ``trio.testing.check_two_way_stream``: a test passes a factory, the
checker exercises the contract of :class:`qdht.transport.DatagramTransport`
and raises ``AssertionError`` naming the broken rule.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import trio
import trio.testing

from qdht.errors import TransportError
from qdht.transport import DatagramTransport
from qdht.wire import Address

__all__ = ["TransportPairFactory", "check_datagram_transport"]

#: Opens two transports that can reach each other: ``async with factory() as (a, b)``.
#: ``b.local_addresses[0]`` must be an address ``a`` can send to, and the
#: transports are closed when the block exits.
TransportPairFactory = Callable[
    [], AbstractAsyncContextManager[tuple[DatagramTransport, DatagramTransport]]
]

#: How long one expected datagram may take (trio clock: instant under autojump_clock).
RECEIVE_TIMEOUT = 10.0


async def _receive(t: DatagramTransport, what: str) -> tuple[bytes, Address]:
    with trio.move_on_after(RECEIVE_TIMEOUT):
        return await t.receive()
    raise AssertionError(f"{what}: nothing received within {RECEIVE_TIMEOUT} s")


async def check_datagram_transport(factory: TransportPairFactory) -> None:
    """Check the :class:`~qdht.transport.DatagramTransport` contract on pairs from ``factory``.

    Checks: local addresses and size limit are sane; a datagram and its reply
    round-trip (the reply to the sender's address comes back from the address
    first sent to); payload sizes from 1 byte to ``max_datagram_size`` arrive
    intact; a burst arrives complete in any order; oversize sends raise
    :class:`~qdht.errors.TransportError`; sending to a vanished peer does not
    raise; ``aclose`` is idempotent, wakes a blocked receiver and makes later
    calls raise ``trio.ClosedResourceError``; ``stats()`` counts the traffic.
    """
    gone: Address | None = None
    async with factory() as (a, b):
        assert isinstance(a, DatagramTransport), "a does not satisfy DatagramTransport"
        assert a.local_addresses, "local_addresses is empty"
        assert b.local_addresses, "local_addresses is empty"
        assert a.max_datagram_size >= 1200, "max_datagram_size below the 1200-byte minimum"
        b_addr = b.local_addresses[0]

        # Round trip: the reply to the source address reaches a, from b_addr.
        await a.send(b"ping", b_addr)
        data, src = await _receive(b, "a -> b")
        assert data == b"ping", f"payload changed in transit: {data!r}"
        assert isinstance(src, Address), f"source must be an Address, got {src!r}"
        await b.send(b"pong", src)
        data, back = await _receive(a, "b -> a (reply to source address)")
        assert data == b"pong", f"reply payload changed: {data!r}"
        assert back == b_addr, f"reply came from {back}, expected {b_addr}"

        # Every size up to the maximum, one at a time.
        limit = min(a.max_datagram_size, b.max_datagram_size)
        for size in sorted({1, 2, 100, 1200, limit // 2, limit - 1, limit}):
            payload = bytes((i * 7 + size) & 0xFF for i in range(size))
            await a.send(payload, b_addr)
            data, _ = await _receive(b, f"{size}-byte datagram")
            assert data == payload, f"{size}-byte datagram arrived as {len(data)} other bytes"

        # A burst: all arrive, order not assumed.
        burst = {f"burst {i}".encode() for i in range(32)}
        for item in sorted(burst):
            await a.send(item, b_addr)
        got = set()
        for _ in burst:
            data, _src = await _receive(b, "burst")
            got.add(data)
        assert got == burst, f"burst lost {len(burst - got)} datagrams"

        # Oversize is local misuse and raises clearly.
        try:
            await a.send(b"x" * (a.max_datagram_size + 1), b_addr)
        except TransportError as exc:
            if str(a.max_datagram_size) not in str(exc):
                raise AssertionError(f"oversize error does not state the limit: {exc}") from exc
        else:
            raise AssertionError("sending max_datagram_size + 1 bytes did not raise")

        stats = a.stats()
        assert all(type(v) is int for v in stats.values()), f"stats must be ints: {stats}"
        assert stats.get("datagrams_sent", 0) >= 1 + 7 + len(burst) - 2, f"bad stats {stats}"
        assert b.stats().get("datagrams_received", 0) >= 1 + len(burst), "bad receive stats"

        # Closing: a blocked receiver wakes with ClosedResourceError.
        async def blocked_receive(task_status: trio.TaskStatus[None]) -> None:
            task_status.started()
            try:
                await b.receive()
            except trio.ClosedResourceError:
                return
            raise AssertionError("receive() returned after the transport was closed")

        async with trio.open_nursery() as nursery:
            await nursery.start(blocked_receive)
            await trio.testing.wait_all_tasks_blocked()
            await b.aclose()
        await b.aclose()  # idempotent
        try:
            await b.receive()
        except trio.ClosedResourceError:
            pass
        else:
            raise AssertionError("receive() on a closed transport returned")
        try:
            await b.send(b"late", a.local_addresses[0])
        except trio.ClosedResourceError:
            pass
        else:
            raise AssertionError("send() on a closed transport did not raise")
        # Sending to a peer that is gone does not raise.
        await a.send(b"to closed peer", b_addr)
        gone = b_addr
    assert gone is not None
    async with factory() as (a, _b):
        # An address nobody listens on any more (the previous pair is closed).
        await a.send(b"to nobody", gone)
        assert isinstance(a.stats(), dict)
