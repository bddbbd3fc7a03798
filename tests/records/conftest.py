"""Owner keys shared by the record tests (fixed seeds: no entropy needed)."""

from __future__ import annotations

import pytest

from qdht.crypto.mldsa import MLDSAPrivateKey

NOW = 1_750_000_000
DAY = 86400


@pytest.fixture(scope="session")
def alice() -> MLDSAPrivateKey:
    return MLDSAPrivateKey.from_seed(bytes(range(32)))


@pytest.fixture(scope="session")
def bob() -> MLDSAPrivateKey:
    return MLDSAPrivateKey.from_seed(bytes(range(32, 64)))


@pytest.fixture(scope="session")
def carol() -> MLDSAPrivateKey:
    return MLDSAPrivateKey.from_seed(bytes(range(64, 96)))
