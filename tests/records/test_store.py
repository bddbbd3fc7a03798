"""The record store conformance suite: every backend behaves the same (both run it)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import (
    MemoryRecordStore,
    Outcome,
    RecordLimits,
    RecordStore,
    SqliteRecordStore,
    StoreLimits,
    ValidRecord,
    encoded_size,
    make_immutable,
    sign_mutable,
    sign_set_entry,
    sign_tombstone,
    source_label,
    validate_record,
)
from qdht.errors import ConfigError, StoreError
from qdht.wire import AnyRecord

from .conftest import DAY, NOW

StoreFactory = Callable[..., RecordStore]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    opened: list[RecordStore] = []
    counter = iter(range(1000))

    def factory(
        limits: StoreLimits | None = None, record_limits: RecordLimits | None = None
    ) -> RecordStore:
        kw: dict[str, object] = {}
        if limits is not None:
            kw["limits"] = limits
        if record_limits is not None:
            kw["record_limits"] = record_limits
        store: RecordStore
        if request.param == "memory":
            store = MemoryRecordStore(**kw)  # type: ignore[arg-type]
        else:
            store = SqliteRecordStore(tmp_path / f"store{next(counter)}.db", **kw)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def _valid(record: AnyRecord) -> ValidRecord:
    return validate_record(record, record.key(), NOW)


def _imm(n: int, size: int = 100, expires: int = NOW + DAY) -> ValidRecord:
    value = n.to_bytes(4, "big") + bytes(size - 4)
    return _valid(make_immutable(value, expires))


def _mut(
    key: MLDSAPrivateKey, seq: int, salt: bytes = b"s", value: bytes = b"v", exp: int = NOW + DAY
) -> ValidRecord:
    return _valid(sign_mutable(key, salt=salt, seq=seq, value=value, expires=exp))


def _entry(key: MLDSAPrivateKey, seq: int, topic: bytes = b"t") -> ValidRecord:
    return _valid(sign_set_entry(key, topic=topic, seq=seq, value=b"e", expires=NOW + DAY))


SRC = ("127.0.0.1", 4000)


def test_immutable_store_refresh_and_get(make_store: StoreFactory) -> None:
    store = make_store()
    rec = _imm(1)
    assert store.get(rec.key) == []
    assert store.put(rec, source=SRC, cached=False, now=NOW).outcome is Outcome.STORE
    assert store.get(rec.key) == [rec]
    assert store.put(rec, source=SRC, cached=False, now=NOW).outcome is Outcome.UNCHANGED
    later = _imm(1, expires=NOW + 2 * DAY)
    assert store.put(later, source=SRC, cached=False, now=NOW).outcome is Outcome.REPLACE
    assert [r.expires for r in store.get(rec.key)] == [NOW + 2 * DAY]
    stats = store.stats()
    assert stats["records"] == 1
    assert stats["bytes"] == stats["stored_bytes"] == encoded_size(later)
    assert stats["by_source"] == {source_label(SRC): encoded_size(later)}


def test_mutable_sequence_rules_never_displace_the_winner(
    make_store: StoreFactory, alice: MLDSAPrivateKey
) -> None:
    store = make_store()
    v1, v2 = _mut(alice, 1), _mut(alice, 2, value=b"two")
    assert store.put(v1, source=SRC, cached=False, now=NOW).outcome is Outcome.STORE
    assert store.put(v2, source=SRC, cached=False, now=NOW).outcome is Outcome.REPLACE
    old = store.put(v1, source="other", cached=False, now=NOW)
    assert (old.outcome, old.reason) == (Outcome.REJECT, "seq-regression")
    cas = store.put(_mut(alice, 3), source=SRC, cached=False, now=NOW, cas=1)
    assert (cas.outcome, cas.reason) == (Outcome.REJECT, "cas-mismatch")
    assert store.get(v2.key) == [v2]
    assert store.stats()["refusals"] == {"seq-regression": 1, "cas-mismatch": 1}
    assert store.stats()["by_publisher"] == {alice_owner(v2): encoded_size(v2)}
    tomb = _valid(sign_tombstone(alice, salt=b"s", seq=3, expires=NOW + DAY))
    assert store.put(tomb, source=SRC, cached=False, now=NOW, cas=2).accepted
    assert [r.deleted for r in store.get(v2.key)] == [True]


def alice_owner(record: ValidRecord) -> str:
    assert record.owner is not None
    return record.owner.hex()


def test_set_entries_one_slot_per_publisher(
    make_store: StoreFactory, alice: MLDSAPrivateKey, bob: MLDSAPrivateKey, carol: MLDSAPrivateKey
) -> None:
    store = make_store(record_limits=RecordLimits(max_set_entries=2))
    a1, b1, a2 = _entry(alice, 1), _entry(bob, 1), _entry(alice, 2)
    for record in (a1, b1, a2):
        assert store.put(record, source=SRC, cached=False, now=NOW).accepted
    held = store.get(a1.key)
    assert sorted(held, key=lambda r: r.owner or b"") == held
    assert set(held) == {a2, b1}
    full = store.put(_entry(carol, 1), source=SRC, cached=False, now=NOW)
    assert (full.outcome, full.reason) == (Outcome.REJECT, "set-full")
    assert set(store.get(a1.key)) == {a2, b1}
    assert store.stats()["records"] == 2


def test_flood_from_one_source_is_refused_and_displaces_nothing(make_store: StoreFactory) -> None:
    size = encoded_size(_imm(0))
    store = make_store(StoreLimits(max_bytes=100 * size, max_bytes_per_source=10 * size))
    good = [_imm(n) for n in range(5)]
    for record in good:
        assert store.put(record, source="good", cached=False, now=NOW).accepted
    outcomes = [store.put(_imm(100 + n), source="evil", cached=False, now=NOW) for n in range(50)]
    assert sum(d.accepted for d in outcomes) == 10
    assert {d.reason for d in outcomes if not d.accepted} == {"quota-source"}
    assert all(store.get(r.key) == [r] for r in good)
    stats = store.stats()
    assert stats["refusals"] == {"quota-source": 40}
    assert stats["by_source"] == {"good": 5 * size, "evil": 10 * size}
    assert store.put(_imm(999), source="good", cached=False, now=NOW).accepted


def test_publisher_quota(make_store: StoreFactory, alice: MLDSAPrivateKey) -> None:
    size = encoded_size(_mut(alice, 1, salt=b"a"))
    store = make_store(StoreLimits(max_bytes_per_publisher=2 * size + 10))
    for n, salt in enumerate((b"a", b"b")):
        assert store.put(_mut(alice, 1, salt=salt), source=n, cached=False, now=NOW).accepted
    third = store.put(_mut(alice, 1, salt=b"c"), source=7, cached=False, now=NOW)
    assert (third.outcome, third.reason, third.record) == (Outcome.REJECT, "quota-publisher", None)
    # A newer version of a held record is charged only its growth.
    assert store.put(_mut(alice, 2, salt=b"a"), source=0, cached=False, now=NOW).accepted
    assert store.stats()["refusals"] == {"quota-publisher": 1}


def test_total_quota_evicts_cached_entries_first(make_store: StoreFactory) -> None:
    size = encoded_size(_imm(0))
    store = make_store(StoreLimits(max_bytes=4 * size, max_bytes_per_source=4 * size))
    cached = [_imm(n) for n in range(2)]
    for record in cached:
        assert store.put(record, source="c", cached=True, now=NOW).accepted
    assert store.stats()["by_source"] == {}
    stored = [_imm(10 + n) for n in range(4)]
    for record in stored:
        assert store.put(record, source="s", cached=False, now=NOW).accepted
    assert all(store.get(r.key) == [] for r in cached)
    assert all(store.get(r.key) == [r] for r in stored)
    refused = store.put(_imm(99), source="t", cached=False, now=NOW)
    assert (refused.outcome, refused.reason) == (Outcome.REJECT, "quota-total")
    stats = store.stats()
    assert (stats["evictions"], stats["records"], stats["cached_records"]) == (2, 4, 0)
    assert stats["bytes"] == 4 * size
    # A cached entry never displaces a stored one.
    refused = store.put(_imm(98), source="c", cached=True, now=NOW)
    assert refused.reason == "quota-total"


def test_cached_entries_are_evicted_least_recently_used(make_store: StoreFactory) -> None:
    size = encoded_size(_imm(0))
    store = make_store(StoreLimits(max_cached_bytes=3 * size))
    first, second, third, fourth = (_imm(n) for n in range(4))
    for record in (first, second, third):
        assert store.put(record, source=SRC, cached=True, now=NOW).accepted
    assert store.get(first.key) == [first]  # first becomes most recently used
    assert store.put(fourth, source=SRC, cached=True, now=NOW).accepted
    assert store.get(second.key) == []
    assert [store.get(r.key) for r in (first, third, fourth)] == [[first], [third], [fourth]]
    stats = store.stats()
    assert (stats["evictions"], stats["cached_bytes"], stats["stored_bytes"]) == (1, 3 * size, 0)
    huge = _imm(50, size=4 * size)
    assert store.put(huge, source=SRC, cached=True, now=NOW).reason == "quota-cache"


def test_stored_put_promotes_a_cached_entry(make_store: StoreFactory) -> None:
    size = encoded_size(_imm(0))
    store = make_store(StoreLimits(max_cached_bytes=size))
    rec = _imm(1)
    assert store.put(rec, source="c", cached=True, now=NOW).outcome is Outcome.STORE
    assert store.put(rec, source="s", cached=False, now=NOW).outcome is Outcome.UNCHANGED
    stats = store.stats()
    assert (stats["cached_bytes"], stats["stored_bytes"]) == (0, size)
    assert stats["by_source"] == {"s": size}
    # A stored entry is no longer subject to cache eviction, and a cached put keeps it stored.
    assert store.put(_imm(2), source="c", cached=True, now=NOW).accepted
    assert store.put(rec, source="c", cached=True, now=NOW).outcome is Outcome.UNCHANGED
    assert store.put(_imm(3), source="c", cached=True, now=NOW).accepted
    assert store.get(rec.key) == [rec]
    assert store.stats()["stored_bytes"] == size


def test_a_cached_signed_record_goes_at_its_cache_lifetime(
    make_store: StoreFactory, alice: MLDSAPrivateKey
) -> None:
    store = make_store()
    v1, v2 = _mut(alice, 1), _mut(alice, 2, value=b"w")
    assert store.put(v1, source="c", cached=True, now=NOW, cache_until=NOW + 60).accepted
    assert store.get(v1.key, now=NOW + 59) == [v1]
    # A newer version pushed without a lifetime (an entry correction) keeps it.
    assert store.put(v2, source="c", cached=True, now=NOW + 1).accepted
    assert store.get(v1.key, now=NOW + 59) == [v2]
    assert store.get(v1.key, now=NOW + 60) == []
    assert store.delete_expired(NOW + 60) == 1
    assert (len(store), store.stats()["cached_records"]) == (0, 0)
    # A stored put promotes the cached entry: it lives to the record's exp again.
    assert store.put(v1, source="c", cached=True, now=NOW, cache_until=NOW + 60).accepted
    assert store.put(v1, source="s", cached=False, now=NOW).outcome is Outcome.UNCHANGED
    assert store.get(v1.key, now=NOW + 3600) == [v1]
    # A cache put never shortens a stored entry's life.
    assert store.put(v2, source="c", cached=True, now=NOW, cache_until=NOW + 60).accepted
    assert store.delete_expired(NOW + 3600) == 0
    assert store.get(v1.key, now=NOW + 3600) == [v2]
    with pytest.raises(ConfigError, match="cache_until"):
        store.put(v2, source="s", cached=False, now=NOW, cache_until=NOW + 60)


def test_expiry(make_store: StoreFactory, alice: MLDSAPrivateKey) -> None:
    store = make_store()
    short, long = _imm(1, expires=NOW + 10), _imm(2, expires=NOW + DAY)
    entry = _mut(alice, 1, exp=NOW + 10)
    for record in (short, long, entry):
        assert store.put(record, source=SRC, cached=False, now=NOW).accepted
    assert store.get(short.key, now=NOW + 10) == []
    assert store.get(short.key) == [short]
    # An expired entry counts as nothing: a lower sequence may take its place.
    assert store.put(_mut(alice, 0, exp=NOW + DAY), source=SRC, cached=False, now=NOW + 20).accepted
    assert store.delete_expired(NOW + 10) == 1
    assert store.get(short.key) == []
    stats = store.stats()
    assert (stats["records"], stats["expired"]) == (2, 1)
    assert stats["bytes"] == encoded_size(long) + encoded_size(_mut(alice, 0, exp=NOW + DAY))
    assert store.delete_expired(NOW + 2 * DAY) == 2
    assert store.stats()["bytes"] == 0
    assert store.stats()["by_source"] == {}
    assert store.stats()["by_publisher"] == {}


def test_keys_for_republish_pages_through_a_region(make_store: StoreFactory) -> None:
    store = make_store()
    records = [_imm(n) for n in range(20)]
    for n, record in enumerate(records):
        store.put(record, source=SRC, cached=n % 4 == 0, now=NOW)
    stored = sorted(r.key for n, r in enumerate(records) if n % 4)
    low, high = stored[2], stored[12]
    assert store.keys_for_republish(low, high) == stored[2:12]
    paged: list[bytes] = []
    start = b""
    while page := store.keys_for_republish(start, limit=4):
        paged += page
        start = page[-1] + b"\x00"
    assert paged == stored
    everything = store.keys_for_republish(include_cached=True)
    assert everything == sorted(r.key for r in records)


def test_misuse_raises_clear_errors(make_store: StoreFactory) -> None:
    store = make_store()
    rec = _imm(1)
    with pytest.raises(ConfigError, match="record"):
        store.put(rec.record, source=SRC, cached=False, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cached"):
        store.put(rec, source=SRC, cached=1, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cas"):
        store.put(rec, source=SRC, cached=False, now=NOW, cas=-1)
    with pytest.raises(ConfigError, match="limit"):
        store.keys_for_republish(limit=0)
    with pytest.raises(ConfigError, match="max_bytes"):
        StoreLimits(max_bytes=0)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get(rec.key)


def test_backends_agree_on_a_random_history(
    tmp_path: Path, alice: MLDSAPrivateKey, bob: MLDSAPrivateKey
) -> None:
    """The same seeded sequence of puts, gets and expiries: same decisions, same contents."""
    pool = [_imm(n, size=200, expires=NOW + 100 * (n % 5 + 1)) for n in range(12)]
    pool += [_mut(k, seq, salt=s) for k in (alice, bob) for seq in (1, 2) for s in (b"x", b"y")]
    pool += [_entry(k, seq) for k in (alice, bob) for seq in (1, 2)]
    size = encoded_size(pool[0])
    limits = StoreLimits(
        max_bytes=8 * size + 20000,
        max_cached_bytes=3 * size,
        max_bytes_per_publisher=12000,
        max_bytes_per_source=6 * size + 6000,
    )
    memory = MemoryRecordStore(limits)
    sqlite = SqliteRecordStore(tmp_path / "agree.db", limits)
    rng = random.Random(7)
    probe = random.Random(8)  # its own stream: the history stays that of rng
    now = NOW
    try:
        for _ in range(300):
            op = rng.random()
            if op < 0.7:
                record = rng.choice(pool)
                args = {
                    "source": rng.choice(["a", "b", ("10.0.0.1", 1)]),
                    "cached": rng.random() < 0.3,
                    "now": now,
                    "cas": rng.choice([None, None, 1]),
                }
                assert memory.put(record, **args) == sqlite.put(record, **args)  # type: ignore[arg-type]
            elif op < 0.9:
                key = rng.choice(pool).key
                assert memory.get(key, now=now) == sqlite.get(key, now=now)
            else:
                now += rng.randrange(0, 150)
                assert memory.delete_expired(now) == sqlite.delete_expired(now)
            assert memory.stats() == sqlite.stats()
            # The memory store's key index lags behind puts and drops; its
            # answers must not (pages of a random region, stored or cached).
            low = probe.randbytes(1)
            options = {"limit": probe.choice([1, 3, 1024]), "include_cached": probe.random() < 0.5}
            assert memory.keys_for_republish(low, **options) == sqlite.keys_for_republish(  # type: ignore[arg-type]
                low,
                **options,  # type: ignore[arg-type]
            )
        assert memory.keys_for_republish(include_cached=True) == sqlite.keys_for_republish(
            include_cached=True
        )
        refusals = memory.stats()["refusals"]
        assert refusals, "the history exercised no refusal"
        assert memory.stats()["evictions"] > 0
    finally:
        memory.close()
        sqlite.close()


def test_the_memory_stores_key_index_drops_keys_that_are_gone() -> None:
    """keys_for_republish's index of a memory store lags behind drops; it must not
    grow with every key ever held (a node runs for months)."""
    store = MemoryRecordStore(StoreLimits(max_bytes=10**8))
    for generation in range(5):
        records = [_imm(1000 * generation + n, expires=NOW + 10) for n in range(100)]
        for record in records:
            assert store.put(record, source="a", cached=False, now=NOW).accepted
        assert store.keys_for_republish(limit=1024) == sorted(r.key for r in records)
        assert store.delete_expired(NOW + 10) == 100
        assert store.keys_for_republish() == []
        assert len(store._sorted) == 0
    revived = _imm(7)
    for _ in range(3):  # dropped and put again: indexed once
        store.put(revived, source="a", cached=False, now=NOW)
        assert store.keys_for_republish() == [revived.key]
        store.delete_expired(NOW + DAY)
    assert store.keys_for_republish() == []
