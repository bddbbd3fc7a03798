"""TokenBuckets: rates, bursts, the key bound, and forgetting refilled buckets."""

from __future__ import annotations

import pytest

from qdht.errors import ConfigError
from qdht.ratelimit import TokenBuckets


def test_burst_then_rate_per_key() -> None:
    buckets: TokenBuckets[str] = TokenBuckets(rate=2.0, burst=3, max_keys=10)
    assert [buckets.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert buckets.allow("b", 0.0)  # another key has its own bucket
    assert not buckets.allow("a", 0.25)  # half a token earned
    assert buckets.allow("a", 0.5)
    assert buckets.refused == 2


def test_at_most_max_keys_are_kept() -> None:
    buckets: TokenBuckets[int] = TokenBuckets(rate=1.0, burst=5, max_keys=3)
    for key in range(10):
        for _ in range(5):
            buckets.allow(key, 0.0)  # drained: none of them is refilled
    assert len(buckets) == 3


def test_refilled_buckets_are_forgotten() -> None:
    buckets: TokenBuckets[int] = TokenBuckets(rate=10.0, burst=20, max_keys=4096)
    for key in range(1000):
        assert buckets.allow(key, key * 0.01)  # one request per source, 100 a second
    # each bucket is full again 0.1 s after its one request: only recent ones are kept
    assert len(buckets) <= 12
    drained: TokenBuckets[str] = TokenBuckets(rate=1.0, burst=2, max_keys=10)
    for _ in range(3):
        drained.allow("x", 0.0)
    drained.allow("y", 0.5)
    assert len(drained) == 2  # x is still short of tokens: kept, and still refused
    assert not drained.allow("x", 0.5)


def test_arguments_are_checked() -> None:
    with pytest.raises(ConfigError, match="rate"):
        TokenBuckets(rate=0, burst=1, max_keys=1)
    with pytest.raises(ConfigError, match="burst"):
        TokenBuckets(rate=1, burst=0, max_keys=1)
    with pytest.raises(ConfigError, match="max_keys"):
        TokenBuckets(rate=1, burst=1, max_keys=0)
