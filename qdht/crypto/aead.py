"""ChaCha20-Poly1305 (RFC 8439) with Noise-style counter nonces.

The 96-bit nonce is four zero bytes followed by the 64-bit counter in
little-endian order, as the Noise Protocol Framework (rev. 34, §12.3)
prescribes for ChaChaPoly.  A key must never see the same counter twice; the
session layer owns the counters.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from qdht.errors import ConfigError, CryptoError

__all__ = ["KEY_SIZE", "MAX_NONCE", "TAG_SIZE", "ChaChaPoly", "nonce_bytes"]

KEY_SIZE = 32
TAG_SIZE = 16
MAX_NONCE = 2**64 - 1


def nonce_bytes(nonce: int) -> bytes:
    """The 12-byte ChaCha20-Poly1305 nonce for counter ``nonce``: 0^32 ‖ LE64(nonce)."""
    if not 0 <= nonce <= MAX_NONCE:
        raise ConfigError(f"nonce must be in 0..2^64-1, got {nonce}")
    return b"\x00\x00\x00\x00" + nonce.to_bytes(8, "little")


class ChaChaPoly:
    """One ChaCha20-Poly1305 key; encrypts and decrypts with counter nonces."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if type(key) is not bytes or len(key) != KEY_SIZE:
            raise ConfigError(f"key must be {KEY_SIZE} bytes")
        self._aead = ChaCha20Poly1305(key)

    def encrypt(self, nonce: int, ad: bytes, plaintext: bytes) -> bytes:
        """Ciphertext ‖ 16-byte tag of ``plaintext`` under counter ``nonce``, binding ``ad``."""
        return self._aead.encrypt(nonce_bytes(nonce), plaintext, ad)

    def decrypt(self, nonce: int, ad: bytes, ciphertext: bytes) -> bytes:
        """The plaintext, or CryptoError if the tag does not verify."""
        if len(ciphertext) < TAG_SIZE:
            raise CryptoError(f"ciphertext shorter than the {TAG_SIZE}-byte tag")
        try:
            return self._aead.decrypt(nonce_bytes(nonce), ciphertext, ad)
        except InvalidTag:
            raise CryptoError("authentication failed") from None
