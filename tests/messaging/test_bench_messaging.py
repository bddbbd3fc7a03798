"""``qdht-bench messaging`` measures what it says, against a working baseline."""

from __future__ import annotations

import argparse

from qdht_bench import messaging


def test_run_reports_first_contact_per_message_costs_and_bytes() -> None:
    result = messaging.run(argparse.Namespace(count=2, messages=20, batches=1))
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


def test_baseline_round_trips_both_ways() -> None:
    base = messaging._Baseline()
    for sender, receiver in ((base.alice, base.bob), (base.bob, base.alice)) * 3:
        assert base.decrypt(receiver, base.encrypt(sender, b"x")) == b"x"
