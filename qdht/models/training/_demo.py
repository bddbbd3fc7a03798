"""``qdht train demo``'s engine: N simulated devices train on digits in memory.

:func:`run_demo` runs the real round cores (signed announcements, Poisson
self-sampling, DP-FedAvg with the dp-accounting accountant) over devices
that each hold a Dirichlet(0.5) share of scikit-learn's digits, and returns
the test accuracy and epsilon after every round; :func:`plot_demo` draws
both against rounds into a PNG (the ``plot`` extra, matplotlib).  The CLI
adds the progress display.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np

from qdht.errors import ConfigError
from qdht.models.training._data import load_digits_split, split_dirichlet, split_iid
from qdht.models.training._round import RoundParams
from qdht.models.training._simulation import run_federated
from qdht.models.training._trainer import SoftmaxRegression

__all__ = ["DemoResult", "plot_demo", "run_demo"]


@attrs.frozen
class DemoResult:
    """Per-round test accuracy, epsilon (inf without noise) and participants."""

    devices: int
    accuracy: list[float]
    epsilon: list[float]
    participants: list[int]
    delta: float


def run_demo(
    devices: int = 20,
    rounds: int = 30,
    *,
    q: float = 0.5,
    noise: float = 1.0,
    clip: float = 1.0,
    split: str = "dirichlet",
    secagg: bool = False,
    dropout: float = 0.0,
    seed: int = 0,
    progress: Callable[[int, float, float], None] | None = None,
) -> DemoResult:
    """Train for ``rounds`` rounds; ``progress(round, accuracy, epsilon)`` after each.

    With ``secagg`` the updates go through SecAgg+ (devices add the DP noise)
    and a ``dropout`` share of each cohort goes silent mid-protocol.
    """
    if not 2 <= devices <= 1347:
        raise ConfigError("devices must be in 2..1347 (the digits training set has 1347 rows)")
    if rounds < 1:
        raise ConfigError("rounds must be positive")
    data = load_digits_split(seed)
    rng = np.random.default_rng(seed)
    if split == "dirichlet":
        parts = split_dirichlet(data.y_train, devices, rng, 0.5)
    elif split == "iid":
        parts = split_iid(len(data.y_train), devices, rng)
    else:
        raise ConfigError(f"split must be 'dirichlet' or 'iid', got {split!r}")
    # Half the expected cohort must answer: with SecAgg each device then adds
    # noise of std zS/sqrt(min), and any admissible sum carries at least zS.
    minimum = max(2, round(0.5 * q * devices))
    params = RoundParams(
        clip=clip,
        noise=noise if clip > 0 else 0.0,
        q=q,
        secagg=secagg,
        min_participants=minimum,
    )
    run = run_federated(
        data,
        SoftmaxRegression(64, 10),
        parts,
        params,
        rounds,
        seed=seed,
        dropout=dropout,
        progress=progress,
    )
    return DemoResult(devices, run.accuracy, run.epsilon, run.participants, 1e-5)


def plot_demo(result: DemoResult, path: str | Path) -> Path:
    """Write a PNG of accuracy and epsilon against rounds; return its path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - plot is part of the test extra
        raise ConfigError("plotting needs matplotlib: pip install 'qdht[plot]'") from exc
    out = Path(path)
    rounds = list(range(1, len(result.accuracy) + 1))
    fig, left = plt.subplots(figsize=(7, 4))
    left.plot(rounds, result.accuracy, color="tab:blue", marker="o", markersize=3)
    left.set_xlabel("round")
    left.set_ylabel("test accuracy", color="tab:blue")
    left.set_ylim(0, 1)
    finite = [e if math.isfinite(e) else float("nan") for e in result.epsilon]
    if any(math.isfinite(e) for e in finite):
        right = left.twinx()
        right.plot(rounds, finite, color="tab:red")
        right.set_ylabel(f"epsilon (delta = {result.delta:g})", color="tab:red")
    left.set_title(f"qdht federated training: {result.devices} devices on digits")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
