"""The PyTorch adapter: ``state_dict`` in and out of the model store (13-models.md §2).

Optional: PyTorch is imported only when one of these functions runs
(``pip install 'qdht[torch]'``); importing :mod:`qdht.models` never needs it.

* :func:`state_dict_to_arrays` turns a ``state_dict`` into the NumPy arrays
  the store publishes (every dtype NumPy has; a bfloat16 or float8 model is
  published from its ``.safetensors`` file instead, which the store chunks
  byte for byte);
* :func:`arrays_to_state_dict` turns arrays back into tensors;
* :func:`load_state_dict` reads a safetensors file (a fetched model, or any
  other) through the strict header reader into tensors of every dtype,
  bfloat16 and float8 included.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from qdht.errors import ConfigError, ModelError
from qdht.models._format import read_header

__all__ = ["arrays_to_state_dict", "load_state_dict", "state_dict_to_arrays"]

#: safetensors dtype → name of the torch dtype.
_TORCH_DTYPES: Final = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "F8_E5M2": "float8_e5m2",
    "F8_E4M3": "float8_e4m3fn",
    "U16": "uint16",
    "I16": "int16",
    "F16": "float16",
    "BF16": "bfloat16",
    "U32": "uint32",
    "I32": "int32",
    "F32": "float32",
    "U64": "uint64",
    "I64": "int64",
    "F64": "float64",
}


def _torch() -> Any:
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise ConfigError("the PyTorch adapter needs torch: pip install 'qdht[torch]'") from None


def state_dict_to_arrays(state_dict: Mapping[str, Any]) -> dict[str, npt.NDArray[Any]]:
    """The tensors of ``state_dict`` as NumPy arrays (copied to the CPU, detached)."""
    torch = _torch()
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise ConfigError(f"{name!r} is not a tensor: {type(tensor).__name__}")
        if tensor.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
            raise ConfigError(
                f"{name!r} is {tensor.dtype}, which NumPy lacks: save the model with "
                "safetensors.torch.save_file and publish the file"
            )
        arrays[name] = tensor.detach().cpu().contiguous().numpy().copy()
    return arrays


def arrays_to_state_dict(arrays: Mapping[str, npt.NDArray[Any]]) -> dict[str, Any]:
    """NumPy arrays as CPU tensors (each a copy), for ``module.load_state_dict``."""
    torch = _torch()
    return {name: torch.from_numpy(np.array(array, copy=True)) for name, array in arrays.items()}


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Every tensor of a safetensors file as a CPU tensor, after the strict header checks."""
    torch = _torch()
    tensors: dict[str, Any] = {}
    with open(path, "rb") as file:
        header = read_header(file, os.fstat(file.fileno()).st_size)
        for info in header.tensors:
            file.seek(header.data_start + info.start)
            data = file.read(info.nbytes)
            if len(data) != info.nbytes:
                raise ModelError("truncated", f"{info.name!r} is cut short")
            dtype = getattr(torch, _TORCH_DTYPES[info.dtype])
            if info.nbytes:
                flat = torch.frombuffer(bytearray(data), dtype=dtype)
            else:
                flat = torch.empty(0, dtype=dtype)
            tensors[info.name] = flat.reshape(info.shape)
    return tensors
