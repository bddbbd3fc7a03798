"""Selection of the post-quantum backend: ``cryptography`` (default) or liboqs.

A backend supplies ML-KEM-768 (FIPS 203) and ML-DSA-65 (FIPS 204); every other
primitive (X25519, ChaCha20-Poly1305, SHA-3, BLAKE2, HKDF, scrypt) always comes
from ``cryptography``.  The backend is chosen by :func:`set_backend` or, on
first use, by the environment variable ``QDHT_CRYPTO_BACKEND``
(``cryptography`` or ``oqs``).

The liboqs backend needs liboqs-python *and* an already installed liboqs
shared library.  liboqs-python downloads and builds liboqs with git and cmake
when it is imported without one; qdht therefore looks for the library first
(:func:`find_liboqs`) and imports ``oqs`` only once the library is found, so
that importing or selecting qdht never starts a download.
"""

from __future__ import annotations

import ctypes.util
import os
import threading
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem

from qdht.errors import BackendUnavailableError, ConfigError, CryptoError

__all__ = [
    "BACKEND_ENV",
    "BACKEND_NAMES",
    "Backend",
    "CryptographyBackend",
    "KEMPrivateKey",
    "KEMPublicKey",
    "SignaturePrivateKey",
    "find_liboqs",
    "get_backend",
    "set_backend",
]

BACKEND_ENV = "QDHT_CRYPTO_BACKEND"
BACKEND_NAMES = ("cryptography", "oqs")

MLKEM768_SEED_SIZE = 64
MLKEM768_PUBLIC_KEY_SIZE = 1184
MLKEM768_CIPHERTEXT_SIZE = 1088
MLDSA65_SEED_SIZE = 32

LIBOQS_INSTALL_HINT = (
    "install liboqs as a shared library (git clone https://github.com/open-quantum-safe/liboqs; "
    "cmake -S liboqs -B liboqs/build -DBUILD_SHARED_LIBS=ON; cmake --build liboqs/build; "
    "cmake --install liboqs/build) and liboqs-python (pip install 'qdht[oqs]'), or point "
    "OQS_INSTALL_PATH at a directory whose lib/ holds liboqs.so"
)


class KEMPrivateKey(Protocol):
    """An expanded ML-KEM-768 decapsulation key."""

    def public_bytes(self) -> bytes:
        """The 1184-byte encapsulation key."""
        ...

    def decapsulate(self, ciphertext: bytes) -> bytes:
        """The 32-byte shared secret (implicit rejection on a bad ciphertext)."""
        ...


class KEMPublicKey(Protocol):
    """An ML-KEM-768 encapsulation key, parsed and checked once for repeated use."""

    def public_bytes(self) -> bytes:
        """The 1184-byte encapsulation key."""
        ...

    def encapsulate(self) -> tuple[bytes, bytes]:
        """(shared secret, ciphertext) for a fresh random message."""
        ...


class SignaturePrivateKey(Protocol):
    """An expanded ML-DSA-65 signing key."""

    def public_bytes(self) -> bytes:
        """The 1952-byte verification key."""
        ...

    def sign(self, message: bytes, context: bytes) -> bytes:
        """A 3309-byte hedged FIPS 204 signature with ``context``."""
        ...


class Backend(Protocol):
    """The post-quantum algorithms one backend provides."""

    name: str

    def mlkem768_from_seed(self, seed: bytes) -> KEMPrivateKey:
        """ML-KEM-768.KeyGen_internal(d, z) from the 64-byte seed d ‖ z."""
        ...

    def mlkem768_encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        """(shared secret, ciphertext); CryptoError if ``public_key`` is malformed."""
        ...

    def mlkem768_public_key(self, public_key: bytes) -> KEMPublicKey:
        """``public_key`` loaded once (FIPS 203 §7.2 check); CryptoError if malformed."""
        ...

    def mlkem768_encapsulate_derand(self, public_key: bytes, m: bytes) -> tuple[bytes, bytes]:
        """ML-KEM-768.Encaps_internal(ek, m), or BackendUnavailableError."""
        ...

    def mldsa65_from_seed(self, seed: bytes) -> SignaturePrivateKey:
        """ML-DSA-65.KeyGen_internal(ξ) from the 32-byte seed ξ."""
        ...

    def mldsa65_verify(
        self, public_key: bytes, message: bytes, signature: bytes, context: bytes
    ) -> bool:
        """Whether ``signature`` verifies; False (never an exception) for malformed input."""
        ...


class _CgMLKEMKey:
    __slots__ = ("_key", "_public")

    def __init__(self, key: mlkem.MLKEM768PrivateKey) -> None:
        self._key = key
        self._public = key.public_key().public_bytes_raw()

    def public_bytes(self) -> bytes:
        return self._public

    def decapsulate(self, ciphertext: bytes) -> bytes:
        return self._key.decapsulate(ciphertext)


class _CgMLKEMPublicKey:
    __slots__ = ("_key", "_public")

    def __init__(self, key: mlkem.MLKEM768PublicKey, public: bytes) -> None:
        self._key = key
        self._public = public

    def public_bytes(self) -> bytes:
        return self._public

    def encapsulate(self) -> tuple[bytes, bytes]:
        return self._key.encapsulate()


class _CgMLDSAKey:
    __slots__ = ("_key", "_public")

    def __init__(self, key: mldsa.MLDSA65PrivateKey) -> None:
        self._key = key
        self._public = key.public_key().public_bytes_raw()

    def public_bytes(self) -> bytes:
        return self._public

    def sign(self, message: bytes, context: bytes) -> bytes:
        return self._key.sign(message, context)


class CryptographyBackend:
    """ML-KEM-768 and ML-DSA-65 from ``cryptography`` (OpenSSL ≥ 3.5).

    OpenSSL exposes no derandomized ML-KEM encapsulation through
    ``cryptography``, so :meth:`mlkem768_encapsulate_derand` raises
    :class:`BackendUnavailableError`; test vectors are replayed by
    decapsulation instead.
    """

    name = "cryptography"

    def mlkem768_from_seed(self, seed: bytes) -> KEMPrivateKey:
        return _CgMLKEMKey(mlkem.MLKEM768PrivateKey.from_seed_bytes(seed))

    def mlkem768_encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        return self.mlkem768_public_key(public_key).encapsulate()

    def mlkem768_public_key(self, public_key: bytes) -> KEMPublicKey:
        try:
            key = mlkem.MLKEM768PublicKey.from_public_bytes(public_key)
        except ValueError as exc:
            raise CryptoError(f"invalid ML-KEM-768 public key: {exc}") from None
        return _CgMLKEMPublicKey(key, public_key)

    def mlkem768_encapsulate_derand(self, public_key: bytes, m: bytes) -> tuple[bytes, bytes]:
        raise BackendUnavailableError(
            "the cryptography backend has no deterministic ML-KEM encapsulation "
            "(OpenSSL does not expose it); use the oqs backend, or replay vectors by decapsulation"
        )

    def mldsa65_from_seed(self, seed: bytes) -> SignaturePrivateKey:
        return _CgMLDSAKey(mldsa.MLDSA65PrivateKey.from_seed_bytes(seed))

    def mldsa65_verify(
        self, public_key: bytes, message: bytes, signature: bytes, context: bytes
    ) -> bool:
        try:
            key = mldsa.MLDSA65PublicKey.from_public_bytes(public_key)
            key.verify(signature, message, context)
        except Exception:
            return False
        return True


def find_liboqs() -> str | None:
    """The path or name of an installed liboqs shared library, or None.

    Looks in ``$OQS_INSTALL_PATH/lib`` (liboqs-python's own convention) and then
    on the system library path; never downloads or builds anything.
    """
    install = os.environ.get("OQS_INSTALL_PATH")
    if install:
        for sub in ("lib", "lib64", "bin"):
            directory = Path(install) / sub
            if directory.is_dir():
                for candidate in sorted(directory.iterdir()):
                    if candidate.name.startswith(("liboqs.so", "liboqs.dylib", "oqs.dll")):
                        return str(candidate)
    return ctypes.util.find_library("oqs")


def _load_oqs_backend() -> Backend:
    library = find_liboqs()
    if library is None:
        raise BackendUnavailableError(
            f"the oqs backend needs liboqs, which was not found: {LIBOQS_INSTALL_HINT}"
        )
    from qdht.crypto import _oqs

    return _oqs.OQSBackend(library)


_lock = threading.Lock()
_current: Backend | None = None


def set_backend(name: str) -> Backend:
    """Select the backend ``name`` (``"cryptography"`` or ``"oqs"``) for the process.

    Keys made before the switch keep the backend that expanded them.
    Raises BackendUnavailableError if liboqs or liboqs-python is missing.
    """
    global _current
    if name == "cryptography":
        backend: Backend = CryptographyBackend()
    elif name == "oqs":
        backend = _load_oqs_backend()
    else:
        raise ConfigError(f"backend must be one of {', '.join(BACKEND_NAMES)}, got {name!r}")
    with _lock:
        _current = backend
    return backend


def get_backend() -> Backend:
    """The selected backend; the first call honours ``QDHT_CRYPTO_BACKEND``."""
    backend = _current
    if backend is None:
        with _lock:
            backend = _current
        if backend is None:
            name = os.environ.get(BACKEND_ENV, "").strip() or "cryptography"
            backend = set_backend(name)
    return backend
