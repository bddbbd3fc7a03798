"""EncryptWithLabel (RFC 9420 §5.1.3) over HPKE base mode with X-Wing.

``cryptography``'s HPKE (RFC 9180) implements the KEM ``MLKEM768-X25519``
(code point 0x647A, X-Wing as draft-ietf-hpke-pq defines it), so nothing of
HPKE is written here: a key is built from the X-Wing seed expansion of
``qdht.crypto.xwing`` (``SHAKE256(seed, 96)`` → ML-KEM-768 seed ‖ X25519
secret), and the 1216-byte public key is split into its halves.  The suite is
X-Wing / HKDF-SHA256 / ChaCha20-Poly1305, the HPKE half of
:data:`~qdht.messaging._group_schedule.QDHT_SUITE`.
"""

from __future__ import annotations

import functools

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from qdht.crypto import xwing
from qdht.crypto.hashes import shake256
from qdht.errors import GroupError
from qdht.messaging._group_tls import opaque

__all__ = [
    "LeafKey",
]

_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
KEM_OUTPUT_SIZE = hpke.KEM.MLKEM768_X25519.enc_length()  # 1120, an X-Wing ciphertext
_MLKEM_PK = 1184


def encrypt_context(label: bytes, context: bytes) -> bytes:
    """The EncryptContext struct passed as HPKE ``info`` (RFC 9420 §5.1.3)."""
    return opaque(b"MLS 1.0 " + label) + opaque(context)


class LeafKey:
    """A member's HPKE decryption key (its leaf's X-Wing key), kept as the 32-byte seed."""

    __slots__ = ("_key", "_public", "_seed")

    def __init__(self, seed: bytes) -> None:
        if type(seed) is not bytes or len(seed) != xwing.SEED_SIZE:
            raise GroupError(f"leaf key seed must be {xwing.SEED_SIZE} bytes")
        expanded = shake256(seed, 96)
        kem = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
        dh = x25519.X25519PrivateKey.from_private_bytes(expanded[64:])
        self._seed = seed
        self._key = hpke.MLKEM768X25519PrivateKey(kem, dh)
        self._public = kem.public_key().public_bytes_raw() + dh.public_key().public_bytes_raw()

    @property
    def seed(self) -> bytes:
        """The X-Wing seed: the only form in which the key is stored."""
        return self._seed

    def public_key_bytes(self) -> bytes:
        """The 1216-byte X-Wing encapsulation key, as ``qdht.crypto.xwing`` encodes it."""
        return self._public

    def decrypt(self, label: bytes, context: bytes, kem_output: bytes, ciphertext: bytes) -> bytes:
        """DecryptWithLabel; GroupError if the ciphertext does not open under this key."""
        try:
            return _SUITE.decrypt(
                kem_output + ciphertext, self._key, encrypt_context(label, context)
            )
        except Exception as exc:  # cryptography raises InvalidTag or ValueError variants
            raise GroupError("HPKE ciphertext does not decrypt") from exc

    def __repr__(self) -> str:
        return "LeafKey(<secret>)"


@functools.lru_cache(maxsize=512)
def _public_key(public: bytes) -> hpke.MLKEM768X25519PublicKey:
    if len(public) != xwing.PUBLIC_KEY_SIZE:
        raise GroupError(f"X-Wing public key must be {xwing.PUBLIC_KEY_SIZE} bytes")
    try:
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(public[:_MLKEM_PK]),
            x25519.X25519PublicKey.from_public_bytes(public[_MLKEM_PK:]),
        )
    except ValueError as exc:
        raise GroupError("X-Wing public key is invalid") from exc


def encrypt_with_label(
    public: bytes, label: bytes, context: bytes, plaintext: bytes
) -> tuple[bytes, bytes]:
    """EncryptWithLabel (RFC 9420 §5.1.3): (kem_output, ciphertext) to the X-Wing key ``public``."""
    sealed = _SUITE.encrypt(plaintext, _public_key(public), encrypt_context(label, context))
    return sealed[:KEM_OUTPUT_SIZE], sealed[KEM_OUTPUT_SIZE:]


def decrypt_with_label(
    key: LeafKey, label: bytes, context: bytes, kem_output: bytes, ciphertext: bytes
) -> bytes:
    """DecryptWithLabel (RFC 9420 §5.1.3) with ``key``."""
    return key.decrypt(label, context, kem_output, ciphertext)
