"""Cryptographic algorithms behind one small interface (DESIGN §4 "Algorithms").

* :mod:`qdht.crypto.xwing` — X-Wing KEM (X25519 + ML-KEM-768);
* :mod:`qdht.crypto.mldsa` — ML-DSA-65 signatures with context strings;
* :mod:`qdht.crypto.aead` — ChaCha20-Poly1305 with counter nonces;
* :mod:`qdht.crypto.hashes` — SHA3-256, SHAKE256, BLAKE2b, HKDF;
* :mod:`qdht.crypto.backend` — ``cryptography`` (default) or liboqs.

Importing this package never imports liboqs-python.
"""

from typing import TYPE_CHECKING

from qdht._lazy import lazy_exports
from qdht.crypto import aead, backend, hashes, mldsa, xwing
from qdht.crypto.aead import ChaChaPoly
from qdht.crypto.backend import get_backend, set_backend
from qdht.crypto.hashes import sha3_256
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.crypto.xwing import XWingPrivateKey, XWingPublicKey

# The liboqs backend's adapter: imported by set_backend("oqs") or on first use.
if TYPE_CHECKING:
    from qdht.crypto._oqs import OQSBackend
else:
    __getattr__ = lazy_exports(globals(), {"OQSBackend": "qdht.crypto._oqs"})

__all__ = [
    "ChaChaPoly",
    "MLDSAPrivateKey",
    "OQSBackend",
    "XWingPrivateKey",
    "XWingPublicKey",
    "aead",
    "backend",
    "get_backend",
    "hashes",
    "mldsa",
    "set_backend",
    "sha3_256",
    "xwing",
]
