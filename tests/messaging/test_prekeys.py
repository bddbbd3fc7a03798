"""Prekey records and the owner's pool (11-messaging.md §2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from qdht.errors import ConfigError, DecodeError
from qdht.messaging import PrekeyStore, check_prekey_record, parse_prekey_record
from qdht.wire import PrekeyRecord, decode, encode

from ._support import DAY, NOW, User

VECTORS = Path(__file__).resolve().parents[2] / "protocol-spec" / "vectors" / "msg"


def test_published_record_verifies_under_its_owner() -> None:
    bob = User("bob")
    record = bob.prekeys(one_time=3).record(NOW)
    assert check_prekey_record(record, now=NOW, signer=bob.mldsa.public_key_bytes()) is None
    assert len(record.opks) == 3
    assert (
        parse_prekey_record(encode(record), now=NOW, signer=bob.mldsa.public_key_bytes()) == record
    )


def test_full_record_carries_48_one_time_prekeys_within_a_dht_value() -> None:
    record = User("bob").prekeys(one_time=48).record(NOW)
    assert len(record.opks) == 48
    assert len(encode(record)) <= 65536  # one DHT value (11-messaging.md §2.1)


@pytest.mark.parametrize(
    ("change", "now", "reason"),
    [
        ({}, NOW + 9 * DAY, "prekeys-expired"),
        ({"spk": bytes(1216)}, NOW, "prekeys-signature"),
        ({"exp": 0}, NOW, "prekeys-expired"),
    ],
)
def test_bad_records_are_refused(change: dict[str, Any], now: float, reason: str) -> None:
    bob = User("bob")
    record = attrs.evolve(bob.prekeys().record(NOW), **change)
    assert check_prekey_record(record, now=now, signer=bob.mldsa.public_key_bytes()) == reason


def test_wrong_context_and_wrong_signer_are_refused() -> None:
    bob, alice = User("bob"), User("alice")
    record = bob.prekeys().record(NOW)
    other_context = attrs.evolve(
        record, sig=bob.mldsa.sign(record.signed_bytes(), b"qdht/v1/mutable-record")
    )
    signer = bob.mldsa.public_key_bytes()
    assert check_prekey_record(other_context, now=NOW, signer=signer) == "prekeys-signature"
    assert (
        check_prekey_record(record, now=NOW, signer=alice.mldsa.public_key_bytes())
        == "prekeys-signer"
    )
    assert parse_prekey_record(b"\xa0", now=NOW, signer=signer) == "prekeys-decode"


def test_one_time_prekeys_are_used_once_and_refilled() -> None:
    store = User("bob").prekeys(one_time=4)
    store.record(NOW)
    first = min(store.one_time)
    assert not isinstance(store.one_time_key(first), str)
    store.claim_one_time(first)
    assert store.dirty
    assert store.one_time_key(first) == "opk-reused"
    assert store.one_time_key(10_000) == "opk-unknown"
    assert store.refill() == 1
    assert first not in store.one_time
    assert len(store.one_time) == 4
    assert first not in {opk.id for opk in store.record(NOW).opks}


def test_signed_prekey_rotates_weekly_and_is_deleted_after_two_weeks() -> None:
    store = User("bob").prekeys()
    old = store.current_spk().id
    assert not store.rotate(NOW + 6 * DAY)
    assert store.rotate(NOW + 7 * DAY)
    assert store.current_spk().id != old
    assert store.signed_prekey(old) is not None  # still opens late first messages
    store.rotate(NOW + 14 * DAY)
    assert store.signed_prekey(old) is None


def test_store_survives_a_round_trip_through_bytes() -> None:
    bob = User("bob")
    store = bob.prekeys()
    store.current_spk().seen.add(b"x" * 32)
    restored = PrekeyStore.from_bytes(store.to_bytes(), bob.mldsa, bob.xwing)
    assert restored.to_bytes() == store.to_bytes()
    assert restored.record(NOW).spk == store.record(NOW).spk


def test_misuse_raises() -> None:
    bob = User("bob")
    with pytest.raises(ConfigError):
        PrekeyStore(bob.mldsa, bob.xwing, one_time_target=49)
    with pytest.raises(ConfigError):
        PrekeyStore(bob.mldsa, bob.xwing).record(NOW)
    with pytest.raises(ConfigError):
        PrekeyStore.from_bytes(b"\xa0", bob.mldsa, bob.xwing)


def test_decoder_refuses_what_the_cddl_cannot_say() -> None:
    obj = User("bob").prekeys(one_time=1).record(NOW).to_cbor()
    from qdht.wire import dumps_canonical

    with pytest.raises(DecodeError) as info:
        decode(dumps_canonical(dict(obj, opks=[obj["opks"][0]] * 2)))
    assert info.value.reason == "field-value"
    with pytest.raises(DecodeError) as info:
        decode(dumps_canonical(dict(obj, opks=[[i, obj["spk"]] for i in range(49)])))
    assert info.value.reason == "field-size"


def test_semantic_vectors() -> None:
    content = json.loads((VECTORS / "msg-prekeys.json").read_text(encoding="utf-8"))
    assert len(content["semantic"]) >= 8
    for case in content["semantic"]:
        record = decode(bytes.fromhex(case["cbor"]), expect=(PrekeyRecord,))
        assert isinstance(record, PrekeyRecord)
        signer = bytes.fromhex(case["signer"])
        reason = check_prekey_record(record, now=case["now"], signer=signer)
        assert reason == case.get("reason"), case["comment"]
