"""Fixtures of the mixnet tests."""

from __future__ import annotations

import pytest

from qdht.crypto import xwing

from ._support import make_keys


@pytest.fixture(scope="session")
def mix_keys() -> list[xwing.XWingPrivateKey]:
    return make_keys()
