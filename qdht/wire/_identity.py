"""Identity objects on the wire: certificates, successor statements, revocations, key files.

Implements the structure and field sizes of ``protocol-spec/03-identity.md``;
signing and verification live in :mod:`qdht.identity`.  Signed objects are
signed over the deterministic encoding of their map *without* the signature
fields (:meth:`signed_bytes`), under one ML-DSA-65 context string per type.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import attrs

from qdht.errors import ConfigError, DecodeError
from qdht.wire._cbor import dumps_canonical
from qdht.wire._fields import FieldReader, child_path
from qdht.wire._registry import register

__all__ = [
    "IDENTITY_VERSION",
    "MAX_GRACE_PERIOD",
    "MAX_SCRYPT_LOG2_N",
    "MLDSA_PUBLIC_KEY_SIZE",
    "MLDSA_SIGNATURE_SIZE",
    "NONCE_SIZE",
    "SALT_SIZE",
    "XWING_PUBLIC_KEY_SIZE",
    "EncryptedKeyFile",
    "IdentityCertificate",
    "KeyFile",
    "Revocation",
    "SuccessorStatement",
]

#: The format version of every identity object in this module.
IDENTITY_VERSION: Final = 1
XWING_PUBLIC_KEY_SIZE: Final = 1216
MLDSA_PUBLIC_KEY_SIZE: Final = 1952
MLDSA_SIGNATURE_SIZE: Final = 3309
SEED_SIZE: Final = 32
NONCE_SIZE: Final = 8
#: Largest puzzle difficulty a key file may record (leading zero bits of a 256-bit hash).
MAX_DIFFICULTY: Final = 64
#: Longest grace period a successor statement may grant: 90 days.
MAX_GRACE_PERIOD: Final = 90 * 86400
#: Largest timestamp (seconds since the Unix epoch) accepted: 2^40 - 1, ~ year 36812.
MAX_TIME: Final = 2**40 - 1
MAX_REASON_LEN: Final = 128
SALT_SIZE: Final = 16
#: A sealed key file's ciphertext: the plain key file (< 200 bytes) plus the tag.
MAX_SEALED_SIZE: Final = 512
#: scrypt cost bounds accepted when loading (log2 N, r, p); they bound the work an
#: attacker-supplied file can make us do (N=2^20, r=8 costs 1 GiB of memory).
MAX_SCRYPT_LOG2_N: Final = 20
MAX_SCRYPT_R: Final = 16
MAX_SCRYPT_P: Final = 4


def _sized(name: str, size: int) -> Any:
    def check(_: object, __: object, value: object) -> None:
        if type(value) is not bytes or len(value) != size:
            raise ConfigError(f"{name} must be {size} bytes")

    return check


def _uint(name: str, max_value: int, min_value: int = 0) -> Any:
    def check(_: object, __: object, value: object) -> None:
        if type(value) is not int or not min_value <= value <= max_value:
            raise ConfigError(f"{name} must be an integer in {min_value}..{max_value}")

    return check


def _read_version(reader: FieldReader) -> int:
    version: int = reader.uint("v", max_value=2**32 - 1)
    if version != IDENTITY_VERSION:
        raise DecodeError(
            "field-value", child_path(reader.path, "v"), f"unsupported version {version}"
        )
    return version


class _Signed:
    """Mixin: the bytes an ML-DSA signature covers."""

    SIGNATURE_FIELDS: ClassVar[tuple[str, ...]] = ("sig",)

    def to_cbor(self) -> dict[str, Any]:
        raise NotImplementedError

    def signed_bytes(self) -> bytes:
        """The deterministic encoding of the map without its signature field(s)."""
        body = self.to_cbor()
        for name in self.SIGNATURE_FIELDS:
            del body[name]
        return dumps_canonical(body)


@register
@attrs.frozen
class IdentityCertificate(_Signed):
    """The self-contained proof of a node ID (03-identity.md §5).

    Binds the node's X-Wing key (its routing identity: the node ID hashes it)
    to its ML-DSA-65 key (its owner identity), signed by that ML-DSA key.
    """

    TYPE: ClassVar[str] = "cert"

    xwing_public: bytes = attrs.field(validator=_sized("xwing_public", XWING_PUBLIC_KEY_SIZE))
    mldsa_public: bytes = attrs.field(validator=_sized("mldsa_public", MLDSA_PUBLIC_KEY_SIZE))
    nonce: bytes = attrs.field(validator=_sized("nonce", NONCE_SIZE))
    serial: int = attrs.field(validator=_uint("serial", 2**64 - 1))
    not_before: int = attrs.field(validator=_uint("not_before", MAX_TIME))
    not_after: int = attrs.field(validator=_uint("not_after", MAX_TIME))
    signature: bytes = attrs.field(validator=_sized("signature", MLDSA_SIGNATURE_SIZE))
    version: int = attrs.field(default=IDENTITY_VERSION, validator=_uint("version", 1, 1))

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "v": self.version,
            "xwing": self.xwing_public,
            "mldsa": self.mldsa_public,
            "nonce": self.nonce,
            "serial": self.serial,
            "nbf": self.not_before,
            "naf": self.not_after,
            "sig": self.signature,
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> IdentityCertificate:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        version = _read_version(reader)
        xwing = reader.bytes_("xwing", size=XWING_PUBLIC_KEY_SIZE)
        mldsa = reader.bytes_("mldsa", size=MLDSA_PUBLIC_KEY_SIZE)
        nonce = reader.bytes_("nonce", size=NONCE_SIZE)
        serial = reader.uint("serial")
        not_before = reader.uint("nbf", max_value=MAX_TIME)
        not_after = reader.uint("naf", max_value=MAX_TIME)
        signature = reader.bytes_("sig", size=MLDSA_SIGNATURE_SIZE)
        reader.finish()
        return cls(xwing, mldsa, nonce, serial, not_before, not_after, signature, version)


@register
@attrs.frozen
class SuccessorStatement(_Signed):
    """Hands the owner identity from one ML-DSA-65 key to another (03-identity.md §7).

    Signed by the old key (``signature_old``) and by the new key
    (``signature_new``, proving possession), both over :meth:`signed_bytes`.
    """

    TYPE: ClassVar[str] = "successor"
    SIGNATURE_FIELDS: ClassVar[tuple[str, ...]] = ("sig_old", "sig_new")

    old_public: bytes = attrs.field(validator=_sized("old_public", MLDSA_PUBLIC_KEY_SIZE))
    new_public: bytes = attrs.field(validator=_sized("new_public", MLDSA_PUBLIC_KEY_SIZE))
    issued: int = attrs.field(validator=_uint("issued", MAX_TIME))
    grace: int = attrs.field(validator=_uint("grace", MAX_GRACE_PERIOD))
    signature_old: bytes = attrs.field(validator=_sized("signature_old", MLDSA_SIGNATURE_SIZE))
    signature_new: bytes = attrs.field(validator=_sized("signature_new", MLDSA_SIGNATURE_SIZE))
    version: int = attrs.field(default=IDENTITY_VERSION, validator=_uint("version", 1, 1))

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "v": self.version,
            "old": self.old_public,
            "new": self.new_public,
            "issued": self.issued,
            "grace": self.grace,
            "sig_old": self.signature_old,
            "sig_new": self.signature_new,
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> SuccessorStatement:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        version = _read_version(reader)
        old = reader.bytes_("old", size=MLDSA_PUBLIC_KEY_SIZE)
        new = reader.bytes_("new", size=MLDSA_PUBLIC_KEY_SIZE)
        issued = reader.uint("issued", max_value=MAX_TIME)
        grace = reader.uint("grace", max_value=MAX_GRACE_PERIOD)
        sig_old = reader.bytes_("sig_old", size=MLDSA_SIGNATURE_SIZE)
        sig_new = reader.bytes_("sig_new", size=MLDSA_SIGNATURE_SIZE)
        reader.finish()
        if old == new:
            raise DecodeError("field-value", child_path(path, "new"), "new key equals old key")
        return cls(old, new, issued, grace, sig_old, sig_new, version)


@register
@attrs.frozen
class Revocation(_Signed):
    """Withdraws an ML-DSA-65 key, or its certificates up to a serial (03-identity.md §8).

    Without ``serial`` the whole key is revoked; with it, every certificate of
    that key whose serial is ``<= serial`` is.  Signed by the key itself.
    """

    TYPE: ClassVar[str] = "revocation"

    mldsa_public: bytes = attrs.field(validator=_sized("mldsa_public", MLDSA_PUBLIC_KEY_SIZE))
    issued: int = attrs.field(validator=_uint("issued", MAX_TIME))
    signature: bytes = attrs.field(validator=_sized("signature", MLDSA_SIGNATURE_SIZE))
    serial: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_uint("serial", 2**64 - 1)),
    )
    reason: str = attrs.field(default="")
    version: int = attrs.field(default=IDENTITY_VERSION, validator=_uint("version", 1, 1))

    @reason.validator
    def _check_reason(self, _: object, value: object) -> None:
        if type(value) is not str or len(value.encode()) > MAX_REASON_LEN:
            raise ConfigError(f"reason must be text of at most {MAX_REASON_LEN} UTF-8 bytes")

    def to_cbor(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.TYPE,
            "v": self.version,
            "mldsa": self.mldsa_public,
            "issued": self.issued,
            "reason": self.reason,
            "sig": self.signature,
        }
        if self.serial is not None:
            body["serial"] = self.serial
        return body

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Revocation:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        version = _read_version(reader)
        mldsa = reader.bytes_("mldsa", size=MLDSA_PUBLIC_KEY_SIZE)
        issued = reader.uint("issued", max_value=MAX_TIME)
        reason = reader.text("reason", max_len=MAX_REASON_LEN)
        signature = reader.bytes_("sig", size=MLDSA_SIGNATURE_SIZE)
        serial = reader.uint("serial", optional=True)
        reader.finish()
        return cls(mldsa, issued, signature, serial, reason, version)


@register
@attrs.frozen
class KeyFile:
    """A node's secret identity at rest: seeds only (03-identity.md §9)."""

    TYPE: ClassVar[str] = "keyfile"

    xwing_seed: bytes = attrs.field(validator=_sized("xwing_seed", SEED_SIZE), repr=False)
    mldsa_seed: bytes = attrs.field(validator=_sized("mldsa_seed", SEED_SIZE), repr=False)
    nonce: bytes = attrs.field(validator=_sized("nonce", NONCE_SIZE))
    difficulty: int = attrs.field(validator=_uint("difficulty", MAX_DIFFICULTY))
    version: int = attrs.field(default=IDENTITY_VERSION, validator=_uint("version", 1, 1))

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "v": self.version,
            "xwing_seed": self.xwing_seed,
            "mldsa_seed": self.mldsa_seed,
            "nonce": self.nonce,
            "difficulty": self.difficulty,
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> KeyFile:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        version = _read_version(reader)
        xwing_seed = reader.bytes_("xwing_seed", size=SEED_SIZE)
        mldsa_seed = reader.bytes_("mldsa_seed", size=SEED_SIZE)
        nonce = reader.bytes_("nonce", size=NONCE_SIZE)
        difficulty = reader.uint("difficulty", max_value=MAX_DIFFICULTY)
        reader.finish()
        return cls(xwing_seed, mldsa_seed, nonce, difficulty, version)


@register
@attrs.frozen
class EncryptedKeyFile:
    """A key file sealed with a passphrase: scrypt + ChaCha20-Poly1305 (03-identity.md §9).

    The AEAD key is scrypt(passphrase, salt, N=2^log_n, r, p), the nonce is
    zero, and the associated data is :meth:`header_bytes` (every field but
    ``ct``), so no header field can be changed without detection.
    """

    TYPE: ClassVar[str] = "keyfile_sealed"

    log_n: int = attrs.field(validator=_uint("log_n", MAX_SCRYPT_LOG2_N, 10))
    r: int = attrs.field(validator=_uint("r", MAX_SCRYPT_R, 1))
    p: int = attrs.field(validator=_uint("p", MAX_SCRYPT_P, 1))
    salt: bytes = attrs.field(validator=_sized("salt", SALT_SIZE))
    ciphertext: bytes = attrs.field()
    version: int = attrs.field(default=IDENTITY_VERSION, validator=_uint("version", 1, 1))

    @ciphertext.validator
    def _check_ciphertext(self, _: object, value: object) -> None:
        if type(value) is not bytes or not 16 < len(value) <= MAX_SEALED_SIZE:
            raise ConfigError(f"ciphertext must be 17..{MAX_SEALED_SIZE} bytes")

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "v": self.version,
            "kdf": "scrypt",
            "log_n": self.log_n,
            "r": self.r,
            "p": self.p,
            "salt": self.salt,
            "ct": self.ciphertext,
        }

    def header_bytes(self) -> bytes:
        """The AEAD associated data: the deterministic encoding without ``ct``."""
        body = self.to_cbor()
        del body["ct"]
        return dumps_canonical(body)

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> EncryptedKeyFile:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        version = _read_version(reader)
        reader.text("kdf", max_len=16, choices=frozenset({"scrypt"}))
        log_n = reader.uint("log_n", min_value=10, max_value=MAX_SCRYPT_LOG2_N)
        r = reader.uint("r", min_value=1, max_value=MAX_SCRYPT_R)
        p = reader.uint("p", min_value=1, max_value=MAX_SCRYPT_P)
        salt = reader.bytes_("salt", size=SALT_SIZE)
        ciphertext = reader.bytes_("ct", min_size=17, max_size=MAX_SEALED_SIZE)
        reader.finish()
        return cls(log_n, r, p, salt, ciphertext, version)
