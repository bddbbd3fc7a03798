"""Remote records never crash a holder: decoders raise DecodeError, validation RecordRejectedError.

Also checks every encoding the record classes can produce against its CDDL
rule (the record classes are not in tests/wire/strategies.py).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from qdht_lint._cddl import SpecCddl

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import (
    REJECT_REASONS,
    RecordValidator,
    ValidRecord,
    accept,
    best_of,
    sign_mutable,
    sign_set_entry,
    sign_tombstone,
)
from qdht.errors import DecodeError, RecordRejectedError
from qdht.wire import (
    MAX_RECORD_TIME,
    RECORD_TYPES,
    AnyRecord,
    ImmutableRecord,
    MutableRecord,
    SetEntry,
    Tombstone,
    decode,
    dumps_canonical,
    encode,
)

from .conftest import DAY, NOW

SPEC_DIR = Path(__file__).resolve().parents[2] / "protocol-spec"


@cache
def _spec() -> SpecCddl:
    return SpecCddl.from_dir(SPEC_DIR)


@cache
def _signed() -> tuple[AnyRecord, ...]:
    key = MLDSAPrivateKey.from_seed(bytes(range(100, 132)))
    return (
        ImmutableRecord(b"immutable value", NOW + DAY),
        sign_mutable(key, salt=b"s", seq=7, value=b"mutable value", expires=NOW + DAY),
        sign_tombstone(key, salt=b"s", seq=8, expires=NOW + DAY),
        sign_set_entry(key, topic=b"t", seq=1, value=b"entry", expires=NOW + DAY),
    )


_pk = st.one_of(st.none(), st.binary(min_size=1952, max_size=1952))
_sig = st.binary(min_size=3309, max_size=3309)
_time = st.integers(0, MAX_RECORD_TIME)
_seq = st.integers(0, 2**64 - 1)
_owner = st.binary(min_size=32, max_size=32)
_value = st.binary(max_size=300)

RECORD_STRATEGIES: dict[type[Any], st.SearchStrategy[Any]] = {
    ImmutableRecord: st.builds(ImmutableRecord, _value, _time),
    MutableRecord: st.builds(
        MutableRecord, _owner, st.binary(max_size=64), _seq, _value, _time, _sig, _pk
    ),
    Tombstone: st.builds(Tombstone, _owner, st.binary(max_size=64), _seq, _time, _sig, _pk),
    SetEntry: st.builds(
        SetEntry, st.binary(min_size=1, max_size=64), _owner, _seq, _value, _time, _sig, _pk
    ),
}


@pytest.mark.parametrize("cls", RECORD_TYPES, ids=lambda cls: cls.TYPE)
def test_record_encodings_match_their_cddl_rule(cls: type[Any]) -> None:
    rule = f"records-{cls.TYPE}"
    assert _spec().rule_for_type[cls.TYPE] == rule

    @given(RECORD_STRATEGIES[cls])
    def check(record: Any) -> None:
        data = encode(record)
        assert _spec().validate(data, rule) is None
        assert decode(data) == record

    check()


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64 - 1),
    st.binary(max_size=70),
    st.text(max_size=10),
    st.sampled_from([bytes(32), bytes(64), bytes(65), bytes(1952), bytes(3309), b""]),
)


def _mutate(base: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    mutated = dict(base)
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from([*base, "extra"]))
        if data.draw(st.booleans()):
            mutated.pop(key, None)
        else:
            mutated[key] = data.draw(_values)
    return mutated


@given(st.integers(0, 3), st.data())
def test_mutated_record_maps_never_crash_the_decoder(index: int, data: st.DataObject) -> None:
    encoded = dumps_canonical(_mutate(_signed()[index].to_cbor(), data))
    try:
        record = decode(encoded, expect=RECORD_TYPES)
    except DecodeError:
        return
    assert encode(record) == encoded


@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_record_decoder(data: bytes) -> None:
    try:
        record = decode(data, expect=RECORD_TYPES)
    except DecodeError:
        return
    assert encode(record) == data


_VALIDATOR = RecordValidator(cache_size=64)


@given(st.integers(0, 3), st.data())
def test_mutated_records_are_refused_with_a_reason_or_accepted_intact(
    index: int, data: st.DataObject
) -> None:
    original = _signed()[index]
    fields = [field.name for field in attrs.fields(type(original))]
    changes: dict[str, Any] = {}
    for name in data.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3)):
        current = getattr(original, name)
        if isinstance(current, int):
            changes[name] = data.draw(st.integers(0, MAX_RECORD_TIME))
        elif name == "public_key":
            changes[name] = data.draw(st.sampled_from([None, bytes(1952)]))
        elif name in ("signature",):
            changes[name] = data.draw(st.binary(min_size=3309, max_size=3309))
        elif name == "owner":
            changes[name] = data.draw(_owner)
        elif name == "topic":
            changes[name] = data.draw(st.binary(min_size=1, max_size=64))
        else:
            changes[name] = data.draw(st.binary(max_size=64))
    mutated = attrs.evolve(original, **changes)
    now = data.draw(st.sampled_from([NOW, NOW + DAY, NOW - 10 * DAY]))
    key = data.draw(st.sampled_from([original.key(), mutated.key(), bytes(32)]))
    reason: str | None
    try:
        valid = _VALIDATOR.validate(mutated, key, now)
    except RecordRejectedError as exc:
        reason = exc.reason
    else:
        reason = None
    if reason is not None:
        assert reason in REJECT_REASONS
        return
    # Only a change that leaves the signed content intact may pass.
    assert valid.key == key == mutated.key()
    if isinstance(mutated, ImmutableRecord):
        return
    assert mutated.signed_bytes() == original.signed_bytes()  # type: ignore[union-attr]


@cache
def _versions() -> tuple[ValidRecord, ...]:
    """Versions of one key: seq 1..3, two values at seq 2, a tombstone at 2 and 4."""
    key = MLDSAPrivateKey.from_seed(bytes(range(140, 172)))
    records: list[AnyRecord] = [
        sign_mutable(key, salt=b"k", seq=1, value=b"one", expires=NOW + DAY),
        sign_mutable(key, salt=b"k", seq=2, value=b"two", expires=NOW + DAY),
        sign_mutable(key, salt=b"k", seq=2, value=b"deux", expires=NOW + DAY),
        sign_tombstone(key, salt=b"k", seq=2, expires=NOW + DAY),
        sign_mutable(key, salt=b"k", seq=3, value=b"three", expires=NOW + DAY),
        sign_tombstone(key, salt=b"k", seq=4, expires=NOW + DAY),
    ]
    return tuple(_VALIDATOR.validate(r, r.key(), NOW) for r in records)


@given(st.lists(st.integers(0, 5), min_size=1, max_size=12))
def test_holders_converge_on_the_best_version_in_any_arrival_order(order: list[int]) -> None:
    versions = _versions()
    held: ValidRecord | None = None
    for index in order:
        incoming = versions[index]
        decision = accept(held, incoming, NOW)
        if held is not None:
            # Never replaced by something ranked lower: good data is never displaced.
            assert decision.record is not None
            assert decision.record.rank() >= held.rank()
        held = decision.record
    arrived = [versions[index] for index in order]
    best = best_of([(i, record) for i, record in enumerate(arrived)], NOW)
    assert held is not None
    assert held == best.winner
    assert all(arrived[i].rank() < held.rank() for i in best.stale)
