"""``qdht-bench models`` reports every figure, from a tiny model (no timing asserted)."""

from __future__ import annotations

import argparse

from qdht_bench import models, models_net


def test_run_reports_every_metric_and_meets_the_byte_targets() -> None:
    result = models.run(argparse.Namespace(size_mb=1, runs=1, scale=2, fetchers=0, no_network=True))
    values = result.metrics
    assert values["new_version_bytes_ratio"] == 1.0
    assert 20 < values["naive_storage_per_byte"] < 21
    assert 3 < values["provider_storage_per_byte"] < 3.5  # 3 seeds + k provider records
    assert values["fetch_peak_mib_small"] > 0
    assert "net_fetch_mb_per_s_5_holders" not in values
    for name in ("chunk_mb_per_s", "verify_mb_per_s", "assemble_mb_per_s", "sha3_mb_per_s"):
        assert values[name] > 0


def test_the_loopback_network_part_reports_every_figure() -> None:
    figures = models_net.network_fetch(nodes=8, size_mb=1, seeds=4)
    for name in (
        "session_mb_per_s",
        "net_fetch_mb_per_s_1_holder",
        "net_fetch_mb_per_s_5_holders",
        "net_5_holders_vs_session",
        "net_fetch_peak_mib",
    ):
        assert figures[name] > 0
