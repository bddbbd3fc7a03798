"""The strict CBOR core: every reject reason, the limits, and what is accepted."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from qdht.errors import DecodeError
from qdht.wire import DEFAULT_LIMITS, CborLimits, dumps_canonical, format_path, loads_canonical
from qdht.wire._cbor import _check_item


def reason_of(data: Any, limits: CborLimits = DEFAULT_LIMITS) -> str:
    with pytest.raises(DecodeError) as info:
        loads_canonical(data, limits)
    return info.value.reason


@pytest.mark.parametrize(
    ("hex_data", "reason"),
    [
        ("", "empty"),
        ("9fff", "indefinite-length"),  # indefinite array
        ("bf6161 00ff", "indefinite-length"),  # indefinite map
        ("5f4101ff", "indefinite-length"),  # indefinite byte string
        ("7f6161ff", "indefinite-length"),  # indefinite text string
        ("a2616100616101", "duplicate-key"),
        ("81" * 17 + "80", "too-deep"),  # 18 nested arrays
        ("81" * 16 + "80", "too-deep"),  # 17 nested arrays: one over the limit
        ("a1616181" + "81" * 15 + "a0", "too-deep"),  # maps count too
        ("62 61", "malformed"),  # truncated text
        ("ff", "malformed"),  # stray break
        ("1c", "malformed"),  # reserved additional information
        ("61ff", "malformed"),  # invalid UTF-8
        ("5b00ffffffffffffff", "malformed"),  # announces 2^56 bytes, holds none
        ("9b00ffffffffffffff", "malformed"),  # announces 2^56 elements
        ("f93c00", "unsupported-type"),  # half float 1.0
        ("fb3ff0000000000000", "unsupported-type"),  # double 1.0
        ("f7", "unsupported-type"),  # undefined
        ("f820", "unsupported-type"),  # simple value 32
        ("e0", "unsupported-type"),  # simple value 0
        ("c100", "unsupported-type"),  # epoch datetime tag
        ("c24101", "unsupported-type"),  # bignum tag, even for a small value
        ("c249010000000000000000", "unsupported-type"),  # bignum 2^64
        ("d9d9f700", "unsupported-type"),  # self-describe tag
        ("d81c81d81d00", "unsupported-type"),  # shared reference cycle
        ("d82480", "unsupported-type"),  # MIME tag
        ("d903e800", "unsupported-type"),  # unassigned tag 1000
        ("dbffffffffffffffff00", "unsupported-type"),  # largest tag number
        ("a10000", "non-text-key"),
        ("a1410000", "non-text-key"),  # byte-string key
        ("a18000", "non-text-key"),  # array key
        ("0000", "trailing-bytes"),
        ("a0a0", "trailing-bytes"),
        ("1817", "non-deterministic"),  # 23 in a 1-byte argument
        ("190017", "non-deterministic"),
        ("3800", "non-deterministic"),  # -1 in a 1-byte argument
        ("580100", "non-deterministic"),  # length 1 in a 1-byte argument
        ("b801616100", "non-deterministic"),  # map length in a 1-byte argument
        ("a2626262006161 00", "non-deterministic"),  # keys out of order
        ("a2616200616100", "non-deterministic"),  # same length, bytewise out of order
    ],
)
def test_each_reject_reason(hex_data: str, reason: str) -> None:
    assert reason_of(bytes.fromhex(hex_data.replace(" ", ""))) == reason


@pytest.mark.parametrize("value", ["text", 5, None, [1, 2], bytearray()])
def test_not_bytes(value: Any) -> None:
    if isinstance(value, bytearray):
        assert reason_of(value) == "empty"  # bytearray is bytes-like and accepted
    else:
        assert reason_of(value) == "not-bytes"


def test_too_large_is_checked_before_decoding() -> None:
    limits = CborLimits(max_bytes=10)
    assert reason_of(bytes(11), limits) == "too-large"
    assert loads_canonical(dumps_canonical(b"123456789"), limits) == b"123456789"


def test_max_bytes_default_is_72_kib() -> None:
    assert DEFAULT_LIMITS.max_bytes == 73728
    biggest = dumps_canonical(b"x" * (73728 - 5))
    assert len(biggest) == 73728
    assert loads_canonical(biggest) == b"x" * (73728 - 5)
    assert reason_of(dumps_canonical(b"x" * (73728 - 4))) == "too-large"


def test_depth_limit_is_exact() -> None:
    sixteen = b"\x81" * 15 + b"\x80"
    assert loads_canonical(sixteen) == [[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]
    assert loads_canonical(b"\x81" * 16 + b"\x00") is not None  # a scalar in the 16th array
    assert reason_of(b"\x81" * 16 + b"\x80") == "too-deep"
    assert reason_of(b"\x81\x80", CborLimits(max_depth=1)) == "too-deep"


def test_container_length_limit() -> None:
    limits = CborLimits(max_container_len=3)
    assert loads_canonical(dumps_canonical([0, 1, 2]), limits) == [0, 1, 2]
    with pytest.raises(DecodeError) as info:
        loads_canonical(dumps_canonical({"a": [0, 1, 2, 3]}), limits)
    assert (info.value.reason, info.value.path) == ("too-many-items", "$.a")
    assert reason_of(dumps_canonical(dict.fromkeys("abcd", 0)), limits) == "too-many-items"
    assert reason_of(dumps_canonical(list(range(1025)))) == "too-many-items"


def test_total_item_limit() -> None:
    limits = CborLimits(max_items=10)
    ten = [[0, 0, 0], [0, 0], 0, 0]  # 10 items, counting the arrays
    assert loads_canonical(dumps_canonical(ten), limits) == ten
    assert reason_of(dumps_canonical([*ten, 0]), limits) == "too-many-items"
    # The default limit holds against a flat message of many tiny items.
    many = dumps_canonical([[0] * 1000 for _ in range(9)])
    assert reason_of(many) == "too-many-items"


def test_int_range_for_items_built_outside_the_decoder() -> None:
    with pytest.raises(DecodeError) as info:
        _check_item({"n": [2**64]}, DEFAULT_LIMITS, [], [0])
    assert (info.value.reason, info.value.path) == ("int-range", "$.n[0]")


def test_error_paths_name_the_item() -> None:
    with pytest.raises(DecodeError) as info:
        loads_canonical(dumps_canonical({"a": [0, {"b": [{1: 0}]}]}))
    assert info.value.reason == "non-text-key"
    assert info.value.path == "$.a[1].b[0]"
    assert str(info.value).startswith("non-text-key at $.a[1].b[0]")


@pytest.mark.parametrize(
    "value",
    [
        0,
        23,
        24,
        2**64 - 1,
        -(2**64),
        -1,
        True,
        False,
        None,
        b"",
        b"\x00" * 300,
        "",
        "héllo ☃",
        [],
        {},
        {"a": 1, "bb": 2, "aa": [b"x", None]},
    ],
)
def test_deterministic_items_round_trip(value: object) -> None:
    data = dumps_canonical(value)
    assert loads_canonical(data) == value
    assert cbor2.loads(data) == value


def test_canonical_key_order_is_length_first() -> None:
    data = dumps_canonical({"bb": 1, "a": 2, "ab": 3})
    assert data == bytes.fromhex("a3616102626162036262 62 01".replace(" ", ""))


def test_memoryview_and_bytearray_accepted() -> None:
    data = dumps_canonical({"a": 1})
    assert loads_canonical(memoryview(data)) == {"a": 1}
    assert loads_canonical(bytearray(data)) == {"a": 1}


def test_format_path() -> None:
    assert format_path([]) == "$"
    assert format_path(["nodes", 3, "id"]) == "$.nodes[3].id"
