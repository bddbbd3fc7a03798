"""The watch messages (protocol-spec/08-watch.md): round trips, limits, CDDL agreement."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from qdht_lint._cddl import SpecCddl

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import make_immutable, sign_mutable, sign_set_entry, sign_tombstone
from qdht.errors import ConfigError, DecodeError
from qdht.wire import (
    MAX_WATCH_TTL,
    AnyRecord,
    Notified,
    Notify,
    Watch,
    Watching,
    decode,
    dumps_canonical,
    encode,
)

SPEC_DIR = Path(__file__).resolve().parents[2] / "protocol-spec"
RID = b"\x01" * 8
KEY = b"\x02" * 32
MAX_MESSAGE = 73728


@cache
def spec() -> SpecCddl:
    return SpecCddl.from_dir(SPEC_DIR)


@cache
def owner() -> MLDSAPrivateKey:
    return MLDSAPrivateKey.from_seed(bytes(range(32)))


@cache
def records() -> dict[str, AnyRecord]:
    key = owner()
    return {
        "immutable": make_immutable(b"v", 2_000_000_000),
        "mutable": sign_mutable(key, salt=b"s", seq=4, value=b"v", expires=2_000_000_000),
        "tombstone": sign_tombstone(key, salt=b"s", seq=5, expires=2_000_000_000),
        "set_entry": sign_set_entry(key, topic=b"t", seq=1, value=b"v", expires=2_000_000_000),
    }


def test_messages_follow_their_cddl_rules() -> None:
    messages: list[Watch | Watching | Notify | Notified] = [
        Watch(RID, KEY, 600),
        Watch(RID, KEY, 0, since=2**64 - 1, ro=True, ws=443),
        Watching(RID, 0),
        Watching(RID, MAX_WATCH_TTL),
        Notify(RID, KEY),
        Notified(RID),
        Notified(RID, stop=True),
        *(Notify(RID, r.key(), r) for r in records().values()),
    ]
    for message in messages:
        data = encode(message)
        assert decode(data) == message
        assert spec().validate(data, f"watch-{message.TYPE}") is None
        assert spec().validate(data, "message") is None


@pytest.mark.parametrize(
    ("kind", "event"),
    [
        ("immutable", "update"),
        ("mutable", "update"),
        ("set_entry", "update"),
        ("tombstone", "deleted"),
    ],
)
def test_notify_event_is_named_by_its_record(kind: str, event: str) -> None:
    record = records()[kind]
    assert Notify(RID, record.key(), record).event == event
    assert Notify(RID, KEY).event == "expired"


@given(
    ttl=st.integers(0, MAX_WATCH_TTL),
    since=st.none() | st.integers(0, 2**64 - 1),
    ro=st.booleans(),
    ws=st.none() | st.integers(1, 65535),
)
def test_watch_round_trips(ttl: int, since: int | None, ro: bool, ws: int | None) -> None:
    message = Watch(RID, KEY, ttl, since=since, ro=ro, ws=ws)
    data = encode(message)
    assert decode(data) == message
    assert spec().validate(data, "watch-watch") is None


def test_largest_notify_fits_one_message() -> None:
    record = sign_mutable(
        owner(), salt=bytes(64), seq=2**64 - 1, value=bytes(65536), expires=2**40 - 1
    )
    data = encode(Notify(RID, record.key(), record, ws=65535))
    assert len(data) <= MAX_MESSAGE
    assert decode(data) == Notify(RID, record.key(), record, ws=65535)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: Watch(RID, KEY, MAX_WATCH_TTL + 1), "ttl"),
        (lambda: Watch(RID, KEY[:31], 1), "key"),
        (lambda: Watch(RID, KEY, 1, since=-1), "since"),
        (lambda: Watching(RID, -1), "ttl"),
        (lambda: Notify(RID, KEY, b"record"), "record"),  # type: ignore[arg-type]
        (lambda: Notified(RID, stop=1), "stop"),  # type: ignore[arg-type]
    ],
)
def test_constructors_refuse_bad_fields_by_name(make: object, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        make()  # type: ignore[operator]


def test_decoder_names_the_offending_field() -> None:
    good = Notify(RID, KEY, records()["mutable"]).to_cbor()
    bad = dict(good, record=dict(good["record"], seq=-1))
    with pytest.raises(DecodeError) as info:
        decode(dumps_canonical(bad))
    assert (info.value.reason, info.value.path) == ("field-type", "$.record.seq")


@given(data=st.data())
def test_mangled_notifies_raise_only_decode_errors(data: st.DataObject) -> None:
    encoded = bytearray(encode(Notify(RID, KEY, records()["tombstone"])))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(encoded) - 1))
        encoded[index] = data.draw(st.integers(0, 255))
    try:
        message = decode(bytes(encoded))
    except DecodeError:
        return
    assert encode(message) == bytes(encoded)  # whatever decodes is canonical
