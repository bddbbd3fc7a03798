"""``qdht-bench transport``: datagrams per second through the transports on loopback.

Each run sends batches of datagrams from one transport to another and
receives each batch before sending the next (so the kernel's receive buffer
never overflows), in one Trio task; the figure is datagrams delivered
(sent *and* received) per second.  The same loop over bare non-blocking
stdlib sockets is measured in the same run as the baseline, so the
transport's own per-datagram overhead shows as a ratio that survives a busy
machine.  The in-memory network (no kernel at all) and the WebSocket
transport (one cached TCP connection) are measured too.
"""

from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Awaitable, Callable

import trio

from qdht.testing import MemoryNetwork
from qdht.transport import DatagramTransport, open_udp_transport, open_websocket_transport
from qdht_bench._common import BenchResult, Target, median

DESCRIPTION = "UDP and in-memory transport throughput (send+receive, 100 B and 1200 B)"

#: Datagrams in flight per batch: 64 x 1200 B stays well inside a default SO_RCVBUF.
BATCH = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=50_000, help="datagrams per run")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")


async def _pump(a: DatagramTransport, b: DatagramTransport, size: int, count: int) -> float:
    payload = b"\xa5" * size
    to = b.local_addresses[0]
    batches = count // BATCH
    start = time.perf_counter()
    for _ in range(batches):
        for _ in range(BATCH):
            await a.send(payload, to)
        for _ in range(BATCH):
            await b.receive()
    elapsed = time.perf_counter() - start
    return batches * BATCH / elapsed


async def _udp_rate(size: int, count: int) -> float:
    async with open_udp_transport("127.0.0.1", 0) as a, open_udp_transport("127.0.0.1", 0) as b:
        return await _pump(a, b, size, count)


async def _websocket_rate(size: int, count: int) -> float:
    async with (
        open_websocket_transport("127.0.0.1", 0) as a,
        open_websocket_transport("127.0.0.1", 0) as b,
    ):
        await a.send(b"warm-up: dial once", b.local_addresses[0])
        await b.receive()
        return await _pump(a, b, size, count)


async def _memory_rate(size: int, count: int) -> float:
    network = MemoryNetwork(seed=1, queue_size=BATCH)
    async with network.open_transport() as a, network.open_transport() as b:
        return await _pump(a, b, size, count)


def _raw_rate(size: int, count: int) -> float:
    """The floor: bare non-blocking stdlib sockets, no Trio, no qdht."""
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        a.setblocking(False)
        b.setblocking(False)
        to = b.getsockname()
        payload = b"\xa5" * size
        batches = count // BATCH
        start = time.perf_counter()
        for _ in range(batches):
            for _ in range(BATCH):
                a.sendto(payload, to)
            for _ in range(BATCH):
                b.recvfrom(65536)
        return batches * BATCH / (time.perf_counter() - start)
    finally:
        a.close()
        b.close()


def run(args: argparse.Namespace) -> BenchResult:
    result = BenchResult("transport")
    count: int = args.count
    runs: int = args.runs

    def trio_median(fn: Callable[[int, int], Awaitable[float]], size: int) -> float:
        return median([trio.run(fn, size, count) for _ in range(runs)])

    for size in (100, 1200):
        raw = median([_raw_rate(size, count) for _ in range(runs)])
        udp = trio_median(_udp_rate, size)
        mem = trio_median(_memory_rate, size)
        ws = median([trio.run(_websocket_rate, size, count // 5) for _ in range(runs)])
        result.add(f"raw_socket_{size}B_datagrams_per_s", round(raw))
        result.add(
            f"udp_{size}B_datagrams_per_s",
            round(udp),
            # The session bench needs 15,000 msgs/s through the whole stack:
            # the raw transport should leave at least 2x headroom.
            Target(">=", 30_000) if size == 100 else None,
        )
        result.add(f"udp_{size}B_MB_per_s", round(udp * size / 1e6, 2))
        result.add(f"udp_{size}B_overhead_vs_raw", round(raw / udp, 2))
        result.add(f"memory_{size}B_datagrams_per_s", round(mem))
        result.add(f"websocket_{size}B_datagrams_per_s", round(ws))
    result.notes.append(
        f"{count} datagrams per run in batches of {BATCH}, median of {runs} runs; "
        "one Trio task sends a batch then receives it"
    )
    return result
