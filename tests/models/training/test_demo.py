"""The demo engine behind ``qdht train demo``: accuracy and epsilon per round, and its plot."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from qdht.errors import ConfigError
from qdht.models.training import plot_demo, run_demo


def test_demo_reports_accuracy_and_epsilon_each_round_and_plots(tmp_path: Path) -> None:
    seen: list[tuple[int, float, float]] = []
    result = run_demo(devices=10, rounds=4, q=1.0, noise=0.5, progress=lambda *a: seen.append(a))
    assert len(result.accuracy) == len(result.epsilon) == 4
    assert [s[0] for s in seen] == [0, 1, 2, 3]
    assert result.accuracy[-1] > 0.5
    assert all(0 < a < b for a, b in zip(result.epsilon, result.epsilon[1:], strict=False))
    png = plot_demo(result, tmp_path / "demo.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_without_noise_has_no_finite_epsilon() -> None:
    result = run_demo(devices=5, rounds=1, noise=0.0, q=1.0)
    assert math.isinf(result.epsilon[0])


def test_demo_with_secagg_and_dropouts_still_learns() -> None:
    result = run_demo(devices=12, rounds=3, q=1.0, noise=0.5, secagg=True, dropout=0.3)
    assert result.accuracy[-1] > 0.5
    assert 3 <= min(result.participants) < 12  # dropouts leave a partial sum, never a hang


def test_demo_arguments_are_checked() -> None:
    with pytest.raises(ConfigError, match="devices"):
        run_demo(devices=1)
    with pytest.raises(ConfigError, match="split"):
        run_demo(split="shards")
