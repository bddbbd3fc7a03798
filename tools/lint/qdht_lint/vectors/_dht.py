"""Test vectors for the DHT RPC messages (``protocol-spec/02-dht-rpc.md``).

Every byte comes from fixed labels hashed with SHA3-256, so the output is the
same on every run.  Valid vectors are encodings of message objects; invalid
vectors are hand-built CBOR (maps encoded with the canonical encoder, or raw
bytes where the point is the encoding itself), each with the ``reason`` a
conforming decoder reports.  Valid vectors whose ``flags`` name a SHOULD rule
(``S-DHT-1`` ...) obey every MUST but break that recommendation; qdht-lint
reports them.

The records inside ``store`` and ``value`` messages are wire-level: their
signatures are fixed placeholder bytes, not real ML-DSA signatures (what a
holder does with a record is tested by the semantic vectors of
``vectors/records/``, which carry real ones).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import cbor2

from qdht.wire import (
    Address,
    Contact,
    ErrorCode,
    ErrorMessage,
    FindNode,
    FindValue,
    ImmutableRecord,
    MutableRecord,
    Nodes,
    Ping,
    Pong,
    SetEntry,
    Store,
    Stored,
    Tombstone,
    Value,
    encode,
    immutable_key,
    owner_hash,
)
from qdht_lint.vectors._common import Case, Valid, vector_file

__all__ = ["vector_files"]


def _bytes(label: str, size: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha3_256(f"qdht/vectors/dht/{label}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


RID = _bytes("rid", 8)
NODE_ID = _bytes("node-id", 32)


def _canon(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


def _contact(index: int, *addresses: Address) -> Contact:
    if not addresses:
        addresses = (Address("udp", f"198.51.100.{index % 250 + 1}", 6881),)
    return Contact(_bytes(f"contact-{index}", 32), addresses)


def _common_invalid(valid: dict[str, Any], *, rid_required: bool = True) -> list[Case]:
    """Invalid cases every message rule gets, derived from one valid map."""
    good = _canon(valid)
    cases: list[Case] = []
    wrong_kind = dict(valid, type=1)
    cases.append(("type is an integer", ["wrong-type"], _canon(wrong_kind), "field-type"))
    unknown = dict(valid, type=valid["type"] + "_v2")
    cases.append(("unknown type value", ["wrong-type"], _canon(unknown), "unknown-type"))
    no_type = {k: v for k, v in valid.items() if k != "type"}
    cases.append(("type field missing", ["missing-field"], _canon(no_type), "missing-type"))
    if "rid" in valid:
        no_rid = {k: v for k, v in valid.items() if k != "rid"}
        if rid_required:
            cases.append(("rid missing", ["missing-field"], _canon(no_rid), "missing-field"))
        cases.append(
            (
                "rid of 9 bytes",
                ["oversize-field"],
                _canon(dict(valid, rid=RID + b"\0")),
                "field-size",
            )
        )
        cases.append(
            ("rid of 7 bytes", ["undersize-field"], _canon(dict(valid, rid=RID[:7])), "field-size")
        )
        cases.append(
            ("rid is text", ["wrong-field-type"], _canon(dict(valid, rid=RID.hex())), "field-type")
        )
    cases.append(("extra field", ["unknown-field"], _canon(dict(valid, extra=0)), "unknown-field"))
    # Non-deterministic encodings of the same map.
    unsorted = _encode_map_unsorted(valid)
    if unsorted != good:
        cases.append(
            (
                "map keys not in deterministic order",
                ["non-deterministic"],
                unsorted,
                "non-deterministic",
            )
        )
    long_header = bytes([0xB8, len(valid)]) + good[1:]
    cases.append(
        ("map length in a 1-byte argument", ["non-deterministic"], long_header, "non-deterministic")
    )
    indefinite = bytes([0xBF]) + good[1:] + b"\xff"
    cases.append(("indefinite-length map", ["non-deterministic"], indefinite, "indefinite-length"))
    cases.append(
        ("trailing byte after the map", ["trailing-bytes"], good + b"\x00", "trailing-bytes")
    )
    cases.append(("map wrapped in an array", ["not-a-map"], _canon([valid]), "not-a-map"))
    cases.append(("tagged map", ["tag"], b"\xd9\xd9\xf7" + good, "unsupported-type"))
    dup = _encode_map_with_duplicate(valid)
    cases.append(("duplicate type key", ["duplicate-key"], dup, "duplicate-key"))
    cases.append(("truncated", ["truncated"], good[:-1], "malformed"))
    return cases


def _encode_map_unsorted(obj: dict[str, Any]) -> bytes:
    """The map with its entries in reverse deterministic order."""
    items = sorted(obj.items(), key=lambda kv: _canon(kv[0]), reverse=True)
    out = bytearray(_map_header(len(items)))
    for key, value in items:
        out += _canon(key) + _canon(value)
    return bytes(out)


def _encode_map_with_duplicate(obj: dict[str, Any]) -> bytes:
    items = sorted(obj.items(), key=lambda kv: _canon(kv[0]))
    items.append(("type", obj["type"]))
    out = bytearray(_map_header(len(items)))
    for key, value in items:
        out += _canon(key) + _canon(value)
    return bytes(out)


def _map_header(length: int) -> bytes:
    assert length < 24
    return bytes([0xA0 + length])


def _file(rule: str, valid: list[Valid], invalid: list[Case]) -> dict[str, Any]:
    return vector_file(rule, "02-dht-rpc.md", valid, invalid)


def _simple(rule: str, cls: Callable[[bytes], Any]) -> dict[str, Any]:
    message = cls(RID)
    valid: list[tuple[str, list[str], bytes]] = [
        ("typical", [], encode(message)),
        ("all-zero rid", [], encode(cls(bytes(8)))),
    ]
    return _file(rule, valid, _common_invalid(message.to_cbor()))


def _find(rule: str, cls: Callable[[bytes, bytes], Any], field: str) -> dict[str, Any]:
    message = cls(RID, NODE_ID)
    as_map = message.to_cbor()
    valid: list[tuple[str, list[str], bytes]] = [
        ("typical", [], encode(message)),
        ("all-ones " + field, [], encode(cls(RID, b"\xff" * 32))),
    ]
    invalid = _common_invalid(as_map)
    invalid += [
        (
            f"{field} of 33 bytes",
            ["oversize-field"],
            _canon(dict(as_map, **{field: NODE_ID + b"\0"})),
            "field-size",
        ),
        (
            f"{field} of 31 bytes",
            ["undersize-field"],
            _canon(dict(as_map, **{field: NODE_ID[:31]})),
            "field-size",
        ),
        (
            f"{field} is an array",
            ["wrong-field-type"],
            _canon(dict(as_map, **{field: [1]})),
            "field-type",
        ),
        (
            f"{field} missing",
            ["missing-field"],
            _canon({k: v for k, v in as_map.items() if k != field}),
            "missing-field",
        ),
    ]
    return _file(rule, valid, invalid)


def _find_value() -> dict[str, Any]:
    """FIND_VALUE: the cases of ``_find``, plus paging a set with ``have`` (02 §4.2)."""
    file = _find("dht-find_value", FindValue, "key")
    owner, other = _bytes("owner", 32), _bytes("owner2", 32)
    as_map = FindValue(RID, NODE_ID, have=[owner]).to_cbor()
    valid: list[Valid] = [
        (
            "a page: have lists one owner already read",
            [],
            encode(FindValue(RID, NODE_ID, have=[owner])),
        ),
        (
            "a page: have lists two owners, read-only requester",
            [],
            encode(FindValue(RID, NODE_ID, have=[other, owner], ro=True)),
        ),
        (
            "a page: have at its limit of 64 owners",
            [],
            encode(FindValue(RID, NODE_ID, have=[_bytes(f"o{i}", 32) for i in range(64)])),
        ),
    ]
    invalid: list[Case] = [
        ("have empty", ["undersize-field"], _canon(dict(as_map, have=[])), "field-size"),
        (
            "have of 65 owners",
            ["oversize-field"],
            _canon(dict(as_map, have=[_bytes(f"o{i}", 32) for i in range(65)])),
            "field-size",
        ),
        ("have is a map", ["wrong-field-type"], _canon(dict(as_map, have={})), "field-type"),
        ("have is bytes", ["wrong-field-type"], _canon(dict(as_map, have=owner)), "field-type"),
        (
            "have owner of 31 bytes",
            ["undersize-field"],
            _canon(dict(as_map, have=[owner[:31]])),
            "field-size",
        ),
        (
            "have owner is text",
            ["wrong-field-type"],
            _canon(dict(as_map, have=["o" * 32])),
            "field-type",
        ),
        (
            "have element is an [owner, seq] pair",
            ["wrong-field-type"],
            _canon(dict(as_map, have=[[owner, 3]])),
            "field-type",
        ),
    ]
    _merge_tests(file, _file("dht-find_value", valid, invalid)["tests"])
    return file


def _nodes() -> dict[str, Any]:
    one = Nodes(RID, [_contact(0)])
    multi = Nodes(
        RID,
        [
            _contact(1, Address("udp", "198.51.100.7", 6881), Address("udp", "2001:db8::1", 6881)),
            _contact(2, Address("ws", "203.0.113.9", 443)),
            _contact(
                3,
                Address("udp", "192.0.2.1", 1),
                Address("udp", "192.0.2.2", 65535),
                Address("ws", "2001:db8::2", 8080),
                Address("ws", "::ffff:192.0.2.3", 80),
            ),
        ],
    )
    twenty = Nodes(RID, [_contact(i) for i in range(20)])
    thirty_two = Nodes(RID, [_contact(i) for i in range(32)])
    dup_node = Nodes(RID, [_contact(5), _contact(5, Address("ws", "198.51.100.5", 443))])
    same_addr = Address("udp", "198.51.100.8", 6881)
    dup_addr = Nodes(RID, [_contact(6, same_addr, same_addr)])
    valid: list[tuple[str, list[str], bytes]] = [
        ("one contact", [], encode(one)),
        ("no contacts", [], encode(Nodes(RID, []))),
        ("IPv4, IPv6 and ws addresses, 1..4 per contact", [], encode(multi)),
        ("k = 20 contacts", [], encode(twenty)),
        ("32 contacts: allowed, above the recommended 20", ["S-DHT-1"], encode(thirty_two)),
        ("the same node ID twice", ["S-DHT-2"], encode(dup_node)),
        ("a contact listing the same address twice", ["S-CONTACT-1"], encode(dup_addr)),
    ]
    base = one.to_cbor()
    contact = base["nodes"][0]
    address = contact["addrs"][0]

    def with_contact(**changes: Any) -> bytes:
        return _canon(dict(base, nodes=[dict(contact, **changes)]))

    def with_address(**changes: Any) -> bytes:
        return with_contact(addrs=[dict(address, **changes)])

    thirty_three = [_contact(i).to_cbor() for i in range(33)]
    invalid = _common_invalid(base)
    invalid += [
        ("33 contacts", ["oversize-field"], _canon(dict(base, nodes=thirty_three)), "field-size"),
        ("nodes is a map", ["wrong-field-type"], _canon(dict(base, nodes={})), "field-type"),
        (
            "nodes missing",
            ["missing-field"],
            _canon({"type": "nodes", "rid": RID}),
            "missing-field",
        ),
        (
            "contact is an array",
            ["wrong-field-type"],
            _canon(dict(base, nodes=[[NODE_ID]])),
            "not-a-map",
        ),
        (
            "contact id of 31 bytes",
            ["undersize-field"],
            with_contact(id=NODE_ID[:31]),
            "field-size",
        ),
        (
            "contact without addrs",
            ["missing-field"],
            _canon(dict(base, nodes=[{"id": NODE_ID}])),
            "missing-field",
        ),
        ("contact with no addresses", ["undersize-field"], with_contact(addrs=[]), "field-size"),
        (
            "contact with 5 addresses",
            ["oversize-field"],
            with_contact(addrs=[address] * 5),
            "field-size",
        ),
        ("contact with an extra field", ["unknown-field"], with_contact(name="x"), "unknown-field"),
        (
            "address ip of 5 bytes",
            ["oversize-field"],
            with_address(ip=b"\xc6\x33\x64\x07\x00"),
            "field-size",
        ),
        ("address ip of 0 bytes", ["undersize-field"], with_address(ip=b""), "field-size"),
        ("address ip is text", ["wrong-field-type"], with_address(ip="198.51.100.7"), "field-type"),
        ("address port 0", ["field-value"], with_address(port=0), "field-value"),
        ("address port 65536", ["field-value"], with_address(port=65536), "field-value"),
        ("address port negative", ["wrong-field-type"], with_address(port=-1), "field-type"),
        ("address transport tcp", ["field-value"], with_address(tr="tcp"), "field-value"),
        ("address with an extra field", ["unknown-field"], with_address(path="/"), "unknown-field"),
        (
            "address without port",
            ["missing-field"],
            _canon(dict(base, nodes=[dict(contact, addrs=[{"tr": "udp", "ip": address["ip"]}])])),
            "missing-field",
        ),
    ]
    return _file("dht-nodes", valid, invalid)


#: A fixed expiry (2025-06-16 15:06:40 UTC) for the records of these vectors.
EXP = 1_750_086_400
_PK = _bytes("mldsa-pk", 1952)
_PK2 = _bytes("mldsa-pk-2", 1952)
#: Placeholder signature bytes: the vectors are wire-level (module docstring).
_SIG = _bytes("placeholder-signature", 3309)


def _records() -> dict[str, Any]:
    owner, owner2 = owner_hash(_PK), owner_hash(_PK2)
    return {
        "immutable": ImmutableRecord(b"hello, qdht", EXP),
        "mutable": MutableRecord(owner, b"profile", 7, b"hello, mutable", EXP, _SIG, _PK),
        "mutable-no-pk": MutableRecord(owner, b"profile", 7, b"hello, mutable", EXP, _SIG),
        "tombstone": Tombstone(owner, b"profile", 8, EXP, _SIG, _PK),
        "entry": SetEntry(b"mixes", owner, 3, b"descriptor 1", EXP, _SIG, _PK),
        "entry2": SetEntry(b"mixes", owner2, 1, b"descriptor 2", EXP, _SIG, _PK2),
        "largest": MutableRecord(
            owner, _bytes("salt", 64), 2**64 - 1, _bytes("biggest", 65536), 2**40 - 1, _SIG, _PK
        ),
    }


def _largest_store() -> Store:
    """The largest STORE a publisher can make (02-dht-rpc.md §4.4)."""
    return Store.of(RID, _records()["largest"], cas=2**64 - 1, ro=True)


def _record_field_cases(base: dict[str, Any], field: str) -> list[Case]:
    """Faults of the record nested in ``field`` of a store or value map."""
    record = base[field]

    def with_record(new: Any) -> bytes:
        return _canon(dict(base, **{field: new}))

    return [
        (f"{field} is a byte string", ["wrong-field-type"], with_record(b"\x00"), "not-a-map"),
        (
            f"{field} with an unknown type",
            ["wrong-type"],
            with_record(dict(record, type="blob")),
            "unknown-type",
        ),
        (
            f"{field} is a message, not a record",
            ["wrong-type"],
            with_record({"type": "stored", "rid": RID}),
            "unexpected-type",
        ),
        (
            f"{field} with an extra field",
            ["unknown-field"],
            with_record(dict(record, extra=0)),
            "unknown-field",
        ),
        (
            f"{field} without exp",
            ["missing-field"],
            with_record({k: v for k, v in record.items() if k != "exp"}),
            "missing-field",
        ),
        (
            f"{field} with a value of 65537 bytes",
            ["oversize-field"],
            with_record(dict(record, value=_bytes("biggest", 65537))),
            "field-size",
        ),
        (
            f"{field} value is text",
            ["wrong-field-type"],
            with_record(dict(record, value="hello")),
            "field-type",
        ),
    ]


def _store() -> dict[str, Any]:
    records = _records()
    typical = Store.of(RID, records["immutable"])
    as_map = typical.to_cbor()
    mutable_map = Store.of(RID, records["mutable"]).to_cbor()
    largest = encode(_largest_store())
    valid: list[Valid] = [
        ("immutable record", [], encode(typical)),
        ("mutable record with pk", [], encode(Store.of(RID, records["mutable"]))),
        ("mutable record without pk", [], encode(Store.of(RID, records["mutable-no-pk"]))),
        ("mutable record with cas", [], encode(Store.of(RID, records["mutable"], cas=6))),
        ("cas 0", [], encode(Store.of(RID, records["mutable"], cas=0))),
        ("tombstone", [], encode(Store.of(RID, records["tombstone"]))),
        ("set entry", [], encode(Store.of(RID, records["entry"]))),
        ("set entry with cas", [], encode(Store.of(RID, records["entry"], cas=2))),
        (
            "path-cache store, 1800 s (07 §10.6)",
            [],
            encode(Store(RID, typical.key, typical.record, cache=1800)),
        ),
        (
            "path-cache store, longest lifetime",
            [],
            encode(Store(RID, typical.key, typical.record, cache=86400)),
        ),
        (
            "an immutable record under a key it does not derive (valid CBOR; a holder "
            "refuses it with invalid-value)",
            [],
            encode(Store(RID, NODE_ID, records["immutable"])),
        ),
        (
            f"the largest STORE: 65536-byte value, 64-byte salt, pk, cas, ro "
            f"({len(largest)} bytes <= 73728)",
            ["max-size"],
            largest,
        ),
    ]
    invalid = _common_invalid(as_map)
    invalid += _record_field_cases(as_map, "record")
    invalid += [
        (
            "the old form: value instead of record",
            ["missing-field"],
            _canon({"type": "store", "rid": RID, "key": as_map["key"], "value": b"hello, qdht"}),
            "missing-field",
        ),
        (
            "cache 0",
            ["wrong-field-value"],
            _canon(dict(as_map, cache=0)),
            "field-value",
        ),
        (
            "cache longer than a day",
            ["wrong-field-value"],
            _canon(dict(as_map, cache=86401)),
            "field-value",
        ),
        (
            "record and an old value field",
            ["unknown-field"],
            _canon(dict(as_map, value=b"hello, qdht")),
            "unknown-field",
        ),
        (
            "record missing",
            ["missing-field"],
            _canon({k: v for k, v in as_map.items() if k != "record"}),
            "missing-field",
        ),
        (
            "key of 33 bytes",
            ["oversize-field"],
            _canon(dict(as_map, key=as_map["key"] + b"\0")),
            "field-size",
        ),
        (
            "key missing",
            ["missing-field"],
            _canon({k: v for k, v in as_map.items() if k != "key"}),
            "missing-field",
        ),
        ("cas negative", ["wrong-field-type"], _canon(dict(mutable_map, cas=-1)), "field-type"),
        ("cas is text", ["wrong-field-type"], _canon(dict(mutable_map, cas="6")), "field-type"),
        ("cas is null", ["wrong-field-type"], _canon(dict(mutable_map, cas=None)), "field-type"),
        (
            "cas is bytes",
            ["wrong-field-type"],
            _canon(dict(mutable_map, cas=b"\x06")),
            "field-type",
        ),
        (
            "mutable record with a signature of 3308 bytes",
            ["undersize-field"],
            _canon(dict(mutable_map, record=dict(mutable_map["record"], sig=_SIG[:-1]))),
            "field-size",
        ),
        (
            "mutable record with a pk of 1953 bytes",
            ["oversize-field"],
            _canon(dict(mutable_map, record=dict(mutable_map["record"], pk=_PK + b"\0"))),
            "field-size",
        ),
        (
            "over max_bytes: the largest STORE with an 8 KiB longer value",
            ["oversize-message"],
            _oversize_store(),
            "too-large",
        ),
    ]
    return _file("dht-store", valid, invalid)


def _oversize_store() -> bytes:
    """The largest STORE with 8 KiB more value: over max_bytes, rejected before decoding.

    Legal fields cannot make a STORE exceed max_bytes (02-dht-rpc.md §4.4), so
    the oversize message necessarily also has an oversize value.
    """
    obj = _largest_store().to_cbor()
    obj["record"] = dict(obj["record"], value=_bytes("biggest", 65536 + 8192))
    return _canon(obj)


def _value() -> dict[str, Any]:
    records = _records()
    typical = Value(RID, records["immutable"])
    as_map = typical.to_cbor()
    set_map = Value(RID, records=[records["entry"]]).to_cbor()
    valid: list[Valid] = [
        ("immutable record", [], encode(typical)),
        (
            "mutable record (with pk, as holders send it)",
            [],
            encode(Value(RID, records["mutable"])),
        ),
        ("tombstone: the key was deleted", [], encode(Value(RID, records["tombstone"]))),
        ("one set entry", [], encode(Value(RID, records=[records["entry"]]))),
        (
            "two set entries of different publishers",
            [],
            encode(Value(RID, records=[records["entry"], records["entry2"]])),
        ),
        (
            "mutable record with a 65536-byte value",
            ["max-size"],
            encode(Value(RID, records["largest"])),
        ),
        (
            "a page of a set, more left out (more: true)",
            [],
            encode(Value(RID, records=[records["entry"]], more=True)),
        ),
    ]
    invalid = _common_invalid(as_map)
    invalid += _record_field_cases(as_map, "record")
    invalid += [
        (
            "the old form: value instead of record",
            ["missing-field"],
            _canon({"type": "value", "rid": RID, "value": b"hello, qdht"}),
            "missing-field",
        ),
        (
            "neither record nor records",
            ["missing-field"],
            _canon({"type": "value", "rid": RID}),
            "missing-field",
        ),
        (
            "both record and records",
            ["unknown-field"],
            _canon(dict(as_map, records=set_map["records"])),
            "unknown-field",
        ),
        (
            "a set entry in record",
            ["wrong-type"],
            _canon(dict(as_map, record=records["entry"].to_cbor())),
            "unexpected-type",
        ),
        ("records empty", ["undersize-field"], _canon(dict(set_map, records=[])), "field-size"),
        (
            "an immutable record in records",
            ["wrong-type"],
            _canon(dict(set_map, records=[as_map["record"]])),
            "unexpected-type",
        ),
        ("records is a map", ["wrong-field-type"], _canon(dict(set_map, records={})), "field-type"),
        (
            "records element is not a map",
            ["wrong-field-type"],
            _canon(dict(set_map, records=[1])),
            "not-a-map",
        ),
        (
            "more: false (absent is the only encoding of nothing left out)",
            ["wrong-field-value"],
            _canon(dict(set_map, more=False)),
            "field-value",
        ),
        ("more is an integer", ["wrong-field-type"], _canon(dict(set_map, more=1)), "field-type"),
        (
            "more next to record",
            ["unknown-field"],
            _canon(dict(as_map, more=True)),
            "unknown-field",
        ),
        (
            "set entry with a topic of 65 bytes",
            ["oversize-field"],
            _canon(dict(set_map, records=[dict(set_map["records"][0], topic=b"t" * 65)])),
            "field-size",
        ),
    ]
    return _file("dht-value", valid, invalid)


def _error() -> dict[str, Any]:
    typical = ErrorMessage(ErrorCode.UNKNOWN_REQUEST, "unknown request type", RID)
    as_map = typical.to_cbor()
    valid: list[tuple[str, list[str], bytes]] = [("unknown-request, with rid", [], encode(typical))]
    valid += [
        (
            f"code {code.value} ({code.name.lower().replace('_', '-')})",
            [],
            encode(ErrorMessage(code, "", RID)),
        )
        for code in ErrorCode
    ]
    valid += [
        (
            "without rid (the request's rid was unreadable)",
            [],
            encode(ErrorMessage(ErrorCode.BAD_REQUEST, "bad request")),
        ),
        ("unassigned code 1000", [], encode(ErrorMessage(1000, "", RID))),
        (
            "message of 256 bytes",
            ["S-DHT-3"],
            encode(ErrorMessage(ErrorCode.INTERNAL, "é" * 128, RID)),
        ),
        ("message of 128 bytes", [], encode(ErrorMessage(ErrorCode.INTERNAL, "x" * 128, RID))),
    ]
    invalid = _common_invalid(as_map, rid_required=False)
    invalid += [
        (
            "message of 257 bytes",
            ["oversize-field"],
            _canon(dict(as_map, message="x" * 257)),
            "field-size",
        ),
        (
            "message is bytes",
            ["wrong-field-type"],
            _canon(dict(as_map, message=b"x")),
            "field-type",
        ),
        (
            "message missing",
            ["missing-field"],
            _canon({k: v for k, v in as_map.items() if k != "message"}),
            "missing-field",
        ),
        (
            "code missing",
            ["missing-field"],
            _canon({k: v for k, v in as_map.items() if k != "code"}),
            "missing-field",
        ),
        ("code negative", ["wrong-field-type"], _canon(dict(as_map, code=-1)), "field-type"),
        ("code is text", ["wrong-field-type"], _canon(dict(as_map, code="2")), "field-type"),
        ("rid is null", ["wrong-field-type"], _canon(dict(as_map, rid=None)), "field-type"),
    ]
    return _file("dht-error", valid, invalid)


def _add_request_options(file: dict[str, Any], valid: dict[str, Any]) -> None:
    """Cases of the optional ``ro`` flag and ``ws`` port of a request (02-dht-rpc.md §1.2-1.3)."""
    extra: list[dict[str, Any]] = [
        {
            "comment": "read-only requester (ro: true)",
            "flags": [],
            "cbor": _canon(dict(valid, ro=True)).hex(),
            "result": "valid",
        },
        {
            "comment": "ro: false (absent is the only encoding of not read-only)",
            "flags": ["wrong-field-value"],
            "cbor": _canon(dict(valid, ro=False)).hex(),
            "result": "invalid",
            "reason": "field-value",
        },
        {
            "comment": "WebSocket port of the requester (ws)",
            "flags": [],
            "cbor": _canon(dict(valid, ws=8080)).hex(),
            "result": "valid",
        },
        {
            "comment": "read-only with a WebSocket port",
            "flags": [],
            "cbor": _canon(dict(valid, ro=True, ws=443)).hex(),
            "result": "valid",
        },
        {
            "comment": "ws port 0",
            "flags": ["wrong-field-value"],
            "cbor": _canon(dict(valid, ws=0)).hex(),
            "result": "invalid",
            "reason": "field-value",
        },
        {
            "comment": "ws port 65536",
            "flags": ["wrong-field-value"],
            "cbor": _canon(dict(valid, ws=65536)).hex(),
            "result": "invalid",
            "reason": "field-value",
        },
        {
            "comment": "ws port is text",
            "flags": ["wrong-field-type"],
            "cbor": _canon(dict(valid, ws="8080")).hex(),
            "result": "invalid",
            "reason": "field-type",
        },
        {
            "comment": "ro is an integer",
            "flags": ["wrong-field-type"],
            "cbor": _canon(dict(valid, ro=1)).hex(),
            "result": "invalid",
            "reason": "field-type",
        },
    ]
    _merge_tests(file, extra)


def _merge_tests(file: dict[str, Any], extra: list[dict[str, Any]]) -> None:
    """Add ``extra`` cases to ``file``: valid cases first, as _file writes them,
    tcIds renumbered in order."""
    ordered = sorted([*file["tests"], *extra], key=lambda t: t["result"] != "valid")
    file["tests"] = [
        {"tcId": n, **{k: v for k, v in t.items() if k != "tcId"}}
        for n, t in enumerate(ordered, start=1)
    ]


def vector_files() -> dict[str, dict[str, Any]]:
    """``dht/<rule>.json`` for every DHT message rule."""
    value_key = immutable_key(b"hello, qdht")
    files = {
        "dht-ping": _simple("dht-ping", Ping),
        "dht-pong": _simple("dht-pong", Pong),
        "dht-find_node": _find("dht-find_node", FindNode, "target"),
        "dht-nodes": _nodes(),
        "dht-find_value": _find_value(),
        "dht-value": _value(),
        "dht-store": _store(),
        "dht-stored": _simple("dht-stored", Stored),
        "dht-error": _error(),
    }
    _add_request_options(files["dht-ping"], Ping(RID).to_cbor())
    _add_request_options(files["dht-find_node"], FindNode(RID, NODE_ID).to_cbor())
    _add_request_options(files["dht-find_value"], FindValue(RID, NODE_ID).to_cbor())
    _add_request_options(files["dht-store"], Store.of(RID, _records()["immutable"]).to_cbor())
    files["dht-store"]["immutable_key_example"] = {
        "value": b"hello, qdht".hex(),
        "key": value_key.hex(),
    }
    return {f"dht/{rule}.json": content for rule, content in files.items()}
