"""ChaCha20-Poly1305 (RFC 8439) with Noise-style counter nonces.

The 96-bit nonce is four zero bytes followed by the 64-bit counter in
little-endian order, as the Noise Protocol Framework (rev. 34, §12.3)
prescribes for ChaChaPoly.  A key must never see the same counter twice; the
session layer owns the counters.
"""

from __future__ import annotations

import struct
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from qdht.errors import ConfigError, CryptoError

__all__ = ["KEY_SIZE", "MAX_NONCE", "TAG_SIZE", "ChaChaPoly", "nonce_bytes"]

KEY_SIZE = 32
TAG_SIZE = 16
MAX_NONCE = 2**64 - 1
#: 0^32 ‖ LE64(counter); ``struct`` range-checks the counter for free.
_NONCE: Final = struct.Struct("<4xQ")


def nonce_bytes(nonce: int) -> bytes:
    """The 12-byte ChaCha20-Poly1305 nonce for counter ``nonce``: 0^32 ‖ LE64(nonce)."""
    try:
        return _NONCE.pack(nonce)
    except struct.error:
        raise ConfigError(f"nonce must be in 0..2^64-1, got {nonce}") from None


class ChaChaPoly:
    """One ChaCha20-Poly1305 key; encrypts and decrypts with counter nonces.

    Construct it once per key and keep it: OpenSSL's cipher context is set
    up here (costing several encryptions of a short message), not per call.
    """

    # One slot only: a session holds up to six of these (05 §2), so no
    # cached bound methods (~150 bytes each) for a nanosecond per packet.
    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if type(key) is not bytes or len(key) != KEY_SIZE:
            raise ConfigError(f"key must be {KEY_SIZE} bytes")
        self._aead = ChaCha20Poly1305(key)

    def encrypt(self, nonce: int, ad: bytes, plaintext: bytes) -> bytes:
        """Ciphertext ‖ 16-byte tag of ``plaintext`` under counter ``nonce``, binding ``ad``."""
        try:
            iv = _NONCE.pack(nonce)
        except struct.error:
            raise ConfigError(f"nonce must be in 0..2^64-1, got {nonce}") from None
        return self._aead.encrypt(iv, plaintext, ad)

    def decrypt(self, nonce: int, ad: bytes, ciphertext: bytes) -> bytes:
        """The plaintext, or CryptoError if the tag does not verify."""
        if len(ciphertext) < TAG_SIZE:
            raise CryptoError(f"ciphertext shorter than the {TAG_SIZE}-byte tag")
        try:
            iv = _NONCE.pack(nonce)
        except struct.error:
            raise ConfigError(f"nonce must be in 0..2^64-1, got {nonce}") from None
        try:
            return self._aead.decrypt(iv, ciphertext, ad)
        except InvalidTag:
            raise CryptoError("authentication failed") from None
