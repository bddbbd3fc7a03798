"""Transport addresses and contacts: the URI form and the CBOR form.

Implements ``protocol-spec/01-contacts.md``.  A contact names a node ID and
the transport addresses where that node answers; its URI form pins the node
ID so that a bootstrap contact says who must answer, e.g.
``qdht+udp://198.51.100.7:6881/<64 hex digits>``.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import urlsplit

import attrs

from qdht.errors import ContactError, DecodeError
from qdht.wire._fields import FieldReader, child_path

__all__ = ["MAX_ADDRESSES", "NODE_ID_SIZE", "TRANSPORTS", "WS_PATH", "Address", "Contact"]

NODE_ID_SIZE: Final = 32
#: Transports a contact may name.
TRANSPORTS: Final = frozenset({"udp", "ws"})
#: Most addresses one contact may list.
MAX_ADDRESSES: Final = 4
#: The HTTP path a ``ws`` address serves qdht at (05-transport.md).
WS_PATH: Final = "/qdht/v1"

_NODE_PATH: Final = re.compile(rf"/[0-9a-f]{{{2 * NODE_ID_SIZE}}}")
_PORT: Final = re.compile(r"[0-9]{1,5}")


#: Parsed hosts remembered by the helpers below (contacts repeat a lot; each
#: ``ipaddress`` parse costs microseconds).  Bounded, so remote input cannot
#: grow it.
_HOST_CACHE_SIZE: Final = 4096


def _canonical_host(host: str) -> str:
    """``host`` as a compressed IP literal, or ContactError."""
    try:
        return _canonical_host_cached(host)
    except TypeError:  # unhashable: not a host at all
        raise ContactError(f"host must be an IPv4 or IPv6 literal, got {host!r}") from None


@functools.lru_cache(maxsize=_HOST_CACHE_SIZE)
def _canonical_host_cached(host: str) -> str:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ContactError(f"host must be an IPv4 or IPv6 literal, got {host!r}") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        # A zone ("%eth0") means something only on the host that wrote it.
        raise ContactError(f"host must not carry an IPv6 zone, got {host!r}")
    return ip.compressed


@functools.lru_cache(maxsize=_HOST_CACHE_SIZE)
def _packed(host: str) -> bytes:
    return ipaddress.ip_address(host).packed


@functools.lru_cache(maxsize=_HOST_CACHE_SIZE)
def _unpacked(raw: bytes) -> str:
    return ipaddress.ip_address(raw).compressed


def _check_transport(_: object, __: object, value: str) -> None:
    if value not in TRANSPORTS:
        raise ContactError(f"transport must be one of {sorted(TRANSPORTS)}, got {value!r}")


def _check_port(_: object, __: object, value: int) -> None:
    if type(value) is not int or not 1 <= value <= 65535:
        raise ContactError(f"port must be an integer in 1..65535, got {value!r}")


@attrs.frozen(order=True)
class Address:
    """Where a node answers: a transport, an IP literal and a port."""

    transport: str = attrs.field(validator=_check_transport)
    host: str = attrs.field(converter=_canonical_host)
    port: int = attrs.field(validator=_check_port)

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.host)

    @property
    def authority(self) -> str:
        """``host:port``, with IPv6 hosts in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.transport}://{self.authority}"

    def to_cbor(self) -> dict[str, Any]:
        return {"tr": self.transport, "ip": _packed(self.host), "port": self.port}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Address:
        reader = FieldReader(obj, path)
        transport = reader.text("tr", max_len=8)
        raw_ip = reader.bytes_("ip", min_size=4, max_size=16)
        port = reader.uint("port", min_value=1, max_value=65535)
        reader.finish()
        if transport not in TRANSPORTS:
            raise DecodeError(
                "field-value", child_path(path, "tr"), f"unknown transport {transport!r}"
            )
        if len(raw_ip) not in (4, 16):
            raise DecodeError(
                "field-size", child_path(path, "ip"), "an IP address is 4 or 16 bytes"
            )
        return cls(transport, _unpacked(raw_ip), port)


def _check_node_id(_: object, __: object, value: bytes) -> None:
    if type(value) is not bytes or len(value) != NODE_ID_SIZE:
        raise ContactError(f"node ID must be {NODE_ID_SIZE} bytes")


def _to_addresses(value: Iterable[Address]) -> tuple[Address, ...]:
    return tuple(value)


def _check_addresses(_: object, __: object, value: tuple[Address, ...]) -> None:
    if not 1 <= len(value) <= MAX_ADDRESSES:
        raise ContactError(f"a contact lists 1..{MAX_ADDRESSES} addresses, got {len(value)}")


@attrs.frozen
class Contact:
    """A node ID and the addresses where that node answers."""

    node_id: bytes = attrs.field(validator=_check_node_id)
    addresses: tuple[Address, ...] = attrs.field(
        converter=_to_addresses, validator=_check_addresses
    )

    @property
    def address(self) -> Address:
        """The first (preferred) address."""
        return self.addresses[0]

    def to_uri(self, index: int = 0) -> str:
        """The URI of one of the contact's addresses (the first by default)."""
        address = self.addresses[index]
        return f"qdht+{address.transport}://{address.authority}/{self.node_id.hex()}"

    @classmethod
    def from_uri(cls, uri: str) -> Contact:
        """Parse ``qdht+<transport>://<ip>:<port>/<node-id-hex>``; raise ContactError."""
        try:
            parts = urlsplit(uri)
            port = parts.port
        except ValueError as exc:
            raise ContactError(f"cannot parse contact URI {uri!r}: {exc}") from None
        scheme = parts.scheme.lower()
        if not scheme.startswith("qdht+"):
            raise ContactError(f"contact URI must start with qdht+udp:// or qdht+ws://: {uri!r}")
        if parts.hostname is None or port is None:
            raise ContactError(f"contact URI needs a host and a port: {uri!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ContactError(f"contact URI has unexpected parts: {uri!r}")
        if not _PORT.fullmatch(parts.netloc.rpartition(":")[2]):
            raise ContactError(f"contact URI port must be decimal digits: {uri!r}")
        if not _NODE_PATH.fullmatch(parts.path):
            raise ContactError(
                f"contact URI path must be / and {2 * NODE_ID_SIZE} lowercase hex digits: {uri!r}"
            )
        node_id = bytes.fromhex(parts.path[1:])
        return cls(node_id, (Address(scheme[5:], parts.hostname, port),))

    def to_cbor(self) -> dict[str, Any]:
        return {"id": self.node_id, "addrs": [a.to_cbor() for a in self.addresses]}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Contact:
        reader = FieldReader(obj, path)
        node_id = reader.bytes_("id", size=NODE_ID_SIZE)
        addresses = reader.array("addrs", Address.from_cbor, min_len=1, max_len=MAX_ADDRESSES)
        reader.finish()
        return cls(node_id, addresses)
