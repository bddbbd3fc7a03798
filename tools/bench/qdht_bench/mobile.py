"""``qdht-bench mobile``: what an idle client node costs, and how fast it is back after suspend.

Three processes on loopback UDP: a ``--nodes`` network (one process, one
UDP socket per node, a value stored), an idle *client* (client mode, the
phone) and, as the baseline, an idle *serving* node joined to the same
network, measured over the same ``--idle`` seconds after both did one get.
For each: wake-ups per second of the whole process (context switches of
all its threads, from ``/proc``; an idle process only switches when
something wakes it), event-loop wake-ups (trio's I/O waits that returned),
bytes per second sent and received, resident memory (VmRSS, VmHWM).

Then the client is "suspended": its clock jumps ``--jump`` seconds (every
session key it holds expires, as after a night in a pocket) and its socket
moves to a new port (a new network: peers see a new address).  The
``resume_to_get_s`` figure is the time from there to the first successful
get, which needs new handshakes from the new address.  Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from pathlib import Path
from typing import Any, Final

import attrs
import trio

from qdht import Config, open_node
from qdht.identity import Identity
from qdht.transport import UdpTransport
from qdht.wire import Contact
from qdht_bench._common import BenchResult, Target

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION: Final = "idle client in a loopback network: wake-ups/s, B/s, RSS, resume→get"
DIFFICULTY: Final = 0
VALUE: Final = b"what the phone asks for"
#: Seconds after the warm-up get before the idle window opens (handshakes settle).
SETTLE: Final = 3.0
BOOTSTRAP_CONCURRENCY: Final = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=50, help="nodes of the network (default 50)")
    parser.add_argument("--idle", type=float, default=60.0, help="idle window, seconds")
    parser.add_argument("--jump", type=float, default=600.0, help="clock jump of the suspend, s")
    parser.add_argument(
        "--quick", action="store_true", help="20 nodes, 10 s idle (a smoke run, not a measurement)"
    )


class JumpClock(trio.abc.Clock):
    """Trio's monotonic clock plus an offset that :meth:`jump` moves forward (a suspend)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return time.perf_counter() + self.offset

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return max(0.0, deadline - self.current_time())

    def jump(self, seconds: float) -> None:
        self.offset += seconds


class LoopWakeups(trio.abc.Instrument):
    """How often trio's event loop came back from waiting for I/O or a timer."""

    def __init__(self) -> None:
        self.count = 0

    def after_io_wait(self, timeout: float) -> None:
        if timeout > 0:
            self.count += 1


def _context_switches() -> int:
    """Voluntary and involuntary context switches of every thread of this process."""
    total = 0
    for status in Path("/proc/self/task").glob("*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue  # a thread that just ended
        for line in text.splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split()[1])
    return total


def _memory_kb() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0])
    return fields


# -- the network process ------------------------------------------------------------


async def _network(conn: Any, n: int) -> None:
    config = Config(listen=("udp://127.0.0.1:0",), puzzle_difficulty=DIFFICULTY)
    async with trio.open_nursery() as nursery:
        nodes: list[Any] = []

        async def start(ready: trio.Event | None = None) -> None:
            identity = Identity.generate(DIFFICULTY)
            async with open_node(attrs.evolve(config, identity=identity)) as node:
                if nodes:
                    await node.bootstrap([nodes[0].contact])
                nodes.append(node)
                if ready is not None:
                    ready.set()
                await trio.sleep_forever()

        first = trio.Event()
        nursery.start_soon(start, first)
        await first.wait()
        limiter = trio.CapacityLimiter(BOOTSTRAP_CONCURRENCY)

        async def join() -> None:
            async with limiter:
                ready = trio.Event()
                nursery.start_soon(start, ready)
                await ready.wait()

        async with trio.open_nursery() as joins:
            for _ in range(n - 1):
                joins.start_soon(join)
        key = await nodes[1].put(VALUE)
        contacts = [node.contact.to_uri() for node in nodes[:4]]
        conn.send((contacts, key))
        await trio.to_thread.run_sync(conn.recv)  # "stop"
        nursery.cancel_scope.cancel()


def _network_main(conn: Any, n: int) -> None:
    trio.run(_network, conn, n)


# -- the measured nodes ------------------------------------------------------------


async def _idle_node(
    conn: Any, contacts: list[str], key: bytes, idle: float, jump: float, client: bool
) -> None:
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, JumpClock)
    config = Config(
        listen=("udp://127.0.0.1:0",),
        puzzle_difficulty=DIFFICULTY,
        client_mode=client,
        identity=Identity.generate(DIFFICULTY),
    )
    async with open_node(config) as node:
        await node.bootstrap([Contact.from_uri(uri) for uri in contacts])
        if await node.get(key) != VALUE:
            raise RuntimeError("the warm-up get failed")
        await trio.sleep(SETTLE)
        loop = LoopWakeups()
        trio.lowlevel.add_instrument(loop)
        before, switches, started = node.stats(), _context_switches(), time.perf_counter()
        await trio.sleep(idle)
        elapsed = time.perf_counter() - started
        switches = _context_switches() - switches
        trio.lowlevel.remove_instrument(loop)
        after = node.stats()
        result: dict[str, float] = {
            "wakeups_per_s": switches / elapsed,
            "loop_wakeups_per_s": loop.count / elapsed,
            "bytes_sent_per_s": (after["bytes_sent"] - before["bytes_sent"]) / elapsed,
            "bytes_received_per_s": (after["bytes_received"] - before["bytes_received"]) / elapsed,
            **{k.lower() + "_mb": v / 1024 for k, v in _memory_kb().items()},
        }
        if client:
            clock.jump(jump)
            transport = node.transport
            assert isinstance(transport, UdpTransport)
            transport.rebind()
            resumed = time.perf_counter()
            with trio.fail_after(60):
                value = await node.get(key)
            result["resume_to_get_s"] = time.perf_counter() - resumed
            result["resume_get_ok"] = float(value == VALUE)
        conn.send(result)


def _idle_main(
    conn: Any, contacts: list[str], key: bytes, idle: float, jump: float, client: bool
) -> None:
    trio.run(_idle_node, conn, contacts, key, idle, jump, client, clock=JumpClock())


def run(args: argparse.Namespace) -> BenchResult:
    nodes, idle = (20, 10.0) if args.quick else (args.nodes, args.idle)
    ctx = multiprocessing.get_context("spawn")
    net_conn, net_child = ctx.Pipe()
    network = ctx.Process(target=_network_main, args=(net_child, nodes), daemon=True)
    network.start()
    try:
        if not net_conn.poll(600):
            raise RuntimeError("the network did not start")
        contacts, key = net_conn.recv()
        pipes, procs = [], []
        for client in (True, False):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=_idle_main,
                args=(theirs, contacts, key, idle, args.jump, client),
                daemon=True,
            )
            proc.start()
            pipes.append(mine)
            procs.append(proc)
        figures = []
        for pipe in pipes:
            if not pipe.poll(idle + 300):
                raise RuntimeError("an idle node did not report")
            figures.append(pipe.recv())
        for proc in procs:
            proc.join(30)
        client, serving = figures
    finally:
        net_conn.send("stop")
        network.join(30)
        if network.is_alive():
            network.kill()
    result = BenchResult("mobile")
    result.add("client_wakeups_per_s", client["wakeups_per_s"], Target("<=", 1.0))
    result.add("client_loop_wakeups_per_s", client["loop_wakeups_per_s"])
    result.add("client_bytes_sent_per_s", client["bytes_sent_per_s"], Target("<=", 100.0))
    result.add("client_bytes_received_per_s", client["bytes_received_per_s"], Target("<=", 100.0))
    result.add("client_rss_mb", client["vmrss_mb"], Target("<=", 40.0))
    result.add("client_peak_rss_mb", client["vmhwm_mb"])
    # Private heap vs mapped files (libpython, OpenSSL, extension modules, code).
    result.add("client_rss_anon_mb", client["rssanon_mb"])
    result.add("client_rss_file_mb", client["rssfile_mb"])
    result.add("resume_to_get_s", client["resume_to_get_s"], Target("<=", 2.0))
    result.add("resume_get_ok", client["resume_get_ok"], Target("==", 1.0))
    result.add("serving_wakeups_per_s", serving["wakeups_per_s"])
    result.add("serving_bytes_sent_per_s", serving["bytes_sent_per_s"])
    result.add("serving_bytes_received_per_s", serving["bytes_received_per_s"])
    result.add("serving_rss_mb", serving["vmrss_mb"])
    if serving["wakeups_per_s"] > 0:
        result.add("wakeups_ratio_to_serving", client["wakeups_per_s"] / serving["wakeups_per_s"])
    result.notes.append(
        f"{nodes} nodes on loopback UDP; idle window {idle:g} s after one get; "
        f"suspend: clock +{args.jump:g} s and a new UDP port"
    )
    result.notes.append("baseline: a serving node (not client mode) idle in the same network")
    return result
