"""Record validation and the holder's merge rules (protocol-spec/07-records.md §6 and §7)."""

from __future__ import annotations

import attrs
import pytest

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import (
    BestOf,
    Outcome,
    RecordLimits,
    RecordValidator,
    ValidRecord,
    accept,
    accept_set_entry,
    best_of,
    flood_guard,
    make_immutable,
    merge_set,
    sign_mutable,
    sign_set_entry,
    sign_tombstone,
    validate_record,
)
from qdht.errors import ConfigError, DecodeError, RecordRejectedError
from qdht.ratelimit import TokenBuckets
from qdht.wire import (
    MAX_SALT_SIZE,
    RECORD_TYPES,
    ImmutableRecord,
    MutableRecord,
    SetEntry,
    Tombstone,
    decode,
    decode_record,
    encode,
    immutable_key,
    mutable_key,
    owner_hash,
    set_key,
)

from .conftest import DAY, NOW

SALT = b"profile"


def _mutable(key: MLDSAPrivateKey, seq: int, value: bytes = b"v", **kw: object) -> MutableRecord:
    args: dict[str, object] = {"salt": SALT, "seq": seq, "value": value, "expires": NOW + DAY}
    args.update(kw)
    return sign_mutable(key, **args)  # type: ignore[arg-type]


def _valid(record: MutableRecord | Tombstone | SetEntry | ImmutableRecord) -> ValidRecord:
    return validate_record(record, record.key(), NOW)


def _reason(record: object, key: bytes, now: int = NOW, **kw: object) -> str:
    with pytest.raises(RecordRejectedError) as info:
        validate_record(record, key, now, **kw)  # type: ignore[arg-type]
    return info.value.reason


# ------------------------------------------------------------------ keys


def test_immutable_records_keep_todays_keys() -> None:
    record = make_immutable(b"hello", NOW + DAY)
    assert record.key() == immutable_key(b"hello")
    assert _valid(record).key == immutable_key(b"hello")


def test_mutable_key_binds_owner_hash_and_salt(alice: MLDSAPrivateKey) -> None:
    record = _mutable(alice, 1)
    owner = owner_hash(alice.public_key_bytes())
    assert record.owner == owner
    assert record.key() == mutable_key(owner, SALT)
    assert mutable_key(owner, SALT) != mutable_key(owner, SALT + b"x")
    assert sign_tombstone(alice, salt=SALT, seq=2, expires=NOW + DAY).key() == record.key()


def test_set_key_depends_on_topic_only(alice: MLDSAPrivateKey, bob: MLDSAPrivateKey) -> None:
    a = sign_set_entry(alice, topic=b"mix", seq=1, value=b"a", expires=NOW + DAY)
    b = sign_set_entry(bob, topic=b"mix", seq=1, value=b"b", expires=NOW + DAY)
    assert a.key() == b.key() == set_key(b"mix")


def test_records_round_trip_through_the_wire(alice: MLDSAPrivateKey) -> None:
    records: list[ImmutableRecord | MutableRecord | Tombstone | SetEntry] = [
        make_immutable(b"x", NOW),
        _mutable(alice, 1),
        sign_tombstone(alice, salt=b"", seq=0, expires=NOW, include_public_key=False),
        sign_set_entry(alice, topic=b"t", seq=5, value=b"", expires=NOW),
    ]
    for record in records:
        assert decode(encode(record)) == record
        assert decode_record(record.to_cbor()) == record


def test_decode_record_refuses_other_messages() -> None:
    with pytest.raises(DecodeError) as info:
        decode_record({"type": "ping", "rid": bytes(8)})
    assert info.value.reason == "unexpected-type"


def test_signature_does_not_cover_the_public_key(alice: MLDSAPrivateKey) -> None:
    record = _mutable(alice, 1)
    stripped = attrs.evolve(record, public_key=None)
    assert stripped.signed_bytes() == record.signed_bytes()
    assert len(encode(record)) - len(encode(stripped)) == 1952 + 3 + 3  # value, header, key


# ------------------------------------------------------------ validation


def test_every_validation_reason(alice: MLDSAPrivateKey, bob: MLDSAPrivateKey) -> None:
    record = _mutable(alice, 1)
    key = record.key()
    assert _reason(attrs.evolve(record, signature=bytes(3309)), key) == "bad-signature"
    assert _reason(attrs.evolve(record, value=b"w"), key) == "bad-signature"
    assert _reason(record, mutable_key(record.owner, b"other")) == "key-mismatch"
    assert _reason(attrs.evolve(record, public_key=bob.public_key_bytes()), key) == (
        "owner-mismatch"
    )
    assert _reason(attrs.evolve(record, public_key=None), key) == "owner-key-unknown"
    assert _reason(record, key, now=NOW + DAY) == "expired"
    far = _mutable(alice, 1, expires=NOW + 8 * DAY)
    assert _reason(far, key) == "expiry-too-far"
    big = _mutable(alice, 1, value=bytes(2000))
    assert _reason(big, key, limits=RecordLimits(max_value_size=1000, max_set_value_size=1000)) == (
        "too-large"
    )


def test_a_forged_record_under_anothers_key_is_refused(
    alice: MLDSAPrivateKey, bob: MLDSAPrivateKey
) -> None:
    # Bob signs a record claiming alice's owner hash (and key).
    genuine = _mutable(alice, 1)
    forged = attrs.evolve(
        genuine,
        seq=99,
        value=b"evil",
        signature=bob.sign(
            attrs.evolve(genuine, seq=99, value=b"evil").signed_bytes(), MutableRecord.CONTEXT
        ),
    )
    assert _reason(forged, genuine.key()) == "bad-signature"
    # With bob's key attached instead, the owner binding fails first.
    assert _reason(attrs.evolve(forged, public_key=bob.public_key_bytes()), genuine.key()) == (
        "owner-mismatch"
    )


def test_a_signature_for_one_record_kind_never_verifies_as_another(
    alice: MLDSAPrivateKey,
) -> None:
    record = _mutable(alice, 1)
    wrong_context = attrs.evolve(
        record, signature=alice.sign(record.signed_bytes(), Tombstone.CONTEXT)
    )
    assert _reason(wrong_context, record.key()) == "bad-signature"


def test_expiry_horizon_allows_clock_skew(alice: MLDSAPrivateKey) -> None:
    limits = RecordLimits()
    edge = make_immutable(b"x", NOW + limits.max_ttl + limits.clock_skew)
    assert _valid(edge).expires == edge.expires
    assert _reason(attrs.evolve(edge, expires=edge.expires + 1), edge.key()) == "expiry-too-far"
    assert _reason(make_immutable(b"x", NOW), immutable_key(b"x")) == "expired"


def test_set_entries_have_their_own_value_limit(alice: MLDSAPrivateKey) -> None:
    limits = RecordLimits()
    ok = sign_set_entry(
        alice, topic=b"t", seq=1, value=bytes(limits.max_set_value_size), expires=NOW + DAY
    )
    assert _valid(ok).kind == "set_entry"
    big = attrs.evolve(ok, value=bytes(limits.max_set_value_size + 1))
    assert _reason(big, ok.key()) == "too-large"


def test_owner_key_resolved_from_a_certificate_is_attached(alice: MLDSAPrivateKey) -> None:
    record = _mutable(alice, 1, include_public_key=False)
    pk = alice.public_key_bytes()
    valid = validate_record(record, record.key(), NOW, resolve_owner={owner_hash(pk): pk}.get)
    assert isinstance(valid.record, MutableRecord)
    assert valid.record.public_key == pk  # returned and replicated self-contained


def test_a_resolver_returning_the_wrong_key_is_caught(
    alice: MLDSAPrivateKey, bob: MLDSAPrivateKey
) -> None:
    record = _mutable(alice, 1, include_public_key=False)
    reason = _reason(record, record.key(), resolve_owner=lambda _: bob.public_key_bytes())
    assert reason == "owner-mismatch"


def test_validator_verifies_each_distinct_signature_once(alice: MLDSAPrivateKey) -> None:
    validator = RecordValidator(cache_size=2)
    records = [_mutable(alice, seq) for seq in (1, 2, 3)]
    pk = alice.public_key_bytes()
    for record in records[:2]:
        validator.validate(record, record.key(), NOW)
        validator.validate(record, record.key(), NOW)
        # The same record without pk (resolved) is the same signature check.
        validator.validate(
            attrs.evolve(record, public_key=None),
            record.key(),
            NOW,
            resolve_owner={record.owner: pk}.get,
        )
    assert validator.stats()["verified"] == 2
    assert validator.stats()["cache_hits"] == 4
    validator.validate(records[2], records[2].key(), NOW)  # evicts the oldest verdict
    assert validator.stats()["cache_entries"] == 2
    validator.validate(records[0], records[0].key(), NOW)
    assert validator.stats()["verified"] == 4


def test_validator_caches_bad_verdicts_and_counts_rejections(alice: MLDSAPrivateKey) -> None:
    validator = RecordValidator()
    record = _mutable(alice, 1)
    bad = attrs.evolve(record, signature=bytes(3309))
    for _ in range(3):
        with pytest.raises(RecordRejectedError):
            validator.validate(bad, record.key(), NOW)
    with pytest.raises(RecordRejectedError):
        validator.validate(record, record.key(), NOW + DAY)
    stats = validator.stats()
    assert stats["verified"] == 1
    assert stats["rejected"] == {"bad-signature": 3, "expired": 1}


def test_limits_are_checked() -> None:
    with pytest.raises(ConfigError, match="max_value_size"):
        RecordLimits(max_value_size=70000)
    with pytest.raises(ConfigError, match="max_set_value_size"):
        RecordLimits(max_value_size=100, max_set_value_size=200)
    with pytest.raises(ConfigError, match="max_ttl"):
        RecordLimits(max_ttl=0)
    with pytest.raises(ConfigError, match="cache_size"):
        RecordValidator(cache_size=-1)


def test_publisher_helpers_reject_bad_arguments(alice: MLDSAPrivateKey) -> None:
    with pytest.raises(ConfigError, match="salt"):
        sign_mutable(alice, salt=bytes(MAX_SALT_SIZE + 1), seq=1, value=b"", expires=NOW)
    with pytest.raises(ConfigError, match="topic"):
        sign_set_entry(alice, topic=b"", seq=1, value=b"", expires=NOW)
    with pytest.raises(ConfigError, match="expires"):
        make_immutable(b"", 2**40)
    with pytest.raises(ConfigError, match="value"):
        make_immutable(bytes(65537), NOW)


# ------------------------------------------------------------ merge rules


def test_a_republish_of_an_old_sequence_loses_to_a_newer_one(alice: MLDSAPrivateKey) -> None:
    old, new = _valid(_mutable(alice, 1, b"old")), _valid(_mutable(alice, 2, b"new"))
    held = accept(None, new, NOW).record
    decision = accept(held, old, NOW + 60)
    assert decision.outcome is Outcome.REJECT
    assert decision.reason == "seq-regression"
    assert decision.record == new  # the good data stays
    # Even after the newer one was stored in the other order:
    assert accept(accept(None, old, NOW).record, new, NOW).record == new


def test_equal_sequence_ties_break_the_same_way_everywhere(alice: MLDSAPrivateKey) -> None:
    a, b = _valid(_mutable(alice, 5, b"a")), _valid(_mutable(alice, 5, b"b"))
    winner = max(a, b, key=lambda r: r.digest)
    loser = a if winner is b else b
    assert accept(loser, winner, NOW).outcome is Outcome.REPLACE
    refused = accept(winner, loser, NOW)
    assert (refused.outcome, refused.reason) == (Outcome.REJECT, "seq-conflict")
    # Same body re-signed (a new hedged signature) is the same record.
    again = _valid(_mutable(alice, 5, winner.record.value))  # type: ignore[union-attr]
    assert again.record != winner.record
    assert accept(winner, again, NOW).outcome is Outcome.UNCHANGED


def test_compare_and_swap(alice: MLDSAPrivateKey) -> None:
    one, two = _valid(_mutable(alice, 1)), _valid(_mutable(alice, 2))
    assert accept(one, two, NOW, cas=1).outcome is Outcome.REPLACE
    lost = accept(one, two, NOW, cas=0)
    assert (lost.outcome, lost.reason, lost.record) == (Outcome.REJECT, "cas-mismatch", one)
    assert accept(None, two, NOW, cas=1).outcome is Outcome.STORE


def test_tombstones_delete_and_can_be_superseded(alice: MLDSAPrivateKey) -> None:
    two = _valid(_mutable(alice, 2))
    three = _valid(_mutable(alice, 3))
    tomb = _valid(sign_tombstone(alice, salt=SALT, seq=3, expires=NOW + 2 * DAY))
    deleted = accept(two, tomb, NOW)
    assert deleted.outcome is Outcome.REPLACE
    assert deleted.record == tomb
    assert tomb.deleted
    assert accept(tomb, two, NOW).reason == "seq-regression"  # no resurrection
    assert accept(three, tomb, NOW).outcome is Outcome.REPLACE  # delete wins a tie
    assert accept(tomb, three, NOW).reason == "seq-conflict"
    four = _valid(_mutable(alice, 4))
    assert accept(tomb, four, NOW).outcome is Outcome.REPLACE  # the owner re-creates it


def test_an_expired_holding_counts_as_nothing(alice: MLDSAPrivateKey) -> None:
    two = _valid(_mutable(alice, 2))
    one = validate_record(_mutable(alice, 1, expires=NOW + 2 * DAY), two.key, NOW)
    assert accept(two, one, NOW + DAY).outcome is Outcome.STORE


def test_immutable_refresh_extends_expiry() -> None:
    first = _valid(make_immutable(b"x", NOW + DAY))
    later = _valid(make_immutable(b"x", NOW + 2 * DAY))
    assert accept(first, later, NOW).outcome is Outcome.REPLACE
    assert accept(later, first, NOW).outcome is Outcome.UNCHANGED


def test_accept_refuses_records_of_different_keys(
    alice: MLDSAPrivateKey, bob: MLDSAPrivateKey
) -> None:
    with pytest.raises(ConfigError, match="same key"):
        accept(_valid(_mutable(alice, 1)), _valid(_mutable(bob, 2)), NOW)


def test_set_holds_one_entry_per_publisher(
    alice: MLDSAPrivateKey, bob: MLDSAPrivateKey, carol: MLDSAPrivateKey
) -> None:
    limits = RecordLimits(max_set_entries=2)

    def entry(key: MLDSAPrivateKey, seq: int, expires: int = NOW + DAY) -> ValidRecord:
        return _valid(sign_set_entry(key, topic=b"mix", seq=seq, value=b"d", expires=expires))

    entries: dict[bytes, ValidRecord] = {}
    for record in (entry(alice, 1), entry(bob, 1, NOW + 60)):
        decision = accept_set_entry(entries, record, NOW, limits=limits)
        assert decision.outcome is Outcome.STORE
        assert record.owner is not None
        entries[record.owner] = record
    full = accept_set_entry(entries, entry(carol, 1), NOW, limits=limits)
    assert (full.outcome, full.reason, full.record) == (Outcome.REJECT, "set-full", None)
    update = accept_set_entry(entries, entry(alice, 2), NOW, limits=limits)
    assert update.outcome is Outcome.REPLACE
    stale = accept_set_entry(entries, entry(alice, 0), NOW, limits=limits)
    assert stale.reason == "seq-regression"
    # Bob's entry expires: the slot frees without evicting anyone good.
    assert accept_set_entry(entries, entry(carol, 1), NOW + 60, limits=limits).accepted


# ------------------------------------------------------- entry correction


def test_best_of_returns_the_highest_sequence_and_names_stale_holders(
    alice: MLDSAPrivateKey,
) -> None:
    one, two, three = (_valid(_mutable(alice, seq)) for seq in (1, 2, 3))
    result = best_of([("h1", one), ("h2", three), ("h3", two), ("h4", three)], NOW)
    assert result == BestOf(three, ("h1", "h3"))


def test_best_of_ignores_expired_answers(alice: MLDSAPrivateKey) -> None:
    two = _valid(_mutable(alice, 2, expires=NOW + 10))
    one = _valid(_mutable(alice, 1))
    result = best_of([("a", two), ("b", one)], NOW + 10)
    assert result.winner == one
    assert result.stale == ()
    assert best_of([], NOW) == BestOf(None, ())


def test_best_of_prefers_a_tombstone(alice: MLDSAPrivateKey) -> None:
    two = _valid(_mutable(alice, 2))
    tomb = _valid(sign_tombstone(alice, salt=SALT, seq=2, expires=NOW + DAY))
    assert best_of([(1, two), (2, tomb)], NOW) == BestOf(tomb, (1,))


def test_merge_set_unions_publishers_and_lists_corrections(
    alice: MLDSAPrivateKey, bob: MLDSAPrivateKey
) -> None:
    def entry(key: MLDSAPrivateKey, seq: int) -> ValidRecord:
        return _valid(sign_set_entry(key, topic=b"mb", seq=seq, value=b"x", expires=NOW + DAY))

    a1, a2, b1 = entry(alice, 1), entry(alice, 2), entry(bob, 1)
    merged = merge_set([("h1", [a1, b1]), ("h2", [a2]), ("h3", [a2, b1])], NOW)
    assert set(merged.entries) == {a2, b1}
    assert merged.corrections == {"h1": (a2,), "h2": (b1,)}


# ------------------------------------------------------------ flood guard


def test_flood_guard_refuses_a_flood_from_one_source_only() -> None:
    guard: TokenBuckets[str] = flood_guard(rate=1.0, burst=3, max_sources=2)
    assert [guard.allow("flooder", 0.0) for _ in range(5)] == [True, True, True, False, False]
    assert guard.allow("honest", 0.0)
    assert guard.refused == 2
    assert guard.allow("flooder", 1.0)  # one token earned per second
    guard.allow("third", 1.0)
    assert len(guard) == 2  # bounded


def test_flood_guard_arguments_are_checked() -> None:
    with pytest.raises(ConfigError, match="rate"):
        flood_guard(rate=0)
    with pytest.raises(ConfigError, match="burst"):
        flood_guard(burst=0)


def test_record_types_are_the_four_kinds() -> None:
    assert [cls.TYPE for cls in RECORD_TYPES] == ["immutable", "mutable", "tombstone", "set_entry"]
    assert {cls.CONTEXT for cls in (MutableRecord, Tombstone, SetEntry)} == {
        b"qdht/v1/mutable-record",
        b"qdht/v1/record-tombstone",
        b"qdht/v1/set-entry",
    }


def test_records_of_different_families_never_merge(alice: MLDSAPrivateKey) -> None:
    # Valid records of different kinds never share a key; a holder's storage
    # that mixed them up still refuses rather than overwrite.
    mutable = _valid(_mutable(alice, 1))
    imposter = ValidRecord(make_immutable(b"x", NOW + DAY), mutable.key, bytes(32))
    decision = accept(mutable, imposter, NOW)
    assert (decision.outcome, decision.reason, decision.record) == (
        Outcome.REJECT,
        "kind-mismatch",
        mutable,
    )


def test_best_of_sends_set_entries_to_merge_set(alice: MLDSAPrivateKey) -> None:
    entry = _valid(sign_set_entry(alice, topic=b"t", seq=1, value=b"", expires=NOW + DAY))
    with pytest.raises(ConfigError, match="merge_set"):
        best_of([("h", entry)], NOW)
