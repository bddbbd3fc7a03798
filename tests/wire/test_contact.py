"""Addresses and contacts: constructors, URI form, CBOR form."""

from __future__ import annotations

import pytest
from hypothesis import given

from qdht.errors import ContactError, DecodeError
from qdht.wire import Address, Contact, decode, dumps_canonical, loads_canonical

from .strategies import addresses, contacts

NODE = bytes(range(32))
HEX = NODE.hex()


def test_address_canonicalises_the_host() -> None:
    address = Address("udp", "2001:0DB8:0:0::1", 6881)
    assert address.host == "2001:db8::1"
    assert address.authority == "[2001:db8::1]:6881"
    assert str(address) == "udp://[2001:db8::1]:6881"
    assert Address("ws", "198.51.100.7", 443).authority == "198.51.100.7:443"


@pytest.mark.parametrize(
    ("transport", "host", "port", "message"),
    [
        ("tcp", "1.2.3.4", 1, "transport"),
        ("udp", "example.com", 1, "host"),
        ("udp", "fe80::1%eth0", 1, "zone"),
        ("udp", "1.2.3.4", 0, "port"),
        ("udp", "1.2.3.4", 65536, "port"),
        ("udp", "1.2.3.4", True, "port"),
    ],
)
def test_address_rejects_bad_arguments(transport: str, host: str, port: int, message: str) -> None:
    with pytest.raises(ContactError, match=message):
        Address(transport, host, port)


def test_contact_rejects_bad_arguments() -> None:
    address = Address("udp", "1.2.3.4", 1)
    with pytest.raises(ContactError, match="node ID"):
        Contact(NODE[:31], [address])
    with pytest.raises(ContactError, match=r"1\.\.4"):
        Contact(NODE, [])
    with pytest.raises(ContactError, match=r"1\.\.4"):
        Contact(NODE, [address] * 5)


@pytest.mark.parametrize(
    "uri",
    [
        f"qdht+udp://198.51.100.7:6881/{HEX}",
        f"qdht+udp://[2001:db8::1]:6881/{HEX}",
        f"qdht+ws://203.0.113.9:443/{HEX}",
    ],
)
def test_uri_round_trip(uri: str) -> None:
    contact = Contact.from_uri(uri)
    assert contact.node_id == NODE
    assert contact.to_uri() == uri
    assert contact.address.transport == uri[5 : uri.index(":")]


def test_uri_is_canonicalised() -> None:
    contact = Contact.from_uri(f"QDHT+UDP://[2001:DB8:0::1]:6881/{HEX}")
    assert contact.to_uri() == f"qdht+udp://[2001:db8::1]:6881/{HEX}"


@pytest.mark.parametrize(
    "uri",
    [
        f"http://198.51.100.7:6881/{HEX}",
        f"qdht+tcp://198.51.100.7:6881/{HEX}",
        f"qdht+udp://198.51.100.7/{HEX}",
        f"qdht+udp://198.51.100.7:0/{HEX}",
        f"qdht+udp://198.51.100.7:65536/{HEX}",
        f"qdht+udp://198.51.100.7:+80/{HEX}",
        f"qdht+udp://example.com:6881/{HEX}",
        f"qdht+udp://[fe80::1%25eth0]:6881/{HEX}",
        f"qdht+udp://198.51.100.7:6881/{HEX.upper()}",
        f"qdht+udp://198.51.100.7:6881/{HEX[:-2]}",
        f"qdht+udp://198.51.100.7:6881/{HEX}/",
        f"qdht+udp://198.51.100.7:6881/{HEX[:-2]} 0",
        f"qdht+udp://198.51.100.7:6881/{HEX}?x=1",
        f"qdht+udp://198.51.100.7:6881/{HEX}#f",
        f"qdht+udp://user@198.51.100.7:6881/{HEX}",
        f"qdht+udp://198.51.100.7:6881/qdht/v1/{HEX}",
        "qdht+udp://[::1",
    ],
)
def test_bad_uris_raise_contact_error(uri: str) -> None:
    with pytest.raises(ContactError):
        Contact.from_uri(uri)


def test_to_uri_of_each_address() -> None:
    contact = Contact(NODE, [Address("udp", "1.2.3.4", 1), Address("ws", "::1", 2)])
    assert contact.to_uri(1) == f"qdht+ws://[::1]:2/{HEX}"
    assert [Contact.from_uri(contact.to_uri(i)).address for i in range(2)] == list(
        contact.addresses
    )


def test_cbor_form() -> None:
    contact = Contact(NODE, [Address("udp", "198.51.100.7", 6881), Address("ws", "::1", 443)])
    assert contact.to_cbor() == {
        "id": NODE,
        "addrs": [
            {"tr": "udp", "ip": bytes([198, 51, 100, 7]), "port": 6881},
            {"tr": "ws", "ip": bytes(15) + b"\x01", "port": 443},
        ],
    }


@given(contacts)
def test_cbor_round_trip(contact: Contact) -> None:
    data = dumps_canonical(contact.to_cbor())
    assert Contact.from_cbor(loads_canonical(data), "$") == contact


@given(addresses)
def test_address_uri_round_trip(address: Address) -> None:
    contact = Contact(NODE, [address])
    assert Contact.from_uri(contact.to_uri()) == contact


def _address_error(**changes: object) -> tuple[str, str]:
    good: dict[str, object] = {"tr": "udp", "ip": b"\x01\x02\x03\x04", "port": 1}
    contact = {"id": NODE, "addrs": [{**good, **changes}]}
    with pytest.raises(DecodeError) as info:
        Contact.from_cbor(contact, "$.c")
    return info.value.reason, info.value.path


@pytest.mark.parametrize(
    ("changes", "reason", "field"),
    [
        ({"tr": "tcp"}, "field-value", "tr"),
        ({"tr": "a-very-long-transport"}, "field-size", "tr"),
        ({"tr": 1}, "field-type", "tr"),
        ({"ip": b"\x01\x02\x03"}, "field-size", "ip"),
        ({"ip": b"\x01" * 5}, "field-size", "ip"),
        ({"ip": b"\x01" * 17}, "field-size", "ip"),
        ({"ip": "1.2.3.4"}, "field-type", "ip"),
        ({"port": 0}, "field-value", "port"),
        ({"port": 65536}, "field-value", "port"),
        ({"port": -1}, "field-type", "port"),
        ({"extra": 1}, "unknown-field", "extra"),
    ],
)
def test_bad_addresses_are_decode_errors(
    changes: dict[str, object], reason: str, field: str
) -> None:
    assert _address_error(**changes) == (reason, f"$.c.addrs[0].{field}")


def test_bad_contacts_are_decode_errors() -> None:
    address = {"tr": "udp", "ip": b"\x01\x02\x03\x04", "port": 1}
    cases: list[tuple[object, str, str]] = [
        ([NODE], "not-a-map", "$"),
        ({"id": NODE[:31], "addrs": [address]}, "field-size", "$.id"),
        ({"id": NODE, "addrs": []}, "field-size", "$.addrs"),
        ({"id": NODE, "addrs": [address] * 5}, "field-size", "$.addrs"),
        ({"id": NODE}, "missing-field", "$.addrs"),
        ({"id": NODE, "addrs": [address], "x": 0}, "unknown-field", "$.x"),
    ]
    for obj, reason, path in cases:
        with pytest.raises(DecodeError) as info:
            Contact.from_cbor(obj, "$")
        assert (info.value.reason, info.value.path) == (reason, path)


def test_duplicate_addresses_are_valid_on_the_wire() -> None:
    """S-CONTACT-1 is a SHOULD: a repeated address does not make a contact invalid."""
    address = Address("udp", "1.2.3.4", 1)
    contact = Contact(NODE, [address, address])
    assert Contact.from_cbor(loads_canonical(dumps_canonical(contact.to_cbor())), "$") == contact


def test_contacts_are_not_messages() -> None:
    data = dumps_canonical(Contact(NODE, [Address("udp", "1.2.3.4", 1)]).to_cbor())
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert info.value.reason == "missing-type"


def test_non_string_host_is_a_contact_error() -> None:
    with pytest.raises(ContactError, match="host"):
        Address("udp", ["198.51.100.7"], 1)  # type: ignore[arg-type]
