"""A signed list of good contacts, handed out for bootstrapping (06-bootstrap.md).

The list carries its signer's identity certificate, so that anyone can check
it without any other data: the certificate proves the signer's node ID, and
its ML-DSA-65 key signs the list.  Signing and verification live in
:mod:`qdht.dht` (``sign_contact_list`` / ``verify_contact_list``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Final

import attrs

from qdht.errors import ConfigError
from qdht.wire._cbor import dumps_canonical
from qdht.wire._contact import Contact
from qdht.wire._fields import FieldReader
from qdht.wire._identity import (
    IDENTITY_VERSION,
    MAX_TIME,
    MLDSA_SIGNATURE_SIZE,
    IdentityCertificate,
    _read_version,
)
from qdht.wire._registry import register

__all__ = ["CONTACT_LIST_CONTEXT", "MAX_LIST_CONTACTS", "ContactList"]

#: Most contacts in one list.
MAX_LIST_CONTACTS: Final = 64
#: The ML-DSA-65 context string of a contact list signature (FIPS 204 ctx).
CONTACT_LIST_CONTEXT: Final = b"qdht/v1/contact-list"


def _to_contacts(value: Iterable[Contact]) -> tuple[Contact, ...]:
    return tuple(value)


def _check_contacts(_: Any, attribute: attrs.Attribute[Any], value: tuple[Contact, ...]) -> None:
    if not 1 <= len(value) <= MAX_LIST_CONTACTS:
        raise ConfigError(f"contacts: 1..{MAX_LIST_CONTACTS} contacts, got {len(value)}")
    for item in value:
        if not isinstance(item, Contact):
            raise ConfigError(f"contacts must hold Contact objects, got {item!r}")


def _check_time(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or not 0 <= value <= MAX_TIME:
        raise ConfigError(f"{attribute.name} must be an integer in 0..{MAX_TIME}")


def _check_signature(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not bytes or len(value) != MLDSA_SIGNATURE_SIZE:
        raise ConfigError(f"signature must be {MLDSA_SIGNATURE_SIZE} bytes")


def _check_cert(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, IdentityCertificate):
        raise ConfigError("cert must be an IdentityCertificate")


@register
@attrs.frozen
class ContactList:
    """Contacts a node vouches for, signed with its ML-DSA-65 key (06-bootstrap.md §2)."""

    TYPE: ClassVar[str] = "contact_list"

    cert: IdentityCertificate = attrs.field(validator=_check_cert)
    issued: int = attrs.field(validator=_check_time)
    expires: int = attrs.field(validator=_check_time)
    contacts: tuple[Contact, ...] = attrs.field(converter=_to_contacts, validator=_check_contacts)
    signature: bytes = attrs.field(validator=_check_signature)
    version: int = attrs.field(default=IDENTITY_VERSION)

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "v": self.version,
            "cert": self.cert.to_cbor(),
            "issued": self.issued,
            "expires": self.expires,
            "contacts": [contact.to_cbor() for contact in self.contacts],
            "sig": self.signature,
        }

    def signed_bytes(self) -> bytes:
        """What the signature covers: the deterministic encoding of the map without ``sig``."""
        body = self.to_cbor()
        del body["sig"]
        return dumps_canonical(body)

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> ContactList:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        version = _read_version(reader)
        cert = reader.nested("cert", IdentityCertificate.from_cbor)
        issued = reader.uint("issued", max_value=MAX_TIME)
        expires = reader.uint("expires", max_value=MAX_TIME)
        contacts = reader.array("contacts", Contact.from_cbor, min_len=1, max_len=MAX_LIST_CONTACTS)
        signature = reader.bytes_("sig", size=MLDSA_SIGNATURE_SIZE)
        reader.finish()
        return cls(cert, issued, expires, contacts, signature, version)
