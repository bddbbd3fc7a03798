"""Fixed mix keys and paths for the mixnet tests (deterministic seeds)."""

from __future__ import annotations

import hashlib

from qdht.crypto import xwing
from qdht.mixnet import Geometry, PathHop


def seeded(label: str, size: int = 32) -> bytes:
    """``size`` bytes fixed by ``label``."""
    return hashlib.shake_256(f"qdht/tests/mixnet/{label}".encode()).digest(size)


def make_keys(count: int = 5) -> list[xwing.XWingPrivateKey]:
    return [xwing.XWingPrivateKey.from_seed(seeded(f"mix-{i}")) for i in range(count)]


def path_for(
    geometry: Geometry, keys: list[xwing.XWingPrivateKey], delays: tuple[int, ...] = ()
) -> list[PathHop]:
    return [
        PathHop(seeded(f"node-{i}"), keys[i].public_key_bytes(), delays[i] if delays else 7 * i)
        for i in range(geometry.hops)
    ]
