"""Gossip learning converges without a coordinator and refuses bad models."""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from qdht.crypto.hashes import sha3_256
from qdht.errors import ConfigError
from qdht.models.training import GossipLearner, SoftmaxRegression, load_digits_split, split_iid
from qdht.wire import GossipModel, encode

TASK = sha3_256(b"test/gossip")


def _learners(n: int, degree: int, seed: int) -> dict[bytes, GossipLearner]:
    data = load_digits_split(seed)
    rng = np.random.default_rng(seed)
    parts = split_iid(len(data.y_train), n, rng)
    ids = [sha3_256(b"gossip", bytes([i])) for i in range(n)]
    learners = {}
    for i, part in enumerate(parts):
        others = [j for j in range(n) if j != i]
        chosen = rng.choice(others, degree, replace=False)
        learners[ids[i]] = GossipLearner(
            task=TASK,
            trainer=SoftmaxRegression(64, 10),
            x=data.x_train[part],
            y=data.y_train[part],
            neighbours=[ids[j] for j in chosen],
            period=10.0,
            now=0.0,
            rng=np.random.default_rng(seed * 100 + i),
        )
    return learners


def _run(learners: dict[bytes, GossipLearner], until: float) -> None:
    """An event loop over the cores' timers: messages arrive one second later."""
    queue: list[tuple[float, int, bytes, bytes | None]] = []
    counter = 0
    for node, learner in learners.items():
        heapq.heappush(queue, (learner.get_timer(), counter, node, None))
        counter += 1
    while queue and queue[0][0] <= until:
        now, _, node, data = heapq.heappop(queue)
        learner = learners[node]
        if data is not None:
            learner.receive(data, now)
            continue
        for peer, message in learner.handle_timer(now):
            counter += 1
            heapq.heappush(queue, (now + 1.0, counter, peer, message))
        counter += 1
        heapq.heappush(queue, (learner.get_timer(), counter, node, None))


def test_gossip_learning_converges_without_a_coordinator() -> None:
    learners = _learners(20, 3, seed=0)
    data = load_digits_split(0)
    trainer = SoftmaxRegression(64, 10)
    _run(learners, until=600.0)  # 60 periods
    accuracies = [trainer.accuracy(g.model, data.x_test, data.y_test) for g in learners.values()]
    assert min(accuracies) > 0.85
    assert np.mean(accuracies) > 0.9
    assert all(g.age >= 10 for g in learners.values())
    assert all(g.stats()["drops"] == {} for g in learners.values())


def test_bad_models_are_refused() -> None:
    learner = next(iter(_learners(4, 2, seed=1).values()))
    before = learner.model.copy()
    nan = np.full(650, np.nan, dtype="<f4").tobytes()
    learner.receive(encode(GossipModel(TASK, 3, nan)), 1.0)
    learner.receive(encode(GossipModel(sha3_256(b"other"), 3, bytes(2600))), 1.0)
    learner.receive(encode(GossipModel(TASK, 3, bytes(4 * 649))), 1.0)
    learner.receive(b"\xff", 1.0)
    assert learner.stats()["drops"] == {
        "non-finite": 1,
        "wrong-task": 1,
        "wrong-shape": 1,
        "decode-error": 1,
    }
    assert np.array_equal(learner.model, before)
    assert learner.age == 0


def test_a_node_sends_once_per_period() -> None:
    learner = next(iter(_learners(4, 2, seed=2).values()))
    first = learner.get_timer()
    assert 0.0 <= first < 10.0
    assert learner.handle_timer(first - 0.1) == []
    sent = learner.handle_timer(first)
    assert len(sent) == 1
    assert sent[0][0] in learner.neighbours
    assert learner.get_timer() == first + 10.0
    with pytest.raises(ConfigError, match="neighbour"):
        GossipLearner(
            task=TASK,
            trainer=learner.trainer,
            x=learner.x,
            y=learner.y,
            neighbours=[],
            period=1.0,
            now=0.0,
        )
