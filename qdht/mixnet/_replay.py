"""Replay stores: one Bloom filter of replay tags per mix-key epoch (10-mixnet.md §8.1).

A replay tag is already a uniform 256-bit hash, so the filter takes its bit
positions straight from the tag by double hashing (Kirsch and Mitzenmacher):
``h1 + i·h2 mod m`` for ``i < k``.  Sized for ``capacity`` tags at a false
positive rate ``fp_rate``: ``m = ⌈-n·ln p / ln²2⌉`` bits and
``k = round(m/n · ln 2)`` positions.  A false positive drops a fresh packet; it
never admits a replay, so an overfull filter costs delivery, not safety.
"""

from __future__ import annotations

import math
from typing import Final

from qdht.errors import ConfigError

__all__ = ["ReplayFilter"]

_MASK64: Final = (1 << 64) - 1


class ReplayFilter:
    """A Bloom filter of the replay tags one epoch key has accepted."""

    __slots__ = ("_bits", "_count", "_hashes", "_size", "capacity", "fp_rate")

    def __init__(self, capacity: int, fp_rate: float) -> None:
        if type(capacity) is not int or capacity < 1:
            raise ConfigError(f"capacity must be a positive integer, got {capacity!r}")
        if not 0.0 < fp_rate < 0.5:
            raise ConfigError(f"fp_rate must be in (0, 0.5), got {fp_rate!r}")
        self.capacity = capacity
        self.fp_rate = fp_rate
        bits = math.ceil(-capacity * math.log(fp_rate) / math.log(2) ** 2)
        self._size = max(64, bits)
        self._hashes = max(1, round(self._size / capacity * math.log(2)))
        self._bits = bytearray((self._size + 7) // 8)
        self._count = 0

    def positions(self, tag: bytes) -> tuple[int, ...]:
        """The bit positions of ``tag``: the same in every filter of the same size."""
        h1 = int.from_bytes(tag[0:8], "little")
        h2 = int.from_bytes(tag[8:16], "little") | 1
        size = self._size
        return tuple(((h1 + i * h2) & _MASK64) % size for i in range(self._hashes))

    def has(self, positions: tuple[int, ...]) -> bool:
        """True if every position is set (a tag with these positions may be here)."""
        bits = self._bits
        return all(bits[p >> 3] & 1 << (p & 7) for p in positions)

    def __contains__(self, tag: bytes) -> bool:
        return self.has(self.positions(tag))

    def add(self, tag: bytes, positions: tuple[int, ...] | None = None) -> None:
        """Remember ``tag`` (a 32-byte replay tag); ``positions`` if already computed."""
        bits = self._bits
        for p in positions if positions is not None else self.positions(tag):
            bits[p >> 3] |= 1 << (p & 7)
        self._count += 1

    def __len__(self) -> int:
        return self._count

    @property
    def memory_bytes(self) -> int:
        return len(self._bits)

    def expected_fp_rate(self) -> float:
        """The false positive rate at the current fill: ``(1 - e^(-k·n/m))^k``."""
        k = self._hashes
        return float((1.0 - math.exp(-k * self._count / self._size)) ** k)
