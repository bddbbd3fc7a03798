"""Routes through the mixnet: path selection, hop delays, loop monitoring (§11).

Shared by clients and mixes.  Randomness comes from a ``random.Random``
(``random.SystemRandom()`` by default); tests and simulations pass a seeded
one.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

import attrs

from qdht.mixnet._config import MixnetConfig
from qdht.mixnet._sphinx import MAX_DELAY_MS, PathHop
from qdht.wire import MixEntry

__all__ = [
    "DirectoryView",
    "LoopAlarm",
    "LoopMonitor",
    "Party",
    "draw_delay_ms",
    "select_path",
]


@attrs.frozen
class DirectoryView:
    """The verified mix list of one epoch: what every client builds its paths from."""

    epoch: int
    mixes: tuple[MixEntry, ...]

    def layer(self, index: int, hops: int) -> list[MixEntry]:
        return [m for m in self.mixes if m.layer % hops == index]


def draw_delay_ms(config: MixnetConfig, rng: random.Random) -> int:
    """A hop delay drawn from Exp(μ) in whole milliseconds, capped at ``max_delay_means``."""
    delay = min(rng.expovariate(config.mu), config.mean_delay * config.max_delay_means)
    return min(MAX_DELAY_MS, round(delay * 1000))


def select_path(
    view: DirectoryView,
    config: MixnetConfig,
    rng: random.Random,
    *,
    stratified: bool = False,
    last: MixEntry | None = None,
    exclude: bytes | None = None,
) -> list[PathHop] | None:
    """``config.hops`` mixes with drawn delays, or None if the directory cannot make one.

    Free route: distinct mixes uniformly from the whole list.  Stratified: hop
    ``i`` from layer ``i`` (a mix's ``layer`` modulo the path length).  ``last``
    fixes the final hop (an exit chosen by the caller); ``exclude`` keeps a
    node (a mix routing its own loops) off the path.
    """
    hops = config.hops
    chosen: list[MixEntry] = []
    for i in range(hops):
        if i == hops - 1 and last is not None:
            chosen.append(last)
            break
        pool = view.layer(i, hops) if stratified else list(view.mixes)
        pool = [m for m in pool if m not in chosen and m != last and m.node_id != exclude]
        if not pool:
            return None
        chosen.append(rng.choice(pool))
    return [PathHop(m.node_id, m.key, draw_delay_ms(config, rng)) for m in chosen]


#: Loop latencies a monitor keeps.
LATENCY_SAMPLES: Final = 4096


@attrs.frozen
class LoopAlarm:
    """Too few loops came back: the n-1 attack's signature (Loopix §4.2.1).

    ``raised`` is False when the returned fraction has recovered.
    """

    raised: bool
    returned: int
    judged: int


class LoopMonitor:
    """Counts loops out and back; judges each after ``loop_window`` seconds."""

    def __init__(self, config: MixnetConfig) -> None:
        self._config = config
        self._pending: dict[bytes, float] = {}
        self._order: deque[tuple[float, bytes]] = deque()
        self._judged: deque[tuple[float, bool]] = deque()
        self._returned_ids: set[bytes] = set()
        self.sent = 0
        self.returned = 0
        self.lost = 0
        self.alarmed = False
        #: Seconds from send to return of the latest loops (a path's one-way latency).
        self.latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)

    def sent_loop(self, loop_id: bytes, now: float) -> None:
        self._pending[loop_id] = now
        self._order.append((now, loop_id))
        self.sent += 1

    def returned_loop(self, loop_id: bytes, now: float | None = None) -> bool:
        """Record a loop coming home; False if it is not one of ours (or came twice)."""
        if loop_id not in self._pending or loop_id in self._returned_ids:
            return False
        if now is not None:
            self.latencies.append(now - self._pending[loop_id])
        self._returned_ids.add(loop_id)
        self.returned += 1
        return True

    def is_loop(self, loop_id: bytes) -> bool:
        return loop_id in self._pending

    def judge(self, now: float) -> LoopAlarm | None:
        """Judge loops older than the window; a :class:`LoopAlarm` when the verdict changes."""
        window = self._config.loop_window
        while self._order and self._order[0][0] + window <= now:
            _, loop_id = self._order.popleft()
            del self._pending[loop_id]
            came_back = loop_id in self._returned_ids
            self._returned_ids.discard(loop_id)
            if not came_back:
                self.lost += 1
            self._judged.append((now, came_back))
        while self._judged and self._judged[0][0] + window <= now:
            self._judged.popleft()
        judged = len(self._judged)
        back = sum(1 for _, ok in self._judged if ok)
        if judged < self._config.loop_alarm_min:
            return None
        low = back < self._config.loop_alarm_fraction * judged
        if low != self.alarmed:
            self.alarmed = low
            return LoopAlarm(low, back, judged)
        return None

    def next_judgement(self) -> float | None:
        return self._order[0][0] + self._config.loop_window if self._order else None


E = TypeVar("E")


class Party(Generic[E]):
    """What mixes and clients share: events, counters, drops by reason, loops."""

    def __init__(
        self,
        node_id: bytes,
        config: MixnetConfig,
        rng: Callable[[int], bytes],
        random_source: random.Random | None,
    ) -> None:
        self.node_id = node_id
        self.config = config
        self.geometry = config.geometry
        self._rng = rng
        self._random = random_source or random.SystemRandom()
        self._events: deque[E | LoopAlarm] = deque()
        self._drops: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()
        self._loops = LoopMonitor(config)

    def next_event(self) -> E | LoopAlarm | None:
        """The next event, or None."""
        return self._events.popleft() if self._events else None

    def _drop(self, reason: str) -> None:
        self._drops[reason] += 1

    def _judge_loops(self, now: float) -> None:
        alarm = self._loops.judge(now)
        if alarm is not None:
            self._events.append(alarm)

    def _stats(self, queued: int) -> dict[str, Any]:
        return {
            **dict(self._counts),
            "queued": queued,
            "drops": dict(self._drops),
            "loops_sent": self._loops.sent,
            "loops_lost": self._loops.lost,
            "loop_alarm": self._loops.alarmed,
        }
