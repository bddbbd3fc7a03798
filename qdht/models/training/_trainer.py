"""Local training: the trainer interface and its NumPy models (14-training.md §6).

A model's parameters are one flat ``float64`` vector, so that everything
after local training (clipping, compression, masking, aggregation) works on
vectors and never on framework objects.  A trainer knows how to lay that
vector out as weights, train it for some epochs of minibatch SGD on local
data, and score it.  :meth:`Trainer.validate` is called before any training
starts: a model of the wrong size or with non-finite values, or data of the
wrong shape, fails at once with a clear :class:`~qdht.errors.ConfigError`
instead of deep inside an epoch.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs
import numpy as np
from numpy.typing import NDArray

from qdht.errors import ConfigError

__all__ = [
    "MLP",
    "NumpyTrainer",
    "Params",
    "SoftmaxRegression",
    "Trainer",
    "TrainingConfig",
    "check_data",
    "check_params",
]

#: A model's parameters (or an update to them): one flat float64 vector.
Params = NDArray[np.float64]


@attrs.frozen
class TrainingConfig:
    """How a device trains in one round: the announcement's local hyperparameters."""

    epochs: int = 5
    lr: float = 0.1
    batch_size: int = 10
    l2: float = 1e-4

    def __attrs_post_init__(self) -> None:
        if type(self.epochs) is not int or not 1 <= self.epochs <= 1000:
            raise ConfigError(f"epochs must be an integer in 1..1000, got {self.epochs!r}")
        if not 0 < self.lr <= 100:
            raise ConfigError(f"lr must be in (0, 100], got {self.lr!r}")
        if type(self.batch_size) is not int or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not 0 <= self.l2 < 1:
            raise ConfigError(f"l2 must be in [0, 1), got {self.l2!r}")


def check_params(params: object, size: int, what: str = "params") -> Params:
    """``params`` as a flat float64 vector of ``size`` finite values, or ConfigError."""
    if not isinstance(params, np.ndarray):
        raise ConfigError(f"{what} must be a numpy array, got {type(params).__name__}")
    if params.ndim != 1 or params.shape[0] != size:
        raise ConfigError(f"{what} must have shape ({size},), got {params.shape}")
    if params.dtype != np.float64:
        raise ConfigError(f"{what} must be float64, got {params.dtype}")
    if not np.all(np.isfinite(params)):
        raise ConfigError(f"{what} holds NaN or infinite values")
    return params


def check_data(x: object, y: object, n_features: int, n_classes: int) -> None:
    """Local data must be a finite (n, n_features) matrix and n labels in 0..n_classes-1."""
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != n_features:
        shape = getattr(x, "shape", None)
        raise ConfigError(f"x must be an array of shape (n, {n_features}), got {shape}")
    if not np.issubdtype(x.dtype, np.floating) or not np.all(np.isfinite(x)):
        raise ConfigError("x must hold finite floating-point values")
    if not isinstance(y, np.ndarray) or y.shape != (x.shape[0],):
        raise ConfigError(f"y must be an array of shape ({x.shape[0]},)")
    if not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"y must hold integer labels, got {y.dtype}")
    if y.size and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ConfigError(f"labels must be in 0..{n_classes - 1}")


@runtime_checkable
class Trainer(Protocol):
    """One model architecture: its parameter layout, local training and scoring."""

    n_features: int
    n_classes: int

    @property
    def num_params(self) -> int:
        """Length of the flat parameter vector."""
        ...

    def init_params(self, rng: np.random.Generator) -> Params:
        """Initial parameters (deterministic given ``rng``)."""
        ...

    def validate(self, params: object, x: object | None = None, y: object | None = None) -> Params:
        """Check the model (and local data) before training; ConfigError if unusable."""
        ...

    def fit(
        self,
        params: Params,
        x: NDArray[np.floating],
        y: NDArray[np.integer],
        config: TrainingConfig,
        rng: np.random.Generator,
    ) -> Params:
        """New parameters after ``config.epochs`` epochs of local minibatch SGD."""
        ...

    def predict(self, params: Params, x: NDArray[np.floating]) -> NDArray[np.int64]:
        """The predicted class of each row of ``x``."""
        ...

    def accuracy(self, params: Params, x: NDArray[np.floating], y: NDArray[np.integer]) -> float:
        """Fraction of rows of ``x`` whose predicted class is ``y``."""
        ...


def _softmax_grad(logits: NDArray[np.float64], y: NDArray[np.integer]) -> NDArray[np.float64]:
    """d(mean cross-entropy)/d(logits) for a batch."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    probs[np.arange(len(y)), y] -= 1.0
    return np.asarray(probs / len(y), dtype=np.float64)


class NumpyTrainer:
    """Shared minibatch SGD loop and checks; subclasses give logits and gradients."""

    n_features: int
    n_classes: int

    @property
    def num_params(self) -> int:
        raise NotImplementedError

    def _logits(self, params: Params, x: NDArray[np.floating]) -> NDArray[np.float64]:
        raise NotImplementedError

    def _grad(
        self, params: Params, x: NDArray[np.floating], y: NDArray[np.integer], l2: float
    ) -> Params:
        raise NotImplementedError

    def validate(self, params: object, x: object | None = None, y: object | None = None) -> Params:
        checked = check_params(params, self.num_params)
        if x is not None or y is not None:
            check_data(x, y, self.n_features, self.n_classes)
        return checked

    def fit(
        self,
        params: Params,
        x: NDArray[np.floating],
        y: NDArray[np.integer],
        config: TrainingConfig,
        rng: np.random.Generator,
    ) -> Params:
        w = self.validate(params, x, y).copy()
        n = x.shape[0]
        for _ in range(config.epochs):
            order = rng.permutation(n)
            for start in range(0, n, config.batch_size):
                batch = order[start : start + config.batch_size]
                w -= config.lr * self._grad(w, x[batch], y[batch], config.l2)
        return w

    def predict(self, params: Params, x: NDArray[np.floating]) -> NDArray[np.int64]:
        return np.asarray(self._logits(params, x).argmax(axis=1), dtype=np.int64)

    def accuracy(self, params: Params, x: NDArray[np.floating], y: NDArray[np.integer]) -> float:
        if len(y) == 0:
            return float("nan")
        return float(np.mean(self.predict(params, x) == y))


class SoftmaxRegression(NumpyTrainer):
    """Multinomial logistic regression: ``x @ W + b``, cross-entropy, L2 on ``W``.

    The layout is ``W`` (n_features by n_classes, row-major) then ``b``; zero
    initialisation, as the evaluation protocol of fl-notes §3 prescribes.
    """

    def __init__(self, n_features: int, n_classes: int) -> None:
        if n_features < 1 or n_classes < 2:
            raise ConfigError("need n_features >= 1 and n_classes >= 2")
        self.n_features = n_features
        self.n_classes = n_classes

    @property
    def num_params(self) -> int:
        return self.n_features * self.n_classes + self.n_classes

    def init_params(self, rng: np.random.Generator) -> Params:
        return np.zeros(self.num_params)

    def _split(self, params: Params) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        cut = self.n_features * self.n_classes
        return params[:cut].reshape(self.n_features, self.n_classes), params[cut:]

    def _logits(self, params: Params, x: NDArray[np.floating]) -> NDArray[np.float64]:
        w, b = self._split(params)
        return np.asarray(x @ w + b, dtype=np.float64)

    def _grad(
        self, params: Params, x: NDArray[np.floating], y: NDArray[np.integer], l2: float
    ) -> Params:
        w, _ = self._split(params)
        d_logits = _softmax_grad(self._logits(params, x), y)
        d_w = x.T @ d_logits + l2 * w
        return np.concatenate([d_w.ravel(), d_logits.sum(axis=0)])


class MLP(NumpyTrainer):
    """One hidden ReLU layer: ``relu(x @ W1 + b1) @ W2 + b2``, He initialisation."""

    def __init__(self, n_features: int, n_classes: int, hidden: int = 32) -> None:
        if n_features < 1 or n_classes < 2 or hidden < 1:
            raise ConfigError("need n_features >= 1, n_classes >= 2 and hidden >= 1")
        self.n_features = n_features
        self.n_classes = n_classes
        self.hidden = hidden

    @property
    def num_params(self) -> int:
        return (self.n_features + 1) * self.hidden + (self.hidden + 1) * self.n_classes

    def _split(self, params: Params) -> tuple[NDArray[np.float64], ...]:
        d, h, c = self.n_features, self.hidden, self.n_classes
        w1, b1, w2, b2 = np.split(params, np.cumsum([d * h, h, h * c]))
        return w1.reshape(d, h), b1, w2.reshape(h, c), b2

    def init_params(self, rng: np.random.Generator) -> Params:
        d, h, c = self.n_features, self.hidden, self.n_classes
        w1 = rng.normal(0.0, np.sqrt(2.0 / d), size=d * h)
        w2 = rng.normal(0.0, np.sqrt(2.0 / h), size=h * c)
        return np.concatenate([w1, np.zeros(h), w2, np.zeros(c)])

    def _forward(
        self, params: Params, x: NDArray[np.floating]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        w1, b1, w2, b2 = self._split(params)
        hidden = np.maximum(x @ w1 + b1, 0.0)
        return hidden, hidden @ w2 + b2

    def _logits(self, params: Params, x: NDArray[np.floating]) -> NDArray[np.float64]:
        return self._forward(params, x)[1]

    def _grad(
        self, params: Params, x: NDArray[np.floating], y: NDArray[np.integer], l2: float
    ) -> Params:
        w1, _, w2, _ = self._split(params)
        hidden, logits = self._forward(params, x)
        d_logits = _softmax_grad(logits, y)
        d_hidden = (d_logits @ w2.T) * (hidden > 0)
        return np.concatenate(
            [
                (x.T @ d_hidden + l2 * w1).ravel(),
                d_hidden.sum(axis=0),
                (hidden.T @ d_logits + l2 * w2).ravel(),
                d_logits.sum(axis=0),
            ]
        )
