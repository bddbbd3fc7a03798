"""The liboqs backend, through liboqs-python (the ``oqs`` extra).

Imported only by :func:`qdht.crypto.backend.set_backend` after a liboqs shared
library was found, so that liboqs-python never falls back to downloading and
building liboqs.

liboqs-python (0.14) can expand an ML-KEM key from its 64-byte seed
(``generate_keypair_seed``) but has no seeded ML-DSA key generation; qdht
stores ML-DSA keys as 32-byte seeds only, so this backend expands ML-DSA seeds
(and therefore signs) with ``cryptography`` and verifies with liboqs.
Deterministic ML-KEM encapsulation is used when liboqs-python exposes it
(``encap_secret_derand``), otherwise BackendUnavailableError.
"""

from __future__ import annotations

import importlib
from typing import Any

from qdht.crypto.backend import (
    LIBOQS_INSTALL_HINT,
    CryptographyBackend,
    KEMPrivateKey,
    KEMPublicKey,
    SignaturePrivateKey,
)
from qdht.errors import BackendUnavailableError, CryptoError

__all__ = ["OQSBackend"]

_KEM = "ML-KEM-768"
_SIG = "ML-DSA-65"


class _OQSMLKEMKey:
    __slots__ = ("_kem", "_public")

    def __init__(self, oqs: Any, seed: bytes) -> None:
        self._kem = oqs.KeyEncapsulation(_KEM)
        self._public = bytes(self._kem.generate_keypair_seed(seed))

    def public_bytes(self) -> bytes:
        return self._public

    def decapsulate(self, ciphertext: bytes) -> bytes:
        return bytes(self._kem.decap_secret(ciphertext))


class OQSBackend:
    """ML-KEM-768 and ML-DSA-65 verification from liboqs (see the module docstring)."""

    name = "oqs"

    def __init__(self, library: str) -> None:
        try:
            self._oqs: Any = importlib.import_module("oqs")
        except (ImportError, OSError, RuntimeError, SystemExit) as exc:
            raise BackendUnavailableError(
                f"liboqs was found at {library} but liboqs-python could not be imported "
                f"({exc}): {LIBOQS_INSTALL_HINT}"
            ) from None
        for kind, name, enabled in (
            ("KEM", _KEM, self._oqs.is_kem_enabled),
            ("signature", _SIG, self._oqs.is_sig_enabled),
        ):
            if not enabled(name):
                raise BackendUnavailableError(f"liboqs at {library} lacks the {kind} {name}")
        if not hasattr(self._oqs.KeyEncapsulation, "generate_keypair_seed"):
            raise BackendUnavailableError(
                "liboqs-python is too old to expand ML-KEM seeds; install liboqs-python >= 0.14"
            )
        self._signer = CryptographyBackend()

    def mlkem768_from_seed(self, seed: bytes) -> KEMPrivateKey:
        return _OQSMLKEMKey(self._oqs, seed)

    def mlkem768_encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        with self._oqs.KeyEncapsulation(_KEM) as kem:
            try:
                ciphertext, secret = kem.encap_secret(public_key)
            except (ValueError, RuntimeError) as exc:
                raise CryptoError(f"invalid ML-KEM-768 public key: {exc}") from None
        return bytes(secret), bytes(ciphertext)

    def mlkem768_public_key(self, public_key: bytes) -> KEMPublicKey:
        self.mlkem768_encapsulate(public_key)  # liboqs checks the key only when used
        return _OQSMLKEMPublicKey(self, public_key)

    def mlkem768_encapsulate_derand(self, public_key: bytes, m: bytes) -> tuple[bytes, bytes]:
        with self._oqs.KeyEncapsulation(_KEM) as kem:
            derand = getattr(kem, "encap_secret_derand", None)
            if derand is None:
                raise BackendUnavailableError(
                    "this liboqs-python exposes no deterministic ML-KEM encapsulation"
                )
            try:
                ciphertext, secret = derand(public_key, m)
            except (ValueError, RuntimeError) as exc:
                raise CryptoError(f"invalid ML-KEM-768 public key: {exc}") from None
        return bytes(secret), bytes(ciphertext)

    def mldsa65_from_seed(self, seed: bytes) -> SignaturePrivateKey:
        return self._signer.mldsa65_from_seed(seed)

    def mldsa65_verify(
        self, public_key: bytes, message: bytes, signature: bytes, context: bytes
    ) -> bool:
        with self._oqs.Signature(_SIG) as sig:
            try:
                return bool(sig.verify_with_ctx_str(message, signature, context, public_key))
            except Exception:
                return False


class _OQSMLKEMPublicKey:
    """liboqs keeps no parsed public key: each encapsulation takes the bytes."""

    __slots__ = ("_backend", "_public")

    def __init__(self, backend: OQSBackend, public: bytes) -> None:
        self._backend = backend
        self._public = public

    def public_bytes(self) -> bytes:
        return self._public

    def encapsulate(self) -> tuple[bytes, bytes]:
        return self._backend.mlkem768_encapsulate(self._public)
