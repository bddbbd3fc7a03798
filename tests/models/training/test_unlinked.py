"""Unlinked SecAgg inputs (14-training.md §9.5): the coordinator sums anonymous masked
vectors, takes the survivors from signed claims, and never learns which vector is whose.

These drive the sans-IO SecAgg+ cores directly; ``test_mixnet.py`` runs the same
exchange between nodes through the mixnet.
"""

from __future__ import annotations

import random

import attrs
import numpy as np

from qdht.crypto.hashes import sha3_256
from qdht.models.training import (
    SecAggCoordinator,
    SecAggDevice,
    TrainingCore,
    TrainingLayerConfig,
    default_neighbours,
)
from qdht.wire import SecAggMasked, SecAggSetup, SecAggSubmitted, SecAggUnlinked, encode

N = 6
SIZE = 40
DROPPED = 4  # sends keys and shares, then goes silent


def _setup() -> SecAggSetup:
    ids = tuple(sha3_256(b"unlinked-node", bytes([i])) for i in range(N))
    k, t = default_neighbours(N)
    return SecAggSetup(
        sha3_256(b"unlinked-round"), ids, k, t, 16, 8_000_000, SIZE, sha3_256(b"unlinked-graph")
    )


def _updates() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.normal(0, 0.5, SIZE) for _ in range(N)]


def _to_masked_stage(
    setup: SecAggSetup,
) -> tuple[SecAggCoordinator, dict[int, SecAggDevice], list[SecAggMasked]]:
    """Stages 1-3 with deterministic randomness; every device but DROPPED masks its update."""
    source = random.Random(1)
    coordinator = SecAggCoordinator(setup)
    devices = {
        i + 1: SecAggDevice(setup, node, random_bytes=source.randbytes)
        for i, node in enumerate(setup.ids)
    }
    for device in devices.values():
        coordinator.receive(device.keys())
    for i, msg in coordinator.close_keys().items():
        coordinator.receive(devices[i].share(msg))
    rng = np.random.default_rng(2)
    updates = _updates()
    masked = []
    for i, forward in coordinator.close_shares().items():
        out = devices[i].masked_input(forward, updates[i - 1], rng)
        assert out is not None
        if i != DROPPED:
            masked.append(out)
    return coordinator, devices, masked


def _finish(
    coordinator: SecAggCoordinator, devices: dict[int, SecAggDevice]
) -> tuple[np.ndarray, int] | None:
    unmask = coordinator.close_masked()
    if unmask is None:
        return None
    for i in unmask.alive:
        coordinator.receive(devices[i].reveal(unmask))
    return coordinator.result()


def _unlinked(
    masked: list[SecAggMasked], coordinator: SecAggCoordinator, seed: int = 3
) -> list[object]:
    """What a coordinator receives through the mixnet: the vectors without index, and the
    claims, in an order that pairs neither (the mixnet and the random delays shuffle)."""
    arrivals: list[object] = [SecAggUnlinked(m.round_id, m.y) for m in masked]
    arrivals += [SecAggSubmitted(m.round_id, m.index) for m in masked]
    random.Random(seed).shuffle(arrivals)
    for msg in arrivals:
        coordinator.receive(msg)
    return arrivals


def test_the_unlinked_sum_equals_the_direct_one_and_no_vector_is_tied_to_a_node() -> None:
    setup = _setup()
    direct, devices, masked = _to_masked_stage(setup)
    for m in masked:
        direct.receive(m)
    expected = _finish(direct, devices)
    assert expected is not None, direct.failure

    coordinator, devices, masked = _to_masked_stage(setup)
    received = _unlinked(masked, coordinator)
    # Nothing the coordinator received or kept ties a vector to an index or node.
    assert [f.name for f in attrs.fields(SecAggUnlinked)] == ["round_id", "y"]
    assert not any(isinstance(m, SecAggMasked) for m in received)
    assert coordinator.masked == {}
    assert coordinator.unlinked_count == N - 1
    assert coordinator.claimed == set(range(1, N + 1)) - {DROPPED}
    total = sum((np.frombuffer(m.y, dtype="<u4").astype(np.uint32) for m in masked), np.uint32(0))
    assert np.array_equal(coordinator.unlinked_sum, total)  # one sum, no per-vector record
    result = _finish(coordinator, devices)
    assert result is not None, coordinator.failure
    assert coordinator.stats()["drops"] == {}
    # The published sum is the direct round's, exactly (same quantisation), over 5 devices.
    assert result[1] == expected[1] == N - 1
    assert np.array_equal(result[0], expected[0])
    updates = _updates()
    plain = sum(updates[i - 1] for i in range(1, N + 1) if i != DROPPED)
    assert np.abs(result[0] - plain).max() < (N - 1) * 16.0 / (2**16 - 1)


def test_an_injected_vector_abandons_the_round() -> None:
    coordinator, devices, masked = _to_masked_stage(_setup())
    _unlinked(masked, coordinator)
    coordinator.receive(SecAggUnlinked(masked[0].round_id, bytes(4 * SIZE)))
    assert _finish(coordinator, devices) is None
    assert coordinator.failure == "unlinked-mismatch"


def test_a_lost_vector_with_its_claim_abandons_the_round() -> None:
    coordinator, devices, masked = _to_masked_stage(_setup())
    _unlinked(masked, coordinator)
    lonely = SecAggSubmitted(masked[0].round_id, DROPPED)  # claims, but its vector never came
    coordinator.receive(lonely)
    assert _finish(coordinator, devices) is None
    assert coordinator.failure == "unlinked-mismatch"


def test_a_replaced_vector_fails_the_range_check() -> None:
    coordinator, devices, masked = _to_masked_stage(_setup())
    forged = SecAggUnlinked(masked[0].round_id, random.Random(9).randbytes(4 * SIZE))
    _unlinked(masked[1:], coordinator)
    coordinator.receive(forged)  # counts match: the claim of masked[0] is missing ...
    coordinator.receive(SecAggSubmitted(masked[0].round_id, masked[0].index))  # ... now not
    assert coordinator.unlinked_count == len(coordinator.claimed)
    assert _finish(coordinator, devices) is None
    assert coordinator.failure == "bad-sum"


def test_unlinked_vectors_beyond_the_cohort_are_dropped() -> None:
    coordinator, _, masked = _to_masked_stage(_setup())
    for _ in range(N + 2):
        coordinator.receive(SecAggUnlinked(masked[0].round_id, masked[0].y))
    coordinator.receive(SecAggUnlinked(masked[0].round_id, bytes(8)))
    coordinator.receive(SecAggUnlinked(bytes(32), masked[0].y))
    assert coordinator.unlinked_count == N
    assert coordinator.stats()["drops"] == {
        "secagg-unlinked-excess": 2,
        "wrong-shape": 1,
        "wrong-round": 1,
    }


def test_a_claim_and_a_linked_input_from_one_index_count_once() -> None:
    coordinator, _, masked = _to_masked_stage(_setup())
    rid = masked[0].round_id
    coordinator.receive(masked[0])
    coordinator.receive(SecAggSubmitted(rid, masked[0].index))  # already in the sum
    coordinator.receive(SecAggSubmitted(rid, masked[1].index))
    coordinator.receive(SecAggSubmitted(rid, masked[1].index))  # twice
    coordinator.receive(masked[1])  # claimed: its vector came unlinked
    assert coordinator.claimed == {masked[1].index}
    assert coordinator.stats()["drops"] == {"secagg-unexpected": 3}


def test_an_unlinked_input_over_a_session_is_refused() -> None:
    core = TrainingCore(bytes(32), TrainingLayerConfig(), unix_offset=0.0)
    unlinked = encode(SecAggUnlinked(bytes(32), bytes(8)))
    core.receive_message(b"\x01" * 32, "addr", unlinked, 0.0)
    assert core.stats()["drops"] == {"unlinked-over-session": 1}
    assert not core.receive_anonymous(unlinked, 0.0)  # no coordinator role
    assert core.stats()["drops"]["not-a-coordinator"] == 1
