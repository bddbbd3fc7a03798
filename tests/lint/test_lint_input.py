"""Reading messages: the four input formats, auto-detection and splitting."""

from __future__ import annotations

import json

import cbor2
import pytest
from qdht_lint._input import InputError, detect_format, item_end, parse_input

from ._support import enc, ping

PING = enc(ping())
UNSORTED = (
    b"\xa2" + cbor2.dumps("type") + cbor2.dumps("ping") + cbor2.dumps("rid") + cbor2.dumps(b"r" * 8)
)
INDEFINITE = b"\xbf" + cbor2.dumps("rid") + cbor2.dumps(b"r" * 8) + b"\xff"
DUPLICATE = b"\xa2" + (cbor2.dumps("rid") + cbor2.dumps(b"r" * 8)) * 2
BAD_TAG = b"\xc1\x61x"  # tag 1 (epoch time) around a text: a decoder refuses it


def test_raw_cbor_is_one_message_with_its_trailing_bytes() -> None:
    [message] = parse_input(PING + b"\x00", "m.cbor", "cbor")
    assert message.data == PING + b"\x00"
    assert message.source == "m.cbor@0"


def test_cbor_sequence_is_split_at_item_boundaries() -> None:
    data = PING + UNSORTED + INDEFINITE + DUPLICATE + BAD_TAG + PING
    messages = parse_input(data, "seq", "cbor-seq")
    assert [m.data for m in messages] == [PING, UNSORTED, INDEFINITE, DUPLICATE, BAD_TAG, PING]
    assert messages[1].source == f"seq@{len(PING)}"


def test_cbor_sequence_keeps_an_undecodable_tail_as_one_message() -> None:
    messages = parse_input(PING + b"\x5f\x41", "seq", "cbor-seq")
    assert [m.data for m in messages] == [PING, b"\x5f\x41"]


def test_cbor_sequence_that_is_not_cbor_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not CBOR"):
        parse_input(b"\xff\xff", "junk", "cbor-seq")


def test_item_end_walks_headers_only() -> None:
    assert item_end(INDEFINITE + b"\x01", 0) == len(INDEFINITE)
    assert item_end(BAD_TAG, 0) == len(BAD_TAG)
    assert item_end(b"\x82\x01", 0) is None
    assert item_end(b"\x1c", 0) is None


def test_hex_lines_skip_blanks_and_comments() -> None:
    text = f"# two pings\n{PING.hex()}\n\n  {PING.hex().upper()}  # again\n".encode()
    messages = parse_input(text, "p.hex", "hex")
    assert [m.data for m in messages] == [PING, PING]
    assert [m.source for m in messages] == ["p.hex:2", "p.hex:4"]


def test_bad_hex_line_names_its_line() -> None:
    with pytest.raises(InputError, match=r"p\.hex:2: not a hex line"):
        parse_input(f"{PING.hex()}\nzz\n".encode(), "p.hex", "hex")


def test_json_lines_carry_their_other_fields() -> None:
    lines = [
        json.dumps({"id": "a", "hex": PING.hex(), "comment": "ping"}),
        json.dumps({"hex": UNSORTED.hex()}),
    ]
    messages = parse_input("\n".join(lines).encode(), "m.jsonl", "jsonl")
    assert [m.data for m in messages] == [PING, UNSORTED]
    assert messages[0].fields == {"id": "a", "comment": "ping"}


def test_json_line_may_hold_a_line_separator_character() -> None:
    line = json.dumps({"hex": PING.hex(), "comment": "a\u2028b"}, ensure_ascii=False)
    [message] = parse_input(line.encode() + b"\r\n", "m.jsonl", "jsonl")
    assert message.fields == {"comment": "a\u2028b"}


@pytest.mark.parametrize(
    ("line", "error"),
    [("{oops", "not a JSON line"), ('{"id": 1}', '"hex"'), ('{"hex": "zz"}', "not hex")],
)
def test_bad_json_line_is_an_input_error(line: str, error: str) -> None:
    with pytest.raises(InputError, match=error):
        parse_input(line.encode(), "m.jsonl", "jsonl")


@pytest.mark.parametrize(
    ("content", "fmt"),
    [
        (b'  {"hex": "00"}\n', "jsonl"),
        (f"# c\n{PING.hex()}\n".encode(), "hex"),
        (PING, "cbor-seq"),
        (PING + PING, "cbor-seq"),
    ],
)
def test_auto_detection(content: bytes, fmt: str) -> None:
    assert detect_format(content) == fmt


def test_auto_detected_formats_give_the_same_messages() -> None:
    as_hex = f"{PING.hex()}\n{UNSORTED.hex()}\n".encode()
    as_json = "\n".join(json.dumps({"hex": d.hex()}) for d in (PING, UNSORTED)).encode()
    as_seq = PING + UNSORTED
    for content in (as_hex, as_json, as_seq):
        assert [m.data for m in parse_input(content, "x")] == [PING, UNSORTED]


@pytest.mark.parametrize("fmt", ["auto", "cbor", "cbor-seq", "hex", "jsonl"])
def test_empty_input_is_an_input_error(fmt: str) -> None:
    with pytest.raises(InputError, match="empty input"):
        parse_input(b"" if fmt != "auto" else b" \n", "e", fmt)


def test_non_utf8_text_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not UTF-8"):
        parse_input(b"\xff\xfe00\n", "x", "hex")
