"""The local node's secret identity (03-identity.md §2).

An :class:`Identity` holds the node's X-Wing key (its routing identity: the
node ID hashes it) and its ML-DSA-65 key (its owner identity: it signs
certificates and records), plus the puzzle nonce that makes the node ID valid.
"""

from __future__ import annotations

import logging
import os
from typing import Final

from qdht.crypto.hashes import sha3_256
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.crypto.xwing import XWingPrivateKey
from qdht.errors import ConfigError, KeyFileError, WrongPassphraseError
from qdht.identity._certs import (
    CERTIFICATE_CONTEXT,
    MAX_CERTIFICATE_LIFETIME,
    REVOCATION_CONTEXT,
    SUCCESSOR_ACCEPT_CONTEXT,
    SUCCESSOR_CONTEXT,
)
from qdht.identity._keyfile import SCRYPT_LOG2_N, read_key_file, seal, unseal, write_key_file
from qdht.identity._puzzle import (
    DEFAULT_PUZZLE_DIFFICULTY,
    MAX_PUZZLE_DIFFICULTY,
    NONCE_SIZE,
    compute_node_id,
    mint_nonce,
    puzzle_ok,
)
from qdht.wire import (
    MAX_GRACE_PERIOD,
    MLDSA_SIGNATURE_SIZE,
    IdentityCertificate,
    KeyFile,
    Revocation,
    SuccessorStatement,
    encode,
)

__all__ = ["DEFAULT_CERTIFICATE_LIFETIME", "DEFAULT_GRACE_PERIOD", "Identity"]

logger = logging.getLogger(__name__)

#: Default certificate validity: 30 days.
DEFAULT_CERTIFICATE_LIFETIME: Final = 30 * 86400
#: Default grace period of a successor statement: 14 days.
DEFAULT_GRACE_PERIOD: Final = 14 * 86400
_PLACEHOLDER_SIGNATURE: Final = bytes(MLDSA_SIGNATURE_SIZE)


class Identity:
    """A node's secret identity: X-Wing and ML-DSA-65 keys and the puzzle nonce."""

    __slots__ = ("_mldsa_public_hash", "difficulty", "mldsa", "node_id", "nonce", "xwing")

    xwing: XWingPrivateKey
    mldsa: MLDSAPrivateKey
    nonce: bytes
    node_id: bytes
    difficulty: int

    def __init__(
        self, xwing: XWingPrivateKey, mldsa: MLDSAPrivateKey, nonce: bytes, difficulty: int
    ) -> None:
        """Assemble an identity; ConfigError unless ``nonce`` solves the puzzle."""
        if type(nonce) is not bytes or len(nonce) != NONCE_SIZE:
            raise ConfigError(f"nonce must be {NONCE_SIZE} bytes")
        if type(difficulty) is not int or not 0 <= difficulty <= MAX_PUZZLE_DIFFICULTY:
            raise ConfigError(f"difficulty must be an integer in 0..{MAX_PUZZLE_DIFFICULTY}")
        self.xwing = xwing
        self.mldsa = mldsa
        self.nonce = nonce
        self.difficulty = difficulty
        self._mldsa_public_hash = sha3_256(mldsa.public_key_bytes())
        self.node_id = compute_node_id(xwing.public_key_bytes(), self._mldsa_public_hash, nonce)
        if not puzzle_ok(self.node_id, difficulty):
            raise ConfigError(f"nonce does not solve the puzzle at difficulty {difficulty}")

    @property
    def mldsa_public_hash(self) -> bytes:
        """SHA3-256 of the ML-DSA-65 public key: the owner identity's short name."""
        return self._mldsa_public_hash

    @classmethod
    def generate(cls, difficulty: int = DEFAULT_PUZZLE_DIFFICULTY) -> Identity:
        """Fresh keys and a nonce minted at ``difficulty`` (≈ 2^difficulty hashes)."""
        return cls.from_keys(XWingPrivateKey.generate(), MLDSAPrivateKey.generate(), difficulty)

    @classmethod
    def from_keys(
        cls,
        xwing: XWingPrivateKey,
        mldsa: MLDSAPrivateKey,
        difficulty: int = DEFAULT_PUZZLE_DIFFICULTY,
    ) -> Identity:
        """An identity for given keys, minting the puzzle nonce."""
        nonce = mint_nonce(xwing.public_key_bytes(), sha3_256(mldsa.public_key_bytes()), difficulty)
        return cls(xwing, mldsa, nonce, difficulty)

    def __repr__(self) -> str:
        return f"Identity(node_id={self.node_id.hex()}, difficulty={self.difficulty})"

    # ------------------------------------------------------------------ files

    def key_file(self) -> KeyFile:
        """The identity as a plain key file object (seeds only)."""
        return KeyFile(self.xwing.seed, self.mldsa.seed, self.nonce, self.difficulty)

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        passphrase: str | None = None,
        overwrite: bool = False,
        scrypt_log_n: int = SCRYPT_LOG2_N,
    ) -> None:
        """Write the seeds to ``path`` (mode 0600, atomically).

        With ``passphrase`` the file is sealed with scrypt (N = 2^scrypt_log_n,
        r = 8, p = 1) and ChaCha20-Poly1305.  KeyFileExistsError if ``path``
        exists and ``overwrite`` is false.
        """
        plain = self.key_file()
        if passphrase is None:
            data = encode(plain)
        else:
            data = encode(seal(plain, passphrase, log_n=scrypt_log_n))
        write_key_file(path, data, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, passphrase: str | None = None) -> Identity:
        """Read an identity saved by :meth:`save`.

        Raises KeyFileError (missing or corrupt), KeyFilePermissionError
        (group/other may read it), KeyFileVersionError, or
        WrongPassphraseError (also when a sealed file is loaded without one).
        """
        parsed = read_key_file(path)
        if isinstance(parsed, KeyFile):
            if passphrase is not None:
                logger.warning("key file %s is not encrypted; the passphrase was not needed", path)
            plain = parsed
        else:
            if passphrase is None:
                raise WrongPassphraseError(
                    f"key file {os.fspath(path)} is encrypted: a passphrase is required"
                )
            plain = unseal(parsed, passphrase)
        try:
            return cls(
                XWingPrivateKey.from_seed(plain.xwing_seed),
                MLDSAPrivateKey.from_seed(plain.mldsa_seed),
                plain.nonce,
                plain.difficulty,
            )
        except ConfigError as exc:
            raise KeyFileError(f"key file is corrupt: {exc}") from None

    # ------------------------------------------------------------ statements

    def certificate(
        self, *, now: int, lifetime: int = DEFAULT_CERTIFICATE_LIFETIME, serial: int | None = None
    ) -> IdentityCertificate:
        """A signed certificate valid from ``now`` for ``lifetime`` seconds.

        ``serial`` defaults to ``now``: a later certificate of the same ML-DSA
        key (for example after an X-Wing rotation) supersedes earlier ones.
        """
        if not 0 < lifetime <= MAX_CERTIFICATE_LIFETIME:
            raise ConfigError(f"lifetime must be in 1..{MAX_CERTIFICATE_LIFETIME} seconds")
        unsigned = IdentityCertificate(
            xwing_public=self.xwing.public_key_bytes(),
            mldsa_public=self.mldsa.public_key_bytes(),
            nonce=self.nonce,
            serial=now if serial is None else serial,
            not_before=now,
            not_after=now + lifetime,
            signature=_PLACEHOLDER_SIGNATURE,
        )
        signature = self.mldsa.sign(unsigned.signed_bytes(), CERTIFICATE_CONTEXT)
        return IdentityCertificate(
            unsigned.xwing_public,
            unsigned.mldsa_public,
            unsigned.nonce,
            unsigned.serial,
            unsigned.not_before,
            unsigned.not_after,
            signature,
        )

    def rotate_xwing(self, xwing: XWingPrivateKey | None = None) -> Identity:
        """The identity with a new X-Wing key (hence a new nonce and node ID), same ML-DSA key.

        Publish ``new.certificate(now=...)``: its higher serial supersedes the
        old certificate (03-identity.md §6).
        """
        return Identity.from_keys(xwing or XWingPrivateKey.generate(), self.mldsa, self.difficulty)

    def successor(
        self, new: Identity, *, now: int, grace: int = DEFAULT_GRACE_PERIOD
    ) -> SuccessorStatement:
        """A statement handing this owner identity to ``new``'s ML-DSA key (03-identity.md §7)."""
        if not 0 <= grace <= MAX_GRACE_PERIOD:
            raise ConfigError(f"grace must be in 0..{MAX_GRACE_PERIOD} seconds")
        if new.mldsa.public_key_bytes() == self.mldsa.public_key_bytes():
            raise ConfigError("the successor must have a different ML-DSA key")
        unsigned = SuccessorStatement(
            self.mldsa.public_key_bytes(),
            new.mldsa.public_key_bytes(),
            now,
            grace,
            _PLACEHOLDER_SIGNATURE,
            _PLACEHOLDER_SIGNATURE,
        )
        body = unsigned.signed_bytes()
        return SuccessorStatement(
            unsigned.old_public,
            unsigned.new_public,
            now,
            grace,
            self.mldsa.sign(body, SUCCESSOR_CONTEXT),
            new.mldsa.sign(body, SUCCESSOR_ACCEPT_CONTEXT),
        )

    def revocation(self, *, now: int, serial: int | None = None, reason: str = "") -> Revocation:
        """A revocation of this ML-DSA key, or (with ``serial``) of its certificates up to it."""
        unsigned = Revocation(
            self.mldsa.public_key_bytes(), now, _PLACEHOLDER_SIGNATURE, serial, reason
        )
        signature = self.mldsa.sign(unsigned.signed_bytes(), REVOCATION_CONTEXT)
        return Revocation(unsigned.mldsa_public, now, signature, serial, reason)
