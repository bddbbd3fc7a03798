"""``qdht-bench durability`` in miniature: records survive churn through replication."""

from __future__ import annotations

from qdht_bench._durability import replacement_schedule, run_one


def test_records_stay_retrievable_while_half_the_network_is_replaced() -> None:
    metrics = run_one(nodes=50, records=20, hours=3.0, churn=0.5, seed=3, join_interval=0.05)
    assert metrics["put_success"] == 1.0
    assert metrics["retrievable"] == 1.0
    assert metrics["nodes_replaced"] == 25
    # Copies were restored, not merely left over: the k closest hold each record.
    assert metrics["replicas_min"] >= 15
    assert metrics["republish_lookups_per_h"] > 0


def test_the_churn_schedule_replaces_nodes_evenly() -> None:
    schedule = replacement_schedule(100, 0.3, 3600.0)
    assert schedule.leaves == schedule.joins == 30
    times = sorted({event.at for event in schedule})
    assert len(times) == 30
    assert times[0] == 60.0
    assert times[-1] == 3540.0
