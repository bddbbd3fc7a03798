"""Compression: 8-bit quantisation is unbiased; top-k with error feedback loses nothing for good."""

from __future__ import annotations

import numpy as np
import pytest

from qdht.errors import ConfigError
from qdht.models.training import TopK, dequantize, quantize


def test_quantisation_is_8_bits_per_value_and_unbiased() -> None:
    rng = np.random.default_rng(0)
    update = rng.normal(0, 1, 650)
    q = quantize(update, rng)
    assert len(q.codes) == 650
    step = (q.hi - q.lo) / 255
    assert np.abs(dequantize(q) - update).max() <= step + 1e-6
    mean = np.mean([dequantize(quantize(update, rng)) for _ in range(2000)], axis=0)
    assert np.abs(mean - update).max() < step / 5


def test_constant_update_quantises_exactly() -> None:
    q = quantize(np.full(5, 0.25), np.random.default_rng(0))
    assert np.array_equal(q.decode(), np.full(5, 0.25))


def test_top_k_keeps_the_largest_coordinates() -> None:
    update = np.array([0.1, -5.0, 0.2, 3.0, -0.05, 0.0, 0.0, 0.0, 0.0, 0.0])
    sparse = TopK(0.2, error_feedback=False).compress(update)
    assert np.array_equal(sparse.decode(), [0, -5.0, 0, 3.0, 0, 0, 0, 0, 0, 0])
    assert len(sparse.indices) == 8


def test_error_feedback_delivers_everything_eventually() -> None:
    rng = np.random.default_rng(1)
    updates = [rng.normal(0, 1, 100) for _ in range(30)]
    with_feedback, without = TopK(0.1), TopK(0.1, error_feedback=False)
    sent_fb = sum(with_feedback.compress(u).decode() for u in updates)
    sent_plain = sum(without.compress(u).decode() for u in updates)
    total = sum(updates)
    assert with_feedback.residual is not None
    # What was sent plus what is still owed is exactly what was produced.
    assert np.allclose(sent_fb + with_feedback.residual, total, atol=1e-4)
    assert np.linalg.norm(sent_fb - total) < np.linalg.norm(sent_plain - total)


def test_compressors_refuse_non_finite_updates() -> None:
    bad = np.array([1.0, np.nan])
    with pytest.raises(ConfigError, match="finite"):
        quantize(bad, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="finite"):
        TopK(0.5).compress(bad)
    with pytest.raises(ConfigError, match="fraction"):
        TopK(0.0)
