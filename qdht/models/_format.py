"""Models as named arrays in safetensors files, read strictly (``13-models.md`` §2).

A model is a set of named tensors, each a dtype, a shape and its raw
little-endian bytes, stored in the safetensors format: an 8-byte little-endian
header length, a JSON header naming every tensor's dtype, shape and byte range
(``data_offsets``, relative to the end of the header), then the data.  Nothing
executable is ever loaded: the format has no code, and this module never
unpickles.

:func:`read_header` is our own strict reader for files from anywhere: it
refuses (with :class:`~qdht.errors.ModelError`) an oversized header, duplicate
JSON keys, unknown dtypes, shapes whose size does not match their byte range or
exceeds the file, and byte ranges that overlap, leave gaps or run past the
end, before a single tensor byte is read.  :func:`canonical_header` is the one
layout qdht writes, so the file a fetch assembles from a manifest is
byte-for-byte the file its publisher chunked.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Final

import attrs
import numpy as np
import numpy.typing as npt

from qdht.errors import ConfigError, ModelError
from qdht.wire import MAX_RANK, MAX_TENSOR_NAME, TENSOR_DTYPES

__all__ = [
    "MAX_HEADER_SIZE",
    "MAX_TENSORS",
    "NUMPY_DTYPES",
    "SafetensorsHeader",
    "TensorInfo",
    "canonical_header",
    "little_endian_bytes",
    "load_arrays",
    "numpy_dtype",
    "read_header",
    "read_header_from_path",
    "save_arrays",
    "tensor_infos",
]

#: safetensors dtype → NumPy dtype, for the dtypes NumPy has (not BF16 or the F8 kinds).
NUMPY_DTYPES: Final[dict[str, str]] = {
    "BOOL": "|b1",
    "U8": "|u1",
    "I8": "|i1",
    "U16": "<u2",
    "I16": "<i2",
    "F16": "<f2",
    "U32": "<u4",
    "I32": "<i4",
    "F32": "<f4",
    "U64": "<u8",
    "I64": "<i8",
    "F64": "<f8",
}
_FROM_NUMPY: Final = {np.dtype(v).str: k for k, v in NUMPY_DTYPES.items()}

#: Largest JSON header accepted, in bytes (the reference library allows 100 MB).
MAX_HEADER_SIZE: Final = 16 * 1024 * 1024
#: Most tensors in one file.
MAX_TENSORS: Final = 65536
_LEN = struct.Struct("<Q")


@attrs.frozen
class TensorInfo:
    """One tensor of a file: name, safetensors dtype, shape and byte range in the data."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


@attrs.frozen
class SafetensorsHeader:
    """A checked header: tensors in data order, metadata, and where the data starts."""

    tensors: tuple[TensorInfo, ...]
    metadata: Mapping[str, str]
    #: File offset of the first data byte (8 + header length).
    data_start: int
    #: Bytes of tensor data (the file's size minus ``data_start``).
    data_size: int


def numpy_dtype(dtype: str) -> np.dtype[Any]:
    """The NumPy dtype of a safetensors dtype; ModelError where NumPy has none (BF16, F8)."""
    entry = NUMPY_DTYPES.get(dtype)
    if entry is None:
        raise ModelError("unsupported-dtype", f"{dtype} has no NumPy equivalent")
    return np.dtype(entry)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ModelError("bad-header", f"duplicate JSON key {key[:64]!r}")
        out[key] = value
    return out


def _is_int(value: object) -> bool:
    return type(value) is int


def _parse_tensor(name: object, entry: object, data_size: int) -> TensorInfo:
    if type(name) is not str or not 0 < len(name.encode()) <= MAX_TENSOR_NAME:
        raise ModelError("bad-tensor", f"tensor name must be 1..{MAX_TENSOR_NAME} bytes")
    if type(entry) is not dict or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise ModelError("bad-tensor", f"{name!r} must hold exactly dtype, shape, data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if type(dtype) is not str or dtype not in TENSOR_DTYPES:
        raise ModelError("bad-dtype", f"{name!r}: {str(dtype)[:32]!r}")
    if (
        type(shape) is not list
        or len(shape) > MAX_RANK
        or not all(_is_int(d) and d >= 0 for d in shape)
    ):
        raise ModelError("bad-shape", f"{name!r}: at most {MAX_RANK} non-negative integers")
    if type(offsets) is not list or len(offsets) != 2 or not all(_is_int(o) for o in offsets):
        raise ModelError("bad-offsets", f"{name!r}: data_offsets must be two integers")
    start, end = offsets
    if not 0 <= start <= end:
        raise ModelError("bad-offsets", f"{name!r}: [{start}, {end}]")
    # Python integers do not overflow; the size is compared with the file before
    # anything is allocated, so a declared shape of 2^60 elements costs nothing.
    nbytes = math.prod(shape) * TENSOR_DTYPES[dtype]
    if nbytes > data_size:
        raise ModelError("huge-shape", f"{name!r}: {nbytes} bytes declared, file has {data_size}")
    if end > data_size:
        raise ModelError("out-of-range", f"{name!r}: ends at {end}, data is {data_size} bytes")
    if end - start != nbytes:
        raise ModelError(
            "size-mismatch", f"{name!r}: shape needs {nbytes} bytes, range has {end - start}"
        )
    return TensorInfo(name, dtype, tuple(shape), start, end)


def read_header(
    file: BinaryIO, file_size: int, *, max_header_size: int = MAX_HEADER_SIZE
) -> SafetensorsHeader:
    """Read and check the header of a safetensors file of ``file_size`` bytes.

    Raises ModelError with reason ``truncated``, ``header-too-large``,
    ``bad-header``, ``bad-metadata``, ``too-many-tensors``, ``bad-tensor``,
    ``bad-dtype``, ``bad-shape``, ``bad-offsets``, ``huge-shape``,
    ``out-of-range``, ``size-mismatch``, ``overlapping-offsets`` or ``gap``.
    """
    prefix = file.read(8)
    if len(prefix) < 8:
        raise ModelError("truncated", "shorter than the 8-byte header length")
    (length,) = _LEN.unpack(prefix)
    if length > max_header_size:
        raise ModelError("header-too-large", f"{length} bytes, at most {max_header_size}")
    if 8 + length > file_size:
        raise ModelError("truncated", f"header of {length} bytes, file of {file_size}")
    raw = file.read(length)
    if len(raw) != length:
        raise ModelError("truncated", "file ended inside the header")
    if not raw.startswith(b"{"):
        raise ModelError("bad-header", "the header must be a JSON object")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, ModelError):
            raise
        raise ModelError("bad-header", f"not UTF-8 JSON: {type(exc).__name__}") from None
    if type(header) is not dict:
        raise ModelError("bad-header", "the header must be a JSON object")
    data_start = 8 + length
    data_size = file_size - data_start
    metadata = header.pop("__metadata__", {})
    if type(metadata) is not dict or not all(type(v) is str for v in metadata.values()):
        raise ModelError("bad-metadata", "__metadata__ must map text to text")
    if len(header) > MAX_TENSORS:
        raise ModelError("too-many-tensors", f"{len(header)}, at most {MAX_TENSORS}")
    tensors = sorted(
        (_parse_tensor(name, entry, data_size) for name, entry in header.items()),
        key=lambda t: (t.start, t.end),
    )
    position = 0
    for tensor in tensors:
        if tensor.start < position:
            raise ModelError("overlapping-offsets", f"{tensor.name!r} starts at {tensor.start}")
        if tensor.start > position:
            raise ModelError("gap", f"bytes {position}..{tensor.start} belong to no tensor")
        position = tensor.end
    if position != data_size:
        raise ModelError("gap", f"{data_size - position} bytes after the last tensor")
    return SafetensorsHeader(tuple(tensors), dict(metadata), data_start, data_size)


def read_header_from_path(
    path: str | os.PathLike[str], *, max_header_size: int = MAX_HEADER_SIZE
) -> SafetensorsHeader:
    """:func:`read_header` of the file at ``path``."""
    with open(path, "rb") as file:
        return read_header(file, os.fstat(file.fileno()).st_size, max_header_size=max_header_size)


def load_arrays(path: str | os.PathLike[str]) -> dict[str, npt.NDArray[Any]]:
    """Every tensor of a safetensors file as a NumPy array, in data order.

    The header is checked by :func:`read_header` first; each array is a fresh
    copy (nothing maps the file).  ModelError for dtypes NumPy lacks (BF16, F8).
    """
    header = read_header_from_path(path)
    arrays: dict[str, npt.NDArray[Any]] = {}
    with open(path, "rb") as file:
        for tensor in header.tensors:
            dtype = numpy_dtype(tensor.dtype)
            file.seek(header.data_start + tensor.start)
            data = file.read(tensor.nbytes)
            if len(data) != tensor.nbytes:
                raise ModelError("truncated", f"{tensor.name!r} is cut short")
            arrays[tensor.name] = np.frombuffer(data, dtype=dtype).reshape(tensor.shape).copy()
    return arrays


def tensor_infos(arrays: Mapping[str, npt.NDArray[Any]]) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, safetensors dtype, shape) of each array, in the order given; checks the names."""
    out = []
    for name, array in arrays.items():
        if type(name) is not str or not 0 < len(name.encode()) <= MAX_TENSOR_NAME:
            raise ConfigError(f"tensor name must be 1..{MAX_TENSOR_NAME} UTF-8 bytes: {name!r}")
        if name == "__metadata__":
            raise ConfigError("'__metadata__' is reserved by safetensors")
        if not isinstance(array, np.ndarray):
            raise ConfigError(f"{name!r} must be a NumPy array, got {type(array).__name__}")
        dtype = _FROM_NUMPY.get(array.dtype.newbyteorder("<").str)
        if dtype is None:
            raise ConfigError(f"{name!r}: dtype {array.dtype} has no safetensors equivalent")
        if array.ndim > MAX_RANK:
            raise ConfigError(f"{name!r}: at most {MAX_RANK} dimensions")
        out.append((name, dtype, tuple(int(d) for d in array.shape)))
    return out


def canonical_header(
    tensors: Sequence[tuple[str, str, Sequence[int]]], metadata: Mapping[str, str] | None = None
) -> bytes:
    """The header qdht writes: length prefix and JSON, tensors contiguous in the order given.

    The JSON has no whitespace, ``__metadata__`` (if any) first, and is padded
    with spaces to a multiple of 8 bytes so the data that follows is aligned.
    """
    obj: dict[str, Any] = {}
    if metadata:
        obj["__metadata__"] = dict(metadata)
    position = 0
    for name, dtype, shape in tensors:
        nbytes = math.prod(shape) * TENSOR_DTYPES[dtype]
        obj[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [position, position + nbytes],
        }
        position += nbytes
    raw = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    raw += b" " * (-(8 + len(raw)) % 8)
    return _LEN.pack(len(raw)) + raw


def little_endian_bytes(array: npt.NDArray[Any]) -> memoryview:
    """The array's bytes as safetensors stores them: C order, little endian."""
    flat = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).reshape(-1)
    return flat.view(np.uint8).data


def save_arrays(
    arrays: Mapping[str, npt.NDArray[Any]],
    path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``arrays`` (in the order given) as a safetensors file in qdht's canonical layout.

    The file is written to a temporary name and renamed into place.
    """
    infos = tensor_infos(arrays)
    if metadata is not None and not all(
        type(k) is str and type(v) is str for k, v in metadata.items()
    ):
        raise ConfigError("metadata must map text to text")
    target = Path(path)
    temp = target.with_name(f".{target.name}.tmp")
    with open(temp, "wb") as file:
        file.write(canonical_header(infos, metadata))
        for array in arrays.values():
            file.write(little_endian_bytes(array))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, target)
