"""Token buckets per key (peer, source address, ...), bounded in number, sans-IO.

One mechanism for every rate limit of a node: handshakes per source address,
per node ID and in total in the session layer (``04-handshake.md`` §5.5);
requests per peer, per address and in total in
:class:`~qdht.dht._core.DhtCore`; STOREs per source for records
(``07-records.md`` §6.3).  It lives at the package top because both layers
use it and neither may import the other's internals.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from qdht.errors import ConfigError

__all__ = ["TokenBuckets"]

K = TypeVar("K", bound=Hashable)


class TokenBuckets(Generic[K]):
    """A token bucket for each key: ``rate`` tokens per second, up to ``burst``.

    ``allow(key, now)`` takes a token if there is one.  At most ``max_keys``
    buckets are kept, least recently used evicted; an evicted key starts again
    with a full bucket, which bounds memory, not the total rate of many keys.
    A bucket that has filled up again is forgotten too (a missing key *is* a
    full bucket), a couple of the least recently used per call: memory follows
    the sources that are using their allowance now, not every source ever
    seen.  Time (``now``, monotonic seconds) is passed in.
    """

    __slots__ = ("_buckets", "burst", "max_keys", "rate", "refused")

    def __init__(self, *, rate: float, burst: int, max_keys: int) -> None:
        if not rate > 0:
            raise ConfigError(f"rate must be positive, got {rate!r}")
        if type(burst) is not int or burst <= 0:
            raise ConfigError(f"burst must be a positive integer, got {burst!r}")
        if type(max_keys) is not int or max_keys <= 0:
            raise ConfigError(f"max_keys must be a positive integer, got {max_keys!r}")
        self.rate = float(rate)
        self.burst = burst
        self.max_keys = max_keys
        #: key → (tokens, time of the last update), least recently used first.
        self._buckets: OrderedDict[K, tuple[float, float]] = OrderedDict()
        #: Requests refused so far.
        self.refused = 0

    def allow(self, key: K, now: float) -> bool:
        """Take a token for ``key`` at ``now``; False (and counted) if there is none."""
        # On the path of every datagram and request a flood sends: plain
        # comparisons instead of min/max, one forgetting step per call.
        buckets = self._buckets
        burst = self.burst
        entry = buckets.pop(key, None)
        if entry is None:
            tokens = float(burst)
        else:
            tokens, last = entry
            if now > last:
                tokens += (now - last) * self.rate
                if tokens > burst:
                    tokens = float(burst)
        if tokens >= 1.0:
            tokens -= 1.0
            allowed = True
        else:
            self.refused += 1
            allowed = False
        buckets[key] = (tokens, now)
        if len(buckets) > 1:
            if len(buckets) > self.max_keys:
                buckets.popitem(last=False)
            # Forget up to two refilled buckets (least recently used first).
            for _ in range(2):
                oldest = next(iter(buckets))
                if oldest == key:
                    break
                old_tokens, old_last = buckets[oldest]
                if old_tokens + (now - old_last) * self.rate < burst:
                    break
                del buckets[oldest]
        return allowed

    def __len__(self) -> int:
        return len(self._buckets)
