"""FieldReader: typed fields, sizes, optional fields, closed maps, paths."""

from __future__ import annotations

from typing import Any

import pytest

from qdht.errors import DecodeError
from qdht.wire import FieldReader, check_bytes, check_uint, child_path


def fails(call: Any) -> tuple[str, str]:
    with pytest.raises(DecodeError) as info:
        call()
    return info.value.reason, info.value.path


def test_not_a_map() -> None:
    assert fails(lambda: FieldReader([1], "$.x")) == ("not-a-map", "$.x")


def test_type_tag() -> None:
    FieldReader({"type": "ping"}).type_tag("ping")
    assert fails(lambda: FieldReader({"type": "pong"}).type_tag("ping")) == ("wrong-type", "$.type")
    assert fails(lambda: FieldReader({}).type_tag("ping")) == ("missing-field", "$.type")


def test_bytes_sizes() -> None:
    reader = FieldReader({"a": b"12", "b": b"", "c": "x"})
    assert reader.bytes_("a", size=2) == b"12"
    assert reader.bytes_("b", max_size=4) == b""
    assert fails(lambda: reader.bytes_("a", size=3)) == ("field-size", "$.a")
    assert fails(lambda: reader.bytes_("a", min_size=3)) == ("field-size", "$.a")
    assert fails(lambda: reader.bytes_("a", max_size=1)) == ("field-size", "$.a")
    assert fails(lambda: reader.bytes_("c")) == ("field-type", "$.c")
    assert fails(lambda: reader.bytes_("d")) == ("missing-field", "$.d")


def test_text() -> None:
    reader = FieldReader({"t": "é", "n": 1})
    assert reader.text("t", max_len=2) == "é"
    assert fails(lambda: reader.text("t", max_len=1)) == ("field-size", "$.t")  # 2 UTF-8 bytes
    assert fails(lambda: reader.text("t", max_len=2, choices=frozenset({"e"}))) == (
        "field-value",
        "$.t",
    )
    assert fails(lambda: reader.text("n", max_len=9)) == ("field-type", "$.n")


def test_uint() -> None:
    reader = FieldReader({"u": 7, "neg": -1, "b": True, "big": 2**64 - 1})
    assert reader.uint("u", max_value=7) == 7
    assert reader.uint("big") == 2**64 - 1
    assert fails(lambda: reader.uint("u", max_value=6)) == ("field-value", "$.u")
    assert fails(lambda: reader.uint("u", min_value=8)) == ("field-value", "$.u")
    assert fails(lambda: reader.uint("neg")) == ("field-type", "$.neg")
    assert fails(lambda: reader.uint("b")) == ("field-type", "$.b")  # bool is not an integer


def test_bool() -> None:
    reader = FieldReader({"y": True, "n": 0})
    assert reader.bool_("y") is True
    assert fails(lambda: reader.bool_("n")) == ("field-type", "$.n")


def test_array_items_get_indexed_paths() -> None:
    reader = FieldReader({"xs": [b"a", b"bb"], "m": {}}, "$.outer")
    parse = lambda item, path: check_bytes(item, path, size=1)  # noqa: E731
    assert fails(lambda: reader.array("xs", parse, max_len=5)) == ("field-size", "$.outer.xs[1]")
    assert fails(lambda: reader.array("xs", parse, max_len=1)) == ("field-size", "$.outer.xs")
    assert fails(lambda: reader.array("xs", parse, min_len=3, max_len=5)) == (
        "field-size",
        "$.outer.xs",
    )
    assert fails(lambda: reader.array("m", parse, max_len=5)) == ("field-type", "$.outer.m")


def test_nested() -> None:
    reader = FieldReader({"n": {"k": 1}})
    inner = reader.nested("n", lambda obj, path: FieldReader(obj, path).uint("k"))
    assert inner == 1
    assert fails(
        lambda: reader.nested("n", lambda obj, path: FieldReader(obj, path).uint("z"))
    ) == (
        "missing-field",
        "$.n.z",
    )


def test_optional_fields_absent_and_null() -> None:
    reader = FieldReader({"present": b"x", "null": None})
    assert reader.bytes_("absent", optional=True) is None
    assert reader.text("absent2", max_len=3, optional=True) is None
    assert reader.uint("absent3", optional=True) is None
    assert reader.bool_("absent4", optional=True) is None
    assert reader.array("absent5", check_bytes, max_len=1, optional=True) is None
    assert reader.nested("absent6", check_bytes, optional=True) is None
    assert reader.bytes_("present", size=1, optional=True) == b"x"
    # null is not "absent": an optional field that is present must have its type.
    assert fails(lambda: reader.bytes_("null", optional=True)) == ("field-type", "$.null")


def test_finish_rejects_unread_fields() -> None:
    reader = FieldReader({"a": 1, "b": 2})
    reader.uint("a")
    assert reader.has("b")
    assert fails(reader.finish) == ("unknown-field", "$.b")
    reader.uint("b")
    reader.finish()


def test_helpers() -> None:
    assert child_path("$", "a") == "$.a"
    assert child_path("$.a", 2) == "$.a[2]"
    assert check_uint(0, "$") == 0
    assert fails(lambda: check_uint("1", "$.p")) == ("field-type", "$.p")
