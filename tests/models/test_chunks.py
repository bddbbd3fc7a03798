"""Chunks: content-addressed, tensor-aligned, one message each; the RFC 6962 Merkle root."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qdht.errors import ConfigError
from qdht.models import chunk_arrays, chunk_file, chunk_key, merkle_root, save_arrays
from qdht.wire import DEFAULT_LIMITS, MAX_CHUNK_SIZE, Chunk, encode, immutable_key

# RFC 6962's reference leaves and roots (certificate-transparency merkle_tree_test.cc),
# with SHA-256 as RFC 6962 specifies; qdht uses the same tree with SHA3-256.
CT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
             "606162636465666768696a6b6c6d6e6f"]  # fmt: skip
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@pytest.mark.parametrize("n", range(len(CT_ROOTS)))
def test_merkle_root_matches_rfc6962_reference_vectors(n: int) -> None:
    leaves = [bytes.fromhex(h) for h in CT_LEAVES[:n]]
    assert merkle_root(leaves, _sha256).hex() == CT_ROOTS[n]


def test_merkle_root_uses_sha3_and_orders_leaves() -> None:
    a, b = b"\x01" * 32, b"\x02" * 32
    assert merkle_root([]) == hashlib.sha3_256(b"").digest()
    assert merkle_root([a]) == hashlib.sha3_256(b"\x00" + a).digest()
    assert merkle_root([a, b]) != merkle_root([b, a])


def _model(seed: int = 0) -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    return {
        "a": rng.standard_normal(50_000).astype(np.float32),  # 200,000 bytes: 4 chunks
        "b": rng.integers(0, 9, (3, 7)).astype(np.int8),
        "c": np.zeros(0, np.float64),
    }


def test_chunks_are_tensor_aligned_and_content_addressed() -> None:
    sink: dict[bytes, bytes] = {}

    class Sink:
        def put(self, key: bytes, data: bytes | memoryview) -> None:
            sink[key] = bytes(data)

    tensors = chunk_arrays(_model(), sink=Sink())
    a = tensors[0]
    assert [t.name for t in tensors] == ["a", "b", "c"]
    assert [len(t.chunk_keys) for t in tensors] == [4, 1, 0]
    assert [len(sink[k]) for k in a.chunk_keys] == [65536, 65536, 65536, 200_000 - 3 * 65536]
    for key, data in sink.items():
        assert key == immutable_key(data) == chunk_key(data)
    assert b"".join(sink[k] for k in a.chunk_keys) == _model()["a"].tobytes()


def test_an_unchanged_tensor_keeps_its_chunks_whatever_changes_around_it() -> None:
    old = _model()
    new = dict(old)
    new["b"] = old["b"] + 1
    moved = {"first": np.ones(5, np.float16), **old}
    old_t = {t.name: t for t in chunk_arrays(old)}
    new_t = {t.name: t for t in chunk_arrays(new)}
    moved_t = {t.name: t for t in chunk_arrays(moved)}
    assert new_t["a"].chunks == old_t["a"].chunks == moved_t["a"].chunks
    assert new_t["b"].chunks != old_t["b"].chunks


def test_a_file_chunks_like_its_arrays(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_arrays(_model(), path, {"task": "demo"})
    tensors, metadata = chunk_file(path, 16384)
    assert tensors == chunk_arrays(_model(), 16384)
    assert metadata == {"task": "demo"}


def test_a_full_chunk_fits_one_message() -> None:
    message = encode(Chunk(b"r" * 8, b"\xff" * MAX_CHUNK_SIZE))
    assert len(message) <= DEFAULT_LIMITS.max_bytes


def test_chunk_size_must_be_a_supported_power_of_two() -> None:
    with pytest.raises(ConfigError, match="chunk_size"):
        chunk_arrays(_model(), 1000)
    with pytest.raises(ConfigError, match="chunk_size"):
        chunk_arrays(_model(), 131072)
