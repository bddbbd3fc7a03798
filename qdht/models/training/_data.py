"""The evaluation data of fl-notes §3: scikit-learn's digits and its client splits.

Only the demo, the benchmark and the tests use this module; a device trains
on whatever local data its application holds.
"""

from __future__ import annotations

import attrs
import numpy as np
from numpy.typing import NDArray

from qdht.errors import ConfigError

__all__ = ["Dataset", "load_digits_split", "split_dirichlet", "split_iid", "split_shards"]

Indices = list[NDArray[np.int64]]


@attrs.frozen
class Dataset:
    """A train/test split: features scaled to [0, 1], integer labels."""

    x_train: NDArray[np.float64]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.float64]
    y_test: NDArray[np.int64]
    n_classes: int = 10


def load_digits_split(seed: int) -> Dataset:
    """Digits / 16, stratified 75/25 with ``seed`` (1347 train / 450 test rows)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = np.asarray(digits.data, dtype=np.float64) / 16.0
    y = np.asarray(digits.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=seed)
    return Dataset(x_tr, y_tr, x_te, y_te)


def _check(n_clients: int, n: int) -> None:
    if not 1 <= n_clients <= n:
        raise ConfigError(f"n_clients must be in 1..{n}, got {n_clients}")


def split_iid(n: int, n_clients: int, rng: np.random.Generator) -> Indices:
    """Shuffle and deal ``n`` rows into ``n_clients`` near-equal parts."""
    _check(n_clients, n)
    return [np.sort(part) for part in np.array_split(rng.permutation(n), n_clients)]


def split_shards(
    y: NDArray[np.integer], n_clients: int, rng: np.random.Generator, shards_per_client: int = 2
) -> Indices:
    """McMahan et al. 2017's pathological split: sort by label, deal shards of it."""
    _check(n_clients * shards_per_client, len(y))
    order = np.argsort(y, kind="stable")
    shards = np.array_split(order, n_clients * shards_per_client)
    picks = rng.permutation(len(shards))
    return [
        np.sort(np.concatenate([shards[s] for s in picks[i::n_clients]])) for i in range(n_clients)
    ]


def split_dirichlet(
    y: NDArray[np.integer], n_clients: int, rng: np.random.Generator, alpha: float = 0.5
) -> Indices:
    """Label skew: each class is divided among clients in Dirichlet(alpha) proportions.

    A client left without rows gets one from the largest client, so every
    client has data.
    """
    _check(n_clients, len(y))
    parts: list[list[int]] = [[] for _ in range(n_clients)]
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        cuts = (np.cumsum(rng.dirichlet([alpha] * n_clients)) * len(rows)).astype(int)[:-1]
        for client, chunk in enumerate(np.split(rows, cuts)):
            parts[client].extend(int(r) for r in chunk)
    for client in range(n_clients):
        if not parts[client]:
            donor = max(range(n_clients), key=lambda c: len(parts[c]))
            parts[client].append(parts[donor].pop())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
