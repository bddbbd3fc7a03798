"""What every benchmark shares: metric results, targets, statistics, output."""

from __future__ import annotations

import json
import math
import operator
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

__all__ = ["BenchResult", "Target", "median", "percentile", "render_table", "write_json"]

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
