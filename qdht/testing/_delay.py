"""A delay line: run callbacks at given Trio times from one scheduler task.

The in-memory network's link latency and the fault injector's delays both
need "deliver this later without blocking the sender".  One task per packet
would cost a task (and a few KiB) per datagram in flight; instead a single
scheduler task sleeps until the earliest deadline in a heap.  It is a Trio
system task started on demand and ended when the line is empty or closed, so
it works under ``MockClock`` (``autojump_clock`` jumps straight to the next
deadline) and leaves nothing behind.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

import trio

from qdht.errors import ConfigError

__all__ = ["DEFAULT_MAX_PENDING", "DelayLine"]

T = TypeVar("T")

#: Most items a delay line holds; more are refused (the caller counts a drop).
DEFAULT_MAX_PENDING: Final = 65536


class DelayLine(Generic[T]):
    """Items due at a Trio time, handed to ``deliver`` in deadline order (FIFO on ties)."""

    def __init__(
        self, deliver: Callable[[T], Awaitable[None]], *, max_pending: int = DEFAULT_MAX_PENDING
    ) -> None:
        if max_pending < 1:
            raise ConfigError(f"max_pending must be positive, got {max_pending!r}")
        self._deliver = deliver
        self._max_pending = max_pending
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()
        self._running = False
        self._sleep: trio.CancelScope | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, at: float, item: T) -> bool:
        """Schedule ``item`` for Trio time ``at``; False if the line is full or closed."""
        if self._closed or len(self._heap) >= self._max_pending:
            return False
        heapq.heappush(self._heap, (at, next(self._seq), item))
        if not self._running:
            self._running = True
            trio.lowlevel.spawn_system_task(self._run, name=f"{self!r}")
        elif self._sleep is not None and at < self._sleep.deadline:
            self._sleep.deadline = at
        return True

    def close(self) -> None:
        """Forget everything pending and stop the scheduler task."""
        self._closed = True
        self._heap.clear()
        if self._sleep is not None:
            self._sleep.cancel()

    async def _run(self) -> None:
        heap = self._heap
        try:
            while heap:
                with trio.CancelScope(deadline=heap[0][0]) as scope:
                    self._sleep = scope
                    await trio.sleep_forever()
                self._sleep = None
                now = trio.current_time()
                while heap and heap[0][0] <= now:
                    _, _, item = heapq.heappop(heap)
                    await self._deliver(item)
        finally:
            self._sleep = None
            self._running = False
