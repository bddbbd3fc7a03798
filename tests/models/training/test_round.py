"""Training rounds: signed announcements, Poisson self-sampling, deadlines, bad input."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from qdht.crypto.hashes import sha3_256
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.errors import ConfigError, PrivacyBudgetExceededError
from qdht.models.training import (
    PrivacyAccountant,
    PrivacyBudget,
    RoundCoordinator,
    RoundDevice,
    RoundParams,
    RoundResult,
    SoftmaxRegression,
    is_sampled,
    load_digits_split,
    round_id,
    split_iid,
)
from qdht.wire import RoundUpdate, decode, encode

KEY = MLDSAPrivateKey.from_seed(sha3_256(b"test/coordinator"))
COORDINATOR = sha3_256(b"test/coordinator-id")
TASK = sha3_256(b"test/task")
NOW = 1_800_000_000
K = 10


def _network(
    params: RoundParams,
    budget: PrivacyBudget | None = None,
    *,
    n: int = K,
    enrolled: bool = False,
) -> tuple[RoundCoordinator, list[RoundDevice], SoftmaxRegression]:
    """n devices with IID shares of digits and their coordinator (``enrolled``: SecAgg)."""
    data = load_digits_split(0)
    trainer = SoftmaxRegression(64, 10)
    parts = split_iid(len(data.y_train), n, np.random.default_rng(0))
    devices = [
        RoundDevice(
            node_id=sha3_256(b"test/device", bytes([i])),
            coordinator_id=COORDINATOR,
            coordinator_key=KEY.public_key_bytes(),
            trainer=trainer,
            x=data.x_train[part],
            y=data.y_train[part],
            rng=np.random.default_rng(i),
        )
        for i, part in enumerate(parts)
    ]
    coordinator = RoundCoordinator(
        signing_key=KEY,
        node_id=COORDINATOR,
        task=TASK,
        model=trainer.init_params(np.random.default_rng(0)),
        params=params,
        population=n,
        budget=budget,
        rng=np.random.default_rng(99),
        enrolled=[d.node_id for d in devices] if enrolled else (),
    )
    return coordinator, devices, trainer


def _run_round(coordinator: RoundCoordinator, devices: list[RoundDevice], t: float) -> int:
    announce = coordinator.start_round(t, wall_clock=NOW + int(t))
    data = encode(announce)
    joined = 0
    for device in devices:
        accepted = device.receive_announcement(data, NOW + t)
        if accepted is not None:
            joined += 1
            coordinator.receive_update(device.train(accepted, coordinator.model), t + 1)
    return joined


def test_rounds_train_the_global_model() -> None:
    coordinator, devices, trainer = _network(RoundParams(epochs=2, min_participants=5))
    data = load_digits_split(0)
    for r in range(4):
        assert _run_round(coordinator, devices, 100.0 * r) == K  # q = 1: everyone
        result = coordinator.handle_timer(100.0 * r + 60)
        assert result is not None
        assert not result.abandoned
        assert result.participants == K
    assert trainer.accuracy(coordinator.model, data.x_test, data.y_test) > 0.88
    assert coordinator.stats()["drops"] == {}


def test_poisson_self_sampling_is_verifiable_and_has_rate_q() -> None:
    rid = round_id(COORDINATOR, TASK, 3)
    nodes = [sha3_256(b"n", i.to_bytes(4, "big")) for i in range(4000)]
    chosen = [n for n in nodes if is_sampled(rid, n, 2**30)]  # q = 1/4
    assert 900 < len(chosen) < 1100
    assert chosen == [n for n in nodes if is_sampled(rid, n, 2**30)]  # anyone recomputes it
    other = round_id(COORDINATOR, TASK, 4)
    assert chosen != [n for n in nodes if is_sampled(other, n, 2**30)]
    assert all(is_sampled(rid, n, 2**32) for n in nodes[:50])


def test_only_sampled_devices_take_part() -> None:
    coordinator, devices, _ = _network(RoundParams(epochs=1, q=0.5))
    joined = _run_round(coordinator, devices, 0.0)
    rid = round_id(COORDINATOR, TASK, 0)
    assert joined == sum(is_sampled(rid, d.node_id, 2**31) for d in devices)
    assert 0 < joined < K
    outsider = next(d for d in devices if not is_sampled(rid, d.node_id, 2**31))
    sneaked = RoundUpdate(rid, outsider.node_id, 1, 650, "none", bytes(4 * 650))
    coordinator.receive_update(encode(sneaked), 2.0)
    assert coordinator.stats()["drops"] == {"not-sampled": 1}
    result = coordinator.handle_timer(60.0)
    assert result is not None
    assert result.participants == joined


def test_the_privacy_budget_stops_a_round() -> None:
    budget = PrivacyBudget(epsilon=8.0)
    params = RoundParams(epochs=1, clip=1.0, noise=1.0, q=0.5)
    coordinator, devices, _ = _network(params, budget)
    ran = 0
    t = 0.0
    while budget.accountant.epsilon_after(0.5, 1.0) <= 8.0:
        _run_round(coordinator, devices, t)
        result = coordinator.handle_timer(t + 60)
        assert result is not None
        assert result.epsilon == pytest.approx(budget.spent)
        ran += 1
        t += 100
    model, number = coordinator.model.copy(), coordinator.number
    with pytest.raises(PrivacyBudgetExceededError):
        coordinator.start_round(t, wall_clock=NOW)
    assert ran >= 2
    assert coordinator.number == number  # nothing was announced
    assert np.array_equal(coordinator.model, model)
    assert budget.spent <= 8.0


def test_a_round_below_the_minimum_is_abandoned_at_the_deadline() -> None:
    coordinator, devices, _ = _network(RoundParams(epochs=1, min_participants=4))
    before = coordinator.model.copy()
    announce = coordinator.start_round(0.0, wall_clock=NOW)
    for device in devices[:3]:  # the rest never answer
        accepted = device.receive_announcement(encode(announce), NOW)
        assert accepted is not None
        coordinator.receive_update(device.train(accepted, coordinator.model), 5.0)
    assert coordinator.get_timer() == 60.0
    assert coordinator.handle_timer(59.0) is None
    result = coordinator.handle_timer(60.0)
    assert result is not None
    assert result.abandoned
    assert result.reason == "too-few-participants"
    assert np.array_equal(coordinator.model, before)
    assert coordinator.get_timer() is None  # nothing left to wait for
    coordinator.start_round(100.0, wall_clock=NOW + 100)  # the next round can start


def test_bad_updates_are_refused_and_never_touch_the_model() -> None:
    params = RoundParams(epochs=1, clip=1.0, noise=0.5, q=1.0)
    coordinator, devices, _ = _network(params, PrivacyBudget(epsilon=100.0))
    announce = coordinator.start_round(0.0, wall_clock=NOW)
    rid = round_id(COORDINATOR, TASK, 0)
    node = devices[0].node_id

    def update(values: np.ndarray, *, rid: bytes = rid, node: bytes = node) -> bytes:
        return encode(
            RoundUpdate(rid, node, 10, values.size, "none", values.astype("<f4").tobytes())
        )

    good = np.full(650, 0.01)
    coordinator.receive_update(update(np.full(650, np.nan)), 1.0)
    coordinator.receive_update(update(np.full(650, np.inf)), 1.0)
    coordinator.receive_update(update(np.ones(650)), 1.0)  # norm 25 > clip 1
    coordinator.receive_update(update(np.zeros(649)), 1.0)
    coordinator.receive_update(update(good, rid=round_id(COORDINATOR, TASK, 5)), 1.0)
    coordinator.receive_update(update(good, node=sha3_256(b"stranger")), 1.0)
    coordinator.receive_update(b"\xa1ax\x01", 1.0)
    coordinator.receive_update(update(good), 61.0)
    coordinator.receive_update(update(good), 1.0)
    coordinator.receive_update(update(good), 2.0)
    drops = coordinator.stats()["drops"]
    assert drops == {
        "non-finite": 2,
        "unclipped": 1,
        "wrong-shape": 1,
        "wrong-round": 1,
        "decode-error": 1,
        "late": 1,
        "duplicate": 1,
    }
    assert announce.q == 2**32  # q = 1: the stranger is sampled too
    result = coordinator.handle_timer(60.0)
    assert result is not None
    assert result.participants == 2
    assert np.all(np.isfinite(coordinator.model))


def test_devices_refuse_forged_stale_and_foreign_announcements() -> None:
    coordinator, devices, _ = _network(RoundParams(epochs=1))
    device = devices[0]
    announce = coordinator.start_round(0.0, wall_clock=NOW)
    forged = attrs.evolve(announce, epochs=50)  # signature no longer matches
    assert device.receive_announcement(encode(forged), NOW) is None
    other = attrs.evolve(announce, coordinator=sha3_256(b"someone else"))
    assert device.receive_announcement(encode(other), NOW) is None
    assert device.receive_announcement(encode(announce), announce.deadline) is None
    assert device.receive_announcement(b"\x00", NOW) is None
    assert device.receive_announcement(encode(announce), NOW) is not None
    assert device.receive_announcement(encode(announce), NOW) is None  # replayed
    assert device.stats()["drops"] == {
        "bad-signature": 1,
        "unknown-coordinator": 1,
        "expired": 1,
        "decode-error": 1,
        "replayed": 1,
    }
    with pytest.raises(ConfigError, match="hash"):
        device.train(announce, coordinator.model + 1.0)


@pytest.mark.parametrize("compression", ["q8", "topk"])
def test_compressed_updates_are_accepted(compression: str) -> None:
    coordinator, devices, _ = _network(RoundParams(epochs=1, compression=compression))
    assert _run_round(coordinator, devices, 0.0) == K
    result = coordinator.handle_timer(60.0)
    assert result is not None
    assert result.participants == K
    assert coordinator.stats()["drops"] == {}


def test_round_parameters_are_checked() -> None:
    with pytest.raises(ConfigError, match="clipping"):
        RoundParams(noise=1.0)
    with pytest.raises(ConfigError, match="aggregator"):
        RoundParams(aggregator="mean")
    with pytest.raises(ConfigError, match="PrivacyBudget"):
        _network(RoundParams(clip=1.0, noise=1.0))
    with pytest.raises(ConfigError, match="PrivacyBudget"):
        _network(RoundParams(clip=1.0))  # clipping is DP-FedAvg: it is accounted for


def _secagg_round(
    coordinator: RoundCoordinator, devices: list[RoundDevice], silent: dict[int, str]
) -> tuple[RoundResult | None, list[RoundDevice]]:
    """One SecAgg round; device i ignores messages of type silent[i] and later."""
    order = ("secagg_neighbours", "secagg_forward", "secagg_unmask")
    by_id = {d.node_id: (i, d) for i, d in enumerate(devices)}
    announce = coordinator.start_round(0.0, wall_clock=NOW)
    joined = []
    for device in devices:
        accepted = device.receive_announcement(encode(announce), NOW)
        if accepted is not None:
            device.prepare_secagg(accepted, coordinator.model)
            joined.append(device)
    while True:
        for node, data in coordinator.messages_to_send():
            i, device = by_id[node]
            kind = decode(data).TYPE
            if i in silent and kind in order and order.index(kind) >= order.index(silent[i]):
                continue
            reply = device.receive_secagg(data)
            if reply is not None:
                coordinator.receive_secagg(reply, 1.0)
        timer = coordinator.get_timer()
        assert timer is not None
        result = coordinator.handle_timer(timer)
        if result is not None:
            return result, joined


def test_secagg_round_publishes_the_mean_of_the_survivors_only() -> None:
    coordinator, devices, _ = _network(
        RoundParams(epochs=1, secagg=True, min_participants=5), n=20, enrolled=True
    )
    before = coordinator.model.copy()
    # 30 % drop out: before sharing, before sending their input, before revealing.
    silent = {
        0: "secagg_neighbours",
        3: "secagg_neighbours",
        5: "secagg_forward",
        8: "secagg_forward",
        11: "secagg_unmask",
        14: "secagg_unmask",
    }
    result, joined = _secagg_round(coordinator, devices, silent)
    assert result is not None
    assert not result.abandoned, result.reason
    in_sum = [d for i, d in enumerate(devices) if silent.get(i, "secagg_unmask") == "secagg_unmask"]
    assert len(joined) == 20
    assert result.participants == len(in_sum) == 16
    pending = [d._pending for d in in_sum]
    expected = np.mean([p[1] for p in pending if p is not None], axis=0)
    assert np.abs((coordinator.model - before) - expected).max() < 1e-3
    assert coordinator.stats()["drops"] == {}


def test_secagg_round_with_dp_spends_epsilon_and_too_many_dropouts_abandon() -> None:
    budget = PrivacyBudget(epsilon=50.0)
    params = RoundParams(epochs=1, secagg=True, clip=1.0, noise=1.0, min_participants=10)
    coordinator, devices, _ = _network(params, budget, n=20, enrolled=True)
    result, _ = _secagg_round(coordinator, devices, {})
    assert result is not None
    assert not result.abandoned
    assert result.epsilon == pytest.approx(budget.spent)
    assert budget.spent > 0
    before = coordinator.model.copy()
    silent = dict.fromkeys(range(12), "secagg_forward")  # only 8 inputs arrive
    result, _ = _secagg_round(coordinator, devices, silent)
    assert result is not None
    assert result.abandoned
    assert np.array_equal(coordinator.model, before)


def test_secagg_needs_fedavg_and_the_enrolled_ids() -> None:
    with pytest.raises(ConfigError, match="SecAgg"):
        RoundParams(secagg=True, aggregator="median")
    with pytest.raises(ConfigError, match="enrolled"):
        _network(RoundParams(secagg=True))


def test_epsilon_is_accounted_for_the_noise_devices_are_told() -> None:
    params = RoundParams(epochs=1, clip=1.0, noise=0.7004, q=0.5)  # announced as 700 milli
    coordinator, devices, _ = _network(params, PrivacyBudget(epsilon=100.0))
    _run_round(coordinator, devices, 0.0)
    result = coordinator.handle_timer(60.0)
    assert result is not None
    assert coordinator.announcement is not None
    assert coordinator.announcement.noise == 700
    assert result.epsilon == pytest.approx(PrivacyAccountant().spend(0.5, 0.7), rel=1e-12)
