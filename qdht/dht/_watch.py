"""Watching keys, sans-IO: the holder's subscriptions and the watcher's state.

Implements ``protocol-spec/08-watch.md``.  Two plain objects, driven by the
DHT core (:class:`~qdht.dht.DhtCore`) with the current time passed in:

* :class:`WatchRegistry` is the **holder** side: who watches which key, until
  when, bounded per key, per watcher and in total (:class:`WatchLimits`);
  which subscriptions to notify when a record under a key changes; when the
  record of a watched key expires; and which watchers stopped answering.
* :class:`WatchSubscriptions` is the **watcher** side: the keys this node
  watches, the holders it subscribed at for each, when to renew (a new
  FIND_NODE lookup each round, so the set follows the closest nodes), what
  it has reported so far (only strictly higher ranks are reported again),
  and the local expiry of the records it reported.

Times: ``now`` is the monotonic clock of the core (seconds); record expiry
times are Unix seconds, and ``unix_offset`` converts (``unix = now +
unix_offset``), as in the core.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Final

import attrs

from qdht import validators
from qdht.dht._records import ValidRecord
from qdht.errors import ConfigError
from qdht.wire import MAX_WATCH_TTL, AnyRecord, SetEntry

__all__ = ["Subscribed", "WatchLimits", "WatchRegistry", "catch_up", "record_slot"]

#: Validates a record offered under a key (RecordValidator.validate with the time bound).
Validate = Callable[[AnyRecord, bytes], ValidRecord]


def _ttl(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or not 1 <= value <= MAX_WATCH_TTL:
        raise ConfigError(f"{attribute.name} must be an integer in 1..{MAX_WATCH_TTL}")


def record_slot(record: ValidRecord) -> bytes:
    """The slot a record fills under its key: its publisher for a set entry, else ``b""``."""
    if isinstance(record.record, SetEntry):
        return record.record.owner
    return b""


# ===================================================================== holder


@attrs.frozen
class WatchLimits:
    """What a holder accepts (08-watch.md §3.1); every limit bounds memory or work."""

    #: Longest subscription granted, in seconds (at most 600, the wire limit).
    max_ttl: int = attrs.field(default=MAX_WATCH_TTL, validator=_ttl)
    #: Subscriptions to one key: one change notifies at most this many watchers.
    max_watchers_per_key: int = attrs.field(default=64, validator=validators.positive_int)
    #: Keys one watcher (node ID) may watch here.
    max_keys_per_watcher: int = attrs.field(default=128, validator=validators.positive_int)
    #: Subscriptions in total.
    max_subscriptions: int = attrs.field(default=16384, validator=validators.positive_int)
    #: Consecutive notifications a watcher may leave unanswered before its
    #: subscription is dropped (a dead or departed watcher).
    max_notify_failures: int = attrs.field(default=3, validator=validators.positive_int)


_DEFAULT_LIMITS: Final = WatchLimits()


class _Subscriber:
    __slots__ = ("address", "expires", "failures")

    def __init__(self, address: Hashable, expires: float) -> None:
        self.address = address
        self.expires = expires
        self.failures = 0


@attrs.frozen
class Subscribed:
    """A subscription taken or renewed: the granted ``ttl``; ``new`` unless a renewal."""

    ttl: int
    new: bool


class WatchRegistry:
    """The holder's subscriptions (08-watch.md §3.1, §4).

    Refusals are returned as reason strings (``watchers-per-key``,
    ``keys-per-watcher``, ``subscriptions``), never raised: the input is
    remote.  Expired subscriptions are swept by :meth:`expire`.
    """

    # Slotted: every simulated core has one.
    __slots__ = (
        "_by_key",
        "_deadlines",
        "_keys_of",
        "_record_exp",
        "_record_heap",
        "_total",
        "dropped_dead",
        "limits",
        "notifies",
        "refused",
        "unix_offset",
    )

    def __init__(self, limits: WatchLimits | None = None, *, unix_offset: float = 0.0) -> None:
        self.limits = limits if limits is not None else _DEFAULT_LIMITS
        self.unix_offset = unix_offset
        self._by_key: dict[bytes, dict[bytes, _Subscriber]] = {}
        self._keys_of: dict[bytes, int] = {}
        self._total = 0
        self._deadlines: list[tuple[float, bytes, bytes]] = []
        # The expiry (monotonic) of the record each watched key holds here.
        self._record_exp: dict[bytes, float] = {}
        self._record_heap: list[tuple[float, bytes]] = []
        self.refused: dict[str, int] = {}
        self.dropped_dead = 0
        self.notifies = 0

    def __len__(self) -> int:
        return self._total

    # ------------------------------------------------------------ subscriptions

    def subscribe(
        self, key: bytes, watcher: bytes, address: Hashable, ttl: int, now: float
    ) -> Subscribed | str:
        """Take or renew ``watcher``'s subscription to ``key`` for up to ``ttl`` s (> 0)."""
        if type(ttl) is not int or not 1 <= ttl <= MAX_WATCH_TTL:
            raise ConfigError(f"ttl must be an integer in 1..{MAX_WATCH_TTL}")
        limits = self.limits
        granted = min(ttl, limits.max_ttl)
        expires = now + granted
        subscribers = self._by_key.get(key)
        current = subscribers.get(watcher) if subscribers is not None else None
        if current is not None and current.expires > now:
            current.expires = expires
            current.address = address
            heapq.heappush(self._deadlines, (expires, key, watcher))
            return Subscribed(granted, False)
        if current is not None:  # expired, not yet swept: it is replaced below
            self._remove(key, watcher)
            subscribers = self._by_key.get(key)
        reason = None
        if subscribers is not None and len(subscribers) >= limits.max_watchers_per_key:
            reason = "watchers-per-key"
        elif self._keys_of.get(watcher, 0) >= limits.max_keys_per_watcher:
            reason = "keys-per-watcher"
        elif self._total >= limits.max_subscriptions:
            reason = "subscriptions"
        if reason is not None:
            self.refused[reason] = self.refused.get(reason, 0) + 1
            return reason
        if subscribers is None:
            subscribers = self._by_key[key] = {}
        subscribers[watcher] = _Subscriber(address, expires)
        self._keys_of[watcher] = self._keys_of.get(watcher, 0) + 1
        self._total += 1
        heapq.heappush(self._deadlines, (expires, key, watcher))
        return Subscribed(granted, True)

    def unsubscribe(self, key: bytes, watcher: bytes) -> bool:
        """End ``watcher``'s subscription to ``key`` (an unwatch); whether it existed."""
        subscribers = self._by_key.get(key)
        if subscribers is None or watcher not in subscribers:
            return False
        self._remove(key, watcher)
        return True

    def _remove(self, key: bytes, watcher: bytes) -> None:
        subscribers = self._by_key[key]
        del subscribers[watcher]
        if not subscribers:
            del self._by_key[key]
            self._record_exp.pop(key, None)
        left = self._keys_of[watcher] - 1
        if left:
            self._keys_of[watcher] = left
        else:
            del self._keys_of[watcher]
        self._total -= 1

    def watchers(self, key: bytes, now: float) -> list[tuple[bytes, Hashable]]:
        """The live subscriptions of ``key``: (watcher node ID, its address)."""
        subscribers = self._by_key.get(key)
        if not subscribers:
            return []
        return [(w, s.address) for w, s in subscribers.items() if s.expires > now]

    def is_watched(self, key: bytes) -> bool:
        """Whether anyone watches ``key`` (expired subscriptions may still count)."""
        return key in self._by_key

    def expire(self, now: float) -> int:
        """Drop the subscriptions that ended by ``now``; how many."""
        dropped = 0
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            when, key, watcher = heapq.heappop(deadlines)
            subscriber = self._by_key.get(key, {}).get(watcher)
            if subscriber is not None and subscriber.expires == when:
                self._remove(key, watcher)
                dropped += 1
        return dropped

    # ------------------------------------------------------------ notifications

    def notifying(self, count: int) -> None:
        """Count ``count`` notifications sent."""
        self.notifies += count

    def notify_answered(self, key: bytes, watcher: bytes, *, stop: bool) -> None:
        """``notified`` came back: the watcher is alive (``stop``: it no longer watches)."""
        subscriber = self._by_key.get(key, {}).get(watcher)
        if subscriber is None:
            return
        if stop:
            self._remove(key, watcher)
        else:
            subscriber.failures = 0

    def notify_failed(self, key: bytes, watcher: bytes) -> bool:
        """A notification timed out or was refused; True if the subscription was dropped."""
        subscriber = self._by_key.get(key, {}).get(watcher)
        if subscriber is None:
            return False
        subscriber.failures += 1
        if subscriber.failures >= self.limits.max_notify_failures:
            self._remove(key, watcher)
            self.dropped_dead += 1
            return True
        return False

    # ------------------------------------------------------------ record expiry

    def track_expiry(self, key: bytes, records: Iterable[ValidRecord]) -> None:
        """What a watched key holds here now; its last ``exp`` is when to say "expired"."""
        if key not in self._by_key:
            return
        latest = max((r.expires for r in records), default=None)
        if latest is None:
            self._record_exp.pop(key, None)
            return
        when = latest - self.unix_offset
        if self._record_exp.get(key) != when:
            self._record_exp[key] = when
            heapq.heappush(self._record_heap, (when, key))

    def expiries_due(self, now: float) -> list[bytes]:
        """Watched keys whose record expired by ``now`` (each reported once)."""
        due = []
        heap = self._record_heap
        while heap and heap[0][0] <= now:
            when, key = heapq.heappop(heap)
            if self._record_exp.get(key) == when:
                del self._record_exp[key]
                due.append(key)
        return due

    def get_timer(self) -> float | None:
        """When :meth:`expire` or :meth:`expiries_due` next has work (None: never)."""
        heap = self._record_heap
        if not heap and not self._deadlines:
            return None  # nobody watches anything here: asked after every message
        when = []
        if self._deadlines:
            when.append(self._deadlines[0][0])
        while heap and self._record_exp.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # superseded
        if heap:
            when.append(heap[0][0])
        return min(when) if when else None

    def stats(self) -> dict[str, Any]:
        """Subscriptions held, keys watched, refusals by reason, dead watchers dropped."""
        return {
            "subscriptions": self._total,
            "keys": len(self._by_key),
            "watchers": len(self._keys_of),
            "notifies_sent": self.notifies,
            "refused": dict(self.refused),
            "dead_dropped": self.dropped_dead,
        }


def catch_up(
    records: Sequence[ValidRecord], since: int | None, *, renewal: bool = False
) -> list[ValidRecord]:
    """What a holder sends a subscription right away (08-watch.md §3.2).

    A new subscription gets what the watcher lacks by ``since`` (a set: every
    entry); a renewal gets the same for a non-set key, so a lost notification
    is made up at the next renewal, and nothing for a set.
    """
    if not records:
        return []
    if isinstance(records[0].record, SetEntry):
        return [] if renewal else list(records)
    if since is None:
        return list(records)
    return [r for r in records if r.seq > since or (r.seq == since and r.deleted)]


# ==================================================================== watcher

#: Holders remembered per watched key as not to be subscribed at (an invalid
#: record, a refusal).
