"""Content-addressed, tensor-aligned chunks and the Merkle root over them (13-models.md §3).

Each tensor's bytes are cut into ``chunk_size`` pieces from the tensor's own
start (the last piece may be shorter), so a tensor that did not change between
two versions yields the same chunks whatever changed around it.  A chunk's
key is the immutable-record key of its bytes (07-records.md §3,
SHA3-256(``"qdht/v1/immutable"`` ‖ data)), so a chunk can also be stored as an
immutable record, and the same bytes always have the same key.

The manifest's ``root`` is the RFC 6962 §2.1 Merkle Tree Hash, with SHA3-256,
over the chunk keys of every tensor in manifest order.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, Protocol

import numpy.typing as npt

from qdht.errors import ConfigError, ModelError
from qdht.models._format import little_endian_bytes, read_header, tensor_infos
from qdht.wire import CHUNK_SIZES, MAX_CHUNK_SIZE, ModelTensor, immutable_key

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ChunkSink",
    "chunk_arrays",
    "chunk_file",
    "chunk_key",
    "chunk_lengths",
    "merkle_root",
    "split",
]

#: The chunk size qdht publishes with: the largest, so a chunk fills one message.
DEFAULT_CHUNK_SIZE: Final = MAX_CHUNK_SIZE

#: A chunk key: the immutable-record key of the chunk's bytes.
chunk_key: Final = immutable_key


class ChunkSink(Protocol):
    """Where chunks go as they are cut (a :class:`~qdht.models.ChunkStore`, for one)."""

    def put(self, key: bytes, data: bytes | memoryview) -> None: ...


def _sha3(data: bytes) -> bytes:
    return hashlib.sha3_256(data).digest()


def merkle_root(leaves: Sequence[bytes], hash_: Callable[[bytes], bytes] = _sha3) -> bytes:
    """RFC 6962 §2.1 Merkle Tree Hash of ``leaves`` (SHA3-256 unless told otherwise).

    MTH({}) = H(""); a leaf is H(0x00 ‖ d); a node is H(0x01 ‖ left ‖ right),
    the left subtree holding the largest power of two of leaves below n.
    Computed bottom-up: pairing neighbours and carrying an odd last node up
    unchanged builds exactly that tree.
    """
    if not leaves:
        return hash_(b"")
    level = [hash_(b"\x00" + leaf) for leaf in leaves]
    while len(level) > 1:
        paired = [hash_(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _check_chunk_size(chunk_size: int) -> None:
    if chunk_size not in CHUNK_SIZES:
        raise ConfigError(f"chunk_size must be one of {sorted(CHUNK_SIZES)}, got {chunk_size!r}")


def split(data: bytes | memoryview, chunk_size: int) -> Iterator[memoryview]:
    """``data`` cut into ``chunk_size`` pieces from its start (views, no copies)."""
    view = memoryview(data).cast("B")
    for start in range(0, len(view), chunk_size):
        yield view[start : start + chunk_size]


def chunk_lengths(nbytes: int, chunk_size: int) -> list[int]:
    """The lengths of the chunks of a tensor of ``nbytes`` bytes."""
    full, rest = divmod(nbytes, chunk_size)
    return [chunk_size] * full + ([rest] if rest else [])


def _tensor(
    name: str,
    dtype: str,
    shape: Sequence[int],
    pieces: Iterator[bytes | memoryview],
    sink: ChunkSink | None,
) -> ModelTensor:
    keys = []
    for piece in pieces:
        key = chunk_key(piece)
        if sink is not None:
            sink.put(key, piece)
        keys.append(key)
    return ModelTensor(name, dtype, tuple(shape), b"".join(keys))


def chunk_arrays(
    arrays: Mapping[str, npt.NDArray[Any]],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    sink: ChunkSink | None = None,
) -> tuple[ModelTensor, ...]:
    """The manifest tensors of ``arrays`` (in the order given), chunks sent to ``sink``."""
    _check_chunk_size(chunk_size)
    return tuple(
        _tensor(name, dtype, shape, split(little_endian_bytes(arrays[name]), chunk_size), sink)
        for name, dtype, shape in tensor_infos(arrays)
    )


def chunk_file(
    path: str | os.PathLike[str],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    sink: ChunkSink | None = None,
) -> tuple[tuple[ModelTensor, ...], dict[str, str]]:
    """The manifest tensors (in data order) and metadata of a safetensors file.

    The file is read one chunk at a time: memory stays bounded whatever its size.
    """
    _check_chunk_size(chunk_size)
    with open(path, "rb") as file:
        header = read_header(file, os.fstat(file.fileno()).st_size)

        def pieces(start: int, nbytes: int) -> Iterator[bytes]:
            file.seek(header.data_start + start)
            for length in chunk_lengths(nbytes, chunk_size):
                piece = file.read(length)
                if len(piece) != length:
                    raise ModelError("truncated", f"{path} changed while it was read")
                yield piece

        tensors = tuple(
            _tensor(t.name, t.dtype, t.shape, pieces(t.start, t.nbytes), sink)
            for t in header.tensors
        )
    return tensors, dict(header.metadata)
