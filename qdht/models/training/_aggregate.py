"""Aggregators: how a round's accepted updates become one (14-training.md §5).

Every aggregator takes the updates (flat vectors of one length, already
validated) and their weights (sample counts) and returns one vector.  FedAvg
is the sample-weighted mean; the other three are the Byzantine-robust rules
Flower also ships, written from their papers:

* coordinate-wise median and trimmed mean (Yin et al., ICML 2018): each
  coordinate separately, ignoring weights;
* Krum (Blanchard et al., NeurIPS 2017): the update whose n - f - 2 nearest
  neighbours are closest in squared L2 distance; with ``m > 1`` it is
  Multi-Krum, the mean of the m best-scored updates.

They are pluggable: anything with an ``aggregate(updates, weights)`` method
and a ``name`` works, and :func:`aggregator_by_name` builds the four by the
names a round announcement carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final, Protocol, runtime_checkable

import numpy as np

from qdht.errors import ConfigError
from qdht.models.training._trainer import Params

__all__ = [
    "AGGREGATOR_NAMES",
    "Aggregator",
    "CoordinateMedian",
    "FedAvg",
    "Krum",
    "TrimmedMean",
    "aggregator_by_name",
]


@runtime_checkable
class Aggregator(Protocol):
    """A strategy turning a round's updates into one update."""

    name: ClassVar[str]

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        """One vector from ``updates`` (weights: each update's sample count)."""
        ...


def _stack(updates: Sequence[Params], weights: Sequence[float], minimum: int = 1) -> np.ndarray:
    if len(updates) < minimum:
        raise ConfigError(f"need at least {minimum} updates, got {len(updates)}")
    if len(weights) != len(updates):
        raise ConfigError(f"{len(updates)} updates but {len(weights)} weights")
    if any(u.shape != updates[0].shape or u.ndim != 1 for u in updates):
        raise ConfigError("updates must be flat vectors of one length")
    return np.stack(updates)


class FedAvg:
    """The sample-weighted mean of McMahan et al. 2017."""

    name: ClassVar[str] = "fedavg"

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        stacked = _stack(updates, weights)
        w = np.asarray(weights, dtype=np.float64)
        if np.any(w < 0) or not w.sum() > 0:
            raise ConfigError("weights must be non-negative with a positive sum")
        return np.asarray(w @ stacked / w.sum(), dtype=np.float64)


class CoordinateMedian:
    """The median of each coordinate (robust while fewer than half are Byzantine)."""

    name: ClassVar[str] = "median"

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        return np.asarray(np.median(_stack(updates, weights), axis=0), dtype=np.float64)


class TrimmedMean:
    """Per coordinate, the mean after dropping the ``b`` largest and ``b`` smallest values."""

    name: ClassVar[str] = "trimmed-mean"

    def __init__(self, b: int = 1) -> None:
        if type(b) is not int or b < 0:
            raise ConfigError(f"b must be a non-negative integer, got {b!r}")
        self.b = b

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        stacked = np.sort(_stack(updates, weights, 2 * self.b + 1), axis=0)
        kept = stacked[self.b : len(updates) - self.b]
        return np.asarray(kept.mean(axis=0), dtype=np.float64)


class Krum:
    """Krum (``m = 1``) or Multi-Krum, tolerating ``f`` Byzantine updates (needs n > 2f + 2)."""

    name: ClassVar[str] = "krum"

    def __init__(self, f: int = 1, m: int = 1) -> None:
        if type(f) is not int or f < 0 or type(m) is not int or m < 1:
            raise ConfigError(f"need integers f >= 0 and m >= 1, got f={f!r} m={m!r}")
        self.f = f
        self.m = m

    def scores(self, updates: Sequence[Params]) -> np.ndarray:
        """Each update's Krum score: summed squared distance to its n - f - 2 nearest."""
        stacked = np.stack(updates)
        sq = np.einsum("ij,ij->i", stacked, stacked)
        dist = np.maximum(sq[:, None] + sq[None, :] - 2 * stacked @ stacked.T, 0.0)
        np.fill_diagonal(dist, np.inf)
        nearest = np.sort(dist, axis=1)[:, : len(updates) - self.f - 2]
        return np.asarray(nearest.sum(axis=1))

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        _stack(updates, weights, 2 * self.f + 3)
        best = np.argsort(self.scores(updates), kind="stable")[: self.m]
        return np.asarray(np.mean([updates[i] for i in best], axis=0), dtype=np.float64)


#: The aggregator names a round announcement may carry.
AGGREGATOR_NAMES: Final = ("fedavg", "median", "trimmed-mean", "krum")


def aggregator_by_name(name: str, **params: Any) -> Aggregator:
    """The aggregator called ``name`` (``b`` for trimmed mean, ``f``/``m`` for Krum)."""
    if name == "fedavg":
        return FedAvg(**params)
    if name == "median":
        return CoordinateMedian(**params)
    if name == "trimmed-mean":
        return TrimmedMean(**params)
    if name == "krum":
        return Krum(**params)
    raise ConfigError(f"unknown aggregator {name!r}; known: {', '.join(AGGREGATOR_NAMES)}")
