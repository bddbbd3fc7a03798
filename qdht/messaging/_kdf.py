"""Key derivation shared by the direct-messaging modules (11-messaging.md §1.2).

Every derivation is HKDF-SHA3-256 (RFC 5869) with a label of the form
``qdht/v1/msg-<use>`` as the start of its info, so no two uses of a secret
can collide; chains step with HMAC-SHA3-256 as the Double Ratchet's KDF_CK.
"""

from __future__ import annotations

import hmac
from typing import Final

from qdht.crypto.hashes import hkdf_sha3_256

__all__ = [
    "chain_step",
]

KEY_SIZE: Final = 32
_ZERO_SALT: Final = bytes(32)


def derive(
    ikm: bytes,
    label: bytes,
    *,
    salt: bytes = _ZERO_SALT,
    context: bytes = b"",
    length: int = KEY_SIZE,
) -> bytes:
    """HKDF-SHA3-256(salt, ikm, info = ``qdht/v1/msg-`` ‖ label ‖ context)."""
    return hkdf_sha3_256(ikm, salt=salt, info=b"qdht/v1/msg-" + label + context, length=length)


def chain_step(chain_key: bytes) -> tuple[bytes, bytes]:
    """KDF_CK (Double Ratchet §5.2): (next chain key, message key) from ``chain_key``."""
    return (
        hmac.digest(chain_key, b"\x02", "sha3_256"),
        hmac.digest(chain_key, b"\x01", "sha3_256"),
    )
