"""The model-store objects on the wire (13-models.md): round trips, limits, CDDL agreement."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from qdht_lint._cddl import SpecCddl

from qdht.errors import ConfigError, DecodeError
from qdht.wire import (
    CHUNK_SIZES,
    MAX_CHUNK_SIZE,
    TENSOR_DTYPES,
    Address,
    Chunk,
    Contact,
    GetChunk,
    ManifestRef,
    ModelManifest,
    ModelProvider,
    ModelTensor,
    decode,
    dumps_canonical,
    encode,
)

SPEC_DIR = Path(__file__).resolve().parents[2] / "protocol-spec"
RULES = {"manifest": "model-manifest", "manifest_ref": "model-manifest_ref",
         "provider": "model-provider",
         "get_chunk": "model-get_chunk", "chunk": "model-chunk"}  # fmt: skip


@cache
def spec() -> SpecCddl:
    return SpecCddl.from_dir(SPEC_DIR)


_names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8)
tensors = st.builds(
    ModelTensor,
    _names,
    st.sampled_from(sorted(TENSOR_DTYPES)),
    st.lists(st.integers(0, 2**64 - 1), max_size=4).map(tuple),
    st.integers(0, 4).map(lambda n: bytes(range(32)) * n),
)
manifests = st.builds(
    ModelManifest,
    st.binary(min_size=32, max_size=32),
    _names,
    st.integers(0, 2**64 - 1),
    st.sampled_from(sorted(CHUNK_SIZES)),
    st.lists(tensors, max_size=4, unique_by=lambda t: t.name),
    st.binary(min_size=32, max_size=32),
    st.just(b"\x07" * 3309),
    meta=st.dictionaries(_names, st.text(max_size=16), max_size=3),
)
refs = st.integers(1, 5 * 65536).flatmap(
    lambda size: st.builds(
        ManifestRef,
        st.binary(min_size=32, max_size=32),
        _names,
        st.integers(0, 2**64 - 1),
        st.just(size),
        st.just(b"\x09" * 32 * -(-size // 65536)),
    )
)
contacts = st.builds(
    Contact,
    st.binary(min_size=32, max_size=32),
    st.just((Address("udp", "198.51.100.1", 6881),)),
)
providers = st.builds(
    ModelProvider,
    st.binary(min_size=32, max_size=32),
    st.integers(0, 2**64 - 1),
    contacts,
    have=st.none() | st.binary(min_size=1, max_size=64),
)
get_chunks = st.builds(
    GetChunk,
    st.binary(min_size=8, max_size=8),
    st.binary(min_size=32, max_size=32),
    ro=st.booleans(),
    ws=st.none() | st.integers(1, 65535),
)
chunks = st.builds(
    Chunk, st.binary(min_size=8, max_size=8), st.none() | st.binary(min_size=1, max_size=256)
)


@given(st.one_of(manifests, refs, providers, get_chunks, chunks))
def test_objects_round_trip_and_follow_their_cddl_rules(message: Any) -> None:
    data = encode(message)
    assert decode(data) == message
    assert spec().validate(data, RULES[message.TYPE]) is None
    assert spec().validate(data, "message") is None


def test_manifest_signed_bytes_leave_out_only_the_signature() -> None:
    manifest = ModelManifest(b"\1" * 32, "m", 1, 4096, (), b"\2" * 32, b"\3" * 3309)
    body = manifest.to_cbor()
    del body["sig"]
    assert manifest.signed_bytes() == dumps_canonical(body)


def test_tensor_chunk_keys_and_size() -> None:
    tensor = ModelTensor("w", "F32", (3, 5), b"\1" * 32 + b"\2" * 32)
    assert tensor.nbytes == 60
    assert tensor.chunk_keys == (b"\1" * 32, b"\2" * 32)


def _body(**changes: Any) -> dict[str, Any]:
    tensor = {"name": "w", "dtype": "F32", "shape": [2], "chunks": b"\1" * 32}
    body = ModelManifest(b"\1" * 32, "m", 1, 4096, (), b"\2" * 32, b"\3" * 3309).to_cbor()
    body["tensors"] = [tensor]
    for key, value in changes.items():
        if key.startswith("t_"):
            tensor[key[2:]] = value
        else:
            body[key] = value
    return body


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"t_chunks": b"\1" * 33}, "field-size"),  # not a multiple of 32: no CDDL for that
        ({"t_extra": 1}, "unknown-field"),  # an array element's map: pycddl leaves it open
        ({"tensors": [_body()["tensors"][0]] * 2}, "field-value"),  # duplicate names
        ({"meta": {"": "x"}}, "field-size"),
    ],
)
def test_manifest_checks_beyond_the_cddl(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(dumps_canonical(_body(**changes)))
    assert info.value.reason == reason


def test_a_full_chunk_encodes_within_the_message_limit() -> None:
    assert len(encode(Chunk(b"\0" * 8, b"\1" * MAX_CHUNK_SIZE))) == 65571


@pytest.mark.parametrize(
    "build",
    [
        lambda: ModelTensor("", "F32", (), b""),
        lambda: ModelTensor("w", "F128", (), b""),
        lambda: ModelTensor("w", "F32", (-1,), b""),
        lambda: ModelTensor("w", "F32", (), b"\0" * 31),
        lambda: ModelManifest(b"\1" * 32, "m", 1, 5000, (), b"\2" * 32, b"\3" * 3309),
        lambda: ModelManifest(b"\1" * 32, "m" * 65, 1, 4096, (), b"\2" * 32, b"\3" * 3309),
        lambda: ModelManifest(
            b"\1" * 32, "m", 1, 4096, [ModelTensor("w", "U8", (), b"")] * 2, b"\2" * 32,
            b"\3" * 3309,
        ),
        lambda: ModelProvider(b"\1" * 32, 1, "contact"),  # type: ignore[arg-type]
        lambda: ModelProvider(b"\1" * 32, 1, Contact(b"\1" * 32, (Address("udp", "::1", 1),)),
                              have=b""),
        lambda: GetChunk(b"\0" * 8, b"\0" * 31),
        lambda: ManifestRef(b"\1" * 32, "m", 1, 65537, b"\2" * 32),  # needs 2 pages
        lambda: Chunk(b"\0" * 8, b""),
        lambda: Chunk(b"\0" * 8, b"\0" * (MAX_CHUNK_SIZE + 1)),
    ],
)  # fmt: skip
def test_invalid_objects_cannot_be_built(build: Any) -> None:
    with pytest.raises(ConfigError):
        build()
