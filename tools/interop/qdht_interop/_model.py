"""The model a target publishes for the ``model`` cases (``QDHT_MODEL_FILE``).

A small safetensors file (13-models.md §2, canonical layout) of three ``U8``
tensors from a fixed seed, built without NumPy so that the harness needs only
the ``lint`` extra: the harness knows every chunk key (§3) without asking
the target, and checks what the target serves against them.
"""

from __future__ import annotations

import json
import random
from typing import Final

import attrs

from qdht.wire import immutable_key

__all__ = ["MODEL_NAME", "InteropModel", "interop_model"]

#: The name the target publishes the file under (``--model-name`` of ``qdht node``).
MODEL_NAME: Final = "qdht-interop"
#: Tensor sizes in bytes: three chunks, two, and one short one.
SIZES: Final = (150_000, 70_000, 1_000)
CHUNK_SIZE: Final = 65536


@attrs.frozen
class InteropModel:
    """The file's bytes, its tensors' data, and the chunk keys in manifest order."""

    file: bytes
    data: bytes
    keys: tuple[bytes, ...]


def interop_model(seed: int = 17) -> InteropModel:
    rng = random.Random(seed)
    tensors = [(f"layer{i}", rng.randbytes(size)) for i, size in enumerate(SIZES)]
    header: dict[str, object] = {}
    offset = 0
    for name, data in tensors:
        header[name] = {
            "dtype": "U8",
            "shape": [len(data)],
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    keys = tuple(
        immutable_key(data[start : start + CHUNK_SIZE])
        for _, data in tensors
        for start in range(0, len(data), CHUNK_SIZE)
    )
    body = b"".join(data for _, data in tensors)
    return InteropModel(len(text).to_bytes(8, "little") + text + body, body, keys)
