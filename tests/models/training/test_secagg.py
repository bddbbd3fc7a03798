"""SecAgg+: the coordinator learns the sum of the surviving updates, and only that."""

from __future__ import annotations

import collections
import random

import numpy as np
import pytest

from qdht.errors import ConfigError
from qdht.models.training import (
    PRIME,
    SecAggDevice,
    SecAggRun,
    consistent,
    default_neighbours,
    distributed_noise_std,
    gaussian_noise,
    graph_neighbours,
    reconstruct,
    share_from_bytes,
    simulate_secagg,
    split,
)
from qdht.wire import SecAggKeys, SecAggMasked, SecAggReveal, SecAggUnmask

N = 20


def _updates(seed: int, n: int = N, size: int = 50) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 0.5, size) for _ in range(n)]


def _thirty_percent_drop(seed: int, n: int = N) -> dict[int, str]:
    """30 % of devices drop out, spread over every stage after advertising keys."""
    chosen = random.Random(seed).sample(range(1, n + 1), round(0.3 * n))
    stages = ("share", "masked", "reveal")
    return {index: stages[i % 3] for i, index in enumerate(chosen)}


def _in_sum(drop: dict[int, str], n: int = N) -> list[int]:
    return [i for i in range(1, n + 1) if drop.get(i) not in ("keys", "share", "masked")]


def _shares_seen(run: SecAggRun) -> tuple[collections.Counter[int], collections.Counter[int]]:
    b: collections.Counter[int] = collections.Counter()
    s: collections.Counter[int] = collections.Counter()
    for msg in run.transcript:
        if isinstance(msg, SecAggReveal):
            b.update(of for of, _ in msg.b)
            s.update(of for of, _ in msg.s)
    return b, s


def test_shamir_any_t_shares_recover_the_secret_fewer_do_not() -> None:
    secret = int.from_bytes(bytes(range(32)), "big")
    shares = split(secret, 4, list(range(1, 10)))
    for subset in ([1, 2, 3, 4], [9, 5, 2, 7], list(range(1, 10))):
        assert reconstruct({x: shares[x] for x in subset}) == secret
    assert reconstruct({x: shares[x] for x in (1, 2, 3)}) != secret
    assert share_from_bytes(PRIME.to_bytes(66, "big")) is None
    with pytest.raises(ConfigError, match="threshold"):
        split(secret, 10, list(range(1, 10)))


def test_graph_is_symmetric_with_k_neighbours() -> None:
    run = simulate_secagg(_updates(0, 40), k=8, t=4)
    setup = run.coordinator.setup
    graph = {i: set(graph_neighbours(setup, i)) for i in range(1, 41)}
    assert all(len(g) == 8 for g in graph.values())
    assert all(i in graph[j] for i in graph for j in graph[i])
    assert default_neighbours(20) == (18, 7)
    assert default_neighbours(100) == (24, 9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sum_is_recovered_with_30_percent_dropouts(seed: int) -> None:
    updates = _updates(seed)
    drop = _thirty_percent_drop(seed)
    run = simulate_secagg(updates, drop=drop, seed=seed)
    assert run.result is not None, run.coordinator.failure
    total, count = run.result
    members = _in_sum(drop)
    assert count == len(members) == N - sum(1 for s in drop.values() if s != "reveal")
    expected = sum(updates[i - 1] for i in members)
    step = 16.0 / (2**16 - 1)
    assert np.abs(total - expected).max() < count * step
    assert run.coordinator.stats()["drops"] == {}


def test_sparse_graph_with_100_devices_and_30_percent_dropouts() -> None:
    updates = _updates(7, 100, size=20)
    drop = _thirty_percent_drop(7, 100)
    run = simulate_secagg(updates, drop=drop, seed=7)
    assert run.coordinator.setup.k == 24
    assert run.result is not None
    expected = sum(updates[i - 1] for i in _in_sum(drop, 100))
    assert np.abs(run.result[0] - expected).max() < 0.02


def test_the_coordinator_learns_only_the_sum() -> None:
    updates = _updates(3)
    drop = _thirty_percent_drop(3)
    run = simulate_secagg(updates, drop=drop, seed=3)
    assert run.result is not None
    t = run.coordinator.setup.t
    b_seen, s_seen = _shares_seen(run)
    for index in range(1, N + 1):
        stage = drop.get(index)
        if stage in ("share", "keys"):
            continue  # never masked anything
        if stage == "masked":
            # Dropped before sending its input: its masking secret is rebuilt, its
            # self-mask secret never (and there is no input to unmask anyway).
            assert s_seen[index] >= t
            assert b_seen[index] < t
        else:
            # In the sum: the self mask comes off, the pairwise masks never do
            # individually, because no share of its masking secret is revealed.
            assert b_seen[index] >= t
            assert s_seen[index] == 0
    # What the coordinator received as each input is uniformly spread over
    # 2^32, far outside the 2^16 levels of a quantised update.
    masked = [
        np.frombuffer(m.y, dtype="<u4") for m in run.transcript if isinstance(m, SecAggMasked)
    ]
    assert len(masked) == N - sum(1 for s in drop.values() if s in ("share", "masked"))
    for y in masked:
        assert y.max() > 2**31
    assert abs(float(np.concatenate(masked).mean()) / 2**32 - 0.5) < 0.05


def test_a_device_never_reveals_both_shares_of_a_neighbour() -> None:
    run = simulate_secagg(_updates(4), seed=4)
    device = run.devices[1]
    round_id = run.coordinator.setup.round_id
    everyone = tuple(range(1, N + 1))
    assert device.reveal(SecAggUnmask(round_id, (), everyone)) is None  # already answered
    assert device.stats()["drops"] == {"secagg-wrong-stage": 1}

    fresh = simulate_secagg(_updates(4), drop=dict.fromkeys(range(1, N + 1), "reveal"), seed=4)
    dev = fresh.devices[2]
    assert dev.reveal(SecAggUnmask(round_id, everyone, everyone)) is None
    assert dev.stats()["drops"] == {"secagg-bad-unmask": 1}


def test_distributed_noise_makes_the_sum_private() -> None:
    """Each device adds N(0, (zS)^2 / m): any m survivors give the sum noise of std >= zS."""
    z, clip, minimum = 1.0, 2.0, 10
    std = distributed_noise_std(z, clip, minimum)
    rng = np.random.default_rng(8)
    noises = [gaussian_noise(10_000, std, rng) for _ in range(N)]
    drop = _thirty_percent_drop(8)
    run = simulate_secagg(noises, drop=drop, seed=8, clip_range=64.0)
    assert run.result is not None
    total, count = run.result
    assert count >= minimum
    assert total.std() == pytest.approx(z * clip * np.sqrt(count / minimum), rel=0.05)


def test_too_many_dropouts_fail_the_round_instead_of_a_wrong_sum() -> None:
    drop = dict.fromkeys(range(1, 15), "reveal")  # 70 % vanish before revealing
    run = simulate_secagg(_updates(5), drop=drop, seed=5)
    assert run.result is None
    assert run.coordinator.failure == "unrecoverable"
    few = simulate_secagg(_updates(5), drop=dict.fromkeys(range(1, 15), "keys"), seed=5)
    assert few.result is None
    assert few.coordinator.failure == "too-few-devices"


def test_coordinator_drops_out_of_place_input() -> None:
    run = simulate_secagg(_updates(6), seed=6)
    coordinator = run.coordinator
    setup = coordinator.setup
    coordinator.receive(SecAggKeys(setup.round_id, 1, bytes(1216), bytes(1216)))
    fresh = simulate_secagg(_updates(6), drop=dict.fromkeys(range(1, N + 1), "share"), seed=6)
    c = fresh.coordinator
    c.stage = "keys"
    c.receive(SecAggKeys(bytes(32), 1, bytes(1216), bytes(1216)))
    c.receive(SecAggKeys(setup.round_id, 1, bytes(1216), bytes(1216)))  # already advertised
    c.receive(SecAggKeys(setup.round_id, 999, bytes(1216), bytes(1216)))
    c.stage = "masked"
    c.receive(SecAggMasked(setup.round_id, 1, bytes(8)))  # shared nothing
    assert coordinator.stats()["drops"] == {"secagg-wrong-stage": 1}
    assert c.stats()["drops"] == {
        "wrong-round": 1,
        "secagg-duplicate": 1,
        "secagg-unknown-index": 1,
        "secagg-unexpected": 1,
    }


def test_a_lying_share_holder_fails_the_round_instead_of_corrupting_the_sum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    honest = SecAggDevice.reveal

    def lying(self: SecAggDevice, msg: SecAggUnmask) -> SecAggReveal | None:
        out = honest(self, msg)
        if out is None or self.index != 1 or not out.b:
            return out
        (of, share), *rest = out.b
        wrong = (int.from_bytes(share, "big") + 1).to_bytes(66, "big")
        return SecAggReveal(out.round_id, out.index, ((of, wrong), *rest), out.s)

    monkeypatch.setattr(SecAggDevice, "reveal", lying)
    run = simulate_secagg(_updates(9), seed=9)
    assert run.result is None
    assert run.coordinator.failure == "inconsistent-shares"


def test_shares_off_the_polynomial_are_detected() -> None:
    shares = split(12345, 3, [1, 2, 3, 4, 5])
    assert consistent(shares, 3)
    shares[4] = (shares[4] + 1) % PRIME
    assert not consistent(shares, 3)
