"""The PyTorch adapter: any ``torch.nn.Module`` classifier behind the trainer interface.

Optional (the ``torch`` extra): importing :mod:`qdht.models.training` never
imports torch; ``qdht.models.training.TorchTrainer`` does, on first use.  The
parameters cross the interface as the same flat float64 vector as the NumPy
trainers' (``parameters_to_vector`` order), so clipping, compression, SecAgg
and aggregation do not know which framework trained the model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from qdht.models.training._trainer import (
    Params,
    TrainingConfig,
    check_data,
    check_params,
)

__all__ = ["TorchTrainer"]


class TorchTrainer:
    """Wraps a module factory (logits out) as a :class:`~qdht.models.training.Trainer`."""

    def __init__(
        self, module_factory: Callable[[], torch.nn.Module], n_features: int, n_classes: int
    ) -> None:
        self.factory = module_factory
        self.module = module_factory()
        self.n_features = n_features
        self.n_classes = n_classes
        self._size = int(sum(p.numel() for p in self.module.parameters()))

    @property
    def num_params(self) -> int:
        return self._size

    def init_params(self, rng: np.random.Generator) -> Params:
        torch.manual_seed(int(rng.integers(2**31)))
        fresh = self.factory()
        return np.asarray(parameters_to_vector(fresh.parameters()).detach().double().numpy())

    def validate(self, params: object, x: object | None = None, y: object | None = None) -> Params:
        checked = check_params(params, self._size)
        if x is not None or y is not None:
            check_data(x, y, self.n_features, self.n_classes)
        return checked

    def _load(self, params: Params) -> None:
        with torch.no_grad():
            vector_to_parameters(torch.from_numpy(params).float(), self.module.parameters())

    def fit(
        self,
        params: Params,
        x: NDArray[np.floating],
        y: NDArray[np.integer],
        config: TrainingConfig,
        rng: np.random.Generator,
    ) -> Params:
        self._load(self.validate(params, x, y))
        self.module.train()
        optimiser = torch.optim.SGD(self.module.parameters(), lr=config.lr, weight_decay=config.l2)
        xs = torch.from_numpy(np.asarray(x, dtype=np.float32))
        ys = torch.from_numpy(np.asarray(y, dtype=np.int64))
        for _ in range(config.epochs):
            order = torch.from_numpy(rng.permutation(len(ys)))
            for start in range(0, len(ys), config.batch_size):
                batch = order[start : start + config.batch_size]
                optimiser.zero_grad()
                loss = torch.nn.functional.cross_entropy(self.module(xs[batch]), ys[batch])
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
        vector = parameters_to_vector(self.module.parameters()).detach().double().numpy()
        return np.asarray(vector)

    def predict(self, params: Params, x: NDArray[np.floating]) -> NDArray[np.int64]:
        self._load(params)
        self.module.eval()
        with torch.no_grad():
            logits = self.module(torch.from_numpy(np.asarray(x, dtype=np.float32)))
        return np.asarray(logits.argmax(dim=1).numpy(), dtype=np.int64)

    def accuracy(self, params: Params, x: NDArray[np.floating], y: NDArray[np.integer]) -> float:
        if len(y) == 0:
            return float("nan")
        return float(np.mean(self.predict(params, x) == y))
