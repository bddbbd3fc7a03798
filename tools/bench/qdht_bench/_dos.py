"""``qdht-bench dos``: honest latency at a node while an attacker floods it.

Three processes on loopback UDP, all at the same scheduling priority (the
attacker's CPU comes from the same machine as the target's, as on a shared
host; ``--pin`` gives each its own core instead):

* the *target*: a serving :func:`qdht.open_node` with the default limits
  (the one thing under test), reporting its drops and its resident memory;
* the *honest peers* (this process): ``--honest`` client nodes, each sending
  PING and FIND_NODE requests over their sessions to the target, one every
  ``--interval`` seconds, timing each;
* the *attacker*, from ``--sources`` loopback addresses at once (127.0.0.2,
  127.0.0.3, ...; one run per count, default 1 and 16), round robin over
  them: ``--rate`` datagrams per second, a third each of garbage (random
  bytes, forged transport and handshake packets), pqXX first messages with a
  valid mac1 (the target's node ID is public) and a fresh initiator index
  each, and DHT requests over an established session of each source (valid,
  authenticated, unthrottled).
  Precomputed or cheap, so one Python process sustains the rate.

First ``--baseline`` seconds without the attacker, then ``--flood`` seconds
with it.  ``honest_latency_ratio`` is the median honest latency under flood
over the median without; ``memory_growth_mb`` the target's largest resident
set during the flood less its resident set before it;
``target_received_per_s`` the datagrams per second the target's socket
delivered to it during the flood (what the kernel did not drop),
``target_dropped_in_kernel`` what the kernel dropped (its socket filter,
04-handshake.md §5.5, and a full receive buffer; ``netns_rcvbuf_errors``
counts the latter for every socket of the network namespace).  The CPU
time of each process during the flood (``*_cpu_share_flood``, of one core)
and how busy the machine was (``machine_busy_cores_*``: the other engineers'
work included) say whose CPU an honest request waits for.  Metrics carry the
source count as a suffix (``_src1``, ``_src16``); with ``--kernel-filter
both`` each case also runs with the target's kernel filter off first
(``_src16_python``: every drop in Python), for a same-run comparison;
``--sink`` adds a control (``_src16_sink``): the same attacker sending the
same flood into a socket of its own that nobody reads, so the target does no
work for it, and what is left of the honest slowdown is the machine's (the
attacker's CPU and the kernel's loopback path).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import random
import socket
import struct
import time
from typing import Any, Final

import trio

from qdht import Config, open_node
from qdht.identity import Identity
from qdht.session import SessionConfig, SessionEndpoint, SessionEstablished, cookie_mac, mac1_key
from qdht.transport import open_udp_transport
from qdht.wire import (
    Address,
    Contact,
    FindNode,
    HsView,
    Ping,
    encode,
    encode_hs_fragment,
    parse_hs_fragment,
)
from qdht_bench._common import BenchResult, Target, median, percentile

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION: Final = "honest PING/FIND_NODE latency at a node flooded with 50,000 packets/s"
DIFFICULTY: Final = 4
#: The attacker's addresses: 127.0.0.2, 127.0.0.3, ... (one per source).
ATTACKER_NET: Final = "127.0.0."
FIRST_ATTACKER_HOST: Final = 2
LOCAL: Final = "127.0.0.1"
#: The flood's first seconds, reported apart (before the attacker's sessions are banned).
EARLY: Final = 2.0
#: Datagrams the attacker sends per pacing step.
STEP: Final = 0.002


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=int, default=50_000, help="attacker datagrams per second")
    parser.add_argument("--baseline", type=float, default=20.0, help="seconds without the flood")
    parser.add_argument("--flood", type=float, default=40.0, help="seconds of flood")
    parser.add_argument("--honest", type=int, default=4, help="honest peer nodes")
    parser.add_argument(
        "--interval", type=float, default=0.05, help="seconds between one peer's requests"
    )
    parser.add_argument(
        "--sources",
        type=int,
        nargs="+",
        default=[1, 16],
        help="loopback addresses the attacker floods from at once, one run per count "
        "(default 1 16)",
    )
    parser.add_argument(
        "--pin", action="store_true", help="pin the target to CPU 0, attacker and peers to CPU 1"
    )
    parser.add_argument(
        "--sink",
        action="store_true",
        help="also a control per case: the same flood into a socket nobody reads "
        "(_srcN_sink: what the flood costs honest requests through the machine alone)",
    )
    parser.add_argument(
        "--kernel-filter",
        choices=("on", "off", "both"),
        default="on",
        help="the target's kernel source filter (both: each case off, then on)",
    )


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def _rcvbuf_errors() -> int:
    """UDP datagrams dropped for a full receive buffer, every socket of this network
    namespace (``/proc/net/snmp``)."""
    with open("/proc/net/snmp", encoding="ascii") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def _rx_queue_fill(sock: socket.socket) -> float:
    """How full the socket's receive queue is (0..1: queued bytes over SO_RCVBUF)."""
    alloc, rcvbuf = struct.unpack_from("=II", sock.getsockopt(socket.SOL_SOCKET, 55, 64))
    return alloc / rcvbuf if rcvbuf else math.nan


def _socket_drops() -> dict[tuple[str, int], int]:
    """(host, port) → the kernel's drop counter, for every IPv4 UDP socket of this
    network namespace (``/proc/net/udp``)."""
    drops: dict[tuple[str, int], int] = {}
    with open("/proc/net/udp", encoding="ascii") as f:
        next(f)
        for line in f:
            fields = line.split()
            host, port = fields[1].split(":")
            ip = socket.inet_ntoa(bytes.fromhex(host)[::-1])
            drops[(ip, int(port, 16))] = drops.get((ip, int(port, 16)), 0) + int(fields[-1])
    return drops


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------ the target


def _pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def _target_main(conn: Any, cpu: int | None, kernel_filter: bool) -> None:
    _pin(cpu)
    trio.run(_target, conn, kernel_filter)


async def _target(conn: Any, kernel_filter: bool) -> None:
    config = Config(puzzle_difficulty=DIFFICULTY)
    async with (
        open_udp_transport("127.0.0.1", 0, kernel_filter=kernel_filter) as udp,
        open_node(config, transport=udp) as node,
    ):
        address = node.contact.addresses[0]
        conn.send((node.node_id, node.identity.xwing.public_key_bytes(), address.port))
        samples: list[tuple[float, float, float, float]] = []

        async def sample() -> None:
            while True:
                fill = _rx_queue_fill(udp.socket)
                samples.append((time.time(), _rss_mb(), time.process_time(), fill))
                await trio.sleep(0.25)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample)
            while True:
                command = await trio.to_thread.run_sync(conn.recv, abandon_on_cancel=True)
                if command == "stats":
                    stats = node.stats()
                    conn.send(
                        {
                            "drops": stats["drops"],
                            "datagrams_received": stats["datagrams_received"],
                            "datagrams_sent": stats["datagrams_sent"],
                            "rpcs_received": stats["rpcs_received"],
                            "sessions": stats["sessions"],
                            "session": node.endpoint.stats(),
                            "transport": udp.stats(),
                            "rss": samples,
                        }
                    )
                else:
                    nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ the attacker


def _rpc_flood(
    sock: socket.socket, dst: tuple[str, int], target_id: bytes, count: int, rng: random.Random
) -> list[bytes]:
    """A session with the target from ``sock`` (an identity of its own), and
    ``count`` FIND_NODE requests over it, encrypted in advance (in counter
    order), so that the attacker's Python costs a sendto per packet, as a C
    flooder would."""
    me = Identity.generate(difficulty=DIFFICULTY)
    endpoint = SessionEndpoint(me, SessionConfig())
    src = Address("udp", dst[0], dst[1])
    endpoint.send_message(target_id, encode(Ping(b"P" * 8, ro=True)), 0.0, addr=src)
    sock.settimeout(0.5)
    established = False
    start = time.monotonic()
    while not established and time.monotonic() - start < 20:
        for data, _ in endpoint.datagrams_to_send(time.monotonic()):
            sock.sendto(data, dst)
        try:
            data, _ = sock.recvfrom(2048)
        except TimeoutError:
            continue
        endpoint.receive_datagram(data, src, time.monotonic())
        while (event := endpoint.next_event()) is not None:
            established = established or type(event) is SessionEstablished
    sock.setblocking(False)
    queries = [encode(FindNode(rng.randbytes(8), rng.randbytes(32), ro=True)) for _ in range(512)]
    rpcs: list[bytes] = []
    for i in range(count):
        endpoint.send_message(target_id, queries[i % len(queries)], time.monotonic())
        rpcs += [d for d, _ in endpoint.datagrams_to_send(0.0)]
    return rpcs


def _attacker_main(
    conn: Any,
    target_id: bytes,
    port: int,
    rate: int,
    seconds: float,
    sources: int,
    cpu: int | None,
    sink: bool,
) -> None:
    _pin(cpu)
    rng = random.Random(7)
    dst = ("127.0.0.1", port)
    # The control (--sink): the same flood into a socket of the attacker's own
    # that is never read, so the kernel drops it there, and the target sees none.
    sink_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink_sock.bind((LOCAL, 0))
    flood_dst = sink_sock.getsockname() if sink else dst
    socks: list[socket.socket] = []
    for i in range(sources):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((f"{ATTACKER_NET}{FIRST_ATTACKER_HOST + i}", 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        socks.append(sock)
    me = Identity.generate(difficulty=DIFFICULTY)
    # 1. A real session with the target from every source, for the RPC flood.
    per_source = int(rate * seconds / 3 / sources) + 1000
    rpcs = [_rpc_flood(sock, dst, target_id, per_source, rng) for sock in socks]
    src = Address("udp", "127.0.0.1", port)
    # 2. First messages of pqXX with a valid mac1, each variant with its own index.
    key = mac1_key(target_id)
    handshakes: list[bytes] = []
    for _ in range(16):
        initiator = SessionEndpoint(me, SessionConfig(), rng=rng.randbytes)
        initiator.connect(src, target_id, 0.0)
        first = [parse_hs_fragment(d) for d, _ in initiator.datagrams_to_send(0.0)]
        for _ in range(128):
            sid = rng.randrange(1, 2**32)
            for f in first:
                assert f is not None
                view = HsView(f.kind, sid, 0, f.index, f.count, f.body, b"")
                view.mac1 = cookie_mac(key, view.mac_input())
                handshakes.append(encode_hs_fragment(view))
    # 3. Garbage: random bytes, and well-formed packets that must fail their checks.
    garbage = [rng.randbytes(rng.randint(1, 1200)) for _ in range(1024)]
    garbage += [bytes.fromhex("a4626374") + rng.randbytes(rng.randint(20, 900)) for _ in range(512)]
    garbage += [h[:-20] + rng.randbytes(20) for h in handshakes[:512]]  # bad mac1
    conn.send("ready")
    conn.recv()  # go
    sent = {"garbage": 0, "handshake": 0, "rpc": 0, "send_errors": 0}
    # Round robin over the sources: every third packet of each kind from the next one.
    per_step = max(3, round(rate * STEP))
    deadline = time.monotonic() + seconds
    next_step = time.monotonic()
    cpu_start = time.process_time()
    n = 0
    while (now := time.monotonic()) < deadline:
        if now < next_step:
            time.sleep(next_step - now)
        next_step += STEP
        for _ in range(per_step // 3):
            n += 1
            which = n % sources
            sock, own = socks[which], rpcs[which]
            try:
                sock.sendto(garbage[n % len(garbage)], flood_dst)
                sent["garbage"] += 1
                sock.sendto(handshakes[n % len(handshakes)], flood_dst)
                sent["handshake"] += 1
                sock.sendto(own[(n // sources) % len(own)], flood_dst)
                sent["rpc"] += 1
            except (BlockingIOError, OSError):
                sent["send_errors"] += 1
        for sock in socks:  # replies (cookies, rate-limited errors) are not read: drop them
            try:
                while True:
                    sock.recv(65536)
            except (BlockingIOError, OSError):
                pass
    conn.send({**sent, "cpu_s": time.process_time() - cpu_start})
    for sock in [*socks, sink_sock]:
        sock.close()


# ------------------------------------------------------------------ honest peers


async def _honest(
    target: Contact,
    n: int,
    interval: float,
    phases: list[float],
    out: list[list[Any]],
    ports: list[int],
) -> None:
    """``n`` client nodes; ``out[phase]`` gets (wall time, latency or None) per
    request, ``ports`` the nodes' UDP ports."""

    async def peer(i: int) -> None:
        config = Config(
            listen=("udp://127.0.0.1:0",), puzzle_difficulty=DIFFICULTY, client_mode=True
        )
        async with open_node(config) as node:
            ports.append(node.contact.addresses[0].port)
            rng = random.Random(i)
            core = node.core

            def ping(now: float) -> int:
                return core.ping(target, now)

            def find_node(now: float) -> int:
                wanted = rng.randbytes(32)
                return core._single(target, lambda rid: FindNode(rid, wanted, ro=True), now)

            k = 0
            while trio.current_time() < phases[-1]:
                k += 1
                start_op = ping if k % 2 else find_node
                began = time.perf_counter()
                event = await node._run(start_op)
                latency = time.perf_counter() - began
                ok = type(event).__name__ == "RequestCompleted"
                phase = sum(1 for p in phases[:-1] if trio.current_time() >= p)
                out[phase].append((time.time(), latency if ok else None))
                await trio.sleep(interval)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(peer, i)


def run(args: argparse.Namespace) -> BenchResult:
    if not args.sources or min(args.sources) < 1 or max(args.sources) > 250:
        raise SystemExit("qdht-bench dos: --sources counts must be in 1..250")
    result = BenchResult("dos")
    filters = {"on": [True], "off": [False], "both": [False, True]}[args.kernel_filter]
    for sources in args.sources:
        for kernel_filter in filters:
            suffix = f"_src{sources}" + ("" if kernel_filter else "_python")
            _case(args, sources, kernel_filter, _Suffixed(result, suffix))
        if args.sink:
            _case(args, sources, True, _Suffixed(result, f"_src{sources}_sink"), sink=True)
        if len(filters) == 2:
            for metric in ("honest_latency_ratio", "target_cpu_share_flood"):
                on = result.metrics[f"{metric}_src{sources}"]
                off = result.metrics[f"{metric}_src{sources}_python"]
                result.add(f"{metric}_src{sources}_filter_vs_python", round(on / off, 3))
    result.notes.append(
        f"{args.honest} honest client nodes, one request each per {args.interval}s; attacker "
        f"{args.rate}/s from {ATTACKER_NET}{FIRST_ATTACKER_HOST}.. (N sources, _srcN) for "
        f"{args.flood}s after {args.baseline}s baseline, same priority as the target; "
        "target_dropped_in_kernel is the target socket's drop counter (its source filter "
        "and a full receive buffer); *_cpu_share_flood are shares of one core"
    )
    return result


def _case(
    args: argparse.Namespace,
    sources: int,
    kernel_filter: bool,
    result: _Suffixed,
    sink: bool = False,
) -> None:
    """One flood from ``sources`` addresses: a fresh target, attacker and honest peers
    (``sink``: the flood goes to a socket of the attacker's own, not to the target)."""
    ctx = multiprocessing.get_context("spawn")
    target_conn, child = ctx.Pipe()
    pin = (os.cpu_count() or 1) >= 2 and args.pin
    target = ctx.Process(
        target=_target_main, args=(child, 0 if pin else None, kernel_filter), daemon=True
    )
    target.start()
    target_id, _static, port = target_conn.recv()
    contact = Contact(target_id, (Address("udp", "127.0.0.1", port),))
    attacker_conn, child = ctx.Pipe()
    attacker = ctx.Process(
        target=_attacker_main,
        args=(child, target_id, port, args.rate, args.flood, sources, 1 if pin else None, sink),
        daemon=True,
    )
    attacker.start()
    if not attacker_conn.poll(120 + 20 * sources):
        raise RuntimeError("the attacker did not get ready")
    attacker_conn.recv()  # ready: its session is up, its packets are built
    if pin:
        _pin(1)  # the honest peers share the attacker's core, not the target's
    # phase 0: warm-up (handshakes), 1: baseline, 2: flood; the last entry is the end.
    results: list[list[Any]] = [[], [], []]
    walls: dict[str, Any] = {"ports": []}

    async def main() -> None:
        t0 = trio.current_time()
        warmup = 3.0
        phases = [t0 + warmup, t0 + warmup + args.baseline]
        phases.append(phases[1] + args.flood)

        async def flood_at() -> None:
            await trio.sleep_until(phases[0])
            target_conn.send("stats")
            walls["stats_before"] = await trio.to_thread.run_sync(target_conn.recv)
            walls["machine_baseline"] = _machine_cpu()
            walls["honest_cpu_baseline"] = time.process_time()
            await trio.sleep_until(phases[1])
            walls["flood_start"] = time.time()
            walls["machine_flood"] = _machine_cpu()
            walls["honest_cpu_flood"] = time.process_time()
            walls["rcvbuf_errors"] = _rcvbuf_errors()
            walls["socket_drops"] = _socket_drops()
            attacker_conn.send("go")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood_at)
            await _honest(contact, args.honest, args.interval, phases, results, walls["ports"])
        walls["flood_end"] = time.time()
        walls["machine_end"] = _machine_cpu()
        walls["honest_cpu_end"] = time.process_time()
        walls["rcvbuf_errors"] = _rcvbuf_errors() - walls["rcvbuf_errors"]
        after = _socket_drops()
        before = walls["socket_drops"]
        delta = {a: n - before.get(a, 0) for a, n in after.items()}
        walls["honest_socket_drops"] = sum(delta.get(("127.0.0.1", p), 0) for p in walls["ports"])
        walls["attacker_socket_drops"] = sum(
            n for (host, _), n in delta.items() if host.startswith(ATTACKER_NET) and host != LOCAL
        )

    trio.run(main)
    sent = attacker_conn.recv() if attacker_conn.poll(args.flood + 30) else {}
    target_conn.send("stats")
    stats = target_conn.recv()
    target_conn.send("stop")
    for proc in (attacker, target):
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    _report(args, results, sent, stats, walls, result)


class _Suffixed:
    """A result whose metric names all end in one suffix (one flood case)."""

    def __init__(self, result: BenchResult, suffix: str) -> None:
        self.result = result
        self.suffix = suffix

    def add(self, metric: str, value: float, target: Target | None = None) -> None:
        self.result.add(metric + self.suffix, value, target)

    def add_rate(
        self, metric: str, successes: int, trials: int, target: float | None = None
    ) -> None:
        self.result.add_rate(metric + self.suffix, successes, trials, target)


def _report(
    args: argparse.Namespace,
    results: list[list[Any]],
    sent: dict[str, int],
    stats: dict[str, Any],
    walls: dict[str, Any],
    result: _Suffixed,
) -> None:
    base = [x for _, x in results[1] if x is not None]
    flood = [x for _, x in results[2] if x is not None]
    base_ms, flood_ms = median(base) * 1e3, median(flood) * 1e3
    result.add("honest_latency_ms_baseline", round(base_ms, 3))
    result.add("honest_latency_ms_flood", round(flood_ms, 3))
    result.add("honest_latency_p90_ms_flood", round(percentile(flood, 90) * 1e3, 3))
    result.add("honest_latency_ratio", round(flood_ms / base_ms, 3), Target("<=", 2.0))
    result.add("honest_requests_baseline", len(results[1]))
    result.add("honest_requests_flood", len(results[2]))
    failed = sum(1 for _, x in results[2] if x is None)
    result.add("honest_failed_flood", failed, Target("==", 0))
    result.add_rate("honest_success_flood", len(results[2]) - failed, len(results[2]))
    start, end = walls["flood_start"], walls["flood_end"]
    # The flood's first seconds apart: authenticated requests over the
    # attacker's sessions are served until the DHT bans each identity.
    early = [x for t, x in results[2] if t < start + EARLY]
    result.add("honest_failed_flood_first_2s", sum(1 for x in early if x is None))
    late = [x for t, x in results[2] if t >= start + EARLY and x is not None]
    if late:
        result.add("honest_latency_ratio_after_2s", round(median(late) * 1e3 / base_ms, 3))
    fills = [fill for t, _, _, fill in stats["rss"] if start <= t <= end]
    if fills:
        result.add("target_rx_queue_max_fill_flood", round(max(fills), 3))
        full = sum(1 for f in fills if f >= 0.9) / len(fills) * (end - start)
        result.add("target_rx_queue_full_s_flood", round(full, 2))
    before = [rss for t, rss, _, _ in stats["rss"] if t < start]
    during = [rss for t, rss, _, _ in stats["rss"] if start <= t <= end]
    growth = (max(during) - before[-1]) if before and during else float("nan")
    result.add("memory_growth_mb", round(growth, 2), Target("<=", 50.0))
    result.add("target_rss_mb_before", round(before[-1], 1) if before else float("nan"))
    total_sent = sum(sent.get(kind, 0) for kind in ("garbage", "handshake", "rpc"))
    result.add("attacker_sent", total_sent)
    result.add("attacker_rate_achieved", round(total_sent / args.flood))
    for kind in ("garbage", "handshake", "rpc"):
        result.add(f"attacker_sent_{kind}", sent.get(kind, 0))
    received = stats["datagrams_received"] - walls["stats_before"]["datagrams_received"]
    result.add("target_datagrams_received", received)
    result.add("target_received_per_s", round(received / (end - start)))
    # CPU the target spent per datagram during the flood: what the machine's
    # other load does not change (its inverse is the rate one core can absorb).
    window = [(t, c) for t, _, c, _ in stats["rss"] if start <= t <= end]
    if len(window) >= 2 and received:
        span = window[-1][0] - window[0][0]
        cpu = window[-1][1] - window[0][1]
        result.add("target_cpu_share_flood", round(cpu / span, 3))
        # (datagrams in the sampled span, assuming an even flow over the flood)
        per = cpu / (received * span / (end - start))
        result.add("target_cpu_us_per_datagram", round(per * 1e6, 2))
    # Whose CPU an honest request waits for (shares of one core; 2.0 = both
    # cores of a 2-core machine busy).
    result.add("attacker_cpu_share_flood", round(sent.get("cpu_s", math.nan) / args.flood, 3))
    honest_cpu = walls["honest_cpu_end"] - walls["honest_cpu_flood"]
    result.add("honest_cpu_share_flood", round(honest_cpu / (end - start), 3))
    for phase, (a, b) in {
        "baseline": (walls["machine_baseline"], walls["machine_flood"]),
        "flood": (walls["machine_flood"], walls["machine_end"]),
    }.items():
        cores = (b[0] - a[0]) / (b[1] - a[1]) * (os.cpu_count() or 1)
        result.add(f"machine_busy_cores_{phase}", round(cores, 2))
    kernel = stats["transport"].get("datagrams_dropped_in_kernel", 0) - walls["stats_before"][
        "transport"
    ].get("datagrams_dropped_in_kernel", 0)
    result.add("target_dropped_in_kernel", kernel)
    result.add("target_dropped_in_kernel_per_s", round(kernel / (end - start)))
    result.add("netns_rcvbuf_errors_flood", walls["rcvbuf_errors"])
    # Honest datagrams lost for a full buffer at the honest peers (the target's
    # are in target_dropped_in_kernel), and the attacker's unread replies.
    result.add("honest_sockets_dropped_in_kernel_flood", walls["honest_socket_drops"])
    result.add("attacker_sockets_dropped_in_kernel_flood", walls["attacker_socket_drops"])
    result.add("target_kernel_filter_builds", stats["transport"].get("kernel_filter_builds", 0))
    drops_before = walls["stats_before"]["drops"]
    drops = {
        k: v - drops_before.get(k, 0)
        for k, v in stats["drops"].items()
        if v - drops_before.get(k, 0)
    }
    for reason, count in sorted(drops.items(), key=lambda kv: -kv[1]):
        result.add(f"drop.{reason}", count)
    result.add("target_rpcs_answered_flood", _answered(stats) - _answered(walls["stats_before"]))


def _answered(stats: dict[str, Any]) -> int:
    return (
        int(sum(stats["rpcs_received"].values()))
        if isinstance(stats["rpcs_received"], dict)
        else int(stats["rpcs_received"])
    )
