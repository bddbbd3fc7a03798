"""``qdht-bench mobile``'s instruments: the suspend clock and the process counters."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import trio
import trio.testing
from qdht_bench import mobile

import qdht


def test_a_clock_jump_makes_every_timer_due_at_once() -> None:
    clock = mobile.JumpClock()

    async def main() -> tuple[float, float]:
        start = trio.current_time()
        woke = trio.Event()

        async def night_timer() -> None:
            await trio.sleep_until(start + 3600)
            woke.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(night_timer)
            await trio.testing.wait_all_tasks_blocked()
            wall = time.perf_counter()
            clock.jump(3600)
            await trio.lowlevel.checkpoint()
            nursery.cancel_scope.deadline = trio.current_time() + 5
            await woke.wait()
            return trio.current_time() - start, time.perf_counter() - wall

    simulated, wall = trio.run(main, clock=clock)
    assert simulated >= 3600
    assert wall < 5


def test_the_loop_counter_counts_waits_that_returned() -> None:
    loop = mobile.LoopWakeups()

    async def main() -> None:
        trio.lowlevel.add_instrument(loop)
        for _ in range(3):
            await trio.sleep(0.01)
        trio.lowlevel.remove_instrument(loop)

    trio.run(main)
    assert loop.count >= 3  # one per sleep (more if a wait returned early)
    assert mobile.context_switches() > 0


def test_the_bench_measures_compiled_bytecode_as_an_installed_package_has_it() -> None:
    mobile.compile_bytecode()
    sources = list(Path(qdht.__file__).parent.rglob("*.py"))
    assert all(Path(importlib.util.cache_from_source(str(path))).exists() for path in sources)
    assert mobile.compile_bytecode() == 0  # nothing left to compile
