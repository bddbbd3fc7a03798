"""safetensors in and out: interop with the reference library, and hostile files refused."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.numpy

from qdht.errors import ConfigError, ModelError
from qdht.models import MAX_HEADER_SIZE, load_arrays, read_header_from_path, save_arrays


def _raw(path: Path, header: Any, data: bytes = b"", *, length: int | None = None) -> Path:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


def _arrays() -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(1)
    return {
        "embed.weight": rng.standard_normal((7, 5)).astype(np.float32),
        "head.bias": rng.integers(-5, 5, 9).astype(np.int64),
        "mask": np.array([True, False, True]),
        "half": rng.standard_normal(4).astype(np.float16),
        "empty": np.zeros((0, 4), np.float64),
        "bigendian": np.arange(6, dtype=">i4").reshape(2, 3),
    }


def test_saved_file_loads_in_the_reference_library_and_back(tmp_path: Path) -> None:
    arrays = _arrays()
    path = tmp_path / "m.safetensors"
    save_arrays(arrays, path, {"framework": "numpy"})
    theirs = safetensors.numpy.load_file(str(path))
    ours = load_arrays(path)
    assert list(ours) == list(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(theirs[name], array)
        np.testing.assert_array_equal(ours[name], array)
        assert ours[name].dtype == array.dtype.newbyteorder("<")
    assert read_header_from_path(path).metadata == {"framework": "numpy"}
    assert read_header_from_path(path).data_start % 8 == 0


def test_reference_library_files_load(tmp_path: Path) -> None:
    arrays = {k: v for k, v in _arrays().items() if k != "bigendian"}
    path = tmp_path / "ref.safetensors"
    safetensors.numpy.save_file(arrays, str(path), metadata={"task": "demo"})
    loaded = load_arrays(path)
    assert set(loaded) == set(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name], array)


def test_bf16_is_read_as_a_header_but_not_as_numpy(tmp_path: Path) -> None:
    path = _raw(
        tmp_path / "bf.st",
        {"x": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}},
        b"\0" * 4,
    )
    assert read_header_from_path(path).tensors[0].nbytes == 4
    with pytest.raises(ModelError) as info:
        load_arrays(path)
    assert info.value.reason == "unsupported-dtype"


def _t(
    dtype: str = "F32", shape: list[int] | None = None, offsets: list[int] | None = None
) -> dict[str, Any]:
    return {
        "dtype": dtype,
        "shape": [2] if shape is None else shape,
        "data_offsets": offsets or [0, 8],
    }


HOSTILE: list[tuple[str, Any, bytes, str]] = [
    (
        "huge declared shape",
        {"x": _t(shape=[2**31, 2**31], offsets=[0, 8])},
        bytes(8),
        "huge-shape",
    ),
    ("shape and range disagree", {"x": _t(shape=[3])}, bytes(16), "size-mismatch"),
    (
        "overlapping offsets",
        {"a": _t(), "b": _t(offsets=[4, 12])},
        bytes(12),
        "overlapping-offsets",
    ),
    ("range past the end", {"x": _t(offsets=[8, 16])}, bytes(8), "out-of-range"),
    ("hole between tensors", {"a": _t(), "b": _t(offsets=[12, 20])}, bytes(20), "gap"),
    ("bytes after the last tensor", {"a": _t()}, bytes(12), "gap"),
    ("unknown dtype", {"x": _t(dtype="F128")}, bytes(8), "bad-dtype"),
    ("dtype not text", {"x": _t(dtype=4)}, bytes(8), "bad-dtype"),  # type: ignore[arg-type]
    ("negative dimension", {"x": _t(shape=[-2])}, bytes(8), "bad-shape"),
    ("boolean dimension", {"x": _t(shape=[True])}, bytes(8), "bad-shape"),
    ("rank 33", {"x": _t(shape=[1] * 33)}, bytes(8), "bad-shape"),
    ("reversed offsets", {"x": _t(offsets=[8, 0])}, bytes(8), "bad-offsets"),
    ("three offsets", {"x": _t(offsets=[0, 4, 8])}, bytes(8), "bad-offsets"),
    ("extra tensor field", {"x": dict(_t(), extra=1)}, bytes(8), "bad-tensor"),
    ("metadata not text", {"__metadata__": {"a": 1}, "x": _t()}, bytes(8), "bad-metadata"),
    ("header is a list", b"[1, 2]", b"", "bad-header"),
    ("header not JSON", b"{not json", b"", "bad-header"),
    ("header not UTF-8", b"{\xff}", b"", "bad-header"),
    (
        "duplicate tensor name",
        b'{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
        b'"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
        b"\0",
        "bad-header",
    ),
]


@pytest.mark.parametrize(
    ("header", "data", "reason"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE]
)
def test_hostile_headers_are_refused(tmp_path: Path, header: Any, data: bytes, reason: str) -> None:
    path = _raw(tmp_path / "bad.st", header, data)
    with pytest.raises(ModelError) as info:
        read_header_from_path(path)
    assert info.value.reason == reason
    with pytest.raises(ModelError):
        load_arrays(path)


def test_oversized_header_is_refused_before_reading_it(tmp_path: Path) -> None:
    path = _raw(tmp_path / "big.st", b"{}", length=MAX_HEADER_SIZE + 1)
    with pytest.raises(ModelError) as info:
        read_header_from_path(path)
    assert info.value.reason == "header-too-large"


@pytest.mark.parametrize("cut", [0, 5, 8, 20])
def test_truncated_files_are_refused(tmp_path: Path, cut: int) -> None:
    good = tmp_path / "good.st"
    save_arrays({"x": np.arange(4, dtype=np.float32)}, good)
    bad = tmp_path / "cut.st"
    bad.write_bytes(good.read_bytes()[:cut])
    with pytest.raises(ModelError) as info:
        read_header_from_path(bad)
    assert info.value.reason == "truncated"


def test_data_cut_short_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.st"
    save_arrays({"x": np.arange(4, dtype=np.float32)}, good)
    bad = tmp_path / "cut.st"
    bad.write_bytes(good.read_bytes()[:-1])
    with pytest.raises(ModelError) as info:
        load_arrays(bad)
    assert info.value.reason in {"out-of-range", "huge-shape"}


def test_local_misuse_raises_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no safetensors equivalent"):
        save_arrays({"c": np.zeros(2, np.complex64)}, tmp_path / "c.st")
    with pytest.raises(ConfigError, match="reserved"):
        save_arrays({"__metadata__": np.zeros(2)}, tmp_path / "c.st")
    with pytest.raises(ConfigError, match="NumPy array"):
        save_arrays({"x": [1, 2]}, tmp_path / "c.st")  # type: ignore[dict-item]
    assert not (tmp_path / "c.st").exists()
