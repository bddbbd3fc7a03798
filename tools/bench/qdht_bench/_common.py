"""What every benchmark shares: metric results, targets, statistics, output."""

from __future__ import annotations

import json
import math
import operator
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

__all__ = [
    "BenchResult",
    "Target",
    "median",
    "percentile",
    "render_table",
    "trials_needed",
    "wilson_lower",
    "write_json",
]

#: The normal quantile of a two-sided 95 % interval.
Z95 = 1.959963984540054

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
}


@attrs.frozen
class Target:
    """A goal for one metric, such as ``Target("<=", 1.0)``."""

    op: str
    value: float

    def met(self, measured: float) -> bool:
        return _OPS[self.op](measured, self.value)

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@attrs.define
class BenchResult:
    """The flat metric → number result of one benchmark, with its targets."""

    name: str
    metrics: dict[str, float] = attrs.field(factory=dict)
    targets: dict[str, Target] = attrs.field(factory=dict)
    notes: list[str] = attrs.field(factory=list)

    def add(self, metric: str, value: float, target: Target | None = None) -> None:
        self.metrics[metric] = value
        if target is not None:
            self.targets[metric] = target

    def add_rate(
        self, metric: str, successes: int, trials: int, target: float | None = None
    ) -> None:
        """A success rate with its evidence: ``metric`` (the observed fraction),
        ``<metric>_trials`` and ``<metric>_lo95`` (the 95 % Wilson lower bound).

        A ``target`` rate is checked against the lower bound, not the observed
        fraction: 1,000 successes in 1,000 trials support 99.6 %, not 99.9 %
        (that needs :func:`trials_needed` trials without a failure).
        """
        self.add(metric, successes / trials if trials else math.nan)
        self.add(f"{metric}_trials", trials)
        self.add(
            f"{metric}_lo95",
            wilson_lower(successes, trials),
            None if target is None else Target(">=", target),
        )
        if target is not None and trials < trials_needed(target):
            self.notes.append(
                f"{metric}: {trials} trials cannot support >= {target:g} at 95 % "
                f"(needs >= {trials_needed(target):,} trials without a failure)"
            )

    def targets_met(self) -> bool:
        return all(t.met(self.metrics[m]) for m, t in self.targets.items() if m in self.metrics)


def median(values: Sequence[float]) -> float:
    """The median (NaN for no values)."""
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile by the nearest-rank method (NaN for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def wilson_lower(successes: int, trials: int, z: float = Z95) -> float:
    """The lower end of the Wilson score interval for ``successes`` of ``trials``
    (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it over the normal
    approximation, which claims certainty at 100 %).  NaN for no trials."""
    if trials <= 0:
        return math.nan
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in 0..{trials}, got {successes}")
    p = successes / trials
    z2 = z * z
    centre = p + z2 / (2 * trials)
    margin = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, (centre - margin) / (1 + z2 / trials))


def trials_needed(rate: float, z: float = Z95) -> int:
    """The fewest trials whose Wilson lower bound reaches ``rate`` when all succeed
    (all successes give ``n / (n + z²)``, so ``n >= z² · rate / (1 - rate)``)."""
    if not 0 < rate < 1:
        raise ValueError(f"rate must be in (0, 1), got {rate}")
    return math.ceil(z * z * rate / (1 - rate) - 1e-9)


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def render_table(result: BenchResult) -> str:
    """A plain-text table: metric, value, target, whether it is met."""
    rows = [("metric", "value", "target", "met")]
    for metric, value in result.metrics.items():
        target = result.targets.get(metric)
        met = "" if target is None else ("yes" if target.met(value) else "NO")
        rows.append((metric, _fmt(value), "" if target is None else str(target), met))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"== {result.name} =="]
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.rjust(widths[i]) if i == 1 else cell.ljust(widths[i])
                for i, cell in enumerate(row)
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.extend(f"note: {note}" for note in result.notes)
    return "\n".join(lines)


def write_json(result: BenchResult, path: Path) -> None:
    """Write the flat metric → number object (NaN written as null)."""
    data = {k: (None if math.isnan(v) else v) for k, v in result.metrics.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
