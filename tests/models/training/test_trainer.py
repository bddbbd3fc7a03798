"""Local training: the NumPy trainers learn, their gradients are right, bad models fail early."""

from __future__ import annotations

import numpy as np
import pytest

from qdht.errors import ConfigError
from qdht.models.training import (
    MLP,
    NumpyTrainer,
    SoftmaxRegression,
    Trainer,
    TrainingConfig,
    load_digits_split,
)

TRAINERS = [SoftmaxRegression(64, 10), MLP(64, 10, hidden=16)]


def _loss(trainer: NumpyTrainer, params: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    logits = trainer._logits(params, x)
    logits = logits - logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


@pytest.mark.parametrize("trainer", TRAINERS, ids=["softmax", "mlp"])
def test_gradient_matches_finite_differences(trainer: NumpyTrainer) -> None:
    rng = np.random.default_rng(3)
    x = rng.random((7, 64))
    y = rng.integers(0, 10, 7)
    params = rng.normal(0, 0.1, trainer.num_params)
    grad = trainer._grad(params, x, y, 0.0)
    for i in rng.choice(trainer.num_params, 20, replace=False):
        step = np.zeros_like(params)
        step[i] = 1e-6
        numeric = (_loss(trainer, params + step, x, y) - _loss(trainer, params - step, x, y)) / 2e-6
        assert grad[i] == pytest.approx(numeric, abs=1e-6)


@pytest.mark.parametrize("trainer", TRAINERS, ids=["softmax", "mlp"])
def test_local_training_learns_digits(trainer: Trainer) -> None:
    data = load_digits_split(0)
    params = trainer.init_params(np.random.default_rng(0))
    before = trainer.accuracy(params, data.x_test, data.y_test)
    trained = trainer.fit(
        params, data.x_train, data.y_train, TrainingConfig(epochs=5), np.random.default_rng(1)
    )
    assert isinstance(trainer, Trainer)
    assert before < 0.2
    assert trainer.accuracy(trained, data.x_test, data.y_test) > 0.93
    assert np.all(params == trainer.init_params(np.random.default_rng(0)))  # input untouched


def test_softmax_layout_is_650_parameters_zero_initialised() -> None:
    trainer = SoftmaxRegression(64, 10)
    assert trainer.num_params == 650
    assert not np.any(trainer.init_params(np.random.default_rng(0)))


def test_training_is_deterministic_for_a_seed() -> None:
    trainer = MLP(64, 10, hidden=8)
    data = load_digits_split(1)
    runs = [
        trainer.fit(
            trainer.init_params(np.random.default_rng(5)),
            data.x_train[:100],
            data.y_train[:100],
            TrainingConfig(epochs=1),
            np.random.default_rng(9),
        )
        for _ in range(2)
    ]
    assert np.array_equal(runs[0], runs[1])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (np.zeros(649), "shape"),
        (np.zeros((650, 1)), "shape"),
        (np.zeros(650, dtype=np.float32), "float64"),
        (np.full(650, np.nan), "NaN"),
        (np.full(650, np.inf), "NaN or infinite"),
        ([0.0] * 650, "numpy array"),
    ],
)
def test_a_bad_model_is_refused_before_training(params: object, message: str) -> None:
    trainer = SoftmaxRegression(64, 10)
    data = load_digits_split(0)
    with pytest.raises(ConfigError, match=message):
        trainer.fit(
            params,  # type: ignore[arg-type]
            data.x_train,
            data.y_train,
            TrainingConfig(),
            np.random.default_rng(0),
        )


def test_bad_local_data_is_refused() -> None:
    trainer = SoftmaxRegression(64, 10)
    params = trainer.init_params(np.random.default_rng(0))
    x = np.zeros((4, 64))
    with pytest.raises(ConfigError, match="shape"):
        trainer.validate(params, np.zeros((4, 63)), np.zeros(4, dtype=np.int64))
    with pytest.raises(ConfigError, match="labels"):
        trainer.validate(params, x, np.array([0, 1, 2, 10]))
    with pytest.raises(ConfigError, match="integer"):
        trainer.validate(params, x, np.zeros(4))


def test_training_config_rejects_nonsense() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        TrainingConfig(epochs=0)
    with pytest.raises(ConfigError, match="lr"):
        TrainingConfig(lr=-1.0)
    with pytest.raises(ConfigError, match="batch_size"):
        TrainingConfig(batch_size=0)
