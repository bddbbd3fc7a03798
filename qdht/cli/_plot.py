"""``qdht demo --plot out.png``: the distributions people look at, drawn with matplotlib.

matplotlib is the optional ``plot`` extra; it is imported only when a plot
is asked for, with the Agg backend (no display needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qdht.cli._common import CommandError

__all__ = ["plot_demo", "require_matplotlib"]


def require_matplotlib() -> None:
    """Fail before any work when a plot is asked for and matplotlib is missing."""
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise CommandError("--plot needs matplotlib (pip install 'qdht[plot]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_demo(operations: Sequence[Any], title: str, path: Path) -> None:
    """Latency (histogram and CDF), hops and RPCs per operation kind, in one PNG.

    ``operations`` have ``name``, ``latencies`` (seconds), ``hops`` and ``rpcs``.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), layout="constrained")
    (hist, cdf), (hops, rpcs) = axes
    for op in operations:
        ms = sorted(1000 * t for t in op.latencies)
        if not ms:
            continue
        hist.hist(ms, bins=30, alpha=0.55, label=f"{op.name} (n={len(ms)})")
        cdf.plot(ms, [(i + 1) / len(ms) for i in range(len(ms))], label=op.name)
    hist.set(title="lookup latency", xlabel="ms", ylabel="operations")
    cdf.set(title="latency CDF", xlabel="ms", ylabel="fraction of operations", ylim=(0, 1.02))
    with_hops = [op for op in operations if op.hops]
    top = max((max(op.hops) for op in with_hops), default=1)
    bins = [b - 0.5 for b in range(1, top + 2)]
    hops.hist([op.hops for op in with_hops], bins=bins, label=[op.name for op in with_hops])
    hops.set_xticks(range(1, top + 1))
    hops.set(title="hops per lookup", xlabel="hops", ylabel="operations")
    with_rpcs = [op for op in operations if op.rpcs]
    rpcs.boxplot([op.rpcs for op in with_rpcs], tick_labels=[op.name for op in with_rpcs])
    rpcs.set(title="RPCs per lookup", ylabel="RPCs")
    for ax in (hist, cdf, hops):
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
