"""``qdht-bench messaging`` measures what it says, against a working baseline."""

from __future__ import annotations

import argparse

import pytest
from qdht_bench import messaging


def test_run_reports_first_contact_per_message_costs_and_bytes() -> None:
    result = messaging.run(argparse.Namespace(count=2, messages=20, batches=1, net_rounds=0))
    values = result.metrics
    for shape in ("stream", "pingpong"):
        ratio = (values[f"{shape}_qdht_encrypt_us"] + values[f"{shape}_qdht_decrypt_us"]) / (
            values[f"{shape}_doubleratchet_encrypt_us"]
            + values[f"{shape}_doubleratchet_decrypt_us"]
        )
        assert abs(values[f"{shape}_ratio_to_doubleratchet"] - ratio) < 1e-9
    assert values["first_build_ms"] > 0
    assert values["pq_epochs_during_run"] >= 5  # ping-pong advanced the ML-KEM epochs
    assert 1120 < values["first_bytes_opk_signed"] - values["first_bytes_no_opk_signed"] < 1150
    assert values["message_bytes_overhead"] < values["message_bytes_overhead_with_ct"]
    assert values["message_bytes_overhead_with_ct"] < values["message_bytes_overhead_with_ek"]


def test_network_part_reports_latency_and_idle_polling() -> None:
    args = argparse.Namespace(
        count=1, messages=4, batches=1, net_rounds=1, net_idle=1.0, poll_interval=0.3
    )
    values = messaging.run(args).metrics
    assert values["net_ok"] == 1.0
    assert values["net_e2e_latency_median_ms"] > 0
    assert values["net_latency_to_poll_interval"] == pytest.approx(
        values["net_e2e_latency_median_ms"] / values["net_poll_interval_ms"]
    )
    # 4 slot reads + 2 intro reads + 4 writes or cover reads per 0.3 s tick
    assert 10 <= values["net_idle_mailbox_ops_per_s"] <= 45
    assert values["net_idle_mailbox_bytes_per_s_per_contact"] > 0
    assert (
        values["net_idle_node_bytes_per_s_per_contact"]
        > values["net_idle_mailbox_bytes_per_s_per_contact"]
    )


def test_baseline_round_trips_both_ways() -> None:
    base = messaging._Baseline()
    for sender, receiver in ((base.alice, base.bob), (base.bob, base.alice)) * 3:
        assert base.decrypt(receiver, base.encrypt(sender, b"x")) == b"x"
