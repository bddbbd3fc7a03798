"""X-Wing: the hybrid KEM X25519 + ML-KEM-768 (draft-connolly-cfrg-xwing-kem).

Checked against the published vectors of draft -08 (``tests/crypto``).

Only the combiner and the seed expansion are written here; ML-KEM-768 comes
from the selected backend and X25519 from ``cryptography``.  The secret key is
the draft's 32-byte seed:

* ``expanded = SHAKE256(seed, 96)``; ML-KEM-768.KeyGen_internal(d, z) with
  ``d ‖ z = expanded[0:64]``; the X25519 secret is ``expanded[64:96]``;
* public key ``pk_M ‖ pk_X`` (1184 + 32 bytes), ciphertext ``ct_M ‖ ct_X``
  (1088 + 32 bytes);
* shared secret ``SHA3-256(ss_M ‖ ss_X ‖ ct_X ‖ pk_X ‖ XWingLabel)`` with the
  6-byte label ``\\.//^\\`` last (drafts up to -04 used SHAKE128 and put the
  label first; the published vectors in ``tests/crypto`` catch that).

One deviation, on purpose: ``cryptography`` refuses an X25519 exchange whose
result is all zeros (a low-order point).  A ciphertext or public key with such
an X25519 part therefore raises :class:`CryptoError` instead of producing a
secret; honest peers never send one.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives.asymmetric import x25519

from qdht.crypto.backend import (
    MLKEM768_CIPHERTEXT_SIZE,
    MLKEM768_PUBLIC_KEY_SIZE,
    KEMPrivateKey,
    KEMPublicKey,
    get_backend,
)
from qdht.crypto.hashes import sha3_256, shake256
from qdht.errors import CryptoError

__all__ = [
    "CIPHERTEXT_SIZE",
    "ENCAPSULATION_SEED_SIZE",
    "PUBLIC_KEY_SIZE",
    "SEED_SIZE",
    "SHARED_SECRET_SIZE",
    "XWING_LABEL",
    "XWingPrivateKey",
    "XWingPublicKey",
    "decapsulate",
    "encapsulate",
    "encapsulate_derand",
    "generate_keypair_derand",
]

PUBLIC_KEY_SIZE = 1216
CIPHERTEXT_SIZE = 1120
SEED_SIZE = 32
SHARED_SECRET_SIZE = 32
ENCAPSULATION_SEED_SIZE = 64
X25519_SIZE = 32
XWING_LABEL = b"\\.//^\\"


def _check_bytes(name: str, value: object, size: int) -> bytes:
    if type(value) is not bytes:
        raise CryptoError(f"{name} must be bytes, got {type(value).__name__}")
    if len(value) != size:
        raise CryptoError(f"{name} must be {size} bytes, got {len(value)}")
    return value


def _combiner(ss_m: bytes, ss_x: bytes, ct_x: bytes, pk_x: bytes) -> bytes:
    """SHA3-256 of the draft's concatenation: one call over one buffer (it runs per packet)."""
    return hashlib.sha3_256(b"".join((ss_m, ss_x, ct_x, pk_x, XWING_LABEL))).digest()


def _exchange(private: x25519.X25519PrivateKey, public: bytes, what: str) -> bytes:
    try:
        return private.exchange(x25519.X25519PublicKey.from_public_bytes(public))
    except ValueError:
        raise CryptoError(f"{what} is a low-order X25519 point") from None


class XWingPrivateKey:
    """An X-Wing decapsulation key: the seed plus its expanded ML-KEM and X25519 keys.

    Expansion costs one ML-KEM key generation, so keep this object for
    repeated decapsulation instead of calling :func:`decapsulate` with the seed.
    """

    __slots__ = ("_mlkem", "_public", "_seed", "_x25519", "_x25519_public")

    def __init__(self, seed: bytes) -> None:
        self._seed = _check_bytes("seed", seed, SEED_SIZE)
        expanded = shake256(seed, 96)
        self._mlkem: KEMPrivateKey = get_backend().mlkem768_from_seed(expanded[:64])
        self._x25519 = x25519.X25519PrivateKey.from_private_bytes(expanded[64:])
        self._x25519_public = self._x25519.public_key().public_bytes_raw()
        self._public = self._mlkem.public_bytes() + self._x25519_public

    @classmethod
    def generate(cls) -> XWingPrivateKey:
        """A fresh key from 32 bytes of operating-system randomness."""
        return cls(os.urandom(SEED_SIZE))

    @classmethod
    def from_seed(cls, seed: bytes) -> XWingPrivateKey:
        """The key expanded from a 32-byte seed (the draft's secret key)."""
        return cls(seed)

    @property
    def seed(self) -> bytes:
        """The 32-byte seed: the only form in which the key is stored."""
        return self._seed

    def public_key_bytes(self) -> bytes:
        """The 1216-byte encapsulation key pk_M ‖ pk_X."""
        return self._public

    def decapsulate(self, ciphertext: bytes) -> bytes:
        """The 32-byte shared secret for ``ciphertext``.

        A tampered ML-KEM part yields an unrelated secret (implicit rejection),
        never an error; a wrong length or a low-order X25519 part raises
        CryptoError.
        """
        _check_bytes("ciphertext", ciphertext, CIPHERTEXT_SIZE)
        ct_x = ciphertext[MLKEM768_CIPHERTEXT_SIZE:]
        ss_m = self._mlkem.decapsulate(ciphertext[:MLKEM768_CIPHERTEXT_SIZE])
        ss_x = _exchange(self._x25519, ct_x, "ciphertext X25519 part")
        return _combiner(ss_m, ss_x, ct_x, self._x25519_public)

    def __repr__(self) -> str:
        return f"XWingPrivateKey(public={sha3_256(self._public)[:8].hex()}…)"


def _encapsulate(
    public_key: bytes, ephemeral: x25519.X25519PrivateKey, ss_m: bytes, ct_m: bytes
) -> tuple[bytes, bytes]:
    pk_x = public_key[MLKEM768_PUBLIC_KEY_SIZE:]
    ct_x = ephemeral.public_key().public_bytes_raw()
    ss_x = _exchange(ephemeral, pk_x, "public key X25519 part")
    return _combiner(ss_m, ss_x, ct_x, pk_x), ct_m + ct_x


def encapsulate(public_key: bytes) -> tuple[bytes, bytes]:
    """(shared secret, ciphertext) for the 1216-byte X-Wing ``public_key``.

    Raises CryptoError if the key has the wrong size or an invalid ML-KEM part
    (FIPS 203 §7.2 modulus check) or a low-order X25519 part.  To encapsulate
    to one key repeatedly, load it once as an :class:`XWingPublicKey`.
    """
    _check_bytes("public key", public_key, PUBLIC_KEY_SIZE)
    ss_m, ct_m = get_backend().mlkem768_encapsulate(public_key[:MLKEM768_PUBLIC_KEY_SIZE])
    return _encapsulate(public_key, x25519.X25519PrivateKey.generate(), ss_m, ct_m)


class XWingPublicKey:
    """An X-Wing encapsulation key, parsed and checked once for repeated encapsulation.

    :func:`encapsulate` with the bytes parses the ML-KEM key (and its FIPS 203
    modulus check) and the X25519 point on every call; a sender that
    encapsulates to the same key many times (a mix client, to an epoch's mix
    keys) holds this object instead.  Same output distribution, same errors
    (raised here, once, for a malformed key).
    """

    __slots__ = ("_mlkem", "_public", "_x25519", "_x25519_bytes")

    def __init__(self, public_key: bytes) -> None:
        self._public = _check_bytes("public key", public_key, PUBLIC_KEY_SIZE)
        self._mlkem: KEMPublicKey = get_backend().mlkem768_public_key(
            public_key[:MLKEM768_PUBLIC_KEY_SIZE]
        )
        self._x25519_bytes = public_key[MLKEM768_PUBLIC_KEY_SIZE:]
        self._x25519 = x25519.X25519PublicKey.from_public_bytes(self._x25519_bytes)

    def public_key_bytes(self) -> bytes:
        return self._public

    def encapsulate(self) -> tuple[bytes, bytes]:
        """(shared secret, ciphertext), as :func:`encapsulate` of the key's bytes."""
        ss_m, ct_m = self._mlkem.encapsulate()
        ephemeral = x25519.X25519PrivateKey.generate()
        ct_x = ephemeral.public_key().public_bytes_raw()
        try:
            ss_x = ephemeral.exchange(self._x25519)
        except ValueError:
            raise CryptoError("public key X25519 part is a low-order X25519 point") from None
        return _combiner(ss_m, ss_x, ct_x, self._x25519_bytes), ct_m + ct_x


def generate_keypair_derand(seed: bytes) -> tuple[bytes, bytes]:
    """The draft's GenerateKeyPairDerand: (sk, pk) where sk is ``seed`` itself."""
    key = XWingPrivateKey(seed)
    return key.seed, key.public_key_bytes()


def encapsulate_derand(public_key: bytes, eseed: bytes) -> tuple[bytes, bytes]:
    """The draft's EncapsulateDerand with a 64-byte ``eseed``: (shared secret, ciphertext).

    ``eseed[0:32]`` is ML-KEM's message m and ``eseed[32:64]`` the ephemeral
    X25519 secret.  Raises BackendUnavailableError on the ``cryptography``
    backend, which has no deterministic ML-KEM encapsulation.
    """
    _check_bytes("public key", public_key, PUBLIC_KEY_SIZE)
    _check_bytes("eseed", eseed, ENCAPSULATION_SEED_SIZE)
    ss_m, ct_m = get_backend().mlkem768_encapsulate_derand(
        public_key[:MLKEM768_PUBLIC_KEY_SIZE], eseed[:32]
    )
    ephemeral = x25519.X25519PrivateKey.from_private_bytes(eseed[32:])
    return _encapsulate(public_key, ephemeral, ss_m, ct_m)


def decapsulate(secret_key: bytes, ciphertext: bytes) -> bytes:
    """The draft's Decapsulate(sk, ct) with the 32-byte seed ``secret_key``.

    Expands the key on every call; hold an :class:`XWingPrivateKey` instead
    when decapsulating repeatedly.
    """
    if type(secret_key) is not bytes or len(secret_key) != SEED_SIZE:
        raise CryptoError(f"secret key must be {SEED_SIZE} bytes")
    return XWingPrivateKey(secret_key).decapsulate(ciphertext)
