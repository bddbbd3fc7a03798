"""LIONESS-BLAKE2b-ChaCha20: the wide-block cipher of every mix packet payload.

Anderson and Biham's LIONESS, a four-round unbalanced Feistel cipher, with the
concrete parameterization of the Katzenpost "LIONESS Wide-Block-Cipher"
specification (``protocol-spec/10-mixnet.md`` §4):

* key 128 bytes ``k1 ‖ k2 ‖ k3 ‖ k4``, IV 48 bytes ``iv1 ‖ iv2 ‖ iv3 ‖ iv4``
  (12 bytes each);
* the block splits into ``L`` (its first 32 bytes) and ``R`` (the rest);
* ``S(k, iv)`` is ChaCha20 (RFC 8439, 96-bit nonce, block counter 0) and
  ``H(k, iv, m)`` is BLAKE2b with a 32-byte digest keyed with ``k ‖ iv``;
* encryption: ``R ^= S(L ^ k1, iv1)``; ``L ^= H(k2, iv2, R)``;
  ``R ^= S(L ^ k3, iv3)``; ``L ^= H(k4, iv4, R)``.  Decryption runs the rounds
  backwards.

Every output bit depends on every input bit, so a flipped bit anywhere in a
ciphertext turns the whole plaintext into noise: the zero tag a packet carries
inside its payload then fails (tagging attacks, DESIGN §6).  Checked against
the construction's published vector (``protocol-spec/kat/lioness.json``).
"""

from __future__ import annotations

import hashlib
from typing import Final, TypeAlias

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from qdht.errors import ConfigError

__all__ = ["IV_SIZE", "KEY_SIZE", "MIN_BLOCK_SIZE", "decrypt", "decrypt_parts", "encrypt"]

KEY_SIZE: Final = 128
IV_SIZE: Final = 48
#: ``L`` is 32 bytes and ``R`` must not be empty.
MIN_BLOCK_SIZE: Final = 33
_L: Final = 32
_COUNTER0: Final = bytes(4)
#: A block may be a memoryview of a packet (read, never written).
Buffer: TypeAlias = bytes | memoryview


def _stream(key: int, iv: bytes, data: Buffer) -> bytes:
    """``data`` XOR ChaCha20(key, iv) from block 0 (``cryptography`` takes counter ‖ nonce)."""
    round_key = key.to_bytes(_L, "little")
    return Cipher(algorithms.ChaCha20(round_key, _COUNTER0 + iv), None).encryptor().update(data)


def _hash(key: bytes, data: Buffer) -> int:
    """BLAKE2b-256 keyed with ``key`` (``k ‖ iv``) over ``data``."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=_L, key=key).digest(), "little")


def _check(key: bytes, iv: bytes, block: Buffer) -> None:
    if len(key) != KEY_SIZE:
        raise ConfigError(f"LIONESS key must be {KEY_SIZE} bytes, got {len(key)}")
    if len(iv) != IV_SIZE:
        raise ConfigError(f"LIONESS IV must be {IV_SIZE} bytes, got {len(iv)}")
    if len(block) < MIN_BLOCK_SIZE:
        raise ConfigError(f"LIONESS block must be at least {MIN_BLOCK_SIZE} bytes")


# L travels through the rounds as a little-endian integer: each XOR into the
# 32-byte half is then one integer operation instead of a byte loop.


def encrypt(key: bytes, iv: bytes, block: Buffer) -> bytes:
    """The LIONESS encryption of ``block`` (same length)."""
    _check(key, iv, block)
    left, right = int.from_bytes(block[:_L], "little"), block[_L:]
    right = _stream(left ^ int.from_bytes(key[0:32], "little"), iv[0:12], right)
    left ^= _hash(key[32:64] + iv[12:24], right)
    right = _stream(left ^ int.from_bytes(key[64:96], "little"), iv[24:36], right)
    left ^= _hash(key[96:128] + iv[36:48], right)
    return left.to_bytes(_L, "little") + right


def decrypt_parts(key: bytes, iv: bytes, block: Buffer) -> tuple[bytes, bytes]:
    """The LIONESS decryption of ``block`` as its two halves ``(L, R)``.

    For a caller that places the plaintext into a larger buffer (a mix
    building the packet it forwards): joining the halves there saves a copy
    of ``R``.  A memoryview ``block`` is not copied either.
    """
    _check(key, iv, block)
    left, right = int.from_bytes(block[:_L], "little"), block[_L:]
    left ^= _hash(key[96:128] + iv[36:48], right)
    right = _stream(left ^ int.from_bytes(key[64:96], "little"), iv[24:36], right)
    left ^= _hash(key[32:64] + iv[12:24], right)
    right = _stream(left ^ int.from_bytes(key[0:32], "little"), iv[0:12], right)
    return left.to_bytes(_L, "little"), right


def decrypt(key: bytes, iv: bytes, block: Buffer) -> bytes:
    """The LIONESS decryption of ``block`` (same length; a memoryview is not copied)."""
    return b"".join(decrypt_parts(key, iv, block))
