"""``qdht-bench mix``: its figures exist, and replays and tampered packets never pass."""

from __future__ import annotations

import argparse
import random

from qdht_bench import mix


def test_replays_and_tampered_packets_are_never_accepted() -> None:
    replays, tampered, drops = mix._tries(1000, random.Random(11))
    assert (replays, tampered) == (0, 0)
    # Header flips die on the first MAC, payload flips on the exit's zero tag.
    assert set(drops) <= {"bad-mac", "bad-payload", "bad-version", "bad-kem", "bad-commands"}
    assert drops["bad-mac"] > 0
    assert drops["bad-payload"] > 0
    assert sum(drops.values()) == 1000


def test_run_reports_the_side_by_side_figures() -> None:
    result = mix.run(
        argparse.Namespace(
            samples=2, batch=1, tries=50, replay_probes=0, profile=False, breakdown=True
        )
    )
    values = result.metrics
    assert values["replays_accepted"] == 0
    assert values["tampered_accepted"] == 0
    assert values["packet_bytes"] == 11595
    assert values["packets_per_s_per_core"] > 0
    # The breakdown: every step of our hop, and what is left of it.
    assert values["step_mlkem768_decap_us"] > 0
    assert values["step_lioness_blake2b_x2_us"] > 0
    assert "step_rest_us" in values
    # sphinxmix is a bench extra: without it the table says so instead of a ratio.
    if "sphinxmix_hop_us" in values:
        ratio = values["hop_us"] / values["sphinxmix_hop_us"]
        assert abs(values["hop_ratio_vs_sphinxmix"] - ratio) < 1e-9
        assert values["sphinxmix_step_p224_mult_x2_us"] > 0
    else:
        assert any("sphinxmix is not installed" in note for note in result.notes)
