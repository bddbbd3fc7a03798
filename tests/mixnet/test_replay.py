"""Replay filters: no false negatives, a false-positive rate near the stated one."""

from __future__ import annotations

import hashlib

import pytest

from qdht.errors import ConfigError
from qdht.mixnet import ReplayFilter


def _tag(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(8, "big")).digest()


def test_every_inserted_tag_is_found_and_fresh_ones_rarely_are() -> None:
    store = ReplayFilter(5000, 1e-3)
    for i in range(5000):
        store.add(_tag(i))
    assert all(_tag(i) in store for i in range(5000))
    false_positives = sum(_tag(i) in store for i in range(5000, 55000))
    assert false_positives <= 150  # 50,000 fresh tags at 1e-3: about 50 expected
    assert len(store) == 5000
    assert store.expected_fp_rate() == pytest.approx(1e-3, rel=0.3)
    # m = -n ln p / ln^2 2 bits: 5000 tags at 1e-3 take about 8.8 KB.
    assert 8000 <= store.memory_bytes <= 9500


def test_bad_parameters_are_local_misuse() -> None:
    with pytest.raises(ConfigError):
        ReplayFilter(0, 1e-6)
    with pytest.raises(ConfigError):
        ReplayFilter(10, 0.0)
