"""DHT records on the wire: immutable, mutable, tombstone and multi-publisher set entries.

Implements the structure, field sizes and key derivations of
``protocol-spec/07-records.md``; signing, validation and the merge rules live
in :mod:`qdht.dht._records`.  A record is a CBOR map with a ``type`` field.
Its DHT key is never carried inside it: the key is derived from the record
(§3), and a receiver checks the key it was given against that derivation.

Signed records are signed over :meth:`signed_bytes`: the deterministic
encoding of the map without ``sig`` *and without* ``pk``.  The owner's public
key is bound through ``owner`` = SHA3-256(pk), which is signed, so a holder
may attach or strip ``pk`` without touching the signature (§4).
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Final, TypeAlias

import attrs

from qdht.errors import ConfigError, DecodeError
from qdht.wire._cbor import dumps_canonical
from qdht.wire._fields import FieldReader
from qdht.wire._registry import decode_object, register

__all__ = [
    "IMMUTABLE_KEY_PREFIX",
    "MAX_RECORD_TIME",
    "MAX_SALT_SIZE",
    "MAX_TOPIC_SIZE",
    "MAX_VALUE_SIZE",
    "MUTABLE_KEY_PREFIX",
    "OWNER_HASH_SIZE",
    "RECORD_TYPES",
    "SET_KEY_PREFIX",
    "AnyRecord",
    "ImmutableRecord",
    "MutableRecord",
    "SetEntry",
    "SignedRecord",
    "Tombstone",
    "decode_record",
    "immutable_key",
    "mutable_key",
    "owner_hash",
    "record_key",
    "set_key",
]

#: Longest salt of a mutable record or tombstone, in bytes (BEP 44's limit).
MAX_SALT_SIZE: Final = 64
#: Longest topic of a multi-publisher set, in bytes.
MAX_TOPIC_SIZE: Final = 64
#: Size of ``owner``: SHA3-256 of the owner's ML-DSA-65 public key.
OWNER_HASH_SIZE: Final = 32
#: Largest ``exp`` accepted (seconds since the Unix epoch): 2^40 - 1, as identity's unix-time.
MAX_RECORD_TIME: Final = 2**40 - 1
MLDSA_PUBLIC_KEY_SIZE: Final = 1952
MLDSA_SIGNATURE_SIZE: Final = 3309
#: Largest ``value`` of any record (64 KiB), the wire limit of 07-records.md §5.
MAX_VALUE_SIZE: Final = 65536
#: Domain-separation prefixes of the derived keys (07-records.md §3).
IMMUTABLE_KEY_PREFIX: Final = b"qdht/v1/immutable"
MUTABLE_KEY_PREFIX: Final = b"qdht/v1/mutable"
SET_KEY_PREFIX: Final = b"qdht/v1/set"


def immutable_key(value: bytes | bytearray | memoryview) -> bytes:
    """The key of an immutable value: SHA3-256(``b"qdht/v1/immutable"`` ‖ value)."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ConfigError(f"value must be bytes, got {type(value).__name__}")
    return hashlib.sha3_256(IMMUTABLE_KEY_PREFIX + bytes(value)).digest()


def owner_hash(public_key: bytes) -> bytes:
    """``owner`` for an ML-DSA-65 public key: SHA3-256(pk)."""
    return hashlib.sha3_256(public_key).digest()


def mutable_key(owner: bytes, salt: bytes) -> bytes:
    """The key of a mutable record or tombstone: SHA3-256("qdht/v1/mutable" ‖ owner ‖ salt)."""
    return hashlib.sha3_256(MUTABLE_KEY_PREFIX + owner + salt).digest()


def set_key(topic: bytes) -> bytes:
    """The key of a multi-publisher set: SHA3-256("qdht/v1/set" ‖ topic)."""
    return hashlib.sha3_256(SET_KEY_PREFIX + topic).digest()


# --------------------------------------------------------------- validators


def _bytes_in(name: str, min_size: int, max_size: int) -> Any:
    def check(_: object, __: object, value: object) -> None:
        if type(value) is not bytes or not min_size <= len(value) <= max_size:
            raise ConfigError(f"{name} must be {min_size}..{max_size} bytes")

    return check


def _sized(name: str, size: int) -> Any:
    return _bytes_in(name, size, size)


def _uint(name: str, max_value: int) -> Any:
    def check(_: object, __: object, value: object) -> None:
        if type(value) is not int or not 0 <= value <= max_value:
            raise ConfigError(f"{name} must be an integer in 0..{max_value}")

    return check


_optional_pk = attrs.validators.optional(_sized("public_key", MLDSA_PUBLIC_KEY_SIZE))


class _SignedFields:
    """Mixin: the bytes an owner's ML-DSA signature covers (07-records.md §4)."""

    def to_cbor(self) -> dict[str, Any]:
        raise NotImplementedError

    def signed_bytes(self) -> bytes:
        """The deterministic encoding of the map without ``sig`` and ``pk``."""
        body = self.to_cbor()
        del body["sig"]
        body.pop("pk", None)
        return dumps_canonical(body)


def _with_signature(
    body: dict[str, Any], signature: bytes, public_key: bytes | None
) -> dict[str, Any]:
    """``body`` with a signed record's ``sig`` and, if present, ``pk`` (07 §4)."""
    body["sig"] = signature
    if public_key is not None:
        body["pk"] = public_key
    return body


def _read_signature(reader: FieldReader) -> tuple[bytes, bytes | None]:
    """A signed record's ``sig`` and optional ``pk``, the last fields it reads."""
    signature: bytes = reader.bytes_("sig", size=MLDSA_SIGNATURE_SIZE)
    pk: bytes | None = reader.bytes_("pk", size=MLDSA_PUBLIC_KEY_SIZE, optional=True)
    reader.finish()
    return signature, pk


# ------------------------------------------------------------------ records


@register
@attrs.frozen
class ImmutableRecord:
    """A value stored under the hash of itself (07-records.md §5.1).

    Anyone may store or refresh it; ``exp`` is the storer's requested
    expiry, not signed (changing it cannot change what the key returns).
    """

    TYPE: ClassVar[str] = "immutable"

    value: bytes = attrs.field(validator=_bytes_in("value", 0, MAX_VALUE_SIZE))
    expires: int = attrs.field(validator=_uint("expires", MAX_RECORD_TIME))

    def key(self) -> bytes:
        """The record's DHT key: :func:`qdht.wire.immutable_key` of its value."""
        return immutable_key(self.value)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "value": self.value, "exp": self.expires}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> ImmutableRecord:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        value = reader.bytes_("value", max_size=MAX_VALUE_SIZE)
        expires = reader.uint("exp", max_value=MAX_RECORD_TIME)
        reader.finish()
        return cls(value, expires)


@register
@attrs.frozen
class MutableRecord(_SignedFields):
    """An owner-signed value under (owner, salt), versioned by ``seq`` (07-records.md §5.2)."""

    TYPE: ClassVar[str] = "mutable"
    #: FIPS 204 context string of the owner's signature.
    CONTEXT: ClassVar[bytes] = b"qdht/v1/mutable-record"

    owner: bytes = attrs.field(validator=_sized("owner", OWNER_HASH_SIZE))
    salt: bytes = attrs.field(validator=_bytes_in("salt", 0, MAX_SALT_SIZE))
    seq: int = attrs.field(validator=_uint("seq", 2**64 - 1))
    value: bytes = attrs.field(validator=_bytes_in("value", 0, MAX_VALUE_SIZE))
    expires: int = attrs.field(validator=_uint("expires", MAX_RECORD_TIME))
    signature: bytes = attrs.field(validator=_sized("signature", MLDSA_SIGNATURE_SIZE), repr=False)
    public_key: bytes | None = attrs.field(default=None, validator=_optional_pk, repr=False)

    def key(self) -> bytes:
        """The record's DHT key: :func:`mutable_key` (owner, salt)."""
        return mutable_key(self.owner, self.salt)

    def to_cbor(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.TYPE,
            "owner": self.owner,
            "salt": self.salt,
            "seq": self.seq,
            "value": self.value,
            "exp": self.expires,
        }
        return _with_signature(body, self.signature, self.public_key)

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> MutableRecord:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        owner = reader.bytes_("owner", size=OWNER_HASH_SIZE)
        salt = reader.bytes_("salt", max_size=MAX_SALT_SIZE)
        seq = reader.uint("seq")
        value = reader.bytes_("value", max_size=MAX_VALUE_SIZE)
        expires = reader.uint("exp", max_value=MAX_RECORD_TIME)
        signature, pk = _read_signature(reader)
        return cls(owner, salt, seq, value, expires, signature, pk)


@register
@attrs.frozen
class Tombstone(_SignedFields):
    """An owner-signed deletion of the mutable record under (owner, salt) at ``seq``.

    It shares the mutable record's key and sequence space (07-records.md §5.3).
    """

    TYPE: ClassVar[str] = "tombstone"
    CONTEXT: ClassVar[bytes] = b"qdht/v1/record-tombstone"

    owner: bytes = attrs.field(validator=_sized("owner", OWNER_HASH_SIZE))
    salt: bytes = attrs.field(validator=_bytes_in("salt", 0, MAX_SALT_SIZE))
    seq: int = attrs.field(validator=_uint("seq", 2**64 - 1))
    expires: int = attrs.field(validator=_uint("expires", MAX_RECORD_TIME))
    signature: bytes = attrs.field(validator=_sized("signature", MLDSA_SIGNATURE_SIZE), repr=False)
    public_key: bytes | None = attrs.field(default=None, validator=_optional_pk, repr=False)

    def key(self) -> bytes:
        """The key of the record it deletes: :func:`mutable_key` (owner, salt)."""
        return mutable_key(self.owner, self.salt)

    def to_cbor(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.TYPE,
            "owner": self.owner,
            "salt": self.salt,
            "seq": self.seq,
            "exp": self.expires,
        }
        return _with_signature(body, self.signature, self.public_key)

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Tombstone:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        owner = reader.bytes_("owner", size=OWNER_HASH_SIZE)
        salt = reader.bytes_("salt", max_size=MAX_SALT_SIZE)
        seq = reader.uint("seq")
        expires = reader.uint("exp", max_value=MAX_RECORD_TIME)
        signature, pk = _read_signature(reader)
        return cls(owner, salt, seq, expires, signature, pk)


@register
@attrs.frozen
class SetEntry(_SignedFields):
    """One publisher's entry in the multi-publisher set under ``topic`` (07-records.md §5.4).

    A set holds at most one entry per publisher (``owner``); each entry has
    its own sequence number, expiry and signature.
    """

    TYPE: ClassVar[str] = "set_entry"
    CONTEXT: ClassVar[bytes] = b"qdht/v1/set-entry"

    topic: bytes = attrs.field(validator=_bytes_in("topic", 1, MAX_TOPIC_SIZE))
    owner: bytes = attrs.field(validator=_sized("owner", OWNER_HASH_SIZE))
    seq: int = attrs.field(validator=_uint("seq", 2**64 - 1))
    value: bytes = attrs.field(validator=_bytes_in("value", 0, MAX_VALUE_SIZE))
    expires: int = attrs.field(validator=_uint("expires", MAX_RECORD_TIME))
    signature: bytes = attrs.field(validator=_sized("signature", MLDSA_SIGNATURE_SIZE), repr=False)
    public_key: bytes | None = attrs.field(default=None, validator=_optional_pk, repr=False)

    def key(self) -> bytes:
        """The set's DHT key: :func:`set_key` (topic)."""
        return set_key(self.topic)

    def to_cbor(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.TYPE,
            "topic": self.topic,
            "owner": self.owner,
            "seq": self.seq,
            "value": self.value,
            "exp": self.expires,
        }
        return _with_signature(body, self.signature, self.public_key)

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> SetEntry:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        topic = reader.bytes_("topic", min_size=1, max_size=MAX_TOPIC_SIZE)
        owner = reader.bytes_("owner", size=OWNER_HASH_SIZE)
        seq = reader.uint("seq")
        value = reader.bytes_("value", max_size=MAX_VALUE_SIZE)
        expires = reader.uint("exp", max_value=MAX_RECORD_TIME)
        signature, pk = _read_signature(reader)
        return cls(topic, owner, seq, value, expires, signature, pk)


#: Any record a ``store`` or ``value`` message may carry.
AnyRecord: TypeAlias = ImmutableRecord | MutableRecord | Tombstone | SetEntry
#: The records an owner signs.
SignedRecord: TypeAlias = MutableRecord | Tombstone | SetEntry
#: The record classes, in spec order.
RECORD_TYPES: Final[tuple[type[AnyRecord], ...]] = (
    ImmutableRecord,
    MutableRecord,
    Tombstone,
    SetEntry,
)


def decode_record(obj: object, path: str = "$") -> AnyRecord:
    """Parse an already-decoded CBOR map as a record (any other type: ``unexpected-type``).

    This is what the ``record`` field of a ``store`` or ``value`` message is
    parsed with (07-records.md §8).
    """
    record = decode_object(obj, path=path, expect=RECORD_TYPES)
    if not isinstance(record, RECORD_TYPES):  # unreachable: ``expect`` guarantees it
        raise DecodeError("unexpected-type", f"{path}.type")
    return record


def record_key(record: AnyRecord) -> bytes:
    """The DHT key ``record`` lives under (07-records.md §3)."""
    return record.key()
