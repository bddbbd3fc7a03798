"""DP-FedAvg and its accountant: published epsilons, dp-accounting agreement, fail-closed budget."""

from __future__ import annotations

import itertools
import math

import dp_accounting
import numpy as np
import pytest
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant

from qdht.errors import ConfigError, PrivacyBudgetExceededError
from qdht.models.training import PrivacyAccountant, PrivacyBudget, clip_update, dp_fedavg

MNIST_Q = 256 / 60000

#: fl-notes §2: (q, z, steps), published epsilon at delta 1e-5.
PUBLISHED = [
    pytest.param(0.01, 4.0, 10_000, 1.26, id="abadi-2016"),
    pytest.param(MNIST_Q, 1.12, 60 * 60000 // 256, 2.92, id="tf-privacy-60-epochs"),
    pytest.param(MNIST_Q, 0.6, 30 * 60000 // 256, 9.74, id="tf-privacy-30-epochs"),
    pytest.param(MNIST_Q, 1.2, 10 * 60000 // 256, 1.20, id="tf-privacy-10-epochs"),
]


@pytest.mark.parametrize(("q", "z", "steps", "published"), PUBLISHED)
def test_published_epsilons_are_reproduced(
    q: float, z: float, steps: int, published: float
) -> None:
    accountant = PrivacyAccountant(1e-5)
    improved = accountant.spend(q, z, steps)
    # The published figures use the classic RDP-to-DP conversion.
    assert accountant.classic_epsilon() == pytest.approx(published, rel=5e-3)
    # The reported epsilon is dp-accounting's own (improved conversion) ...
    reference = rdp_privacy_accountant.RdpAccountant()
    reference.compose(
        dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)), steps
        )
    )
    assert improved == pytest.approx(reference.get_epsilon(1e-5), rel=1e-9)
    assert improved < accountant.classic_epsilon()
    # ... and never below the tighter PLD bound.
    pld = PrivacyAccountant(1e-5, kind="pld").spend(q, z, steps)
    assert pld <= improved


def test_epsilon_grows_round_by_round_and_composes_like_one_event() -> None:
    stepwise = PrivacyAccountant()
    epsilons = [stepwise.spend(0.5, 1.0) for _ in range(10)]
    assert all(a < b for a, b in itertools.pairwise(epsilons))
    assert epsilons[-1] == pytest.approx(PrivacyAccountant().spend(0.5, 1.0, 10), rel=1e-9)
    assert stepwise.rounds == 10


def test_epsilon_after_records_nothing() -> None:
    accountant = PrivacyAccountant()
    accountant.spend(0.05, 1.0, 10)
    before = accountant.epsilon
    after = accountant.epsilon_after(0.05, 1.0)
    assert accountant.epsilon == before
    assert after == pytest.approx(accountant.spend(0.05, 1.0), rel=1e-9)


def test_no_noise_means_infinite_epsilon() -> None:
    accountant = PrivacyAccountant()
    assert accountant.epsilon == 0.0
    assert accountant.spend(0.5, 0.0) == math.inf
    assert accountant.spend(0.5, 1.0) == math.inf


def test_the_budget_stops_a_round_that_would_exceed_it() -> None:
    budget = PrivacyBudget(epsilon=3.0)
    ran = 0
    while budget.accountant.epsilon_after(0.5, 2.0) <= 3.0:
        budget.check(0.5, 2.0)
        budget.spend(0.5, 2.0)
        ran += 1
    with pytest.raises(PrivacyBudgetExceededError, match="over the budget of 3"):
        budget.check(0.5, 2.0)
    assert ran >= 1
    assert budget.spent <= 3.0
    assert budget.accountant.epsilon_after(0.5, 2.0) > 3.0
    with pytest.raises(PrivacyBudgetExceededError):
        PrivacyBudget(epsilon=100.0).check(0.5, 0.0)  # no noise: never within budget


def test_clipping_scales_only_updates_over_the_bound() -> None:
    small = np.array([0.3, 0.4])
    assert clip_update(small, 1.0) == (small, False)
    clipped, was = clip_update(np.array([3.0, 4.0]), 1.0)
    assert was
    assert np.linalg.norm(clipped) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="positive"):
        clip_update(small, 0.0)


def test_dp_fedavg_uses_the_fixed_denominator_and_calibrated_noise() -> None:
    updates = [np.full(4, 0.5)] * 3
    exact = dp_fedavg(
        updates, expected_clients=6.0, clip=1.0, noise_multiplier=0.0, rng=np.random.default_rng(0)
    )
    assert np.allclose(exact, 0.25)  # 1.5 / 6, not 1.5 / 3
    noisy = dp_fedavg(
        [np.zeros(200_000)],
        expected_clients=10.0,
        clip=2.0,
        noise_multiplier=1.5,
        rng=np.random.default_rng(1),
    )
    assert noisy.std() == pytest.approx(1.5 * 2.0 / 10.0, rel=0.01)


def test_pld_is_available_and_tighter_than_rdp() -> None:
    pld = pld_privacy_accountant.PLDAccountant
    assert pld is not None
    assert PrivacyAccountant(kind="pld").spend(0.01, 1.1, 1000) < PrivacyAccountant().spend(
        0.01, 1.1, 1000
    )


def test_accountant_misuse_is_refused() -> None:
    with pytest.raises(ConfigError, match="delta"):
        PrivacyAccountant(delta=0.0)
    with pytest.raises(ConfigError, match="kind"):
        PrivacyAccountant(kind="moments")
    with pytest.raises(ConfigError, match="sampling probability"):
        PrivacyAccountant().spend(0.0, 1.0)
    with pytest.raises(ConfigError, match="classic"):
        PrivacyAccountant(kind="pld").classic_epsilon()
