"""The PyTorch adapter trains behind the same interface and plugs into rounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qdht.errors import ConfigError
from qdht.models.training import (
    RoundParams,
    TorchTrainer,
    Trainer,
    TrainingConfig,
    load_digits_split,
    run_federated,
    split_iid,
)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # Tiny batches: threads only add contention on a small (CI) machine.
    torch.set_num_threads(1)


def _mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))


def test_torch_trainer_learns_digits_behind_the_trainer_interface() -> None:
    trainer = TorchTrainer(_mlp, 64, 10)
    assert isinstance(trainer, Trainer)
    assert trainer.num_params == 64 * 16 + 16 + 16 * 10 + 10
    data = load_digits_split(0)
    params = trainer.init_params(np.random.default_rng(0))
    assert params.dtype == np.float64
    trained = trainer.fit(
        params, data.x_train, data.y_train, TrainingConfig(epochs=5), np.random.default_rng(1)
    )
    assert trainer.accuracy(trained, data.x_test, data.y_test) > 0.9
    with pytest.raises(ConfigError, match="shape"):
        trainer.fit(
            params[:-1], data.x_train, data.y_train, TrainingConfig(), np.random.default_rng()
        )


def test_torch_trainer_runs_federated_rounds() -> None:
    data = load_digits_split(1)
    parts = split_iid(len(data.y_train), 5, np.random.default_rng(1))
    trainer = TorchTrainer(lambda: torch.nn.Linear(64, 10), 64, 10)
    run = run_federated(data, trainer, parts, RoundParams(epochs=1, compression="q8"), 2, seed=1)
    assert run.accuracy[-1] > 0.8
    assert run.stats["drops"] == {}
