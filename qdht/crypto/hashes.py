"""Hash functions and key derivation: SHA3-256, SHAKE256, BLAKE2b, HKDF.

These come from ``cryptography`` (OpenSSL) in every backend: liboqs only adds
the post-quantum algorithms (DESIGN §4 "Algorithms").
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes as _hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from qdht.errors import ConfigError

__all__ = ["blake2b", "blake2s", "hkdf_sha3_256", "sha3_256", "shake256"]

SHA3_256_SIZE = 32


def sha3_256(*parts: bytes) -> bytes:
    """SHA3-256 of the concatenation of ``parts`` (FIPS 202)."""
    h = hashlib.sha3_256()
    for part in parts:
        h.update(part)
    return h.digest()


def shake256(data: bytes, length: int) -> bytes:
    """``length`` bytes of SHAKE256 output over ``data`` (FIPS 202)."""
    if length <= 0:
        raise ConfigError(f"length must be positive, got {length}")
    return hashlib.shake_256(data).digest(length)


def blake2b(*parts: bytes, digest_size: int = 64, key: bytes = b"") -> bytes:
    """BLAKE2b (RFC 7693) of the concatenation of ``parts``, optionally keyed."""
    h = hashlib.blake2b(digest_size=digest_size, key=key)
    for part in parts:
        h.update(part)
    return h.digest()


def blake2s(*parts: bytes, digest_size: int = 32, key: bytes = b"") -> bytes:
    """BLAKE2s (RFC 7693) of the concatenation of ``parts``, optionally keyed."""
    h = hashlib.blake2s(digest_size=digest_size, key=key)
    for part in parts:
        h.update(part)
    return h.digest()


def hkdf_sha3_256(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF (RFC 5869) with SHA3-256, ``length`` bytes of output key material."""
    if not 0 < length <= 255 * SHA3_256_SIZE:
        raise ConfigError(f"length must be in 1..{255 * SHA3_256_SIZE}, got {length}")
    return HKDF(algorithm=_hashes.SHA3_256(), length=length, salt=salt, info=info).derive(ikm)
