"""The Noise symmetric state (rev. 34 §5) and the PQNoise KEM handshake patterns.

Implements ``protocol-spec/04-handshake.md`` §2 to §3.  The hash is BLAKE2b
(HASHLEN 64, BLOCKLEN 128), HKDF is Noise's HMAC-BLAKE2b construction, the
cipher is ChaChaPoly with Noise counter nonces and the KEM is X-Wing.  KEM
tokens follow Schwabe, Stebila and Wiggers, "Post-Quantum Noise" (CCS 2022):

* ``e``: the sender's ephemeral X-Wing public key, ``EncryptAndHash``'d (no key
  is set yet in either pattern, so this is plain ``MixHash``);
* ``ekem``: encapsulate to the peer's ephemeral key, ``EncryptAndHash(ct)``,
  ``MixKey(ss)``;
* ``skem``: encapsulate to the peer's static key, ``EncryptAndHash(ct)``,
  ``MixKey(ss)``;
* ``s``: the sender's static X-Wing public key, ``EncryptAndHash``'d.

Every public key and ciphertext is therefore hashed into ``h``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Final

from qdht.crypto import xwing
from qdht.crypto.aead import ChaChaPoly
from qdht.crypto.hashes import hkdf_blake2b
from qdht.errors import CryptoError, HandshakeError

__all__ = [
    "HASHLEN",
    "PATTERNS",
    "PQIK",
    "PQXX",
    "CipherState",
    "HandshakeState",
    "KemOps",
    "SymmetricState",
    "protocol_name",
]

HASHLEN: Final = 64
KEYLEN: Final = 32
TAGLEN: Final = 16
#: Noise reserves the nonce 2^64-1 for ``Rekey``; it is never used to encrypt.
MAX_NONCE: Final = 2**64 - 2

PQXX: Final = "pqXX"
PQIK: Final = "pqIK"
#: Message patterns; the initiator writes even-numbered messages (0, 2, ...).
PATTERNS: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    PQXX: (("e",), ("ekem", "s"), ("skem", "s"), ("skem",)),
    PQIK: (("e", "skem", "s"), ("ekem", "skem")),
}


def protocol_name(pattern: str) -> bytes:
    """The Noise protocol name of ``pattern``, e.g. ``Noise_pqXX_XWing_ChaChaPoly_BLAKE2b``."""
    return f"Noise_{pattern}_XWing_ChaChaPoly_BLAKE2b".encode()


#: BLAKE2b with its default 64-byte digest (HASHLEN).
_blake2b: Final = hashlib.blake2b
#: Noise's HKDF (rev. 34 §4.3) with HMAC-BLAKE2b; one implementation for all of qdht.
hkdf: Final = hkdf_blake2b


def _hash(data: bytes) -> bytes:
    return _blake2b(data).digest()


class CipherState:
    """A Noise CipherState: an optional key and a 64-bit counter nonce (§5.1)."""

    __slots__ = ("_aead", "k", "n")

    def __init__(self, key: bytes | None = None) -> None:
        self.k = key
        self.n = 0
        self._aead = ChaChaPoly(key) if key is not None else None

    def has_key(self) -> bool:
        return self.k is not None

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        aead = self._aead
        if aead is None:
            return plaintext
        n = self.n
        if n > MAX_NONCE:
            raise HandshakeError("nonce exhausted")
        ct = aead.encrypt(n, ad, plaintext)
        self.n = n + 1
        return ct

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """Decrypt or raise CryptoError; the nonce advances only on success."""
        aead = self._aead
        if aead is None:
            return ciphertext
        n = self.n
        if n > MAX_NONCE:
            raise CryptoError("nonce exhausted")
        pt = aead.decrypt(n, ad, ciphertext)
        self.n = n + 1
        return pt


class SymmetricState:
    """A Noise SymmetricState (§5.2): chaining key ``ck``, hash ``h`` and a CipherState."""

    __slots__ = ("ck", "cs", "h")

    def __init__(self, name: bytes) -> None:
        self.h = name.ljust(HASHLEN, b"\x00") if len(name) <= HASHLEN else _hash(name)
        self.ck = self.h
        self.cs = CipherState()

    @classmethod
    def restore(cls, ck: bytes, h: bytes, k: bytes | None, n: int) -> SymmetricState:
        """Rebuild a state saved with :meth:`snapshot` (the responder's biscuit)."""
        state = cls.__new__(cls)
        state.ck, state.h = ck, h
        state.cs = CipherState(k)
        state.cs.n = n
        return state

    def snapshot(self) -> tuple[bytes, bytes, bytes | None, int]:
        return self.ck, self.h, self.cs.k, self.cs.n

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = hkdf(self.ck, ikm, 2)
        self.cs = CipherState(temp_k[:KEYLEN])

    def mix_hash(self, data: bytes) -> None:
        self.h = _blake2b(self.h + data).digest()

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        h = self.h
        ct = self.cs.encrypt_with_ad(h, plaintext)
        self.h = _blake2b(h + ct).digest()
        return ct

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        h = self.h
        pt = self.cs.decrypt_with_ad(h, ciphertext)
        self.h = _blake2b(h + ciphertext).digest()
        return pt

    def split(self) -> tuple[bytes, bytes]:
        """The two transport keys (initiator→responder, responder→initiator)."""
        k1, k2 = hkdf(self.ck, b"", 2)
        return k1[:KEYLEN], k2[:KEYLEN]


class KemOps:
    """The KEM operations a handshake uses; tests and vectors substitute recorded ones.

    ``generate()`` returns a fresh ephemeral private key drawn from ``rng``;
    ``encapsulate(pk)`` returns ``(shared_secret, ciphertext)``.
    """

    def __init__(self, rng: Callable[[int], bytes] = os.urandom) -> None:
        self.rng = rng

    def generate(self) -> xwing.XWingPrivateKey:
        return xwing.XWingPrivateKey.from_seed(self.rng(xwing.SEED_SIZE))

    def encapsulate(self, public_key: bytes) -> tuple[bytes, bytes]:
        return xwing.encapsulate(public_key)


DEFAULT_KEM: Final = KemOps()


#: Plaintext size of each token's field.
_TOKEN_SIZE: Final = {
    "e": xwing.PUBLIC_KEY_SIZE,
    "s": xwing.PUBLIC_KEY_SIZE,
    "ekem": xwing.CIPHERTEXT_SIZE,
    "skem": xwing.CIPHERTEXT_SIZE,
}


def _enc_len(has_key: bool, n: int) -> int:
    return n + TAGLEN if has_key else n


class HandshakeState:
    """A PQNoise HandshakeState (§5.3 with KEM tokens) for one role of one pattern.

    ``write_message(payload)`` / ``read_message(data)`` process the next
    message's tokens; raise :class:`HandshakeError` on any failure.  After the
    last message :attr:`complete` is true and :meth:`split` gives the keys.
    """

    __slots__ = (
        "e",
        "initiator",
        "kem",
        "pattern",
        "re",
        "rs",
        "s",
        "ss",
        "step",
    )

    def __init__(
        self,
        pattern: str,
        *,
        initiator: bool,
        prologue: bytes,
        s: xwing.XWingPrivateKey,
        rs: bytes | None = None,
        kem: KemOps = DEFAULT_KEM,
    ) -> None:
        if pattern not in PATTERNS:
            raise HandshakeError(f"unknown pattern {pattern!r}")
        self.pattern = pattern
        self.initiator = initiator
        self.s = s
        self.rs = rs
        self.re: bytes | None = None
        self.e: xwing.XWingPrivateKey | None = None
        self.kem = kem
        self.step = 0
        self.ss = SymmetricState(protocol_name(pattern))
        self.ss.mix_hash(prologue)
        if pattern == PQIK:  # pre-message "<- s"
            responder_static = rs if initiator else s.public_key_bytes()
            if responder_static is None:
                raise HandshakeError("pqIK needs the responder's static key")
            self.ss.mix_hash(responder_static)

    @classmethod
    def resume(
        cls, pattern: str, ss: SymmetricState, step: int, *, s: xwing.XWingPrivateKey, kem: KemOps
    ) -> HandshakeState:
        """A responder's state rebuilt from a biscuit: symmetric state and next step."""
        state = cls.__new__(cls)
        state.pattern, state.initiator, state.s, state.kem = pattern, False, s, kem
        state.rs = state.re = state.e = None
        state.ss, state.step = ss, step
        return state

    @property
    def complete(self) -> bool:
        return self.step >= len(PATTERNS[self.pattern])

    def _my_turn(self) -> bool:
        return (self.step % 2 == 0) == self.initiator

    def write_message(self, payload: bytes) -> bytes:
        if self.complete or not self._my_turn():
            raise HandshakeError("not this side's turn to write")
        out = []
        ss = self.ss
        for token in PATTERNS[self.pattern][self.step]:
            if token == "e":
                self.e = self.kem.generate()
                out.append(ss.encrypt_and_hash(self.e.public_key_bytes()))
            elif token == "s":
                out.append(ss.encrypt_and_hash(self.s.public_key_bytes()))
            elif token in ("ekem", "skem"):
                target = self.re if token == "ekem" else self.rs
                assert target is not None
                shared, ct = self.kem.encapsulate(target)
                out.append(ss.encrypt_and_hash(ct))
                ss.mix_key(shared)
        out.append(ss.encrypt_and_hash(payload))
        self.step += 1
        return b"".join(out)

    def read_message(self, data: bytes) -> bytes:
        """Process the peer's next message; on any failure the state is left unchanged."""
        saved = (self.ss.snapshot(), self.re, self.rs)
        try:
            return self._read_message(data)
        except HandshakeError:
            self.ss = SymmetricState.restore(*saved[0])
            self.re, self.rs = saved[1], saved[2]
            raise

    def _read_message(self, data: bytes) -> bytes:
        if self.complete or self._my_turn():
            raise HandshakeError("not this side's turn to read")
        ss = self.ss
        pos = 0
        for token in PATTERNS[self.pattern][self.step]:
            end = pos + _enc_len(ss.cs.has_key(), _TOKEN_SIZE[token])
            if end > len(data):
                raise HandshakeError("truncated handshake message")
            try:
                value = ss.decrypt_and_hash(data[pos:end])
            except CryptoError:
                raise HandshakeError("handshake message fails authentication") from None
            pos = end
            if token == "e":
                self.re = value
            elif token == "s":
                self.rs = value
            else:  # ekem, skem
                ct = value
                key = self.e if token == "ekem" else self.s
                assert key is not None
                try:
                    shared = key.decapsulate(ct)
                except Exception:
                    raise HandshakeError("bad KEM ciphertext") from None
                ss.mix_key(shared)
        payload = data[pos:]
        if ss.cs.has_key() and len(payload) < TAGLEN:
            raise HandshakeError("truncated handshake message")
        try:
            plaintext = ss.decrypt_and_hash(payload)
        except CryptoError:
            raise HandshakeError("handshake payload fails authentication") from None
        self.step += 1
        if self.step >= len(PATTERNS[self.pattern]):
            self.e = None  # never reuse an ephemeral key
        return plaintext

    def split(self) -> tuple[bytes, bytes]:
        """(send key, receive key) from this side's point of view."""
        if not self.complete:
            raise HandshakeError("handshake not complete")
        k1, k2 = self.ss.split()
        return (k1, k2) if self.initiator else (k2, k1)

    @property
    def handshake_hash(self) -> bytes:
        return self.ss.h
