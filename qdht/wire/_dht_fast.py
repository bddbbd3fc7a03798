"""Hand-written encoder and parser for the DHT's hot message: ``nodes``.

Every lookup step sends and receives one NODES answer of up to 20 contacts
(~1.4 KB); through the general codec that costs ~300 µs to encode and ~260 µs
to decode, the largest share of a simulated node's CPU.  A deterministic CBOR
encoding is unique, so :func:`encode_nodes` produces exactly the bytes of
``encode(Nodes(...))`` (reusing each contact's encoding, cached), and
:func:`parse_nodes` accepts exactly the canonical bytes of valid ``nodes``
messages and returns None for *anything* else; the caller then falls back to
the strict general decoder, which reports the proper reason.  The property
tests check both claims against the general codec.
"""

from __future__ import annotations

import functools
import weakref
from typing import Final

from qdht.wire._cbor import dumps_canonical
from qdht.wire._contact import MAX_ADDRESSES, NODE_ID_SIZE, Address, Contact, _unpacked
from qdht.wire._dht import MAX_NODES, RID_SIZE, Nodes

__all__ = ["contact_at", "encode_nodes", "intern_contact", "parse_nodes"]

_NODES_HEAD: Final = b"\xa3\x63rid\x48"
_NODES_MID: Final = b"\x64type\x65nodes\x65nodes"
_CONTACT_HEAD: Final = b"\xa2\x62id\x58\x20"
_ADDRS_KEY: Final = b"\x65addrs"
_IP_KEY: Final = b"\xa3\x62ip"
_TR_UDP: Final = b"\x62tr\x63udp"
_TR_WS: Final = b"\x62tr\x62ws"
_PORT_KEY: Final = b"\x64port"
#: Contact encodings and parsed contacts remembered (contacts repeat); bounded.
CONTACT_CACHE_SIZE: Final = 8192
#: Most contacts remembered by :func:`intern_contact`.
INTERN_LIMIT: Final = 1 << 20

# Contacts are interned so that the routing tables and lookups of many nodes in
# one process (simulations) share one object per contact, as Python shares
# interned strings.  Weak values: a contact nobody holds disappears.
_interned: weakref.WeakValueDictionary[bytes, Contact] = weakref.WeakValueDictionary()


def intern_contact(contact: Contact) -> Contact:
    """The shared instance equal to ``contact`` (remembering it if new)."""
    cached = _interned.get(contact.node_id)
    if cached is not None and cached == contact:
        return cached
    if cached is not None or len(_interned) < INTERN_LIMIT:
        # The key is the contact's own node_id object: no extra bytes per entry.
        _interned[contact.node_id] = contact
    return contact


def contact_at(node_id: bytes, address: Address) -> Contact:
    """The shared contact of ``node_id`` at ``address`` alone (:func:`intern_contact`
    of ``Contact(node_id, (address,))``), without building a new one when the
    shared instance is it already: a node does this for every request it serves."""
    cached = _interned.get(node_id)
    if cached is not None and cached.addresses == (address,):
        return cached
    return intern_contact(Contact(node_id, (address,)))


@functools.lru_cache(maxsize=CONTACT_CACHE_SIZE)
def _contact_bytes(contact: Contact) -> bytes:
    return dumps_canonical(contact.to_cbor())


def _array_head(n: int) -> bytes:
    return bytes([0x80 | n]) if n < 24 else bytes([0x98, n])


def encode_nodes(message: Nodes) -> bytes:
    """``encode(message)``, built from cached contact encodings."""
    return b"".join(
        (
            _NODES_HEAD,
            message.rid,
            _NODES_MID,
            _array_head(len(message.nodes)),
            *map(_contact_bytes, message.nodes),
        )
    )


def _scan_contact(data: bytes, pos: int) -> int:
    """The end of the canonical contact encoding at ``pos``, or -1 if there is none."""
    if data[pos : pos + 6] != _CONTACT_HEAD:
        return -1
    pos += 6 + NODE_ID_SIZE
    if data[pos : pos + 6] != _ADDRS_KEY or pos + 6 >= len(data):
        return -1
    pos += 6
    n_addrs = data[pos] - 0x80
    if not 1 <= n_addrs <= MAX_ADDRESSES:
        return -1
    pos += 1
    for _ in range(n_addrs):
        if data[pos : pos + 4] != _IP_KEY or pos + 4 >= len(data):
            return -1
        pos += 4
        ip_head = data[pos]
        if ip_head == 0x44:
            pos += 5
        elif ip_head == 0x50:
            pos += 17
        else:
            return -1
        if data[pos : pos + 7] == _TR_UDP:
            pos += 7
        elif data[pos : pos + 6] == _TR_WS:
            pos += 6
        else:
            return -1
        if data[pos : pos + 5] != _PORT_KEY or pos + 5 >= len(data):
            return -1
        pos += 5
        port_head = data[pos]
        if 1 <= port_head <= 23:
            pos += 1
        elif port_head == 0x18 and pos + 1 < len(data) and data[pos + 1] >= 24:
            pos += 2
        elif port_head == 0x19 and pos + 2 < len(data) and data[pos + 1] != 0:
            pos += 3
        else:
            return -1
    return pos if pos <= len(data) else -1


@functools.lru_cache(maxsize=CONTACT_CACHE_SIZE)
def _contact(span: bytes) -> Contact:
    """The contact a span accepted by :func:`_scan_contact` encodes.

    Cached on the bytes: a contact seen again costs a dictionary lookup; a new
    one is interned, so every answer naming it shares one object.
    """
    node_id = span[6 : 6 + NODE_ID_SIZE]
    pos = 6 + NODE_ID_SIZE + 6
    n_addrs = span[pos] - 0x80
    pos += 1
    addresses = []
    for _ in range(n_addrs):
        pos += 4
        size = 4 if span[pos] == 0x44 else 16
        raw_ip = span[pos + 1 : pos + 1 + size]
        pos += 1 + size
        if span[pos + 3] == 0x63:  # "tr": "udp"
            transport = "udp"
            pos += 7
        else:
            transport = "ws"
            pos += 6
        pos += 5
        head = span[pos]
        if head <= 23:
            port = head
            pos += 1
        elif head == 0x18:
            port = span[pos + 1]
            pos += 2
        else:
            port = (span[pos + 1] << 8) | span[pos + 2]
            pos += 3
        addresses.append(Address(transport, _unpacked(raw_ip), port))
    return intern_contact(Contact(node_id, addresses))


def parse_nodes(data: bytes) -> Nodes | None:
    """The ``nodes`` message ``data`` encodes canonically, or None (use the general decoder)."""
    if data[:6] != _NODES_HEAD:
        return None
    pos = 6
    rid = data[pos : pos + RID_SIZE]
    pos += RID_SIZE
    if data[pos : pos + 17] != _NODES_MID:
        return None
    pos += 17
    if pos >= len(data):
        return None
    head = data[pos]
    if 0x80 <= head < 0x98:
        count = head - 0x80
        pos += 1
    elif head == 0x98 and pos + 1 < len(data) and 24 <= data[pos + 1] <= MAX_NODES:
        count = data[pos + 1]
        pos += 2
    else:
        return None
    contacts = []
    for _ in range(count):
        end = _scan_contact(data, pos)
        if end < 0:
            return None
        contacts.append(_contact(data[pos:end]))
        pos = end
    if pos != len(data) or len(rid) != RID_SIZE:
        return None
    return Nodes(rid, contacts)
