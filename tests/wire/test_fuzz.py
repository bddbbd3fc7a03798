"""``decode`` raises only DecodeError, whatever the input.

Arbitrary bytes, random CBOR items, and mutations (bit flips, truncations,
insertions, deletions, byte overwrites) of valid message encodings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cbor2
from hypothesis import given
from hypothesis import strategies as st

from qdht.errors import DecodeError
from qdht.wire import decode, encode

from .strategies import messages

SPEC_DIR = Path(__file__).resolve().parents[2] / "protocol-spec"


def _vector_encodings() -> list[bytes]:
    out = []
    for path in sorted((SPEC_DIR / "vectors").glob("**/*.json")):
        for test in json.loads(path.read_text(encoding="utf-8"))["tests"]:
            if len(test["cbor"]) <= 4096:  # the 64 KiB cases add nothing here
                out.append(bytes.fromhex(test["cbor"]))
    return out


VECTOR_BYTES = _vector_encodings()


def decodes_or_rejects(data: bytes) -> None:
    """Decode ``data``; a success must re-encode to the same bytes."""
    error: DecodeError | None = None
    try:
        message = decode(data)
    except DecodeError as exc:
        error = exc
    if error is not None:
        assert error.reason
        assert error.path.startswith("$")
    else:
        assert encode(message) == data


@st.composite
def mutated(draw: st.DrawFn, source: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(source))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "set"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=9))
        elif kind == "delete" and data:
            del data[position : position + draw(st.integers(1, 4))]
        elif kind == "set" and data:
            data[position] = draw(st.sampled_from([0x00, 0x17, 0x18, 0x1F, 0x5F, 0x9F, 0xBF, 0xFF]))
    return bytes(data)


@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    decodes_or_rejects(data)


@given(mutated(messages().map(encode)))
def test_mutated_message_encodings(data: bytes) -> None:
    decodes_or_rejects(data)


@given(mutated(st.sampled_from(VECTOR_BYTES)))
def test_mutated_vectors(data: bytes) -> None:
    decodes_or_rejects(data)


_cbor_items: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.binary(max_size=40)
    | st.text(max_size=20)
    | st.sampled_from(["ping", "nodes", "error", "store", "type", "rid", "addrs"]),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["type", "rid", "nodes", "key", "value", "code", "id", "addrs", "x"])
            | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@given(_cbor_items, st.booleans())
def test_random_cbor_items(obj: Any, canonical: bool) -> None:
    decodes_or_rejects(cbor2.dumps(obj, canonical=canonical))


@given(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["ping", "pong", "find_node", "nodes", "find_value", "value",
                                  "store", "stored", "error"])},
        optional={
            "rid": st.binary(max_size=10) | st.integers() | st.none(),
            "target": st.binary(max_size=34),
            "key": st.binary(max_size=34) | st.text(max_size=3),
            "value": st.binary(max_size=10) | st.integers(),
            "code": st.integers(-5, 2**64 - 1) | st.text(max_size=2),
            "message": st.text(max_size=5) | st.binary(max_size=3),
            "nodes": st.lists(_cbor_items, max_size=3),
        },
    )
)  # fmt: skip
def test_message_shaped_maps(obj: dict[str, Any]) -> None:
    decodes_or_rejects(cbor2.dumps(obj, canonical=True))
