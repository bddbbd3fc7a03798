"""Shared identities for the identity tests (low puzzle difficulty keeps them fast)."""

from __future__ import annotations

import pytest

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.crypto.xwing import XWingPrivateKey
from qdht.identity import Identity

#: Test difficulty: 6 bits, ~64 hashes per mint.
DIFFICULTY = 6
NOW = 1_700_000_000


@pytest.fixture(scope="session")
def identity() -> Identity:
    return Identity.from_keys(
        XWingPrivateKey.from_seed(bytes(range(32))),
        MLDSAPrivateKey.from_seed(bytes(range(32, 64))),
        DIFFICULTY,
    )


@pytest.fixture(scope="session")
def other_identity() -> Identity:
    return Identity.generate(DIFFICULTY)
