"""Signed contact lists for bootstrapping (``protocol-spec/06-bootstrap.md``).

A node that knows the network hands out a :class:`~qdht.wire.ContactList`
(on a web page, in a file, in an app's resources); a joining node verifies it
before using its contacts.  The list is self-contained: the signer's identity
certificate proves its node ID, and the certificate's ML-DSA-65 key signs the
list under its own context string.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from qdht.crypto import mldsa
from qdht.errors import ConfigError, IdentityError, InvalidSignatureError
from qdht.identity import CLOCK_SKEW, Identity, verify_certificate
from qdht.wire import (
    CONTACT_LIST_CONTEXT,
    MAX_LIST_CONTACTS,
    MLDSA_SIGNATURE_SIZE,
    Contact,
    ContactList,
    decode,
)

__all__ = [
    "DEFAULT_LIST_LIFETIME",
    "MAX_LIST_LIFETIME",
    "sign_contact_list",
    "verify_contact_list",
]

#: Validity of a list by default: 7 days.
DEFAULT_LIST_LIFETIME: Final = 7 * 86400
#: Longest validity a list may claim: 30 days (06-bootstrap.md §3).
MAX_LIST_LIFETIME: Final = 30 * 86400


def sign_contact_list(
    identity: Identity,
    contacts: Iterable[Contact],
    *,
    now: int,
    lifetime: int = DEFAULT_LIST_LIFETIME,
) -> ContactList:
    """A contact list valid from ``now`` (Unix seconds) for ``lifetime`` seconds."""
    if type(now) is not int or now < 0:
        raise ConfigError(f"now must be Unix seconds (a non-negative int), got {now!r}")
    if type(lifetime) is not int or not 0 < lifetime <= MAX_LIST_LIFETIME:
        raise ConfigError(f"lifetime must be in 1..{MAX_LIST_LIFETIME} seconds")
    items = tuple(contacts)
    if not 1 <= len(items) <= MAX_LIST_CONTACTS:
        raise ConfigError(f"contacts: 1..{MAX_LIST_CONTACTS} contacts, got {len(items)}")
    cert = identity.certificate(now=now, lifetime=lifetime)
    unsigned = ContactList(cert, now, now + lifetime, items, bytes(MLDSA_SIGNATURE_SIZE))
    signature = identity.mldsa.sign(unsigned.signed_bytes(), CONTACT_LIST_CONTEXT)
    return ContactList(cert, now, now + lifetime, items, signature)


def verify_contact_list(
    data: bytes | ContactList,
    *,
    now: int,
    difficulty: int,
    signer: bytes | None = None,
) -> list[Contact]:
    """Check a contact list completely and return its contacts.

    Order (cheap first, 06-bootstrap.md §3): validity window, the signer's
    certificate (puzzle at ``difficulty``, then its signature), the pinned
    ``signer`` node ID if given, then the list's signature.  Raises
    ``DecodeError`` for bytes that are no contact list and ``IdentityError``
    for a list that is not valid now or not signed by whom it claims.
    """
    contact_list = data if isinstance(data, ContactList) else decode(data, expect=(ContactList,))
    assert isinstance(contact_list, ContactList)
    if contact_list.expires <= contact_list.issued:
        raise IdentityError("contact list: expires is not after issued")
    if contact_list.expires - contact_list.issued > MAX_LIST_LIFETIME:
        raise IdentityError("contact list: lifetime exceeds the maximum")
    if now + CLOCK_SKEW < contact_list.issued:
        raise IdentityError("contact list: not yet valid")
    if now >= contact_list.expires:
        raise IdentityError("contact list: expired")
    node_id = verify_certificate(contact_list.cert, now=now, difficulty=difficulty)
    if signer is not None and node_id != signer:
        raise IdentityError("contact list: signed by another node than the one expected")
    try:
        mldsa.verify(
            contact_list.cert.mldsa_public,
            contact_list.signed_bytes(),
            contact_list.signature,
            CONTACT_LIST_CONTEXT,
        )
    except InvalidSignatureError:
        raise IdentityError("contact list: signature does not verify") from None
    return list(contact_list.contacts)
