"""Mixnet messages: PACKET, DELIVERY, mix DESCRIPTOR and the signed DIRECTORY.

Implements the wire side of ``protocol-spec/10-mixnet.md``.  ``packet``
carries one Sphinx packet between mixes (and from a client to its first hop)
inside an ordinary node session; ``delivery`` is what a path's last mix hands
to a recipient that is not itself (a reply block's payload, or a loop coming
home).  A mix publishes a ``descriptor`` (its epoch keys, contact and layer,
signed with its ML-DSA key); directory authorities collect them into one
``directory`` per epoch, signed by a threshold of the network's directory keys.

The packet processing itself (``qdht.mixnet``) checks a packet's exact size
against the network's geometry; here only its bounds are checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Final

import attrs

from qdht.errors import ConfigError, DecodeError
from qdht.wire._contact import Contact
from qdht.wire._fields import FieldReader, child_path
from qdht.wire._identity import (
    MAX_TIME,
    MLDSA_SIGNATURE_SIZE,
    XWING_PUBLIC_KEY_SIZE,
    IdentityCertificate,
    _read_version,
    _Signed,
    _sized,
    _uint,
)
from qdht.wire._registry import register

__all__ = [
    "DESCRIPTOR_CONTEXT",
    "DIRECTORY_CONTEXT",
    "MAX_DIRECTORY_MIXES",
    "MAX_DIRECTORY_SIGNATURES",
    "MAX_LAYER",
    "MAX_PACKET_SIZE",
    "MIN_PACKET_SIZE",
    "MixDelivery",
    "MixDescriptor",
    "MixDirectory",
    "MixEntry",
    "MixPacket",
]

#: Bounds of a packet's size on the wire (a network fixes the exact size, §2).
MIN_PACKET_SIZE: Final = 4096
MAX_PACKET_SIZE: Final = 65536
#: A delivered payload is a packet's LIONESS block: smaller than the packet.
MIN_DELIVERY_SIZE: Final = 1024
SURB_ID_SIZE: Final = 16
MAX_LAYER: Final = 7
#: Epoch keys a descriptor lists (previous, current, next).
MAX_DESCRIPTOR_KEYS: Final = 3
MAX_DIRECTORY_MIXES: Final = 40
MAX_DIRECTORY_SIGNATURES: Final = 16
#: ML-DSA-65 context strings (03-identity.md §1.3).
DESCRIPTOR_CONTEXT: Final = b"qdht/v1/mix-descriptor"
DIRECTORY_CONTEXT: Final = b"qdht/v1/mix-directory"


@register
@attrs.frozen
class MixPacket:
    """PACKET: one Sphinx packet for the receiving mix (10-mixnet.md §2)."""

    TYPE: ClassVar[str] = "packet"
    data: bytes = attrs.field()

    @data.validator
    def _check(self, _: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not bytes or not MIN_PACKET_SIZE <= len(value) <= MAX_PACKET_SIZE:
            raise ConfigError(f"data must be {MIN_PACKET_SIZE}..{MAX_PACKET_SIZE} bytes")

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "data": self.data}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> MixPacket:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        data = reader.bytes_("data", min_size=MIN_PACKET_SIZE, max_size=MAX_PACKET_SIZE)
        reader.finish()
        return cls(data)


@register
@attrs.frozen
class MixDelivery:
    """DELIVERY: a path's last mix hands a payload to its recipient (10-mixnet.md §8.3).

    ``surb`` is the reply block id when the payload is a reply (still
    encrypted for the block's creator); absent for a plain message.
    """

    TYPE: ClassVar[str] = "delivery"
    payload: bytes = attrs.field()
    surb: bytes | None = attrs.field(default=None)

    @payload.validator
    def _check_payload(self, _: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not bytes or not MIN_DELIVERY_SIZE <= len(value) <= MAX_PACKET_SIZE:
            raise ConfigError(f"payload must be {MIN_DELIVERY_SIZE}..{MAX_PACKET_SIZE} bytes")

    @surb.validator
    def _check_surb(self, _: attrs.Attribute[Any], value: object) -> None:
        if value is not None and (type(value) is not bytes or len(value) != SURB_ID_SIZE):
            raise ConfigError(f"surb must be {SURB_ID_SIZE} bytes or None")

    def to_cbor(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"type": self.TYPE, "payload": self.payload}
        if self.surb is not None:
            obj["surb"] = self.surb
        return obj

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> MixDelivery:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        payload = reader.bytes_("payload", min_size=MIN_DELIVERY_SIZE, max_size=MAX_PACKET_SIZE)
        surb = reader.bytes_("surb", size=SURB_ID_SIZE, optional=True)
        reader.finish()
        return cls(payload, surb)


def _epoch_keys(value: Iterable[tuple[int, bytes]]) -> tuple[tuple[int, bytes], ...]:
    return tuple((e, k) for e, k in value)


def _read_epoch_key(item: Any, path: str) -> tuple[int, bytes]:
    reader = FieldReader(item, path)
    epoch: int = reader.uint("epoch", max_value=2**32 - 1)
    key: bytes = reader.bytes_("key", size=XWING_PUBLIC_KEY_SIZE)
    reader.finish()
    return epoch, key


@register
@attrs.frozen
class MixDescriptor(_Signed):
    """DESCRIPTOR: a mix's keys per epoch, contact and layer, signed by its owner key (§10.1)."""

    TYPE: ClassVar[str] = "descriptor"
    cert: IdentityCertificate = attrs.field()
    contact: Contact = attrs.field()
    layer: int = attrs.field(validator=_uint("layer", MAX_LAYER))
    keys: tuple[tuple[int, bytes], ...] = attrs.field(converter=_epoch_keys)
    issued: int = attrs.field(validator=_uint("issued", MAX_TIME))
    signature: bytes = attrs.field(validator=_sized("signature", MLDSA_SIGNATURE_SIZE))
    version: int = attrs.field(default=1, validator=_uint("version", 1, 1))

    @cert.validator
    def _check_cert(self, _: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, IdentityCertificate):
            raise ConfigError("cert must be an IdentityCertificate")

    @contact.validator
    def _check_contact(self, _: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, Contact):
            raise ConfigError("contact must be a Contact")

    @keys.validator
    def _check_keys(self, _: attrs.Attribute[Any], value: tuple[tuple[int, bytes], ...]) -> None:
        if not 1 <= len(value) <= MAX_DESCRIPTOR_KEYS:
            raise ConfigError(f"keys: 1..{MAX_DESCRIPTOR_KEYS} epoch keys")
        epochs = [e for e, _ in value]
        if epochs != sorted(set(epochs)) or any(not 0 <= e < 2**32 for e in epochs):
            raise ConfigError("keys must be in increasing epoch order, epochs u32")
        if any(len(k) != XWING_PUBLIC_KEY_SIZE for _, k in value):
            raise ConfigError(f"epoch keys are {XWING_PUBLIC_KEY_SIZE}-byte X-Wing keys")

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "v": self.version,
            "cert": self.cert.to_cbor(),
            "contact": self.contact.to_cbor(),
            "layer": self.layer,
            "keys": [{"epoch": e, "key": k} for e, k in self.keys],
            "issued": self.issued,
            "sig": self.signature,
        }

    def key_for(self, epoch: int) -> bytes | None:
        """The mix's public key for ``epoch``, if the descriptor lists it."""
        return next((k for e, k in self.keys if e == epoch), None)

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> MixDescriptor:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        version = _read_version(reader)
        cert = reader.nested("cert", IdentityCertificate.from_cbor)
        contact = reader.nested("contact", Contact.from_cbor)
        layer = reader.uint("layer", max_value=MAX_LAYER)
        keys = reader.array("keys", _read_epoch_key, min_len=1, max_len=MAX_DESCRIPTOR_KEYS)
        epochs = [e for e, _ in keys]
        if epochs != sorted(set(epochs)):
            raise DecodeError("field-value", child_path(path, "keys"), "epochs must increase")
        issued = reader.uint("issued", max_value=MAX_TIME)
        signature = reader.bytes_("sig", size=MLDSA_SIGNATURE_SIZE)
        reader.finish()
        return cls(cert, contact, layer, keys, issued, signature, version)


@attrs.frozen
class MixEntry:
    """One mix of a directory: its contact, layer and public key for the epoch."""

    contact: Contact
    layer: int = attrs.field(validator=_uint("layer", MAX_LAYER))
    key: bytes = attrs.field(validator=_sized("key", XWING_PUBLIC_KEY_SIZE))

    @property
    def node_id(self) -> bytes:
        return self.contact.node_id

    def to_cbor(self) -> dict[str, Any]:
        return {"contact": self.contact.to_cbor(), "layer": self.layer, "key": self.key}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> MixEntry:
        reader = FieldReader(obj, path)
        contact = reader.nested("contact", Contact.from_cbor)
        layer = reader.uint("layer", max_value=MAX_LAYER)
        key = reader.bytes_("key", size=XWING_PUBLIC_KEY_SIZE)
        reader.finish()
        return cls(contact, layer, key)


def _entries(value: Iterable[MixEntry]) -> tuple[MixEntry, ...]:
    return tuple(value)


def _signatures(value: Iterable[tuple[int, bytes]]) -> tuple[tuple[int, bytes], ...]:
    return tuple(value)


def _read_signature(item: Any, path: str) -> tuple[int, bytes]:
    reader = FieldReader(item, path)
    index: int = reader.uint("index", max_value=MAX_DIRECTORY_SIGNATURES - 1)
    sig: bytes = reader.bytes_("sig", size=MLDSA_SIGNATURE_SIZE)
    reader.finish()
    return index, sig


@register
@attrs.frozen
class MixDirectory(_Signed):
    """DIRECTORY: the one mix list of an epoch, signed by directory authorities (§10.2).

    ``sigs`` pairs the index of a directory key (in the network's list) with
    that key's signature over the map without ``sigs``.
    """

    TYPE: ClassVar[str] = "directory"
    SIGNATURE_FIELDS: ClassVar[tuple[str, ...]] = ("sigs",)
    epoch: int = attrs.field(validator=_uint("epoch", 2**32 - 1))
    hops: int = attrs.field(validator=_uint("hops", 8, 1))
    mixes: tuple[MixEntry, ...] = attrs.field(converter=_entries)
    signatures: tuple[tuple[int, bytes], ...] = attrs.field(converter=_signatures, default=())
    version: int = attrs.field(default=1, validator=_uint("version", 1, 1))

    @mixes.validator
    def _check_mixes(self, _: attrs.Attribute[Any], value: tuple[MixEntry, ...]) -> None:
        if not 1 <= len(value) <= MAX_DIRECTORY_MIXES:
            raise ConfigError(f"mixes: 1..{MAX_DIRECTORY_MIXES} entries")
        ids = [m.node_id for m in value]
        if ids != sorted(set(ids)):
            raise ConfigError("mixes must be sorted by node id, without duplicates")

    @signatures.validator
    def _check_sigs(self, _: attrs.Attribute[Any], value: tuple[tuple[int, bytes], ...]) -> None:
        if len(value) > MAX_DIRECTORY_SIGNATURES:
            raise ConfigError(f"at most {MAX_DIRECTORY_SIGNATURES} signatures")
        for index, sig in value:
            if not 0 <= index < MAX_DIRECTORY_SIGNATURES or len(sig) != MLDSA_SIGNATURE_SIZE:
                raise ConfigError("a signature is (key index, 3309-byte ML-DSA-65 signature)")

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "v": self.version,
            "epoch": self.epoch,
            "hops": self.hops,
            "mixes": [m.to_cbor() for m in self.mixes],
            "sigs": [{"index": i, "sig": s} for i, s in self.signatures],
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> MixDirectory:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        version = _read_version(reader)
        epoch = reader.uint("epoch", max_value=2**32 - 1)
        hops = reader.uint("hops", min_value=1, max_value=8)
        mixes = reader.array("mixes", MixEntry.from_cbor, min_len=1, max_len=MAX_DIRECTORY_MIXES)
        ids = [m.node_id for m in mixes]
        if ids != sorted(set(ids)):
            raise DecodeError("field-value", child_path(path, "mixes"), "sorted, no duplicates")
        sigs = reader.array("sigs", _read_signature, max_len=MAX_DIRECTORY_SIGNATURES)
        reader.finish()
        return cls(epoch, hops, mixes, sigs, version)
