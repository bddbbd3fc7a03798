"""The DHT RPC messages: encodings, validation on construction, strict decoding."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given

from qdht.errors import ConfigError, DecodeError
from qdht.wire import (
    DEFAULT_LIMITS,
    RESPONSE_TYPES,
    Address,
    Contact,
    ErrorCode,
    ErrorMessage,
    FindNode,
    FindValue,
    ImmutableRecord,
    MutableRecord,
    Nodes,
    Ping,
    Pong,
    SetEntry,
    Store,
    Stored,
    Value,
    decode,
    dumps_canonical,
    encode,
    immutable_key,
    message_types,
    new_rid,
    owner_hash,
)

from .strategies import MESSAGE_STRATEGIES, messages

RID = bytes.fromhex("0102030405060708")
KEY = bytes(range(32))
CONTACT = Contact(KEY, [Address("udp", "198.51.100.7", 6881)])
RECORD = ImmutableRecord(b"v", 1_750_000_000)
PK = bytes(range(256)) * 7 + bytes(160)  # 1952 bytes, a placeholder ML-DSA-65 key
SIG = b"\x5a" * 3309
MUTABLE = MutableRecord(owner_hash(PK), b"salt", 3, b"x" * 65536, 2**40 - 1, SIG, PK)
ENTRY = SetEntry(b"topic", owner_hash(PK), 1, b"entry", 1_750_000_000, SIG, PK)


def test_ping_encoding_is_exact() -> None:
    # {"rid": h'0102030405060708', "type": "ping"}: keys sorted length-first.
    expected = bytes.fromhex(
        "a2 63726964 48 0102030405060708 6474797065 6470696e67".replace(" ", "")
    )
    assert encode(Ping(RID)) == expected
    assert decode(expected) == Ping(RID)


@pytest.mark.parametrize(
    ("message", "fields"),
    [
        (Ping(RID), {"type": "ping", "rid": RID}),
        (Pong(RID), {"type": "pong", "rid": RID}),
        (FindNode(RID, KEY), {"type": "find_node", "rid": RID, "target": KEY}),
        (Nodes(RID, [CONTACT]), {"type": "nodes", "rid": RID, "nodes": [CONTACT.to_cbor()]}),
        (FindValue(RID, KEY), {"type": "find_value", "rid": RID, "key": KEY}),
        (Value(RID, RECORD), {"type": "value", "rid": RID, "record": RECORD.to_cbor()}),
        (
            Value(RID, records=[ENTRY]),
            {"type": "value", "rid": RID, "records": [ENTRY.to_cbor()]},
        ),
        (
            Store(RID, KEY, RECORD),
            {"type": "store", "rid": RID, "key": KEY, "record": RECORD.to_cbor()},
        ),
        (
            Store(RID, KEY, RECORD, cas=0),
            {"type": "store", "rid": RID, "key": KEY, "record": RECORD.to_cbor(), "cas": 0},
        ),
        (Stored(RID), {"type": "stored", "rid": RID}),
        (ErrorMessage(2, "no", RID), {"type": "error", "rid": RID, "code": 2, "message": "no"}),
        (ErrorMessage(8), {"type": "error", "code": 8, "message": ""}),
    ],
)
def test_field_names_on_the_wire(message: Any, fields: dict[str, Any]) -> None:
    assert message.to_cbor() == fields
    assert encode(message) == dumps_canonical(fields)
    assert decode(encode(message)) == message


@given(messages())
def test_every_message_round_trips(message: Any) -> None:
    data = encode(message)
    decoded = decode(data)
    assert decoded == message
    assert type(decoded) is type(message)
    assert encode(decoded) == data


def test_all_dht_types_registered() -> None:
    registered = message_types()
    for cls in MESSAGE_STRATEGIES:
        assert registered[cls.TYPE] is cls
    assert {cls.TYPE for cls in MESSAGE_STRATEGIES} >= {
        "ping", "pong", "find_node", "nodes", "find_value", "value", "store", "stored", "error",
    }  # fmt: skip


@pytest.mark.parametrize(
    "build",
    [
        lambda: Ping(RID[:7]),
        lambda: Ping(RID + b"\0"),
        lambda: Ping("0102030405060708"),  # type: ignore[arg-type]
        lambda: Pong(b""),
        lambda: Stored(bytearray(RID)),  # type: ignore[arg-type]
        lambda: FindNode(RID, KEY[:31]),
        lambda: FindValue(RID, KEY + b"\0"),
        lambda: Value(RID, b"x"),  # type: ignore[arg-type]
        lambda: Value(RID),
        lambda: Value(RID, RECORD, records=[ENTRY]),
        lambda: Value(RID, ENTRY),
        lambda: Value(RID, records=[RECORD]),
        lambda: Value(RID, records=[ENTRY] * 65),
        lambda: Store(RID, KEY, b"x"),  # type: ignore[arg-type]
        lambda: Store(RID, KEY[:1], RECORD),
        lambda: Store(RID, KEY, RECORD, cas=-1),
        lambda: Store(RID, KEY, RECORD, cas=2**64),
        lambda: Store(RID, KEY, RECORD, cas=True),
        lambda: Nodes(RID, [CONTACT] * 33),
        lambda: Nodes(RID, ["not a contact"]),  # type: ignore[list-item]
        lambda: ErrorMessage(1, "x" * 257),
        lambda: ErrorMessage(1, "é" * 129),  # 258 UTF-8 bytes
        lambda: ErrorMessage(1, b"bytes"),  # type: ignore[arg-type]
        lambda: ErrorMessage(-1),
        lambda: ErrorMessage(2**64),
        lambda: ErrorMessage(True),
        lambda: ErrorMessage(1, "\ud800"),
        lambda: ErrorMessage(1, "", RID[:4]),
    ],
)
def test_bad_fields_raise_config_error(build: Any) -> None:
    with pytest.raises(ConfigError):
        build()


def test_limits_are_inclusive() -> None:
    assert len(Nodes(RID, [CONTACT] * 32).nodes) == 32
    assert ErrorMessage(1, "é" * 128).message == "é" * 128
    assert Store(RID, KEY, RECORD, cas=2**64 - 1).cas == 2**64 - 1


def test_the_largest_legal_store_fits_max_bytes() -> None:
    # 02-dht-rpc.md §4.4: a 64 KiB mutable record with a 64-byte salt, its pk,
    # the largest cas, ro and ws is still a message the receiver accepts.
    biggest = MutableRecord(owner_hash(PK), b"s" * 64, 2**64 - 1, b"x" * 65536, 2**40 - 1, SIG, PK)
    store = Store(RID, biggest.key(), biggest, cas=2**64 - 1, ro=True, ws=65535)
    data = encode(store)
    assert len(data) <= DEFAULT_LIMITS.max_bytes == 73728
    assert decode(data) == store
    answer = Value(RID, biggest)
    assert len(encode(answer)) <= 73728
    assert decode(encode(answer)) == answer


def test_a_value_carries_one_record_or_set_entries() -> None:
    assert decode(encode(Value(RID, MUTABLE))) == Value(RID, MUTABLE)
    pair = Value(RID, records=[ENTRY, ENTRY])
    assert decode(encode(pair)) == pair
    both = {"type": "value", "rid": RID, "record": RECORD.to_cbor(), "records": [ENTRY.to_cbor()]}
    assert decode_error(both) == ("unknown-field", "$.records")
    assert decode_error({"type": "value", "rid": RID}) == ("missing-field", "$.record")
    entry_as_record = {"type": "value", "rid": RID, "record": ENTRY.to_cbor()}
    assert decode_error(entry_as_record) == ("unexpected-type", "$.record.type")
    record_in_set = {"type": "value", "rid": RID, "records": [RECORD.to_cbor()]}
    assert decode_error(record_in_set) == ("unexpected-type", "$.records[0].type")


def test_immutable_key() -> None:
    value = b"hello, qdht"
    expected = hashlib.sha3_256(b"qdht/v1/immutable" + value).digest()
    assert immutable_key(value) == expected
    assert immutable_key(bytearray(value)) == expected
    assert immutable_key(b"") == hashlib.sha3_256(b"qdht/v1/immutable").digest()
    assert Store.of(RID, ImmutableRecord(value, 0)) == Store(
        RID, expected, ImmutableRecord(value, 0)
    )
    with pytest.raises(ConfigError):
        immutable_key("text")  # type: ignore[arg-type]


def test_error_codes() -> None:
    assert {code.name: code.value for code in ErrorCode} == {
        "BAD_REQUEST": 1,
        "UNKNOWN_REQUEST": 2,
        "TOO_LARGE": 3,
        "RATE_LIMITED": 4,
        "STORAGE_FULL": 5,
        "INVALID_VALUE": 6,
        "NOT_SERVING": 7,
        "INTERNAL": 8,
        "OWNER_KEY_UNKNOWN": 9,
        "STALE": 10,
        "CAS_MISMATCH": 11,
    }
    error = ErrorMessage(ErrorCode.RATE_LIMITED, "slow down", RID)
    assert type(error.code) is int
    assert error == ErrorMessage(4, "slow down", RID)
    assert error.error_code is ErrorCode.RATE_LIMITED
    assert ErrorMessage(1000).error_code is None


def test_response_types() -> None:
    assert RESPONSE_TYPES[FindValue] == (Value, Nodes, ErrorMessage)
    for responses in RESPONSE_TYPES.values():
        assert ErrorMessage in responses


def test_new_rid() -> None:
    assert len(new_rid()) == 8
    assert new_rid(lambda n: b"\x07" * n) == b"\x07" * 8
    with pytest.raises(ConfigError):
        new_rid(lambda n: b"short")


def decode_error(obj: Any) -> tuple[str, str]:
    with pytest.raises(DecodeError) as info:
        decode(dumps_canonical(obj))
    return info.value.reason, info.value.path


def test_decode_errors_name_the_field() -> None:
    contact = CONTACT.to_cbor()
    bad_port = {**contact, "addrs": [{**contact["addrs"][0], "port": 0}]}
    assert decode_error({"type": "nodes", "rid": RID, "nodes": [contact, bad_port]}) == (
        "field-value",
        "$.nodes[1].addrs[0].port",
    )
    assert decode_error({"type": "store", "rid": RID, "key": KEY, "record": {"type": 1}}) == (
        "field-type",
        "$.record.type",
    )
    bad_record = {"type": "immutable", "value": "v", "exp": 0}
    assert decode_error({"type": "store", "rid": RID, "key": KEY, "record": bad_record}) == (
        "field-type",
        "$.record.value",
    )
    assert decode_error({"type": "error", "code": 1, "message": "", "rid": None}) == (
        "field-type",
        "$.rid",
    )
    assert decode_error({"type": "ping"}) == ("missing-field", "$.rid")
    assert decode_error({"type": "ping", "rid": RID, "x": 1}) == ("unknown-field", "$.x")
    assert decode_error({"type": "pingg", "rid": RID}) == ("unknown-type", "$.type")
    assert decode_error({"type": None, "rid": RID}) == ("field-type", "$.type")
    assert decode_error({"type": "x" * 33}) == ("field-type", "$.type")
    assert decode_error({"rid": RID}) == ("missing-type", "$.type")
    assert decode_error([{"type": "ping", "rid": RID}]) == ("not-a-map", "$")


def test_decode_expect_restricts_types() -> None:
    data = encode(Ping(RID))
    assert decode(data, expect=(Ping, Store)) == Ping(RID)
    with pytest.raises(DecodeError) as info:
        decode(data, expect=(Pong,))
    assert info.value.reason == "unexpected-type"


def test_from_cbor_checks_its_own_type() -> None:
    with pytest.raises(DecodeError) as info:
        Ping.from_cbor({"type": "pong", "rid": RID}, "$")
    assert (info.value.reason, info.value.path) == ("wrong-type", "$.type")
