"""Hash functions and key derivation: SHA3-256, SHAKE256, BLAKE2b, HMAC, HKDF.

These come from ``cryptography`` (OpenSSL) in every backend: liboqs only adds
the post-quantum algorithms (DESIGN §4 "Algorithms").
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes as _hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from qdht.errors import ConfigError

__all__ = [
    "blake2b",
    "blake2s",
    "hkdf_blake2b",
    "hkdf_sha3_256",
    "hmac_blake2b",
    "sha3_256",
    "shake256",
]

SHA3_256_SIZE = 32
#: BLAKE2b's block size: the HMAC key is padded to it (RFC 2104).
_BLAKE2B_BLOCK = 128
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
_blake2b = hashlib.blake2b


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


def _hmac_pads(key: bytes) -> tuple[hashlib.blake2b, hashlib.blake2b]:
    """The inner and outer BLAKE2b states of HMAC with ``key`` (RFC 2104 §2)."""
    if len(key) > _BLAKE2B_BLOCK:
        key = _blake2b(key).digest()
    padded = key.ljust(_BLAKE2B_BLOCK, b"\x00")
    return _blake2b(padded.translate(_IPAD)), _blake2b(padded.translate(_OPAD))


def hmac_blake2b(key: bytes, data: bytes) -> bytes:
    """HMAC-BLAKE2b-512 (RFC 2104 over RFC 7693), the 64-byte tag of ``data``.

    Written with ``hashlib`` states rather than :func:`hmac.digest`, which
    costs two to three times as much here for the short inputs of a Noise key
    schedule; ``tests/crypto`` checks both agree.
    """
    inner, outer = _hmac_pads(key)
    inner.update(data)
    outer.update(inner.digest())
    return outer.digest()


def hkdf_blake2b(chaining_key: bytes, ikm: bytes, n: int) -> tuple[bytes, ...]:
    """Noise's HKDF (rev. 34 §4.3) with HMAC-BLAKE2b: ``n`` (2 or 3) 64-byte outputs.

    This is RFC 5869 HKDF with salt ``chaining_key`` and empty info.  The
    pads of the pseudorandom key are hashed once and copied for each output.
    """
    if n not in (2, 3):
        raise ConfigError(f"n must be 2 or 3, got {n!r}")
    inner, outer = _hmac_pads(hmac_blake2b(chaining_key, ikm))
    outputs: list[bytes] = []
    previous = b""
    for counter in range(1, n + 1):
        i = inner.copy()
        i.update(previous + bytes([counter]))
        o = outer.copy()
        o.update(i.digest())
        previous = o.digest()
        outputs.append(previous)
    return tuple(outputs)


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
