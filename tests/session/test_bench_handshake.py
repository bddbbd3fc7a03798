"""``qdht-bench handshake`` measures what it says: complete handshakes, both patterns."""

from __future__ import annotations

import argparse

from qdht_bench import handshake

from qdht.identity import Identity


def test_long_lived_pair_completes_each_handshake_and_closes_it() -> None:
    a, b = Identity.generate(difficulty=4), Identity.generate(difficulty=4)
    pair = handshake._Pair(a, b)
    for ik in (False, True, False, True):
        assert pair.handshake(ik) > 0
        # The untimed close leaves neither side with a session or a pending handshake.
        assert pair.ea.stats()["sessions"] == 0
        assert pair.eb.stats()["sessions"] == 0
    assert pair.now == 4.0
    assert not pair.eb.drops, dict(pair.eb.drops)
    assert not pair.ea.drops, dict(pair.ea.drops)


def test_run_reports_every_metric_with_a_ratio_of_its_own_figures() -> None:
    result = handshake.run(argparse.Namespace(count=3, profile=False))
    values = result.metrics
    assert set(values) == {
        "handshake_ms_median",
        "primitives_ms_median",
        "handshake_overhead_ratio",
        "pqik_ms_median",
        "handshake_fresh_ms_median",
    }
    ratio = values["handshake_ms_median"] / values["primitives_ms_median"]
    assert abs(values["handshake_overhead_ratio"] - ratio) < 1e-9
