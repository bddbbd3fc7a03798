"""The measured process of ``qdht-bench mobile``: one idle node, as an app would run it.

Started as ``python -m qdht_bench._mobile_idle ARGS`` so that its memory is
what an app pays: the interpreter, trio and qdht, and none of the bench's own
imports (multiprocessing, pickle, statistics, ...).  It prints one JSON line
with its figures.  Linux only (``/proc``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Final

import trio

from qdht import Config, open_node
from qdht.identity import Identity
from qdht.transport import UdpTransport
from qdht.wire import Contact

__all__ = [
    "DIFFICULTY",
    "SETTLE",
    "VALUE",
    "JumpClock",
    "LoopWakeups",
    "context_switches",
    "memory_kb",
]

DIFFICULTY: Final = 0
VALUE: Final = b"what the phone asks for"
#: Seconds after the warm-up get before the idle window opens (handshakes settle).
SETTLE: Final = 3.0


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


def context_switches() -> int:
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


def memory_kb() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0])
    return fields


async def idle_node(
    contacts: list[str], key: bytes, idle: float, jump: float, client: bool
) -> dict[str, float]:
    """Join, get once, idle ``idle`` s measuring; a client then suspends and gets again."""
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
        before, switches, started = node.stats(), context_switches(), time.perf_counter()
        await trio.sleep(idle)
        elapsed = time.perf_counter() - started
        switches = context_switches() - switches
        trio.lowlevel.remove_instrument(loop)
        after = node.stats()
        result: dict[str, float] = {
            "wakeups_per_s": switches / elapsed,
            "loop_wakeups_per_s": loop.count / elapsed,
            "bytes_sent_per_s": (after["bytes_sent"] - before["bytes_sent"]) / elapsed,
            "bytes_received_per_s": (after["bytes_received"] - before["bytes_received"]) / elapsed,
            **{k.lower() + "_mb": v / 1024 for k, v in memory_kb().items()},
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
        return result


def main(argv: list[str]) -> None:
    """``KEY_HEX IDLE JUMP client|serving CONTACT...``: print the figures as one JSON line."""
    key, idle, jump, role, *contacts = argv
    result = trio.run(
        idle_node,
        contacts,
        bytes.fromhex(key),
        float(idle),
        float(jump),
        role == "client",
        clock=JumpClock(),
    )
    import json  # after the measurement: not part of what the node costs

    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
