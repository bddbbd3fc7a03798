"""Uplink compression of updates (14-training.md §6.2).

* 8-bit stochastic quantisation (Suresh et al., ICML 2017, with 256 levels
  between the update's minimum and maximum): each value is rounded up or
  down to a neighbouring level at random, in proportion to its distance, so
  the decoded update is an unbiased estimate of the original; 8 bits per
  value instead of 64.
* Top-k sparsification with error feedback (Stich, Cordonnier, Jaggi,
  NeurIPS 2018; Karimireddy et al. 2019): send only the k largest
  coordinates; what was left out is remembered by the device and added to
  its next update, so nothing is lost for good.

The compressed forms are plain values the wire layer can carry: codes as
bytes, floats as little-endian float32 bytes (the CBOR profile has no
floats, 00-conventions.md §2).
"""

from __future__ import annotations

import attrs
import numpy as np

from qdht.errors import ConfigError
from qdht.models.training._trainer import Params

__all__ = [
    "QuantizedUpdate",
    "SparseUpdate",
    "TopK",
    "dequantize",
    "quantize",
]

LEVELS = 255


@attrs.frozen
class QuantizedUpdate:
    """An update of ``size`` values as 8-bit codes between ``lo`` and ``hi``."""

    size: int
    lo: float
    hi: float
    codes: bytes

    def decode(self) -> Params:
        return dequantize(self)


@attrs.frozen
class SparseUpdate:
    """An update of ``size`` values of which only ``indices`` are non-zero."""

    size: int
    indices: bytes  # little-endian uint32, strictly increasing
    values: bytes  # little-endian float32

    def decode(self) -> Params:
        out = np.zeros(self.size)
        out[np.frombuffer(self.indices, dtype="<u4")] = np.frombuffer(self.values, dtype="<f4")
        return out


def quantize(update: Params, rng: np.random.Generator) -> QuantizedUpdate:
    """Stochastic 8-bit quantisation of a finite update."""
    if update.ndim != 1 or not np.all(np.isfinite(update)):
        raise ConfigError("only a flat finite update can be quantised")
    lo = float(np.float32(update.min())) if update.size else 0.0
    hi = float(np.float32(update.max())) if update.size else 0.0
    if hi <= lo:
        return QuantizedUpdate(update.size, lo, lo, bytes(update.size))
    scaled = (np.clip(update, lo, hi) - lo) / (hi - lo) * LEVELS
    floor = np.floor(scaled)
    codes = floor + (rng.random(update.size) < scaled - floor)
    return QuantizedUpdate(
        update.size, lo, hi, np.minimum(codes, LEVELS).astype(np.uint8).tobytes()
    )


def dequantize(quantized: QuantizedUpdate) -> Params:
    """The unbiased estimate of the quantised update."""
    codes = np.frombuffer(quantized.codes, dtype=np.uint8).astype(np.float64)
    return quantized.lo + codes * ((quantized.hi - quantized.lo) / LEVELS)


class TopK:
    """A device's top-k compressor, keeping its residual when ``error_feedback`` is on."""

    def __init__(self, fraction: float, *, error_feedback: bool = True) -> None:
        if not 0 < fraction <= 1:
            raise ConfigError(f"fraction must be in (0, 1], got {fraction!r}")
        self.fraction = fraction
        self.error_feedback = error_feedback
        self.residual: Params | None = None

    def compress(self, update: Params) -> SparseUpdate:
        """The k = ceil(fraction * size) largest-magnitude coordinates of update + residual."""
        if update.ndim != 1 or not np.all(np.isfinite(update)):
            raise ConfigError("only a flat finite update can be sparsified")
        full = update + self.residual if self.residual is not None else update
        k = max(1, int(np.ceil(self.fraction * full.size)))
        keep = np.sort(np.argpartition(np.abs(full), full.size - k)[full.size - k :])
        values = full[keep].astype("<f4")
        sparse = SparseUpdate(full.size, keep.astype("<u4").tobytes(), values.tobytes())
        if self.error_feedback:
            self.residual = full - sparse.decode()
        return sparse
