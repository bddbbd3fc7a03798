"""Watching keys, sans-IO (protocol-spec/08-watch.md): holder registry, watcher state."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import attrs
import pytest

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import (
    WRITE_ONCE_PREFIX,
    RecordValidator,
    Subscribed,
    ValidRecord,
    WatchConfig,
    WatchLimits,
    WatchRegistry,
    WatchSubscriptions,
    WatchUpdate,
    catch_up,
    make_immutable,
    sign_mutable,
    sign_set_entry,
    sign_tombstone,
)
from qdht.errors import ConfigError, NodeStateError
from qdht.wire import Address, AnyRecord, Contact, MutableRecord

#: Unix time at monotonic 0 in these tests.
EPOCH = 1_750_000_000
KEY = b"\x07" * 32


@cache
def alice() -> MLDSAPrivateKey:
    return MLDSAPrivateKey.from_seed(bytes(range(32)))


@cache
def bob() -> MLDSAPrivateKey:
    return MLDSAPrivateKey.from_seed(bytes(range(32, 64)))


@cache
def mutable(seq: int, *, exp: int = EPOCH + 3600, value: bytes = b"v") -> MutableRecord:
    return sign_mutable(alice(), salt=b"s", seq=seq, value=value + bytes([seq]), expires=exp)


def validate_at(now: float) -> Callable[[AnyRecord, bytes], ValidRecord]:
    checker = RecordValidator()
    return lambda record, key: checker.validate(record, key, EPOCH + now)


def valid(record: AnyRecord, now: float = 0.0) -> ValidRecord:
    return RecordValidator().validate(record, record.key(), EPOCH + now)


def contact(i: int) -> Contact:
    return Contact(bytes([i]) * 32, (Address("udp", f"10.0.0.{i}", 6881),))


# ===================================================================== holder


def test_holder_grants_at_most_its_max_ttl_and_renewals_keep_one_subscription() -> None:
    registry = WatchRegistry(WatchLimits(max_ttl=120))
    assert registry.subscribe(KEY, b"w" * 32, "addr", 600, 0.0) == Subscribed(120, True)
    assert registry.subscribe(KEY, b"w" * 32, "addr2", 60, 10.0) == Subscribed(60, False)
    assert len(registry) == 1
    assert registry.watchers(KEY, 69.0) == [(b"w" * 32, "addr2")]
    assert registry.expire(70.0) == 1
    assert registry.watchers(KEY, 70.0) == []


@pytest.mark.parametrize(
    ("limits", "key", "watcher", "reason"),
    [
        (WatchLimits(max_watchers_per_key=2), KEY, b"c" * 32, "watchers-per-key"),
        (WatchLimits(max_keys_per_watcher=2), b"\x09" * 32, b"a" * 32, "keys-per-watcher"),
        (WatchLimits(max_subscriptions=3), b"\x09" * 32, b"c" * 32, "subscriptions"),
    ],
)
def test_holder_refuses_excess_watchers_without_displacing_any(
    limits: WatchLimits, key: bytes, watcher: bytes, reason: str
) -> None:
    registry = WatchRegistry(limits)
    assert isinstance(registry.subscribe(KEY, b"a" * 32, "a", 60, 0.0), Subscribed)
    assert isinstance(registry.subscribe(KEY, b"b" * 32, "b", 60, 0.0), Subscribed)
    assert isinstance(registry.subscribe(b"\x08" * 32, b"a" * 32, "a", 60, 0.0), Subscribed)
    before = len(registry)
    assert registry.subscribe(key, watcher, "x", 60, 1.0) == reason
    assert len(registry) == before
    assert registry.stats()["refused"] == {reason: 1}
    # A renewal of a subscription already held is never refused.
    assert registry.subscribe(KEY, b"a" * 32, "a", 60, 2.0) == Subscribed(60, False)


def test_holder_drops_a_watcher_that_stops_answering_or_says_stop() -> None:
    registry = WatchRegistry(WatchLimits(max_notify_failures=2))
    registry.subscribe(KEY, b"a" * 32, "a", 60, 0.0)
    registry.subscribe(KEY, b"b" * 32, "b", 60, 0.0)
    assert not registry.notify_failed(KEY, b"a" * 32)
    registry.notify_answered(KEY, b"a" * 32, stop=False)  # alive again: count reset
    assert not registry.notify_failed(KEY, b"a" * 32)
    assert registry.notify_failed(KEY, b"a" * 32)
    registry.notify_answered(KEY, b"b" * 32, stop=True)
    assert registry.watchers(KEY, 1.0) == []
    assert registry.stats()["dead_dropped"] == 1


def test_holder_unwatch_and_expiry_tracking() -> None:
    registry = WatchRegistry(unix_offset=EPOCH)
    registry.subscribe(KEY, b"a" * 32, "a", 600, 0.0)
    record = valid(mutable(1, exp=EPOCH + 100))
    registry.track_expiry(KEY, [record])
    assert registry.get_timer() == 100.0
    assert registry.expiries_due(99.0) == []
    assert registry.expiries_due(100.0) == [KEY]
    assert registry.expiries_due(200.0) == []  # reported once
    assert registry.unsubscribe(KEY, b"a" * 32)
    assert not registry.unsubscribe(KEY, b"a" * 32)
    # Unwatched keys are not tracked.
    registry.track_expiry(KEY, [record])
    assert registry.expiries_due(1000.0) == []


def test_catch_up_sends_only_what_the_watcher_lacks() -> None:
    v3 = valid(mutable(3))
    assert catch_up([v3], None) == [v3]
    assert catch_up([v3], 2) == [v3]
    assert catch_up([v3], 3) == []
    tomb = valid(sign_tombstone(alice(), salt=b"s", seq=3, expires=EPOCH + 60))
    assert catch_up([tomb], 3) == [tomb]  # a tombstone outranks seq 3
    entries = [
        valid(sign_set_entry(k, topic=b"t", seq=9, value=b"x", expires=EPOCH + 60))
        for k in (alice(), bob())
    ]
    assert catch_up(entries, 100) == entries  # since does not apply to sets
    # A renewal makes up for a lost notification, but never resends a set.
    assert catch_up([v3], 2, renewal=True) == [v3]
    assert catch_up([v3], 3, renewal=True) == []
    assert catch_up(entries, None, renewal=True) == []


def test_limits_are_checked() -> None:
    with pytest.raises(ConfigError, match="max_ttl"):
        WatchLimits(max_ttl=601)
    with pytest.raises(ConfigError, match="renew_after"):
        WatchConfig(renew_after=1.0)
    with pytest.raises(ConfigError, match="holders"):
        WatchConfig(holders=0)


# ==================================================================== watcher


def subscribed(
    config: WatchConfig | None = None, holders: int = 3
) -> tuple[WatchSubscriptions, list[Contact]]:
    watching = WatchSubscriptions(config or WatchConfig(holders=holders), unix_offset=EPOCH)
    assert watching.add(KEY, 0.0)
    assert watching.rounds_due(0.0) == [KEY]
    closest = [contact(i) for i in range(1, 6)]
    plan = watching.round(KEY, closest, 0.0)
    assert [c for c, _ in plan.watch] == closest[:holders]
    for c, since in plan.watch:
        assert since is None
        watching.watch_answered(KEY, c.node_id, 600, 0.0)
    return watching, closest


def test_watcher_subscribes_at_the_closest_and_renews_before_expiry() -> None:
    watching, closest = subscribed()
    assert watching.holders(KEY) == [c.node_id for c in closest[:3]]
    assert watching.get_timer() == 450.0  # 3/4 of the granted 600 s
    assert watching.rounds_due(449.0) == []
    assert watching.rounds_due(450.0) == [KEY]
    # The closest set moved: the node that left it is unwatched, the new one watched.
    new = [closest[0], closest[2], closest[4]]
    plan = watching.round(KEY, new, 450.0)
    assert plan.unwatch == (closest[1],)
    assert [c for c, _ in plan.watch] == new


def test_watcher_reports_only_strictly_newer_ranks() -> None:
    watching, closest = subscribed()
    validate = validate_at(1.0)
    h1, h2 = closest[0].node_id, closest[1].node_id
    first = watching.on_notify(h1, KEY_M, mutable(2), 1.0, validate)
    assert first.answer == "stop"  # not a watched key
    watching.add(KEY_M, 1.0)
    watching.round(KEY_M, closest, 1.0)
    got = watching.on_notify(h1, KEY_M, mutable(2), 1.0, validate)
    assert got.answer == "notified"
    assert [(u.kind, u.record.seq) for u in got.updates] == [("update", 2)]
    # The same change from another holder, and an older version: nothing new.
    assert watching.on_notify(h2, KEY_M, mutable(2), 1.0, validate).updates == ()
    assert watching.on_notify(h2, KEY_M, mutable(1), 1.0, validate).updates == ()
    newer = watching.on_notify(h2, KEY_M, mutable(3), 1.0, validate)
    assert [(u.kind, u.value) for u in newer.updates] == [("update", b"v\x03")]
    tomb = sign_tombstone(alice(), salt=b"s", seq=3, expires=EPOCH + 7200)
    deleted = watching.on_notify(h1, KEY_M, tomb, 1.0, validate)
    assert [(u.kind, u.value) for u in deleted.updates] == [("deleted", None)]
    assert watching.stats()["duplicates"] == 2


KEY_M = mutable(1).key()


def test_watcher_reports_every_competing_write_of_a_write_once_key() -> None:
    # Holders keep the first write of a write-once key (07 §7.1 step 3a), so a
    # lower-ranked record is a competing write: reported once, whatever its rank.
    def once(value: bytes) -> MutableRecord:
        salt = WRITE_ONCE_PREFIX + b"slot"
        return sign_mutable(alice(), salt=salt, seq=0, value=value, expires=EPOCH + 3600)

    writes = sorted((once(bytes([i])) for i in range(2)), key=lambda r: valid(r).rank())
    key = writes[0].key()
    watching, closest = subscribed()
    watching.add(key, 1.0)
    watching.round(key, closest, 1.0)
    validate = validate_at(1.0)
    h1, h2 = closest[0].node_id, closest[1].node_id
    high = watching.on_notify(h1, key, writes[1], 1.0, validate).updates
    low = watching.on_notify(h2, key, writes[0], 1.0, validate).updates
    assert [u.value for u in (*high, *low)] == [writes[1].value, writes[0].value]
    assert watching.on_notify(h1, key, writes[0], 1.0, validate).updates == ()


def test_watcher_refuses_a_forged_record_and_drops_that_holder() -> None:
    watching, closest = subscribed()
    watching.add(KEY_M, 0.0)
    watching.round(KEY_M, closest, 0.0)
    for c in closest[:3]:
        watching.watch_answered(KEY_M, c.node_id, 600, 0.0)
    forged = attrs.evolve(mutable(5), value=b"forged")
    holder = closest[0]
    result = watching.on_notify(holder.node_id, KEY_M, forged, 1.0, validate_at(1.0))
    assert (result.answer, result.reason, result.unwatch) == ("invalid", "bad-signature", holder)
    assert result.updates == ()
    assert watching.stats()["drops"] == {"notify-bad-signature": 1}
    assert holder.node_id not in watching.holders(KEY_M)
    # A record from the wrong key is refused too, and a lost holder brings a round soon.
    other = sign_mutable(bob(), salt=b"s", seq=9, value=b"x", expires=EPOCH + 60)
    wrong = watching.on_notify(closest[1].node_id, KEY_M, other, 1.0, validate_at(1.0))
    assert wrong.reason == "key-mismatch"
    assert watching.rounds_due(1.0 + 5.0) == [KEY_M]


def test_watcher_reports_expiry_on_its_own_clock_not_on_a_hint() -> None:
    watching, closest = subscribed()
    watching.add(KEY_M, 0.0)
    watching.round(KEY_M, closest, 0.0)
    record = mutable(1, exp=EPOCH + 100)
    holder = closest[0].node_id
    assert watching.on_notify(holder, KEY_M, record, 0.0, validate_at(0.0)).updates
    hint = watching.on_notify(holder, KEY_M, None, 50.0, validate_at(50.0))
    assert (hint.answer, hint.updates) == ("notified", ())
    assert watching.handle_timer(99.0) == []
    expired = watching.handle_timer(100.0)
    assert [(u.kind, u.record.seq) for u in expired] == [("expired", 1)]
    assert watching.handle_timer(200.0) == []


def test_watcher_tracks_set_entries_per_publisher() -> None:
    watching, closest = subscribed()
    topic_key = sign_set_entry(alice(), topic=b"t", seq=1, value=b"a", expires=EPOCH + 60).key()
    watching.add(topic_key, 0.0)
    watching.round(topic_key, closest, 0.0)
    holder = closest[0].node_id
    validate = validate_at(0.0)
    reported: list[WatchUpdate] = []
    for key, seq in ((alice(), 1), (bob(), 1), (alice(), 1), (bob(), 2)):
        entry = sign_set_entry(key, topic=b"t", seq=seq, value=b"x", expires=EPOCH + 60)
        reported += watching.on_notify(holder, topic_key, entry, 0.0, validate).updates
    assert [u.record.seq for u in reported] == [1, 1, 2]
    assert len(watching.reported_records(topic_key)) == 2
    plan = watching.round(topic_key, closest, 10.0)
    assert {since for _, since in plan.watch} == {None}  # sets never send since


def test_watcher_sends_since_and_local_records_are_deduplicated() -> None:
    watching, closest = subscribed()
    watching.add(KEY_M, 0.0)
    watching.round(KEY_M, closest, 0.0)
    assert [u.kind for u in watching.local_record(KEY_M, valid(mutable(4)))] == ["update"]
    assert watching.local_record(KEY_M, valid(mutable(4))) == []
    plan = watching.round(KEY_M, closest, 10.0)
    assert {since for _, since in plan.watch} == {4}


def test_immutable_refresh_extends_the_copy_silently() -> None:
    watching, closest = subscribed()
    short = make_immutable(b"hello", EPOCH + 10)
    longer = make_immutable(b"hello", EPOCH + 1000)
    key = short.key()
    watching.add(key, 0.0)
    watching.round(key, closest, 0.0)
    holder = closest[0].node_id
    assert len(watching.on_notify(holder, key, short, 0.0, validate_at(0.0)).updates) == 1
    assert watching.on_notify(holder, key, longer, 1.0, validate_at(1.0)).updates == ()
    assert watching.handle_timer(10.0) == []  # the refreshed copy lives on
    assert [u.kind for u in watching.handle_timer(1000.0)] == ["expired"]


def test_lost_holders_are_replaced_with_backoff_and_unwatch_releases_all() -> None:
    watching, closest = subscribed(WatchConfig(holders=3, retry_delay=5.0))
    watching.watch_failed(KEY, closest[0].node_id, 100.0)
    assert watching.rounds_due(104.0) == []
    assert watching.rounds_due(105.0) == [KEY]
    watching.round_failed(KEY, 105.0)  # no lookup capacity: back off further
    assert watching.rounds_due(114.0) == []
    assert watching.add(KEY, 120.0) is False  # a second local watcher
    assert watching.remove(KEY) == []
    released = watching.remove(KEY)
    assert sorted(c.node_id for c in released) == sorted(c.node_id for c in closest[1:3])
    assert KEY not in watching


def test_watched_keys_are_bounded() -> None:
    watching = WatchSubscriptions(WatchConfig(max_watched_keys=1))
    watching.add(KEY, 0.0)
    with pytest.raises(NodeStateError, match="max_watched_keys"):
        watching.add(KEY_M, 0.0)


def test_a_refusing_holder_is_skipped_for_one_lifetime() -> None:
    watching, closest = subscribed(WatchConfig(holders=3, ttl=60))
    watching.watch_failed(KEY, closest[0].node_id, 10.0, refused=True)
    plan = watching.round(KEY, closest, 20.0)
    assert [c for c, _ in plan.watch] == closest[1:4]  # the next closest steps in
    later = watching.round(KEY, closest, 71.0)
    assert [c for c, _ in later.watch] == closest[:3]
    assert later.unwatch == (closest[3],)
