"""Remote input never raises anything but ModelError, and never gets an unverified byte kept."""

from __future__ import annotations

import io
import json
import struct
from functools import cache
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.errors import ModelError
from qdht.models import ModelFetch, chunk_arrays, chunk_key, read_header, sign_manifest
from qdht.wire import ModelManifest

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
_entries = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "U8", "BF16", "F64", "X"]),
        "shape": st.lists(st.integers(-1, 2**40), max_size=3),
        "data_offsets": st.lists(st.integers(-1, 64), min_size=2, max_size=2),
    }
)
_headers = st.dictionaries(st.text(min_size=1, max_size=4), _entries | _json, max_size=4)


def _check(blob: bytes) -> None:
    try:
        header = read_header(io.BytesIO(blob), len(blob))
    except ModelError:
        return
    # Whatever is accepted is self-consistent: contiguous ranges covering the data.
    position = 0
    for tensor in header.tensors:
        assert tensor.start == position
        position = tensor.end
    assert position == header.data_size


@given(st.binary(max_size=200))
def test_random_bytes_are_refused_with_model_errors(blob: bytes) -> None:
    _check(blob)


@given(_headers, st.binary(max_size=64), st.integers(-4, 4))
def test_random_headers_are_refused_or_consistent(header: Any, data: bytes, skew: int) -> None:
    text = json.dumps(header).encode()
    _check(struct.pack("<Q", max(0, len(text) + skew)) + text + data)


@cache
def _manifest() -> tuple[ModelManifest, dict[bytes, bytes]]:
    chunks: dict[bytes, bytes] = {}

    class Sink:
        def put(self, key: bytes, data: bytes | memoryview) -> None:
            chunks[key] = bytes(data)

    rng = np.random.default_rng(5)
    arrays = {"a": rng.integers(0, 255, 20_000).astype(np.uint8), "b": np.zeros(5000, np.uint8)}
    tensors = chunk_arrays(arrays, 4096, Sink())
    key = MLDSAPrivateKey.from_seed(b"\x55" * 32)
    return sign_manifest(key, name="f", version=1, tensors=tensors, chunk_size=4096), chunks


_ops = st.lists(
    st.tuples(
        st.sampled_from(["plan", "good", "bad", "short", "missing", "time", "add", "remove"]),
        st.integers(0, 3),
        st.integers(0, 1000),
    ),
    max_size=60,
)


@given(_ops)
def test_any_sequence_of_answers_keeps_only_verified_chunks(
    ops: list[tuple[str, int, int]],
) -> None:
    manifest, chunks = _manifest()
    kept: dict[bytes, bytes] = {}

    class Store:
        def has(self, key: bytes) -> bool:
            return key in kept

        def put(self, key: bytes, data: bytes | memoryview) -> None:
            kept[key] = bytes(data)

    fetch: ModelFetch[int] = ModelFetch(manifest, Store())
    keys = list(chunks)
    now = 0.0
    sent: list[tuple[int, bytes]] = []
    for op, holder, n in ops:
        key = keys[n % len(keys)] if not sent else sent[n % len(sent)][1]
        target = holder if not sent else sent[n % len(sent)][0]
        if op == "plan":
            sent += [(r.holder, r.key) for r in fetch.next_requests(now)]
        elif op == "good":
            fetch.receive_chunk(target, key, chunks[key], now)
        elif op == "bad":
            fetch.receive_chunk(target, key, b"\x00" + chunks[key][1:], now)
        elif op == "short":
            fetch.receive_chunk(target, key, chunks[key][:-1], now)
        elif op == "missing":
            fetch.chunk_missing(target, key, now)
        elif op == "time":
            now += n / 50
            fetch.handle_timer(now)
        elif op == "add":
            fetch.add_holder(holder, None if n % 2 else bytes([n % 256]))
        else:
            fetch.remove_holder(holder)
        while fetch.next_event() is not None:
            pass
        assert fetch.stats()["in_flight"] <= fetch.limits.max_in_flight
    for key, data in kept.items():
        assert chunk_key(data) == key
        assert data == chunks[key]
