"""The UDP transport on loopback, IPv4 and IPv6."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from qdht.errors import ConfigError, TransportError
from qdht.testing import TransportPairFactory, check_datagram_transport
from qdht.transport import DatagramTransport, UdpTransport, open_udp_transport
from qdht.wire import Address


def _can_bind_v6() -> str | None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError as exc:
        return f"cannot bind UDP on ::1: {exc}"
    return None


V6_SKIP = _can_bind_v6()
needs_v6 = pytest.mark.skipif(V6_SKIP is not None, reason=V6_SKIP or "")


def _pair(host: str) -> TransportPairFactory:
    @asynccontextmanager
    async def factory() -> AsyncIterator[tuple[DatagramTransport, DatagramTransport]]:
        async with (
            open_udp_transport(host, 0) as a,
            open_udp_transport(host, 0) as b,
        ):
            yield a, b

    return factory


async def test_udp_ipv4_conforms() -> None:
    await check_datagram_transport(_pair("127.0.0.1"))


@needs_v6
async def test_udp_ipv6_conforms() -> None:
    await check_datagram_transport(_pair("::1"))


async def test_port_zero_reports_the_ephemeral_port() -> None:
    async with open_udp_transport("127.0.0.1", 0) as t:
        (addr,) = t.local_addresses
        assert addr.transport == "udp"
        assert addr.host == "127.0.0.1"
        assert addr.port == t.socket.getsockname()[1]
        assert addr.port != 0


async def test_socket_is_closed_when_the_block_exits() -> None:
    async with open_udp_transport("127.0.0.1", 0) as t:
        sock = t.socket
        assert sock.fileno() != -1
    assert sock.fileno() == -1
    assert "closed" in repr(t)


async def test_socket_is_closed_when_the_block_raises() -> None:
    socks: list[socket.socket] = []

    async def fail_inside() -> None:
        async with open_udp_transport("127.0.0.1", 0) as t:
            socks.append(t.socket)
            raise KeyError("boom")

    with pytest.raises(KeyError):
        await fail_inside()
    assert socks[0].fileno() == -1


async def test_send_to_a_closed_port_does_not_raise() -> None:
    async with open_udp_transport("127.0.0.1", 0) as a:
        async with open_udp_transport("127.0.0.1", 0) as gone:
            dead = gone.local_addresses[0]
        for _ in range(3):
            await a.send(b"hello?", dead)
        async with open_udp_transport("127.0.0.1", 0) as b:
            await b.send(b"still alive", a.local_addresses[0])
            data, src = await a.receive()
        assert (data, src) == (b"still alive", b.local_addresses[0])
        assert a.stats()["datagrams_sent"] + a.stats().get("drop_refused", 0) == 3


async def test_icmp_refused_from_recvfrom_is_counted_not_raised() -> None:
    # Linux reports ICMP port-unreachable to *connected* UDP sockets; force one.
    async with open_udp_transport("127.0.0.1", 0) as a:
        async with open_udp_transport("127.0.0.1", 0) as gone:
            dead = gone.local_addresses[0]
        a.socket.connect((dead.host, dead.port))
        a.socket.send(b"x")
        await trio.lowlevel.wait_readable(a.socket)  # the pending error makes it readable
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.receive)
            await trio.testing.wait_all_tasks_blocked()
            assert a.stats()["drop_refused"] == 1
            nursery.cancel_scope.cancel()


async def test_oversize_and_wrong_transport_raise() -> None:
    async with open_udp_transport("127.0.0.1", 0, max_datagram_size=1500) as t:
        me = t.local_addresses[0]
        with pytest.raises(TransportError, match="1500"):
            await t.send(b"x" * 1501, me)
        with pytest.raises(ConfigError, match="transport"):
            await t.send(b"x", Address("ws", "127.0.0.1", me.port))


async def test_oversize_incoming_is_dropped_and_counted() -> None:
    async with (
        open_udp_transport("127.0.0.1", 0, max_datagram_size=1500) as small,
        open_udp_transport("127.0.0.1", 0) as big,
    ):
        to = small.local_addresses[0]
        await big.send(b"x" * 1501, to)
        await big.send(b"ok", to)
        data, _ = await small.receive()
        assert data == b"ok"
        assert small.stats()["drop_oversize"] == 1


async def test_wrong_family_is_dropped_not_raised() -> None:
    async with open_udp_transport("127.0.0.1", 0) as t:
        await t.send(b"x", Address("udp", "::1", 9))
        assert t.stats()["drop_address-family"] == 1


@needs_v6
async def test_dual_stack_sees_ipv4_peers_as_ipv4() -> None:
    async with (
        open_udp_transport("::", 0, dual_stack=True) as server,
        open_udp_transport("127.0.0.1", 0) as client,
    ):
        port = server.local_addresses[0].port
        await client.send(b"hi", Address("udp", "127.0.0.1", port))
        data, src = await server.receive()
        assert (data, src) == (b"hi", client.local_addresses[0])
        await server.send(b"back", src)
        data, src2 = await client.receive()
        assert data == b"back"
        assert src2 == Address("udp", "127.0.0.1", port)


@needs_v6
async def test_ipv6_wildcard_is_v6_only_by_default() -> None:
    async with open_udp_transport("::", 0) as t:
        assert t.socket.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        await t.send(b"x", Address("udp", "127.0.0.1", 9))
        assert t.stats()["drop_address-family"] == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"host": "localhost"}, "literal"),
        ({"host": "127.0.0.1", "port": 70000}, "port"),
        ({"host": "127.0.0.1", "port": 0, "max_datagram_size": 0}, "max_datagram_size"),
        ({"host": "127.0.0.1", "port": 0, "max_datagram_size": 65508}, "max_datagram_size"),
        ({"host": "127.0.0.1", "port": 0, "dual_stack": True}, "dual_stack"),
    ],
)
async def test_bad_arguments_raise_config_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        async with open_udp_transport(**kwargs):  # type: ignore[arg-type]
            pass


async def test_bind_conflict_raises_transport_error() -> None:
    async with open_udp_transport("127.0.0.1", 0) as t:
        port = t.local_addresses[0].port
        with pytest.raises(TransportError, match=str(port)):
            async with open_udp_transport("127.0.0.1", port):
                pass


async def test_cancelled_receive_loses_nothing() -> None:
    async with open_udp_transport("127.0.0.1", 0) as a, open_udp_transport("127.0.0.1", 0) as b:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(b.receive)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        await a.send(b"after cancel", b.local_addresses[0])
        data, _ = await b.receive()
        assert data == b"after cancel"


async def test_udp_transport_is_a_datagram_transport() -> None:
    async with open_udp_transport("127.0.0.1", 0) as t:
        assert isinstance(t, UdpTransport)
        assert isinstance(t, DatagramTransport)


async def test_send_batch_delivers_in_order_and_counts_bad_entries() -> None:
    async with (
        open_udp_transport("127.0.0.1", 0, max_datagram_size=1500) as a,
        open_udp_transport("127.0.0.1", 0) as b,
    ):
        to = b.local_addresses[0]
        good = [(bytes([i]) * (i + 1), to) for i in range(20)]
        batch = [
            *good[:10],
            (b"x" * 1501, to),
            (b"x", Address("ws", "127.0.0.1", to.port)),
            *good[10:],
        ]
        await a.send_batch(batch)
        got = [await b.receive() for _ in range(20)]
        assert got == [(data, a.local_addresses[0]) for data, _ in good]
        stats = a.stats()
        assert stats["datagrams_sent"] == 20
        assert stats["drop_oversize"] == 1
        assert stats["drop_wrong-transport"] == 1


async def test_receive_batch_takes_what_is_queued_up_to_the_limit() -> None:
    async with open_udp_transport("127.0.0.1", 0) as a, open_udp_transport("127.0.0.1", 0) as b:
        to = b.local_addresses[0]
        await a.send_batch([(bytes([i]), to) for i in range(10)])
        first = await b.receive_batch(4)
        rest = await b.receive_batch(64)
        assert [d for d, _ in first] == [bytes([i]) for i in range(4)]
        assert [d for d, _ in rest] == [bytes([i]) for i in range(4, 10)]
        assert {src for _, src in first + rest} == {a.local_addresses[0]}
        with pytest.raises(ConfigError, match="max_count"):
            await b.receive_batch(0)


async def test_batch_calls_on_a_closed_transport_raise() -> None:
    async with open_udp_transport("127.0.0.1", 0) as t:
        me = t.local_addresses[0]
    with pytest.raises(trio.ClosedResourceError):
        await t.send_batch([(b"x", me)])
    with pytest.raises(trio.ClosedResourceError):
        await t.receive_batch()


async def test_rebind_moves_a_waiting_receiver_to_a_new_address() -> None:
    async with (
        open_udp_transport("127.0.0.1", 0) as roaming,
        open_udp_transport("127.0.0.1", 0) as peer,
    ):
        (old,) = roaming.local_addresses
        old_socket = roaming.socket
        got: list[tuple[bytes, Address]] = []
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                got.append(await roaming.receive())

            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            new = roaming.rebind()
            assert new != old
            assert new.host == "127.0.0.1"
            assert roaming.local_addresses == (new,)
            assert old_socket.fileno() == -1
            await peer.send(b"to the new address", new)
        assert got == [(b"to the new address", peer.local_addresses[0])]
        # The peer sees the roaming side's new address as the source.
        await roaming.send(b"from the new address", peer.local_addresses[0])
        assert await peer.receive() == (b"from the new address", new)


async def test_rebind_after_close_is_refused() -> None:
    async with open_udp_transport("127.0.0.1", 0) as t:
        pass
    with pytest.raises(trio.ClosedResourceError):
        t.rebind()


async def test_muted_and_blocked_sources_are_dropped_as_they_are_read() -> None:
    # Without the kernel filter (as off Linux): the drops happen in Python.
    async with (
        open_udp_transport("127.0.0.1", 0, kernel_filter=False) as t,
        open_udp_transport("127.0.0.1", 0) as flooder,
        open_udp_transport("127.0.0.1", 0) as banned,
        open_udp_transport("127.0.0.1", 0) as honest,
    ):
        dst = t.local_addresses[0]
        f, b = flooder.local_addresses[0], banned.local_addresses[0]
        until = trio.current_time() + 60.0
        t.set_source_filter({(f.host, f.port): until}, b"\xa4", {(b.host, b.port): until})
        await flooder.send(b"garbage", dst)  # muted: dropped
        await flooder.send(b"\xa4session", dst)  # muted, but may be a session's packet: kept
        await banned.send(b"\xa4session", dst)  # blocked: dropped, whatever it is
        await honest.send(b"hello", dst)
        got = [await t.receive(), await t.receive()]
        assert got == [(b"\xa4session", f), (b"hello", honest.local_addresses[0])]
        stats = t.stats()
        assert stats["drop_source-muted"] == 1
        assert stats["drop_source-blocked"] == 1
        assert stats["datagrams_received"] == 4  # what the socket delivered
        # A mute that has ended drops nothing.
        t.set_source_filter({(f.host, f.port): trio.current_time()}, b"\xa4")
        await flooder.send(b"heard again", dst)
        assert await t.receive() == (b"heard again", f)
