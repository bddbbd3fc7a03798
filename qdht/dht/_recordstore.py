"""The record store of a DHT node: one interface, an in-memory and an SQLite backend.

A store keeps :class:`~qdht.dht._records.ValidRecord` objects (records that
already passed :class:`~qdht.dht._records.RecordValidator`) and applies the
merge rules of ``protocol-spec/07-records.md`` §7 (:func:`accept`,
:func:`accept_set_entry`) atomically on every :meth:`RecordStore.put`.  Time
is an argument (seconds since the Unix epoch, as record expiry times are);
nothing here reads a clock.

Slots
    A key holds one record (immutable, mutable or tombstone) in the slot
    ``b""``, or one set entry per publisher in the slot named by the
    publisher's ``owner``.  :meth:`RecordStore.get` returns the records of
    every slot of a key, set entries ordered by owner.

Stored and cached entries
    A *stored* entry (``cached=False``) is one we keep because we are among
    the k closest nodes to its key; a *cached* entry (``cached=True``) was
    pushed to us because we were on a lookup's path.  Stored entries are never
    evicted: when a put would exceed a quota it is refused, never displacing
    good data.  Cached entries live in their own budget
    (:attr:`StoreLimits.max_cached_bytes`), count towards the total, are *not*
    charged to the per-publisher and per-source quotas (they were not stored
    on the source's request to hold them for the network), and are evicted
    least recently used first, both when the cache budget is full and when a
    stored put needs room under the total.  A stored put of a key that is
    held cached promotes it (and is then charged to its source and
    publisher); a cached put of a key that is held stored leaves it stored.

Quotas
    Sizes are the bytes of the record's canonical CBOR encoding (with
    ``pk``).  A stored put is refused with a :class:`Decision` of outcome
    ``REJECT`` and reason ``quota-source``, ``quota-publisher`` or
    ``quota-total`` (``quota-cache`` for a cached put larger than the whole
    cache budget), counted in ``stats()["refusals"]``; rule refusals
    (``seq-regression``, ``set-full``, ...) are counted there too.
    A replacement is charged only its growth when source and publisher stay
    the same.  Sources are labelled by ``str`` (as is) or ``repr`` (anything
    else, such as a ``(host, port)`` tuple), which is also how the SQLite
    backend persists them.

Republish sweeps
    :meth:`RecordStore.keys_for_republish` lists the keys in a keyspace region
    ``[low, high)`` in order, a page at a time.
"""

from __future__ import annotations

import contextlib
import math
from bisect import bisect_left
from collections import Counter, OrderedDict
from collections.abc import Hashable
from typing import Any, Final, Protocol, Self

import attrs

from qdht.errors import ConfigError, StoreError
from qdht.wire import SetEntry, dumps_canonical

from ._config import StoreLimits
from ._records import (
    DEFAULT_RECORD_LIMITS,
    Decision,
    Outcome,
    RecordLimits,
    ValidRecord,
    accept,
    accept_set_entry,
)

__all__ = [
    "DEFAULT_STORE_LIMITS",
    "QUOTA_REASONS",
    "MemoryRecordStore",
    "RecordStore",
    "StoreLimits",
    "encoded_size",
    "source_label",
]


#: The reasons a put is refused for lack of room (besides the rule refusals of §7).
QUOTA_REASONS: Final = frozenset({"quota-total", "quota-publisher", "quota-source", "quota-cache"})


DEFAULT_STORE_LIMITS: Final = StoreLimits()


def source_label(source: Hashable) -> str:
    """How a source address is counted and persisted: a ``str`` as is, else its ``repr``."""
    return source if isinstance(source, str) else repr(source)


def encoded_size(record: ValidRecord) -> int:
    """The bytes ``record`` is charged for: its canonical CBOR encoding."""
    return len(_encode(record))


def _encode(record: ValidRecord) -> bytes:
    return dumps_canonical(record.record.to_cbor())


def _slot_of(record: ValidRecord) -> bytes:
    if isinstance(record.record, SetEntry):
        return record.record.owner
    return b""


@attrs.define(slots=True)
class _Row:
    """One held entry and what it is charged for."""

    record: ValidRecord
    size: int
    source: str
    cached: bool
    #: When the entry goes (Unix time): the record's ``exp``, or for a cached
    #: entry whichever comes first of that and the end of its ``cache`` lifetime.
    expires: float


class RecordStore(Protocol):
    """What the DHT core needs from a record store (both backends implement it)."""

    def get(self, key: bytes, *, now: float | None = None) -> list[ValidRecord]:
        """The records held under ``key`` (one, or a set's entries by owner); expired
        ones left out when ``now`` is given."""
        ...

    def put(
        self,
        record: ValidRecord,
        *,
        source: Hashable,
        cached: bool,
        now: float,
        cas: int | None = None,
        cache_until: float | None = None,
    ) -> Decision:
        """Apply the §7 merge rules and the quotas to ``record``, atomically; a
        cached entry goes at ``cache_until`` if that is before the record's ``exp``."""
        ...

    def delete_expired(self, now: float) -> int:
        """Remove every entry whose expiry is at or before ``now``; return how many."""
        ...

    def next_expiry(self) -> float:
        """A Unix time before which no held entry expires: the earliest expiry or a
        lower bound of it (``math.inf`` when nothing is held).  The core sweeps
        then (:meth:`delete_expired`), instead of polling."""
        ...

    def __len__(self) -> int:
        """The entries held (stored and cached; a set counts one per entry)."""
        ...

    def keys_for_republish(
        self,
        low: bytes = b"",
        high: bytes | None = None,
        *,
        limit: int = 1024,
        include_cached: bool = False,
    ) -> list[bytes]:
        """Up to ``limit`` distinct keys in ``[low, high)``, ascending."""
        ...

    def stats(self) -> dict[str, Any]:
        """Records, bytes, bytes by publisher and by source, evictions, refusals."""
        ...

    @property
    def unsaved(self) -> int | None:
        """The ticket of the newest change not yet durable (None: nothing to wait for).

        A durable store (:class:`~qdht.dht.SqliteRecordStore`) journals changes
        and writes them with :meth:`save`; the core holds a STORE's answer
        until its ticket is saved.  A memory store has nothing to save.
        """
        ...

    def save(self) -> int:
        """Make every change so far durable (blocking: a driver runs it in a worker
        thread); return the ticket saved up to."""
        ...

    def close(self) -> None:
        """Release the store (the SQLite backend saves and closes its database)."""
        ...


class _StoreBase:
    """The put logic both backends share; they provide storage primitives.

    Byte counters (total, stored, cached, by source, by publisher) are kept
    in memory by this class and changed only after a backend committed a
    change, so a failed write leaves them consistent.
    """

    def __init__(self, limits: StoreLimits, record_limits: RecordLimits) -> None:
        if not isinstance(limits, StoreLimits):
            raise ConfigError(f"limits must be a StoreLimits, got {type(limits).__name__}")
        if not isinstance(record_limits, RecordLimits):
            raise ConfigError("record_limits must be a RecordLimits")
        self.limits = limits
        self.record_limits = record_limits
        self._stored_bytes = 0
        self._cached_bytes = 0
        self._records = 0
        self._cached_records = 0
        self._by_source: Counter[str] = Counter()
        self._by_publisher: Counter[bytes] = Counter()
        self._evictions = 0
        self._expired = 0
        self._refusals: Counter[str] = Counter()
        self._corrupt = 0
        self._closed = False

    # -- backend primitives

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def _held(self, key: bytes) -> dict[bytes, _Row]:
        raise NotImplementedError

    def _lru_cached(
        self, need: int, exclude: tuple[bytes, bytes]
    ) -> list[tuple[bytes, bytes, int]]:
        """Cached entries, least recently used first, until their sizes reach ``need``."""
        raise NotImplementedError

    def _write(
        self, key: bytes, slot: bytes, row: _Row, blob: bytes, evict: list[tuple[bytes, bytes]]
    ) -> None:
        raise NotImplementedError

    def _touch(self, key: bytes, slots: list[bytes]) -> None:
        raise NotImplementedError

    # -- accounting

    def _charge(self, row: _Row, sign: int) -> None:
        self._records += sign
        if row.cached:
            self._cached_bytes += sign * row.size
            self._cached_records += sign
            return
        self._stored_bytes += sign * row.size
        self._by_source[row.source] += sign * row.size
        if self._by_source[row.source] <= 0:
            del self._by_source[row.source]
        owner = row.record.owner
        if owner is not None:
            self._by_publisher[owner] += sign * row.size
            if self._by_publisher[owner] <= 0:
                del self._by_publisher[owner]

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the record store is closed")

    def __len__(self) -> int:
        """The entries held (stored and cached; a set counts one per entry)."""
        return self._records

    # -- the interface

    def put(
        self,
        record: ValidRecord,
        *,
        source: Hashable,
        cached: bool,
        now: float,
        cas: int | None = None,
        cache_until: float | None = None,
    ) -> Decision:
        """Apply the §7 merge rules and the quotas to ``record``, atomically.

        A cached entry (07-records.md §10.6) goes at ``cache_until`` (Unix
        time: the STORE's ``cache`` lifetime from ``now``) or at the record's
        ``exp``, whichever is first; without ``cache_until`` a new version of
        a cached entry keeps the lifetime of the one it replaces.  A stored
        entry goes at its record's ``exp``: a cached put never shortens it.

        Returns the :class:`Decision` of :func:`accept` (or
        :func:`accept_set_entry`), or a ``REJECT`` with a quota reason.  A
        refused or lower-ranked record changes nothing held.
        """
        self._check_open()
        if not isinstance(record, ValidRecord):
            raise ConfigError(f"record must be a ValidRecord, got {type(record).__name__}")
        if type(cached) is not bool:
            raise ConfigError(f"cached must be a bool, got {cached!r}")
        if cas is not None and (type(cas) is not int or cas < 0):
            raise ConfigError(f"cas must be a non-negative integer or None, got {cas!r}")
        if cache_until is not None and (not cached or not isinstance(cache_until, int | float)):
            raise ConfigError(f"cache_until must be a time for a cached put, got {cache_until!r}")
        key, slot = record.key, _slot_of(record)
        label = source_label(source)
        with self._transaction():
            held = self._held(key)
            if isinstance(record.record, SetEntry):
                entries = {s: r.record for s, r in held.items() if s}
                decision = accept_set_entry(
                    entries, record, now, cas=cas, limits=self.record_limits
                )
            else:
                old_row = held.get(b"")
                decision = accept(old_row.record if old_row else None, record, now, cas=cas)
            old = held.get(slot)
            if decision.outcome is Outcome.REJECT:
                self._refusals[decision.reason or "rejected"] += 1
                return decision
            if decision.outcome is Outcome.UNCHANGED:
                assert old is not None  # UNCHANGED means a live record is held
                if cached or not old.cached:
                    if old.cached:
                        self._touch(key, [slot])
                    return decision
                keep = old.record  # a stored put of a cached entry: promote it
            else:
                keep = record
            blob = _encode(keep)
            still_cached = cached and (old is None or old.cached)
            expires = float(keep.expires)
            if still_cached:
                if cache_until is None and old is not None:
                    cache_until = old.expires
                if cache_until is not None:
                    expires = min(expires, cache_until)
            row = _Row(keep, len(blob), label, still_cached, expires)
            refusal, evict = self._make_room(key, slot, row, old)
            if refusal is not None:
                self._refusals[refusal] += 1
                return Decision(Outcome.REJECT, old.record if old else None, refusal)
            self._write(key, slot, row, blob, [(k, s) for k, s, _size in evict])
        for _k, _s, size in evict:
            self._records -= 1
            self._cached_records -= 1
            self._cached_bytes -= size
            self._evictions += 1
        if old is not None:
            self._charge(old, -1)
        self._charge(row, +1)
        return decision

    def _make_room(
        self, key: bytes, slot: bytes, row: _Row, old: _Row | None
    ) -> tuple[str | None, list[tuple[bytes, bytes, int]]]:
        """The quota refusal for ``row`` replacing ``old``, or the cached entries to evict."""
        limits = self.limits
        if not row.cached:
            same_source = old is not None and not old.cached and old.source == row.source
            used = self._by_source[row.source] - (old.size if old and same_source else 0)
            if used + row.size > limits.max_bytes_per_source:
                return "quota-source", []
            owner = row.record.owner
            if owner is not None:
                same_owner = old is not None and not old.cached and old.record.owner == owner
                used = self._by_publisher[owner] - (old.size if old and same_owner else 0)
                if used + row.size > limits.max_bytes_per_publisher:
                    return "quota-publisher", []
        freed = old.size if old is not None else 0
        need = self._stored_bytes + self._cached_bytes - freed + row.size - limits.max_bytes
        reason = "quota-total"
        if row.cached:
            if row.size > limits.max_cached_bytes:
                return "quota-cache", []
            cached_freed = freed if old is not None and old.cached else 0
            need_cache = self._cached_bytes - cached_freed + row.size - limits.max_cached_bytes
            need = max(need, need_cache)
        if need <= 0:
            return None, []
        evict = self._lru_cached(need, (key, slot))
        if sum(size for _k, _s, size in evict) < need:
            return reason, []
        return None, evict

    def stats(self) -> dict[str, Any]:
        """Records and bytes held; stored bytes by publisher (hex) and by source;
        evictions, expiry deletions, corrupt entries dropped and refusals by
        reason since this store object was opened."""
        return {
            "records": self._records,
            "cached_records": self._cached_records,
            "bytes": self._stored_bytes + self._cached_bytes,
            "stored_bytes": self._stored_bytes,
            "cached_bytes": self._cached_bytes,
            "by_publisher": {owner.hex(): n for owner, n in self._by_publisher.items()},
            "by_source": dict(self._by_source),
            "evictions": self._evictions,
            "expired": self._expired,
            "corrupt": self._corrupt,
            "refusals": dict(self._refusals),
        }

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the store; later calls raise :class:`~qdht.errors.StoreError`."""
        self._closed = True


def _check_region(low: bytes, high: bytes | None, limit: int) -> None:
    if type(low) is not bytes or (high is not None and type(high) is not bytes):
        raise ConfigError("low and high must be bytes (high may be None)")
    if type(limit) is not int or limit <= 0:
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")


# ---------------------------------------------------------------- memory


class MemoryRecordStore(_StoreBase):
    """A record store in memory: the default for a node without a data directory."""

    def __init__(
        self,
        limits: StoreLimits = DEFAULT_STORE_LIMITS,
        *,
        record_limits: RecordLimits = DEFAULT_RECORD_LIMITS,
    ) -> None:
        super().__init__(limits, record_limits)
        self._keys: dict[bytes, dict[bytes, _Row]] = {}
        # An index of the keys, ascending, for keys_for_republish: a republish
        # round pages through keyspace regions without sorting the store.  A
        # put only appends a new key to _unsorted (a bisect to tell, no insort:
        # that would cost a put O(n)); the next query merges them in.  Keys
        # dropped since stay in the index (_stale counts them) until it is
        # compacted at half stale.
        self._sorted: list[bytes] = []
        self._unsorted: list[bytes] = []
        self._stale = 0
        self._lru: OrderedDict[tuple[bytes, bytes], None] = OrderedDict()
        # No entry expires before this (a lower bound: the earliest expiry written
        # since the last sweep), so a sweep with nothing due scans nothing.
        self._earliest = math.inf

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    @property
    def unsaved(self) -> int | None:
        """Always None: memory has nothing to save (:class:`RecordStore`)."""
        return None

    def save(self) -> int:
        """Nothing to do (:class:`RecordStore`); returns 0."""
        return 0

    def _held(self, key: bytes) -> dict[bytes, _Row]:
        return dict(self._keys.get(key, {}))

    def _lru_cached(
        self, need: int, exclude: tuple[bytes, bytes]
    ) -> list[tuple[bytes, bytes, int]]:
        found: list[tuple[bytes, bytes, int]] = []
        total = 0
        for entry in self._lru:
            if entry == exclude:
                continue
            size = self._keys[entry[0]][entry[1]].size
            found.append((*entry, size))
            total += size
            if total >= need:
                break
        return found

    def _drop(self, key: bytes, slot: bytes) -> _Row:
        slots = self._keys[key]
        row = slots.pop(slot)
        if not slots:
            del self._keys[key]
            self._stale += 1
        self._lru.pop((key, slot), None)
        return row

    def _write(
        self, key: bytes, slot: bytes, row: _Row, blob: bytes, evict: list[tuple[bytes, bytes]]
    ) -> None:
        for k, s in evict:
            self._drop(k, s)
        if row.expires < self._earliest:
            self._earliest = row.expires
        slots = self._keys.get(key)
        if slots is None:
            slots = self._keys[key] = {}
            ordered = self._sorted
            i = bisect_left(ordered, key)
            if i < len(ordered) and ordered[i] == key:
                self._stale -= 1  # dropped once, still indexed: live again
            else:
                self._unsorted.append(key)
        slots[slot] = row
        if row.cached:
            self._lru[(key, slot)] = None
            self._lru.move_to_end((key, slot))
        else:
            self._lru.pop((key, slot), None)

    def _touch(self, key: bytes, slots: list[bytes]) -> None:
        for slot in slots:
            if (key, slot) in self._lru:
                self._lru.move_to_end((key, slot))

    def get(self, key: bytes, *, now: float | None = None) -> list[ValidRecord]:
        """The records held under ``key``; a cached entry read becomes most recently used."""
        self._check_open()
        slots = self._keys.get(key)
        if not slots:
            return []
        self._touch(key, [s for s, row in slots.items() if row.cached])
        return [slots[s].record for s in sorted(slots) if now is None or slots[s].expires > now]

    def next_expiry(self) -> float:
        """A Unix time before which no held entry expires (:class:`RecordStore`):
        exact after a :meth:`delete_expired` that found something due, a lower
        bound otherwise (an entry replaced or evicted since may have been the
        earliest, and then a sweep finds nothing and sets it right)."""
        return self._earliest if self._keys else math.inf

    def delete_expired(self, now: float) -> int:
        """Remove every entry whose expiry is at or before ``now``; return how many."""
        self._check_open()
        if now < self._earliest:
            return 0
        gone = []
        earliest = math.inf
        for key, slots in self._keys.items():
            for slot, row in slots.items():
                if row.expires <= now:
                    gone.append((key, slot))
                elif row.expires < earliest:
                    earliest = row.expires
        self._earliest = earliest
        for key, slot in gone:
            self._charge(self._drop(key, slot), -1)
        self._expired += len(gone)
        return len(gone)

    def keys_for_republish(
        self,
        low: bytes = b"",
        high: bytes | None = None,
        *,
        limit: int = 1024,
        include_cached: bool = False,
    ) -> list[bytes]:
        """Up to ``limit`` distinct keys in ``[low, high)``, ascending (held stored,
        or cached too with ``include_cached``).  To page on, call again with
        ``low = last + b"\\x00"``.  O(log n + the keys it passes over)."""
        self._check_open()
        _check_region(low, high, limit)
        keys: list[bytes] = []
        ordered = self._index()
        for i in range(bisect_left(ordered, low), len(ordered)):
            key = ordered[i]
            if high is not None and key >= high:
                break
            slots = self._keys.get(key)
            if slots is not None and (include_cached or any(not r.cached for r in slots.values())):
                keys.append(key)
                if len(keys) == limit:
                    break
        return keys

    def _index(self) -> list[bytes]:
        """The key index, ascending, with the keys put since merged in."""
        ordered = self._sorted
        if self._unsorted:
            # Two runs (the index and the new keys, sorted): timsort merges in O(n).
            ordered.extend(sorted(set(self._unsorted)))
            ordered.sort()
            self._unsorted.clear()
        if self._stale > len(ordered) // 2:
            ordered = self._sorted = [k for k in ordered if k in self._keys]
            self._stale = 0
        return ordered
