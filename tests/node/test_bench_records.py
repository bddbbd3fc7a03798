"""``qdht-bench records`` runs end to end on a tiny loopback network."""

from __future__ import annotations

import argparse

import pytest
from qdht_bench import records_net

pytestmark = pytest.mark.slow


def test_records_benchmark_reports_every_metric() -> None:
    # 9 publishers of 4000-byte entries: more than fit one answer, so get_set pages.
    args = argparse.Namespace(
        nodes=9,
        puts=4,
        concurrency=2,
        value_size=256,
        seed=3,
        store_count=50,
        set_publishers=9,
        republish_records="40",
        republish_nodes=40,
        republish_baseline=40,
    )
    result = records_net.run(args)
    for op in ("find_node", "put", "get", "mutable_put", "mutable_get"):
        assert result.metrics[f"{op}_per_s"] > 0
        assert result.metrics[f"{op}_ms_median"] > 0
    for op in ("put", "get", "mutable_put", "mutable_get", "set_get"):
        assert result.metrics[f"{op}_success"] == 1.0
        assert result.metrics[f"{op}_vs_find_node"] > 0
    assert result.metrics["sqlite_writes_per_s"] > 0
    assert result.metrics["bytes_per_record"] > 256
    # Republishing batched by region: fewer lookups than records, every record held again.
    assert result.metrics["republish_batched_40_lookups_per_record"] < 0.5
    assert result.metrics["republish_per_record_40_lookups_per_record"] == 1.0
    assert result.metrics["republish_batched_40_held"] == 1.0
    assert 0 < result.metrics["republish_messages_ratio_to_per_record"] < 1
