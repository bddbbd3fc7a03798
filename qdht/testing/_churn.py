"""Churn schedules: nodes leaving and joining a simulated network over time.

A :class:`ChurnSchedule` is a plain, sorted list of :class:`ChurnEvent` s
(simulated seconds from the start of the run, ``"leave"`` or ``"join"``, how
many nodes).  It says *when* and *how many*; which nodes leave is chosen by
the network that runs it, from its own seeded generator, so the same seed
replays the same run.  Both simulation levels run the same schedules:
:meth:`qdht.testing.SimNetwork.run_churn` (full-stack nodes under Trio) and
:meth:`qdht.testing.CoreNetwork.run_churn` (DHT cores in a discrete-event loop).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
from typing import Final, Literal

import attrs

from qdht.errors import ConfigError

__all__ = ["ChurnEvent", "ChurnSchedule", "SessionLengths"]

#: Weibull shape of node session lengths: Stutzbach & Rejaie, "Understanding
#: Churn in Peer-to-Peer Networks" (IMC 2006), fit session lengths in deployed
#: networks (Kad, Gnutella, BitTorrent) with Weibull shapes 0.34 to 0.59 (heavy
#: tailed: most sessions last minutes, a few last days); 0.5 is in that range.
DEFAULT_SESSION_SHAPE: Final = 0.5

#: Most events one schedule may hold (a generator bug must not eat the memory).
MAX_CHURN_EVENTS: Final = 1_000_000

ChurnAction = Literal["leave", "join"]


def _finite(value: object) -> bool:
    """A finite number >= 0 (not a bool)."""
    return type(value) in (int, float) and 0 <= value < math.inf  # type: ignore[operator]


def _check_at(_: object, __: object, value: float) -> None:
    if not _finite(value):
        raise ConfigError(f"at must be a finite number of seconds >= 0, got {value!r}")


def _check_action(_: object, __: object, value: str) -> None:
    if value not in ("leave", "join"):
        raise ConfigError(f"action must be 'leave' or 'join', got {value!r}")


def _check_count(_: object, __: object, value: int) -> None:
    if type(value) is not int or value < 1:
        raise ConfigError(f"count must be a positive integer, got {value!r}")


@attrs.frozen(order=True)
class ChurnEvent:
    """At ``at`` seconds into the run, ``count`` nodes ``leave`` (are killed) or ``join``."""

    at: float = attrs.field(validator=_check_at)
    action: ChurnAction = attrs.field(validator=_check_action)
    count: int = attrs.field(default=1, validator=_check_count)


def _sorted_events(events: Iterable[ChurnEvent]) -> tuple[ChurnEvent, ...]:
    events = tuple(events)
    for event in events:
        if not isinstance(event, ChurnEvent):
            raise ConfigError(f"events must be ChurnEvent objects, got {event!r}")
    return tuple(sorted(events))


@attrs.frozen
class ChurnSchedule:
    """Leave and join events over simulated time, in time order."""

    events: tuple[ChurnEvent, ...] = attrs.field(converter=_sorted_events)

    def __attrs_post_init__(self) -> None:
        if len(self.events) > MAX_CHURN_EVENTS:
            raise ConfigError(f"a churn schedule holds at most {MAX_CHURN_EVENTS} events")

    def __iter__(self) -> Iterator[ChurnEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    @property
    def duration(self) -> float:
        """When the last event happens (0 for an empty schedule)."""
        return self.events[-1].at if self.events else 0.0

    @property
    def leaves(self) -> int:
        return sum(e.count for e in self.events if e.action == "leave")

    @property
    def joins(self) -> int:
        return sum(e.count for e in self.events if e.action == "join")

    @classmethod
    def explicit(
        cls, events: Iterable[tuple[float, ChurnAction] | tuple[float, ChurnAction, int]]
    ) -> ChurnSchedule:
        """From ``(at, action)`` or ``(at, action, count)`` tuples."""
        return cls(ChurnEvent(*event) for event in events)

    @classmethod
    def poisson(
        cls,
        rate: float,
        duration: float,
        *,
        seed: int,
        join_rate: float | None = None,
    ) -> ChurnSchedule:
        """Leaves as a Poisson process of ``rate`` per second for ``duration`` seconds,
        and joins as another of ``join_rate`` (default: the same rate, so the network
        keeps its size on average)."""
        if join_rate is None:
            join_rate = rate
        for name, value in (("rate", rate), ("duration", duration), ("join_rate", join_rate)):
            if not _finite(value):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if (rate + join_rate) * duration > MAX_CHURN_EVENTS:
            raise ConfigError(f"a churn schedule holds at most {MAX_CHURN_EVENTS} events")
        rng = random.Random(seed)
        events: list[ChurnEvent] = []
        for action, r in (("leave", rate), ("join", join_rate)):
            if r <= 0:
                continue
            t = rng.expovariate(r)
            while t < duration:
                events.append(ChurnEvent(t, action))  # type: ignore[arg-type]
                t += rng.expovariate(r)
        return cls(events)

    @classmethod
    def kill_fraction(cls, fraction: float, nodes: int, *, at: float = 0.0) -> ChurnSchedule:
        """``fraction`` of ``nodes`` leave at once at ``at`` (the "30 % killed" case)."""
        if not _finite(fraction) or fraction > 1:
            raise ConfigError(f"fraction must be in [0, 1], got {fraction!r}")
        count = int(nodes * fraction)
        return cls([ChurnEvent(at, "leave", count)] if count else [])


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (_finite(value) and value > 0):
        raise ConfigError(f"{attribute.name} must be a finite number > 0, got {value!r}")


@attrs.frozen
class SessionLengths:
    """How long a node stays online: Weibull with ``mean`` seconds and ``shape``.

    The model of deployed DHTs (see ``DEFAULT_SESSION_SHAPE``): a shape below 1
    is heavy tailed, so a network is a stable core of long-lived nodes and a
    fringe that turns over fast.  With every departure replaced by an arrival
    the population stays put, and ``1 / mean`` of it leaves per second
    (:meth:`for_hourly_churn`).
    """

    mean: float = attrs.field(validator=_positive)
    shape: float = attrs.field(default=DEFAULT_SESSION_SHAPE, validator=_positive)

    @classmethod
    def for_hourly_churn(
        cls, fraction: float, *, shape: float = DEFAULT_SESSION_SHAPE
    ) -> SessionLengths:
        """Sessions under which ``fraction`` of a stable population leaves per hour."""
        if not (_finite(fraction) and fraction > 0):
            raise ConfigError(f"fraction must be a finite number > 0, got {fraction!r}")
        return cls(3600.0 / fraction, shape)

    @property
    def scale(self) -> float:
        """The Weibull scale that gives the mean: mean / Γ(1 + 1/shape)."""
        return self.mean / math.gamma(1 + 1 / self.shape)

    def draw(self, rng: random.Random) -> float:
        """A new node's whole session."""
        return rng.weibullvariate(self.scale, self.shape)

    def draw_remaining(self, rng: random.Random) -> float:
        """What is left of the session of a node found online at a random moment.

        Not :meth:`draw`: a node seen online is more likely in a long session
        (length bias), so its session is drawn with density ∝ x·f(x) — for a
        Weibull, scale · G^(1/shape) with G ~ Gamma(1 + 1/shape) — and a uniform
        part of it is already over.  Starting a simulation this way puts it in
        the steady state at once, with every node eligible to leave.
        """
        whole: float = self.scale * rng.gammavariate(1 + 1 / self.shape, 1.0) ** (1 / self.shape)
        return whole * rng.random()
