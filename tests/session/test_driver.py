"""The Trio driver over the in-memory network (with faults) and over real UDP."""

from __future__ import annotations

import random
import socket
from collections.abc import Hashable

import pytest
import trio
import trio.testing

from qdht.session import SessionHost, open_session_host
from qdht.testing import FaultInjector, MemoryNetwork
from qdht.transport import open_udp_transport

from ._support import identity

SIZES = [0, 1, 100, 1087, 1088, 1089, 4096, 20_000, 65_535, 65_536]


def _can_bind_v6() -> str | None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError as exc:
        return f"cannot bind UDP on ::1: {exc}"
    return None


V6_SKIP = _can_bind_v6()


async def _deliver(
    sender: SessionHost, receiver: SessionHost, node_id: bytes, payload: bytes, addr: Hashable
) -> None:
    """Send until the receiver has it (messages are datagrams: best effort)."""
    while True:
        await sender.send(node_id, payload, addr=addr)
        with trio.move_on_after(2.0):
            while True:
                got = await receiver.receive()
                if got.payload == payload:
                    return


async def _exchange(a: SessionHost, b: SessionHost, addr_a: Hashable, addr_b: Hashable) -> None:
    rng = random.Random(9)
    for size in SIZES:
        payload = rng.randbytes(size)
        await _deliver(a, b, identity(1).node_id, payload, addr_b)
        await _deliver(b, a, identity(0).node_id, payload, addr_a)


async def test_sessions_over_memory_network_with_loss_duplication_and_reordering(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=1)
    async with net.open_transport("10.0.0.1") as ta, net.open_transport("10.0.0.2") as tb:
        fa = FaultInjector(ta, seed=1, loss=0.02, duplicate=0.05, reorder=0.1)
        fb = FaultInjector(tb, seed=2, loss=0.02, duplicate=0.05, reorder=0.1)
        async with (
            open_session_host(fa, identity(0)) as a,
            open_session_host(fb, identity(1)) as b,
        ):
            addr_a, addr_b = ta.local_addresses[0], tb.local_addresses[0]
            with trio.fail_after(600):
                await _exchange(a, b, addr_a, addr_b)
            assert a.stats()["sessions"] == 1
            assert b.stats()["sessions"] == 1
            # Garbage from a third party is dropped, never raised.
            async with net.open_transport("10.0.0.3") as tc:
                await tc.send(b"\xa1dtypedjunk", addr_b)
                await tc.send(bytes(5000), addr_b)
                await trio.sleep(1)
            assert b.stats()["drops"]["malformed"] >= 1


async def _udp_exchange(host: str) -> None:
    async with (
        open_udp_transport(host, 0) as ta,
        open_udp_transport(host, 0) as tb,
        open_session_host(ta, identity(0)) as a,
        open_session_host(tb, identity(1)) as b,
    ):
        with trio.fail_after(60):
            await _exchange(a, b, ta.local_addresses[0], tb.local_addresses[0])
        assert a.stats()["sessions"] == 1
        assert b.stats()["sessions"] == 1


async def test_sessions_over_real_udp_ipv4() -> None:
    await _udp_exchange("127.0.0.1")


@pytest.mark.skipif(V6_SKIP is not None, reason=V6_SKIP or "")
async def test_sessions_over_real_udp_ipv6() -> None:
    await _udp_exchange("::1")
