"""The shared statistics of ``qdht-bench``: success rates with their evidence."""

from __future__ import annotations

import math

import pytest
from qdht_bench._common import BenchResult, trials_needed, wilson_lower


def test_wilson_lower_bound_matches_the_published_interval() -> None:
    # Brown, Cai & DasGupta (2001), and the closed form n / (n + z²) at 100 %.
    assert wilson_lower(1000, 1000) == pytest.approx(1000 / (1000 + 1.959963984540054**2))
    assert wilson_lower(81, 263) == pytest.approx(0.2553, abs=1e-4)
    assert wilson_lower(0, 10) == 0.0
    assert math.isnan(wilson_lower(0, 0))


def test_a_999_claim_needs_enough_trials() -> None:
    needed = trials_needed(0.999)
    assert wilson_lower(needed, needed) >= 0.999
    assert wilson_lower(needed - 1, needed - 1) < 0.999
    assert 3800 < needed < 3900


def test_add_rate_reports_trials_and_checks_the_target_on_the_bound() -> None:
    result = BenchResult("x")
    result.add_rate("get_success", 1000, 1000, target=0.999)
    assert result.metrics["get_success"] == 1.0
    assert result.metrics["get_success_trials"] == 1000
    assert result.metrics["get_success_lo95"] < 0.999
    assert not result.targets_met()  # 1,000 clean trials cannot support 99.9 %
    assert any("cannot support" in note for note in result.notes)
    enough = BenchResult("y")
    enough.add_rate("get_success", 4000, 4000, target=0.999)
    assert enough.targets_met()
