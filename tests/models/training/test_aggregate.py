"""Aggregators: FedAvg weighs by samples; median, trimmed mean and Krum resist outliers."""

from __future__ import annotations

import numpy as np
import pytest

from qdht.errors import ConfigError
from qdht.models.training import (
    Aggregator,
    CoordinateMedian,
    FedAvg,
    Krum,
    TrimmedMean,
    aggregator_by_name,
)


def _honest_and_attackers(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    honest = [np.ones(50) + rng.normal(0, 0.1, 50) for _ in range(16)]
    return honest + [-10.0 * u for u in honest[:4]]


def test_fedavg_is_the_sample_weighted_mean() -> None:
    out = FedAvg().aggregate([np.array([0.0, 2.0]), np.array([4.0, 6.0])], [3, 1])
    assert np.allclose(out, [1.0, 3.0])


def test_median_and_trimmed_mean_per_coordinate() -> None:
    ups = [np.array([1.0, 10.0]), np.array([2.0, -5.0]), np.array([100.0, 0.0])]
    assert np.allclose(CoordinateMedian().aggregate(ups, [1, 1, 1]), [2.0, 0.0])
    assert np.allclose(TrimmedMean(b=1).aggregate(ups, [1, 1, 1]), [2.0, 0.0])
    assert np.allclose(TrimmedMean(b=0).aggregate(ups, [1, 1, 1]), [103 / 3, 5 / 3])


@pytest.mark.parametrize(
    "aggregator", [CoordinateMedian(), TrimmedMean(b=4), Krum(f=4)], ids=lambda a: a.name
)
def test_robust_aggregators_ignore_4_of_20_attackers(aggregator: Aggregator) -> None:
    updates = _honest_and_attackers(0)
    out = aggregator.aggregate(updates, [1] * 20)
    assert np.abs(out - 1.0).max() < 0.5  # one honest update at worst (Krum)
    mean = FedAvg().aggregate(updates, [1] * 20)
    assert mean.mean() < -0.5  # the plain mean is dragged to the attackers' side


def test_krum_picks_an_honest_update_and_multikrum_averages() -> None:
    updates = _honest_and_attackers(1)
    krum = Krum(f=4)
    assert np.argmin(krum.scores(updates)) < 16
    chosen = krum.aggregate(updates, [1] * 20)
    assert any(np.array_equal(chosen, u) for u in updates[:16])
    multi = Krum(f=4, m=5).aggregate(updates, [1] * 20)
    assert np.abs(multi - 1.0).max() < 0.1


def test_aggregators_by_name_are_pluggable() -> None:
    for name in ("fedavg", "median", "trimmed-mean", "krum"):
        agg = aggregator_by_name(name)
        assert isinstance(agg, Aggregator)
        assert agg.name == name
    assert aggregator_by_name("krum", f=2).f == 2  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="unknown aggregator"):
        aggregator_by_name("mean-of-means")


def test_misuse_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least"):
        FedAvg().aggregate([], [])
    with pytest.raises(ConfigError, match="one length"):
        FedAvg().aggregate([np.zeros(2), np.zeros(3)], [1, 1])
    with pytest.raises(ConfigError, match="weights"):
        FedAvg().aggregate([np.zeros(2)], [1, 1])
    with pytest.raises(ConfigError, match="at least 11"):
        Krum(f=4).aggregate([np.zeros(2)] * 10, [1] * 10)
    with pytest.raises(ConfigError, match="at least 9"):
        TrimmedMean(b=4).aggregate([np.zeros(2)] * 8, [1] * 8)
