"""The deterministic-encoding check without re-encoding is exact.

``loads_canonical`` accepts bytes when the keys are in deterministic order and
the input is exactly as long as the deterministic encoding would be.  These
tests encode random values with random non-shortest heads and random key
orders and check that acceptance matches ``dumps_canonical(loads(b)) == b``.
"""

from __future__ import annotations

import random
import struct
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdht.errors import DecodeError
from qdht.wire import dumps_canonical, loads_canonical

_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.binary(max_size=300)
    | st.text(max_size=40)
)
values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=30), inner, max_size=5)
    ),
    max_leaves=25,
)


def _head(major: int, n: int, widen: bool) -> bytes:
    """A CBOR head; with ``widen`` one size larger than needed (when possible)."""
    sizes = [(24, 0), (0x100, 1), (0x10000, 2), (0x100000000, 4), (2**64, 8)]
    index = next(i for i, (limit, _) in enumerate(sizes) if n < limit)
    if widen and index < len(sizes) - 1:
        index += 1
    width = sizes[index][1]
    if width == 0:
        return bytes([major << 5 | n])
    info = {1: 24, 2: 25, 4: 26, 8: 27}[width]
    fmt = {1: ">B", 2: ">H", 4: ">I", 8: ">Q"}[width]
    return bytes([major << 5 | info]) + struct.pack(fmt, n)


def _encode(obj: Any, rng: random.Random, p_widen: float, p_shuffle: float) -> bytes:
    widen = rng.random() < p_widen
    if obj is None:
        return b"\xf6"
    if obj is True or obj is False:
        return b"\xf5" if obj else b"\xf4"
    if isinstance(obj, int):
        return _head(0, obj, widen) if obj >= 0 else _head(1, -1 - obj, widen)
    if isinstance(obj, bytes):
        return _head(2, len(obj), widen) + obj
    if isinstance(obj, str):
        raw = obj.encode()
        return _head(3, len(raw), widen) + raw
    if isinstance(obj, list):
        return _head(4, len(obj), widen) + b"".join(
            _encode(x, rng, p_widen, p_shuffle) for x in obj
        )
    items = sorted(obj.items(), key=lambda kv: (len(kv[0].encode()), kv[0].encode()))
    if rng.random() < p_shuffle:
        rng.shuffle(items)
    return _head(5, len(items), widen) + b"".join(
        _encode(k, rng, p_widen, p_shuffle) + _encode(v, rng, p_widen, p_shuffle) for k, v in items
    )


@given(values, st.integers(min_value=0, max_value=2**32), st.sampled_from([0.0, 0.05, 0.3]))
def test_acceptance_is_exactly_deterministic_encoding(obj: Any, seed: int, p: float) -> None:
    data = _encode(obj, random.Random(seed), p_widen=p, p_shuffle=p)
    canonical = dumps_canonical(cbor2.loads(data))
    if data == canonical:
        assert loads_canonical(data) == obj
    else:
        with pytest.raises(DecodeError) as info:
            loads_canonical(data)
        assert info.value.reason == "non-deterministic"


@given(values)
def test_deterministic_encoding_of_any_value_is_accepted(obj: Any) -> None:
    assert loads_canonical(dumps_canonical(obj)) == obj


@given(values, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_named(obj: Any, extra: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        loads_canonical(dumps_canonical(obj) + extra)
    # cbor2 decodes the first item only, so what follows it is always "trailing".
    assert info.value.reason == "trailing-bytes"
