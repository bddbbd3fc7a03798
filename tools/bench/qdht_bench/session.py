"""``qdht-bench session``: session throughput between two processes on loopback UDP.

A receiver process and this process each run :func:`open_session_host` over
a real UDP socket on 127.0.0.1.  The sender keeps at most ``--window``
messages unacknowledged (the receiver acknowledges every 8th); the figure is
what the receiver got between its first and last message.  Median of
``--runs`` runs each.  ``session_bytes_each`` is the memory one established
session costs a responder (tracemalloc over ``--sessions`` sessions, each
from its own host, at 200 handshakes a second: under the handshake rate
limits); ``process_caches_kb`` is what the process-wide memo caches held at
the end, bounded at 4096 entries each, so not a per-session cost.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import time
import tracemalloc
from typing import Any, Final

import trio

from qdht.identity import Identity
from qdht.session import SessionEndpoint, _peers, open_session_host
from qdht.transport import open_udp_transport
from qdht.wire import Address
from qdht_bench._common import BenchResult, Target, median

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION: Final = "two processes on loopback UDP: MB/s, messages/s, bytes per session"
DIFFICULTY: Final = 4
ACK_EVERY: Final = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=3, help="runs per metric (median reported)")
    parser.add_argument("--big", type=int, default=600, help="64 KiB messages per run")
    parser.add_argument("--small", type=int, default=30_000, help="100-byte messages per run")
    parser.add_argument(
        "--window", type=int, default=32, help="unacknowledged 64 KiB messages (x8 for 100 B)"
    )
    parser.add_argument("--sessions", type=int, default=2000, help="sessions for memory")


async def _receiver(conn: Any) -> None:
    ident = Identity.generate(difficulty=DIFFICULTY)
    async with (
        open_udp_transport("127.0.0.1", 0) as transport,
        open_session_host(transport, ident) as host,
    ):
        conn.send((ident.node_id, transport.local_addresses[0].port))
        received = nbytes = 0
        first = last = cpu_first = cpu_last = 0.0
        with trio.move_on_after(300):
            while True:
                msg = await host.receive()
                if msg.payload[:1] == b"E":  # the sender is done: report and stop
                    await host.send(msg.node_id, b"F")
                    break
                if not received:
                    first, cpu_first = time.perf_counter(), time.process_time()
                received += 1
                nbytes += len(msg.payload)
                last, cpu_last = time.perf_counter(), time.process_time()
                if received % ACK_EVERY == 0:
                    await host.send(msg.node_id, b"A" + received.to_bytes(4, "big"))
        conn.send((received, nbytes, last - first, cpu_last - cpu_first, host.stats()["drops"]))


def _receiver_main(conn: Any) -> None:
    trio.run(_receiver, conn)


async def _sender(node_id: bytes, port: int, size: int, count: int, window: int) -> int:
    """Send ``count`` messages with at most ``window`` unacknowledged; return how many."""
    ident = Identity.generate(difficulty=DIFFICULTY)
    payload = b"D" + bytes(size - 1)
    async with (
        open_udp_transport("127.0.0.1", 0) as transport,
        open_session_host(transport, ident) as host,
    ):
        addr = Address("udp", "127.0.0.1", port)
        acked = sent = 0
        finished = False
        progress = trio.Event()

        async def replies() -> None:
            nonlocal acked, finished, progress
            while True:
                msg = await host.receive()
                if msg.payload == b"F":
                    finished = True
                else:
                    acked = max(acked, int.from_bytes(msg.payload[1:], "big"))
                progress.set()
                progress = trio.Event()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(replies)
            while sent < count:
                if sent - acked < window:
                    await host.send(node_id, payload, addr=addr)
                    sent += 1
                    continue
                with trio.move_on_after(0.05) as scope:
                    await progress.wait()
                if scope.cancelled_caught:
                    acked = sent - window // 2  # some were lost: keep going
            while not finished:
                await host.send(node_id, b"E", addr=addr)
                with trio.move_on_after(0.2):
                    await progress.wait()
            nursery.cancel_scope.cancel()
    return sent


def _one_run(size: int, count: int, window: int) -> tuple[float, float, float, float, Any]:
    """(MB/s, messages/s, MB per receiver CPU second, messages per CPU second, drops)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_receiver_main, args=(child,))
    proc.start()
    node_id, port = parent.recv()
    trio.run(_sender, node_id, port, size, count, window)
    received, nbytes, seconds, cpu, drops = (
        parent.recv() if parent.poll(60) else (0, 0, 1.0, 1.0, {})
    )
    proc.join(10)
    seconds, cpu = max(seconds, 1e-9), max(cpu, 1e-9)
    return nbytes / seconds / 1e6, received / seconds, nbytes / cpu / 1e6, received / cpu, drops


_PROCESS_CACHES: Final = (
    _peers.mac1_key,
    _peers._cookie_key,
    _peers._addr_bytes,
    _peers._addr_hash,
    _peers._source_host,
    _peers._is_loopback,
)


def _memory(sessions: int) -> tuple[float, int]:
    """Bytes per established session, and bytes the process-wide caches held."""
    responder = Identity.generate(difficulty=DIFFICULTY)
    initiators = [Identity.generate(difficulty=DIFFICULTY) for _ in range(sessions)]
    gc.collect()
    tracemalloc.start()
    eb = SessionEndpoint(responder)
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    now = 0.0
    for n, ident in enumerate(initiators):
        now += 0.005  # 200 handshakes a second: under the global handshake limit
        ea = SessionEndpoint(ident)
        ea.connect("B", responder.node_id, now)
        for _ in range(4):
            for data, _a in ea.datagrams_to_send(now):
                # One host per initiator: from a single host, 200 handshakes in a
                # burst would (rightly) meet the per-address handshake limit.
                eb.receive_datagram(data, (f"A{n}", n), now)
            for data, _a in eb.datagrams_to_send(now):
                ea.receive_datagram(data, "B", now)
        while eb.next_event() is not None:
            pass
        del ea
    # Let the transient handshake state (biscuit replay table) age out.
    eb.handle_timer(now + eb.config.handshake_timeout + 1)
    gc.collect()
    # Process-wide memo caches (mac1 and cookie keys, address digests), bounded
    # at 4096 entries each whatever the number of sessions, and filled here by
    # the 2,000 initiators living in this process too: not a per-session cost.
    with_caches = tracemalloc.get_traced_memory()[0]
    for cache in _PROCESS_CACHES:
        cache.cache_clear()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    caches = with_caches - after
    tracemalloc.stop()
    if eb.stats()["sessions"] != sessions:
        raise RuntimeError(f"only {eb.stats()['sessions']} of {sessions} sessions established")
    return (after - before) / sessions, caches


def run(args: argparse.Namespace) -> BenchResult:
    result = BenchResult("session")
    big = [_one_run(65_536, args.big, args.window) for _ in range(args.runs)]
    small = [_one_run(100, args.small, args.window * 8) for _ in range(args.runs)]
    result.add("session_mb_s", median([b[0] for b in big]), Target(">=", 20.0))
    result.add("session_msgs_per_s", median([s[1] for s in small]), Target(">=", 15_000))
    per_session, caches = _memory(args.sessions)
    result.add("session_bytes_each", per_session, Target("<=", 2048))
    result.add("process_caches_kb", caches / 1024)
    # Less sensitive to other load on the machine: receiver CPU time only.
    result.add("receiver_mb_per_cpu_s", median([b[2] for b in big]))
    result.add("receiver_msgs_per_cpu_s", median([s[3] for s in small]))
    result.notes.append(f"receiver drops (last big run): {big[-1][4]}")
    result.notes.append(f"receiver drops (last small run): {small[-1][4]}")
    return result
