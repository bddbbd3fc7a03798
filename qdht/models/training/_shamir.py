"""Shamir secret sharing over GF(2^521 - 1) (Shamir, CACM 1979; 14-training.md §5.2).

A secret s below p is the constant term of a random polynomial f of degree
t - 1; share i is (x_i, f(x_i)) for a non-zero x_i.  Any t shares give
f(0) = s by Lagrange interpolation at 0, and t - 1 shares say nothing about
s.  The prime is the Mersenne prime 2^521 - 1, so that any 32-byte secret
(a seed) is a field element; a share is 66 bytes, big-endian.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Final

from qdht.errors import ConfigError

__all__ = [
    "PRIME",
    "SHARE_BYTES",
    "consistent",
    "reconstruct",
    "share_from_bytes",
    "share_to_bytes",
    "split",
]

PRIME: Final = 2**521 - 1
SHARE_BYTES: Final = 66


def _random_element(random_bytes: Callable[[int], bytes]) -> int:
    while True:  # rejection sampling: uniform below PRIME
        value = int.from_bytes(random_bytes(SHARE_BYTES), "big") & ((1 << 521) - 1)
        if value < PRIME:
            return value


def split(
    secret: int,
    threshold: int,
    xs: Sequence[int],
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> dict[int, int]:
    """Shares f(x) for each x in ``xs`` of a random degree ``threshold - 1`` polynomial."""
    if not 0 <= secret < PRIME:
        raise ConfigError("the secret must be a field element (0 <= secret < 2^521 - 1)")
    if not 1 <= threshold <= len(xs):
        raise ConfigError(f"threshold must be in 1..{len(xs)}, got {threshold}")
    if len(set(xs)) != len(xs) or any(not 0 < x < PRIME for x in xs):
        raise ConfigError("share points must be distinct and non-zero")
    coefficients = [secret] + [_random_element(random_bytes) for _ in range(threshold - 1)]
    shares = {}
    for x in xs:
        y = 0
        for c in reversed(coefficients):  # Horner
            y = (y * x + c) % PRIME
        shares[x] = y
    return shares


def reconstruct(shares: dict[int, int]) -> int:
    """f(0) from the points in ``shares`` (at least the threshold of them).

    With fewer than the threshold the result is an unrelated field element:
    the caller checks what it reconstructs (14-training.md §5.5).
    """
    if not shares:
        raise ConfigError("no shares to reconstruct from")
    return _interpolate(shares, 0)


def _interpolate(points: dict[int, int], x: int) -> int:
    """The value at ``x`` of the polynomial through ``points``."""
    value = 0
    for xi, yi in points.items():
        num, den = 1, 1
        for xj in points:
            if xj != xi:
                num = num * (x - xj) % PRIME
                den = den * (xi - xj) % PRIME
        value = (value + yi * num * pow(den, -1, PRIME)) % PRIME
    return value


def consistent(shares: dict[int, int], threshold: int) -> bool:
    """Whether all ``shares`` lie on one polynomial of degree ``threshold - 1``.

    With more shares than the threshold, a wrong share (a faulty or lying
    holder) shows up here instead of as a wrong secret.
    """
    points = sorted(shares.items())
    base = dict(points[:threshold])
    return all(_interpolate(base, x) == y for x, y in points[threshold:])


def share_to_bytes(value: int) -> bytes:
    """A share value as 66 bytes, big-endian."""
    return value.to_bytes(SHARE_BYTES, "big")


def share_from_bytes(data: bytes) -> int | None:
    """The share value of 66 bytes, or None if it is not a field element."""
    value = int.from_bytes(data, "big")
    return value if len(data) == SHARE_BYTES and value < PRIME else None
