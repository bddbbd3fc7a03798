"""The value store of a DHT node: immutable values under quotas, sans-IO.

Values are plain immutable values (``key = immutable_key(value)``,
``protocol-spec/02-dht-rpc.md`` §4); signed mutable records and persistent
storage replace this in a later version, behind the same small interface:
:meth:`ValueStore.put`, :meth:`ValueStore.get`, :meth:`ValueStore.expire`.
Time is passed in; nothing here reads a clock.
"""

from __future__ import annotations

import heapq
from typing import Any, Final

import attrs

from qdht.errors import ConfigError
from qdht.wire import MAX_VALUE_SIZE, immutable_key

__all__ = ["PutResult", "StorageConfig", "ValueStore"]


def _positive(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"{attribute.name} must be a positive number, got {value!r}")


@attrs.frozen
class StorageConfig:
    """Limits of the values a node keeps for others (every one bounds memory)."""

    #: Most values held.
    max_values: int = attrs.field(default=65_536, validator=_positive)
    #: Most bytes of values held in total (64 MiB).
    max_bytes: int = attrs.field(default=64 * 1024 * 1024, validator=_positive)
    #: Most values stored by one peer (node ID) that are held at once.
    max_values_per_source: int = attrs.field(default=1024, validator=_positive)
    #: Most bytes stored by one peer that are held at once (4 MiB).
    max_bytes_per_source: int = attrs.field(default=4 * 1024 * 1024, validator=_positive)
    #: Largest single value accepted (bytes; the wire allows 64 KiB).
    max_value_size: int = attrs.field(default=MAX_VALUE_SIZE, validator=_positive)
    #: A value is dropped this long (seconds) after it was last stored (24 h).
    ttl: float = attrs.field(default=86_400.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.max_value_size > MAX_VALUE_SIZE:
            raise ConfigError(f"max_value_size must be at most {MAX_VALUE_SIZE}")


#: Outcomes of :meth:`ValueStore.put`; everything but ``stored`` and
#: ``refreshed`` is a refusal, named as the drop reason it is counted under.
PutResult = str
STORED: Final = "stored"
REFRESHED: Final = "refreshed"
INVALID: Final = "invalid-value"
TOO_LARGE: Final = "too-large"
FULL: Final = "storage-full"
SOURCE_FULL: Final = "source-quota"


class _Item:
    __slots__ = ("expires", "source", "value")

    def __init__(self, value: bytes, source: bytes, expires: float) -> None:
        self.value = value
        self.source = source
        self.expires = expires


class ValueStore:
    """Immutable values by key, with total and per-source quotas and expiry."""

    def __init__(self, config: StorageConfig | None = None) -> None:
        self.config = config if config is not None else StorageConfig()
        self._items: dict[bytes, _Item] = {}
        self._bytes = 0
        # source node ID -> (values, bytes) it has stored here
        self._by_source: dict[bytes, list[int]] = {}
        # (expiry, key): lazily cleaned, an entry is stale when the item's expiry moved
        self._expiry: list[tuple[float, bytes]] = []
        self.counts = {STORED: 0, REFRESHED: 0, "expired": 0}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def put(self, key: bytes, value: bytes, source: bytes, now: float) -> PutResult:
        """Keep ``value`` under ``key`` for ``source``; the outcome names what happened.

        The key is checked against the value here, so nothing unverified is
        ever stored.  Storing a value already held refreshes its expiry.
        """
        cfg = self.config
        if len(value) > cfg.max_value_size:
            return TOO_LARGE
        if immutable_key(value) != key:
            return INVALID
        expires = now + cfg.ttl
        item = self._items.get(key)
        if item is not None:
            item.expires = expires
            heapq.heappush(self._expiry, (expires, key))
            self.counts[REFRESHED] += 1
            return REFRESHED
        size = len(value)
        if len(self._items) >= cfg.max_values or self._bytes + size > cfg.max_bytes:
            return FULL
        quota = self._by_source.get(source)
        if quota is not None and (
            quota[0] >= cfg.max_values_per_source or quota[1] + size > cfg.max_bytes_per_source
        ):
            return SOURCE_FULL
        self._items[key] = _Item(value, source, expires)
        self._bytes += size
        if quota is None:
            self._by_source[source] = [1, size]
        else:
            quota[0] += 1
            quota[1] += size
        heapq.heappush(self._expiry, (expires, key))
        self.counts[STORED] += 1
        return STORED

    def get(self, key: bytes, now: float) -> bytes | None:
        """The value under ``key`` if held and not expired."""
        item = self._items.get(key)
        if item is None or item.expires <= now:
            return None
        return item.value

    def expire(self, now: float) -> int:
        """Drop every value whose time is up; returns how many went."""
        gone = 0
        heap = self._expiry
        while heap and heap[0][0] <= now:
            when, key = heapq.heappop(heap)
            item = self._items.get(key)
            if item is None or item.expires != when:
                continue  # refreshed or already gone: a stale heap entry
            self._remove(key, item)
            gone += 1
        # Refreshes leave stale entries behind; rebuild when they dominate.
        if len(heap) > 2 * len(self._items) + 64:
            self._expiry = [(item.expires, key) for key, item in self._items.items()]
            heapq.heapify(self._expiry)
        self.counts["expired"] += gone
        return gone

    def next_expiry(self) -> float | None:
        """When :meth:`expire` next has something to do (None: store empty)."""
        return self._expiry[0][0] if self._expiry else None

    def _remove(self, key: bytes, item: _Item) -> None:
        del self._items[key]
        size = len(item.value)
        self._bytes -= size
        quota = self._by_source[item.source]
        quota[0] -= 1
        quota[1] -= size
        if quota[0] == 0:
            del self._by_source[item.source]

    def stats(self) -> dict[str, Any]:
        return {
            "values": len(self._items),
            "bytes": self._bytes,
            "sources": len(self._by_source),
            **self.counts,
        }
