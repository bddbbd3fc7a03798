"""``qdht-bench NAME --plot out.png``: a benchmark's figures against their targets.

Each metric with a target is drawn as a bar of measured / target on a log
scale (1 is the target line; which side is good follows the target's
operator), the others are listed beside it.  matplotlib is the ``plot``
extra, imported only when a plot is asked for (Agg backend).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from qdht_bench._common import BenchResult

__all__ = ["plot_result", "require_matplotlib"]


def require_matplotlib() -> Any:
    """matplotlib.pyplot with the Agg backend; SystemExit with advice when missing."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("qdht-bench: --plot needs matplotlib (pip install 'qdht[plot]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_result(result: BenchResult, path: Path) -> None:
    """Write the PNG of ``result`` to ``path``."""
    plt = require_matplotlib()
    targeted = [
        (metric, result.metrics[metric], target)
        for metric, target in result.targets.items()
        if metric in result.metrics and not math.isnan(result.metrics[metric])
    ]
    others = [(m, v) for m, v in result.metrics.items() if m not in result.targets]
    height = max(3.0, 0.45 * max(len(targeted), 1) + 1.5)
    fig, (bars, table) = plt.subplots(
        1, 2, figsize=(13, height), width_ratios=(3, 2), layout="constrained"
    )
    if targeted:
        names = [m for m, _, _ in targeted]
        ratios = [max(v, 1e-9) / t.value if t.value else math.nan for _, v, t in targeted]
        colours = ["#3a9d5d" if t.met(v) else "#d0443e" for _, v, t in targeted]
        ypos = range(len(names))
        bars.barh(ypos, ratios, color=colours)
        bars.set_yticks(list(ypos), [f"{m}\n{v:.4g} (target {t})" for m, v, t in targeted])
        bars.axvline(1.0, color="black", linewidth=1)
        bars.set_xscale("log")
        bars.invert_yaxis()
        bars.set(xlabel="measured / target (green: met)", title="against targets")
        bars.grid(alpha=0.3, axis="x")
    else:
        bars.set_axis_off()
    table.set_axis_off()
    rows = [[m, f"{v:.4g}"] for m, v in others[:40]]
    if rows:
        cell = table.table(cellText=rows, colLabels=["metric", "value"], loc="upper center")
        cell.auto_set_font_size(False)
        cell.set_fontsize(8)
    fig.suptitle(f"qdht-bench {result.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
