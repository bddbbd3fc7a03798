"""ML-DSA-65 signatures (FIPS 204), always with a context string.

Every qdht object type signs with its own context string (listed in
``protocol-spec/03-identity.md``), so a signature on one kind of object never
verifies as another.  Private keys are stored as the 32-byte FIPS 204 seed ξ
only; the expanded key is kept in memory.
"""

from __future__ import annotations

import os

from qdht.crypto.backend import SignaturePrivateKey, get_backend
from qdht.crypto.hashes import sha3_256
from qdht.errors import CryptoError, InvalidSignatureError

__all__ = [
    "MAX_CONTEXT_SIZE",
    "PUBLIC_KEY_SIZE",
    "SEED_SIZE",
    "SIGNATURE_SIZE",
    "MLDSAPrivateKey",
    "verify",
]

PUBLIC_KEY_SIZE = 1952
SIGNATURE_SIZE = 3309
SEED_SIZE = 32
MAX_CONTEXT_SIZE = 255


def _check_context(context: bytes) -> bytes:
    if type(context) is not bytes:
        raise CryptoError(f"context must be bytes, got {type(context).__name__}")
    if not 0 < len(context) <= MAX_CONTEXT_SIZE:
        # An empty context is legal in FIPS 204, but qdht always names the object type.
        raise CryptoError(f"context must be 1..{MAX_CONTEXT_SIZE} bytes, got {len(context)}")
    return context


class MLDSAPrivateKey:
    """An ML-DSA-65 signing key: the 32-byte seed and its expanded key."""

    __slots__ = ("_key", "_seed")

    def __init__(self, seed: bytes) -> None:
        if type(seed) is not bytes or len(seed) != SEED_SIZE:
            raise CryptoError(f"ML-DSA-65 seed must be {SEED_SIZE} bytes")
        self._seed = seed
        self._key: SignaturePrivateKey = get_backend().mldsa65_from_seed(seed)

    @classmethod
    def generate(cls) -> MLDSAPrivateKey:
        """A fresh key from 32 bytes of operating-system randomness."""
        return cls(os.urandom(SEED_SIZE))

    @classmethod
    def from_seed(cls, seed: bytes) -> MLDSAPrivateKey:
        """ML-DSA-65.KeyGen_internal(ξ) for the 32-byte seed ξ."""
        return cls(seed)

    @property
    def seed(self) -> bytes:
        """The 32-byte seed ξ: the only form in which the key is stored."""
        return self._seed

    def public_key_bytes(self) -> bytes:
        """The 1952-byte verification key."""
        return self._key.public_bytes()

    def sign(self, message: bytes, context: bytes) -> bytes:
        """A 3309-byte hedged signature of ``message`` under ``context`` (1..255 bytes)."""
        if type(message) is not bytes:
            raise CryptoError(f"message must be bytes, got {type(message).__name__}")
        return self._key.sign(message, _check_context(context))

    def __repr__(self) -> str:
        return f"MLDSAPrivateKey(public={sha3_256(self.public_key_bytes())[:8].hex()}…)"


def verify(public_key: bytes, message: bytes, signature: bytes, context: bytes) -> None:
    """Check ``signature`` on ``message`` under ``context``; InvalidSignatureError if not.

    A malformed public key or signature is reported the same way: the caller
    asked for a verdict on data it received.
    """
    _check_context(context)
    if type(public_key) is not bytes or len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidSignatureError(f"ML-DSA-65 public key must be {PUBLIC_KEY_SIZE} bytes")
    if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE:
        raise InvalidSignatureError(f"ML-DSA-65 signature must be {SIGNATURE_SIZE} bytes")
    if not get_backend().mldsa65_verify(public_key, message, signature, context):
        raise InvalidSignatureError("ML-DSA-65 signature does not verify")
