"""``qdht-bench anonymity``: the observer's inference behaves as the theory says."""

from __future__ import annotations

import math

from qdht_bench import anonymity

from qdht.mixnet import MixnetConfig


def test_single_exponential_mix_matches_log2_e_lambda_over_mu() -> None:
    config = MixnetConfig()
    measured = anonymity._single_mix(25.0, config, seed=5, targets=400)
    assert abs(measured - math.log2(math.e * 25)) <= 0.1


def test_all_mixes_corrupt_reveals_the_sender_and_honest_mixes_hide_it() -> None:
    config = MixnetConfig()
    trace = anonymity.simulate(200, 6, 1.0, 3.0, config, seed=3)
    target = next(p for p, i in trace.exit_departure.items() if trace.events[i][0] > 1.5)
    assert anonymity.sender_entropy(trace, target, frozenset(range(6))) == 0.0
    honest = anonymity.sender_entropy(trace, target)
    assert honest > 2.0
    # Corrupt mixes only remove uncertainty: on average over targets, entropy falls.
    targets = [p for p, i in trace.exit_departure.items() if trace.events[i][0] > 1.5][:30]
    mean = sum(anonymity.sender_entropy(trace, p) for p in targets) / len(targets)
    half = frozenset({0, 1, 2})
    mean_corrupt = sum(anonymity.sender_entropy(trace, p, half) for p in targets) / len(targets)
    assert mean_corrupt < mean


def test_every_sent_packet_leaves_its_exit_once() -> None:
    trace = anonymity.simulate(50, 5, 2.0, 2.0, MixnetConfig(), seed=9)
    assert len(trace.exit_departure) == len(trace.sender)
    assert len(trace.events) == 2 * sum(trace.hops)
    assert all(n >= 0 for n in trace.before)
