"""Deterministic users and randomness for the messaging tests."""

from __future__ import annotations

import hashlib
from typing import ClassVar, Final

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.crypto.xwing import XWingPrivateKey
from qdht.messaging import PrekeyStore

NOW: Final = 1_750_000_000.0
DAY: Final = 86400


class Rng:
    """A seeded randomness source (SHAKE256 stream), so every test is reproducible."""

    def __init__(self, label: str) -> None:
        self.label = label.encode()
        self.counter = 0

    def __call__(self, n: int) -> bytes:
        self.counter += 1
        return hashlib.shake_256(self.label + self.counter.to_bytes(8, "big")).digest(n)


class User:
    """A messaging identity with fixed keys: ML-DSA-65 and X-Wing from seeds."""

    _cache: ClassVar[dict[str, tuple[MLDSAPrivateKey, XWingPrivateKey]]] = {}

    def __init__(self, name: str) -> None:
        self.name = name
        if name not in self._cache:
            seed = hashlib.sha3_256(f"qdht/tests/msg/{name}".encode()).digest()
            self._cache[name] = (
                MLDSAPrivateKey.from_seed(seed),
                XWingPrivateKey.from_seed(hashlib.sha3_256(seed).digest()),
            )
        self.mldsa, self.xwing = self._cache[name]
        self.rng = Rng(name)

    def prekeys(self, *, one_time: int = 4, now: float = NOW) -> PrekeyStore:
        store = PrekeyStore(self.mldsa, self.xwing, one_time_target=one_time, rng=self.rng)
        store.rotate(now)
        store.refill()
        return store
