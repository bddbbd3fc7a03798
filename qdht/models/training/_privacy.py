"""Client-level differential privacy: DP-FedAvg and its accountant (14-training.md §4).

DP-FedAvg (McMahan, Ramage, Talwar, Zhang, ICLR 2018): each round samples
every client independently with probability ``q`` (Poisson), each sampled
client's update is clipped to L2 norm ``S``, the coordinator sums the clipped
updates, divides by the *fixed* denominator ``q·K`` (the expected cohort,
not the cohort that turned up: dividing by the real count would leak it) and
adds Gaussian noise of standard deviation ``z·S/(q·K)``.  One round is then a
Poisson-subsampled Gaussian mechanism with noise multiplier ``z``, and the
privacy it costs is computed by Google's ``dp-accounting`` library (the
``qdht[dp]`` extra, needed by coordinators only): RDP by default, PLD on
request.

:class:`PrivacyBudget` fails closed: :meth:`PrivacyBudget.check` says what
epsilon the next round would bring the total to and raises
:class:`~qdht.errors.PrivacyBudgetExceededError` if that is over the budget,
so a round that would exceed it never starts.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Final

import numpy as np

from qdht.errors import ConfigError, PrivacyBudgetExceededError
from qdht.models.training._trainer import Params

__all__ = [
    "PrivacyAccountant",
    "PrivacyBudget",
    "clip_update",
    "distributed_noise_std",
    "dp_fedavg",
    "gaussian_noise",
]

#: Accountants available from ``dp-accounting``.
ACCOUNTANTS: Final = ("rdp", "pld")


def clip_update(update: Params, bound: float) -> tuple[Params, bool]:
    """``update`` scaled down to L2 norm at most ``bound``; whether it was scaled."""
    if not bound > 0:
        raise ConfigError(f"clipping bound must be positive, got {bound!r}")
    norm = float(np.linalg.norm(update))
    if norm <= bound:
        return update, False
    return update * (bound / norm), True


def gaussian_noise(size: int, std: float, rng: np.random.Generator) -> Params:
    """``size`` independent N(0, std²) values."""
    if std < 0:
        raise ConfigError(f"noise standard deviation must be >= 0, got {std!r}")
    return rng.normal(0.0, std, size) if std > 0 else np.zeros(size)


def dp_fedavg(
    clipped: list[Params],
    *,
    expected_clients: float,
    clip: float,
    noise_multiplier: float,
    rng: np.random.Generator,
) -> Params:
    """The DP-FedAvg average: sum of clipped updates over ``q·K``, plus N(0, (zS/(qK))²).

    ``clipped`` must already be clipped to ``clip`` (the coordinator refuses
    any update that is not, 14-training.md §7); ``expected_clients`` is q·K.
    An empty round still releases noise, as the mechanism requires.
    """
    if not expected_clients > 0:
        raise ConfigError(f"expected_clients (q*K) must be positive, got {expected_clients!r}")
    if not clipped:
        raise ConfigError("dp_fedavg needs the length of the model: pass at least one update")
    size = clipped[0].shape[0]
    total = np.sum(clipped, axis=0)
    noise = gaussian_noise(size, noise_multiplier * clip, rng)
    return np.asarray((total + noise) / expected_clients, dtype=np.float64)


def distributed_noise_std(noise_multiplier: float, clip: float, min_participants: int) -> float:
    """Per-device noise std under secure aggregation: z·S/sqrt(m).

    The coordinator sees only the sum, so each device adds its share of the
    noise; with at least ``min_participants`` (m) updates in the sum, the sum
    carries noise of std at least z·S, as central DP-FedAvg adds before its
    division by q·K (14-training.md §5.6).  Fewer than m and the round is
    abandoned, so the guarantee never rests on fewer shares.
    """
    if type(min_participants) is not int or min_participants < 1:
        raise ConfigError(f"min_participants must be a positive integer, got {min_participants!r}")
    return noise_multiplier * clip / math.sqrt(min_participants)


def _dp_accounting() -> Any:
    try:
        import dp_accounting
    except ImportError as exc:  # pragma: no cover - the dp extra is part of test
        raise ConfigError(
            "the privacy accountant needs dp-accounting: pip install 'qdht[dp]'"
        ) from exc
    return dp_accounting


def _round_event(dp_accounting: Any, q: float, z: float, rounds: int) -> Any:
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z))
    return dp_accounting.SelfComposedDpEvent(event, rounds) if rounds != 1 else event


class PrivacyAccountant:
    """Epsilon at ``delta`` of the rounds run so far, from ``dp-accounting``.

    ``kind="rdp"`` uses dp-accounting's RDP accountant with its own orders
    from 2 up (orders in (1, 2) matter only for epsilon of several dozen and
    fail to converge at large q).  RDP composes by addition, so the curve of
    one round at (q, z) is computed by the library once and added per round:
    a 200-round run costs one curve, not 200.  ``kind="pld"`` keeps the
    library's (tighter, slower) PLD accountant and composes it each round.
    """

    def __init__(self, delta: float = 1e-5, kind: str = "rdp") -> None:
        if not 0 < delta < 1:
            raise ConfigError(f"delta must be in (0, 1), got {delta!r}")
        if kind not in ACCOUNTANTS:
            raise ConfigError(f"kind must be one of {ACCOUNTANTS}, got {kind!r}")
        self._dp = _dp_accounting()
        self.delta = delta
        self.kind = kind
        self.rounds = 0
        self._noiseless = False
        if kind == "rdp":
            from dp_accounting.rdp import rdp_privacy_accountant

            self._rdp_module = rdp_privacy_accountant
            default = rdp_privacy_accountant.RdpAccountant().orders
            self.orders = np.asarray([o for o in default if o >= 2], dtype=np.float64)
            self._rdp = np.zeros_like(self.orders)
            self._curves: dict[tuple[float, float], np.ndarray] = {}
        else:
            from dp_accounting.pld import pld_privacy_accountant

            self._pld = pld_privacy_accountant.PLDAccountant()

    @staticmethod
    def _check(q: float, z: float, rounds: int) -> None:
        if not 0 < q <= 1:
            raise ConfigError(f"sampling probability q must be in (0, 1], got {q!r}")
        if not z >= 0 or math.isinf(z):
            raise ConfigError(f"noise multiplier must be finite and >= 0, got {z!r}")
        if type(rounds) is not int or rounds < 1:
            raise ConfigError(f"rounds must be a positive integer, got {rounds!r}")

    def _curve(self, q: float, z: float) -> np.ndarray:
        """dp-accounting's RDP curve of one Poisson-subsampled Gaussian round."""
        curve = self._curves.get((q, z))
        if curve is None:
            one = self._rdp_module.RdpAccountant(list(self.orders))
            one.compose(_round_event(self._dp, q, z, 1))
            curve = self._curves[(q, z)] = np.asarray(one.rdp, dtype=np.float64)
        return curve

    def _epsilon_of(self, rdp: np.ndarray) -> float:
        return float(self._rdp_module.compute_epsilon(self.orders, rdp, self.delta)[0])

    def spend(self, q: float, z: float, rounds: int = 1) -> float:
        """Record ``rounds`` rounds at (q, z); return the new total epsilon."""
        self._check(q, z, rounds)
        self.rounds += rounds
        if z == 0:
            self._noiseless = True  # no noise: no finite guarantee ever again
        elif self.kind == "rdp":
            self._rdp = self._rdp + rounds * self._curve(q, z)
        else:
            self._pld.compose(_round_event(self._dp, q, z, rounds))
        return self.epsilon

    @property
    def epsilon(self) -> float:
        """Total epsilon at :attr:`delta` so far (0 before any round, inf without noise)."""
        if self._noiseless:
            return math.inf
        if self.rounds == 0:
            return 0.0
        if self.kind == "rdp":
            return self._epsilon_of(self._rdp)
        return float(self._pld.get_epsilon(self.delta))

    def epsilon_after(self, q: float, z: float, rounds: int = 1) -> float:
        """The total epsilon if ``rounds`` more rounds at (q, z) ran; records nothing."""
        self._check(q, z, rounds)
        if self._noiseless or z == 0:
            return math.inf
        if self.kind == "rdp":
            return self._epsilon_of(self._rdp + rounds * self._curve(q, z))
        trial = copy.deepcopy(self._pld)
        trial.compose(_round_event(self._dp, q, z, rounds))
        return float(trial.get_epsilon(self.delta))

    def classic_epsilon(self) -> float:
        """Epsilon by the classic RDP conversion min_a[RDP(a) + log(1/delta)/(a-1)].

        Published values before 2020 (Abadi et al. 2016, TF-Privacy's
        tutorials) use this conversion; the library's own (improved,
        Canonne-Kamath-Steinke) conversion reports 15-25 % less.  RDP only.
        """
        if self.kind != "rdp":
            raise ConfigError("the classic conversion applies to the RDP accountant only")
        if self._noiseless:
            return math.inf
        return float(np.min(self._rdp + math.log(1 / self.delta) / (self.orders - 1)))


class PrivacyBudget:
    """A cap on total epsilon that fails closed: a round that would exceed it is refused."""

    def __init__(self, epsilon: float, delta: float = 1e-5, kind: str = "rdp") -> None:
        if not epsilon > 0:
            raise ConfigError(f"the epsilon budget must be positive, got {epsilon!r}")
        self.max_epsilon = epsilon
        self.accountant = PrivacyAccountant(delta, kind)

    @property
    def spent(self) -> float:
        """Epsilon spent so far."""
        return self.accountant.epsilon

    def check(self, q: float, z: float) -> float:
        """Epsilon after one more round at (q, z); PrivacyBudgetExceededError if over budget."""
        after = self.accountant.epsilon_after(q, z)
        if not after <= self.max_epsilon:
            raise PrivacyBudgetExceededError(
                f"the round would bring epsilon to {after:.4g}, over the budget of "
                f"{self.max_epsilon:g} (spent {self.spent:.4g} in {self.accountant.rounds} rounds)"
            )
        return after

    def spend(self, q: float, z: float) -> float:
        """Record one round that ran (check first); return the new total epsilon."""
        return self.accountant.spend(q, z)
