"""The DHT's remote procedure calls: PING, FIND_NODE, FIND_VALUE, STORE and ERROR.

Implements ``protocol-spec/02-dht-rpc.md``.  Every request carries ``rid``, an
8-byte request ID the requester picks at random; the response echoes it.

=============  ==========================  ===========================
request        success response            meaning
=============  ==========================  ===========================
``ping``       ``pong``                    liveness
``find_node``  ``nodes``                   contacts closest to ``target``
``find_value`` ``value`` or ``nodes``      the record(s) under ``key``, else contacts
``store``      ``stored``                  keep ``record`` under ``key``
=============  ==========================  ===========================

Any request may instead be answered with ``error`` (:class:`ErrorMessage`).
STORE and VALUE carry the records of ``protocol-spec/07-records.md``
(:mod:`qdht.wire._records`); how a holder judges them is 07 §6-§8.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Final, TypeAlias

import attrs

from qdht.errors import ConfigError, DecodeError
from qdht.wire._contact import NODE_ID_SIZE, Contact
from qdht.wire._fields import FieldReader, check_bytes, child_path
from qdht.wire._records import (
    IMMUTABLE_KEY_PREFIX,
    MAX_VALUE_SIZE,
    OWNER_HASH_SIZE,
    RECORD_TYPES,
    AnyRecord,
    ImmutableRecord,
    MutableRecord,
    SetEntry,
    Tombstone,
    immutable_key,
)
from qdht.wire._registry import decode_object, register

__all__ = [
    "IMMUTABLE_KEY_PREFIX",
    "KEY_SIZE",
    "MAX_CACHE_LIFETIME",
    "MAX_ERROR_MESSAGE_BYTES",
    "MAX_HAVE",
    "MAX_NODES",
    "MAX_VALUE_RECORDS",
    "MAX_VALUE_SIZE",
    "RECOMMENDED_ERROR_MESSAGE_BYTES",
    "RECOMMENDED_NODES",
    "RESPONSE_TYPES",
    "RID_SIZE",
    "SINGLE_RECORD_TYPES",
    "DhtMessage",
    "DhtRequest",
    "DhtResponse",
    "ErrorCode",
    "ErrorMessage",
    "FindNode",
    "FindValue",
    "Nodes",
    "Ping",
    "Pong",
    "Store",
    "Stored",
    "Value",
    "immutable_key",
    "new_rid",
]

#: Size of a request ID, in bytes.
RID_SIZE: Final = 8
#: Size of a DHT key (a SHA3-256 digest), in bytes; the same as a node ID.
KEY_SIZE: Final = NODE_ID_SIZE
#: Most set entries in one ``value`` message's ``records`` (MUST, 02-dht-rpc.md §4.2).
MAX_VALUE_RECORDS: Final = 64
#: Most owners in one ``find_value`` message's ``have`` (MUST, 02-dht-rpc.md §4.2).
MAX_HAVE: Final = 64
#: The record kinds a ``value`` carries in ``record`` (set entries go in ``records``).
SINGLE_RECORD_TYPES: Final = (ImmutableRecord, MutableRecord, Tombstone)
#: Most contacts in one ``nodes`` message (MUST).
MAX_NODES: Final = 32
#: Contacts a ``nodes`` message SHOULD not exceed: the bucket size k (S-DHT-1).
RECOMMENDED_NODES: Final = 20
#: Longest ``error`` message text, in UTF-8 bytes (MUST).
MAX_ERROR_MESSAGE_BYTES: Final = 256
#: Length an ``error`` message text SHOULD not exceed (S-DHT-3).
RECOMMENDED_ERROR_MESSAGE_BYTES: Final = 128


class ErrorCode(enum.IntEnum):
    """The ``code`` of an ``error`` message (02-dht-rpc.md §5)."""

    #: The request decoded but is not acceptable (for example a response type sent as a request).
    BAD_REQUEST = 1
    #: The request's ``type`` is not one this node serves.
    UNKNOWN_REQUEST = 2
    #: The request or the value it carries exceeds the receiver's limits.
    TOO_LARGE = 3
    #: The sender is over the receiver's request rate limit.
    RATE_LIMITED = 4
    #: The receiver has no room left for the value (quota per peer or in total).
    STORAGE_FULL = 5
    #: The key does not match the value (``key != immutable_key(value)``).
    INVALID_VALUE = 6
    #: The receiver runs in client mode and answers no DHT requests.
    NOT_SERVING = 7
    #: The receiver failed for a reason of its own.
    INTERNAL = 8
    #: A STORE's signed record came without ``pk`` and the receiver holds no
    #: certificate of its owner: offer it again with ``pk`` (07-records.md §4).
    OWNER_KEY_UNKNOWN = 9
    #: A STORE's record is older than (or loses the equal-``seq`` tie-break to)
    #: what the receiver holds (07-records.md §7.1 ``seq-regression``, ``seq-conflict``).
    STALE = 10
    #: A STORE's ``cas`` is not the sequence number the receiver holds.
    CAS_MISMATCH = 11


def new_rid(randbytes: Callable[[int], bytes] = os.urandom) -> bytes:
    """A fresh random request ID (``randbytes`` is injectable for tests)."""
    rid = randbytes(RID_SIZE)
    if type(rid) is not bytes or len(rid) != RID_SIZE:
        raise ConfigError(f"randbytes({RID_SIZE}) must return {RID_SIZE} bytes")
    return rid


# ------------------------------------------------------------------ validators


def _exact_bytes(size: int) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if type(value) is not bytes or len(value) != size:
            got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
            raise ConfigError(f"{attribute.name} must be {size} bytes, got {got}")

    return check


def _check_record(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, RECORD_TYPES):
        raise ConfigError(f"{attribute.name} must be a record, got {type(value).__name__}")


def _check_cas(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (type(value) is not int or not 0 <= value <= 2**64 - 1):
        raise ConfigError(f"{attribute.name} must be an unsigned 64-bit integer or None")


#: Longest lifetime a path-cache STORE may ask for (07-records.md §10.6), seconds.
MAX_CACHE_LIFETIME: Final = 86400


def _check_cache(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (type(value) is not int or not 1 <= value <= MAX_CACHE_LIFETIME):
        raise ConfigError(f"{attribute.name} must be an integer in 1..{MAX_CACHE_LIFETIME} or None")


def _to_entries(value: Any) -> tuple[SetEntry, ...]:
    return tuple(value)


def _parse_single_record(obj: Any, path: str) -> AnyRecord:
    record = decode_object(obj, path=path, expect=SINGLE_RECORD_TYPES)
    assert isinstance(record, SINGLE_RECORD_TYPES)
    return record


def _parse_set_entry(obj: Any, path: str) -> SetEntry:
    record = decode_object(obj, path=path, expect=(SetEntry,))
    assert isinstance(record, SetEntry)
    return record


def _parse_any_record(obj: Any, path: str) -> AnyRecord:
    record = decode_object(obj, path=path, expect=RECORD_TYPES)
    assert isinstance(record, RECORD_TYPES)
    return record


def _to_have(value: Iterable[bytes]) -> tuple[bytes, ...]:
    return tuple(value)


def _check_have(_: Any, attribute: attrs.Attribute[Any], value: tuple[bytes, ...]) -> None:
    if len(value) > MAX_HAVE:
        raise ConfigError(f"{attribute.name} holds {len(value)} owners, limit {MAX_HAVE}")
    for owner in value:
        if type(owner) is not bytes or len(owner) != OWNER_HASH_SIZE:
            raise ConfigError(f"{attribute.name} must hold {OWNER_HASH_SIZE}-byte owners")


def _parse_owner(obj: Any, path: str) -> bytes:
    return check_bytes(obj, path, size=OWNER_HASH_SIZE)


def _to_contacts(value: Iterable[Contact]) -> tuple[Contact, ...]:
    return tuple(value)


def _check_contacts(_: Any, attribute: attrs.Attribute[Any], value: tuple[Contact, ...]) -> None:
    if len(value) > MAX_NODES:
        raise ConfigError(f"{attribute.name} holds {len(value)} contacts, limit {MAX_NODES}")
    for item in value:
        if not isinstance(item, Contact):
            raise ConfigError(f"{attribute.name} must hold Contact objects, got {item!r}")


def _check_code(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is not int or not 0 <= value <= 2**64 - 1:
        raise ConfigError(f"{attribute.name} must be an unsigned 64-bit integer, got {value!r}")


def _to_code(value: Any) -> Any:
    # ErrorCode members become plain ints so that equality and encoding never
    # depend on how the code was spelled.
    return int(value) if isinstance(value, enum.IntEnum) else value


def _check_text(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is not str:
        raise ConfigError(f"{attribute.name} must be a str, got {type(value).__name__}")
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise ConfigError(f"{attribute.name} is not valid Unicode text") from None
    if size > MAX_ERROR_MESSAGE_BYTES:
        raise ConfigError(
            f"{attribute.name} is {size} UTF-8 bytes, more than {MAX_ERROR_MESSAGE_BYTES}"
        )


def _check_optional_rid(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _exact_bytes(RID_SIZE)(_, attribute, value)


_rid = _exact_bytes(RID_SIZE)
_key = _exact_bytes(KEY_SIZE)


def _check_bool(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) is not bool:
        raise ConfigError(f"{attribute.name} must be a bool, got {type(value).__name__}")


def _read_ro(reader: FieldReader) -> bool:
    """The optional ``ro`` flag of a request: ``true`` or absent (02-dht-rpc.md §1.2)."""
    ro = reader.bool_("ro", optional=True)
    if ro is False:
        # One encoding per message: "not read-only" is written by leaving ro out.
        raise DecodeError("field-value", child_path(reader.path, "ro"), "ro is true or absent")
    return ro is True


def _check_ws(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (type(value) is not int or not 1 <= value <= 65535):
        raise ConfigError(f"{attribute.name} must be a port in 1..65535 or None, got {value!r}")


def _read_ws(reader: FieldReader) -> int | None:
    """The optional ``ws`` port of a request (02-dht-rpc.md §1.3)."""
    port: int | None = reader.uint("ws", min_value=1, max_value=65535, optional=True)
    return port


def _with_flags(obj: dict[str, Any], ro: bool, ws: int | None) -> dict[str, Any]:
    if ro:
        obj["ro"] = True
    if ws is not None:
        obj["ws"] = ws
    return obj


# -------------------------------------------------------------------- messages


@register
@attrs.frozen
class Ping:
    """PING: is the receiver alive?  Answered with :class:`Pong`."""

    TYPE: ClassVar[str] = "ping"
    rid: bytes = attrs.field(validator=_rid)
    #: The requester is read-only (client mode, BEP 43 style): do not add it to
    #: routing tables, it answers no requests (02-dht-rpc.md §1.2).
    ro: bool = attrs.field(default=False, kw_only=True, validator=_check_bool)
    #: The WebSocket port the requester listens on, at the IP address it
    #: connects from (02-dht-rpc.md §1.3); None: not given.
    ws: int | None = attrs.field(default=None, kw_only=True, validator=_check_ws)

    def to_cbor(self) -> dict[str, Any]:
        return _with_flags({"type": self.TYPE, "rid": self.rid}, self.ro, self.ws)

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Ping:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        ro = _read_ro(reader)
        ws = _read_ws(reader)
        reader.finish()
        return cls(rid, ro=ro, ws=ws)


@register
@attrs.frozen
class Pong:
    """PONG: the answer to :class:`Ping`."""

    TYPE: ClassVar[str] = "pong"
    rid: bytes = attrs.field(validator=_rid)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "rid": self.rid}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Pong:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        reader.finish()
        return cls(rid)


@register
@attrs.frozen
class FindNode:
    """FIND_NODE: the contacts closest to ``target`` the receiver knows (see :class:`Nodes`)."""

    TYPE: ClassVar[str] = "find_node"
    rid: bytes = attrs.field(validator=_rid)
    target: bytes = attrs.field(validator=_key)
    #: The requester is read-only (client mode, BEP 43 style): do not add it to
    #: routing tables, it answers no requests (02-dht-rpc.md §1.2).
    ro: bool = attrs.field(default=False, kw_only=True, validator=_check_bool)
    #: The WebSocket port the requester listens on, at the IP address it
    #: connects from (02-dht-rpc.md §1.3); None: not given.
    ws: int | None = attrs.field(default=None, kw_only=True, validator=_check_ws)

    def to_cbor(self) -> dict[str, Any]:
        return _with_flags(
            {"type": self.TYPE, "rid": self.rid, "target": self.target}, self.ro, self.ws
        )

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> FindNode:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        target = reader.bytes_("target", size=KEY_SIZE)
        ro = _read_ro(reader)
        ws = _read_ws(reader)
        reader.finish()
        return cls(rid, target, ro=ro, ws=ws)


@register
@attrs.frozen
class Nodes:
    """NODES: up to :data:`MAX_NODES` contacts, answering FIND_NODE or FIND_VALUE."""

    TYPE: ClassVar[str] = "nodes"
    rid: bytes = attrs.field(validator=_rid)
    nodes: tuple[Contact, ...] = attrs.field(converter=_to_contacts, validator=_check_contacts)

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "rid": self.rid,
            "nodes": [contact.to_cbor() for contact in self.nodes],
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Nodes:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        nodes = reader.array("nodes", Contact.from_cbor, max_len=MAX_NODES)
        reader.finish()
        return cls(rid, nodes)


@register
@attrs.frozen
class FindValue:
    """FIND_VALUE: the value under ``key``, answered with :class:`Value` or :class:`Nodes`."""

    TYPE: ClassVar[str] = "find_value"
    rid: bytes = attrs.field(validator=_rid)
    key: bytes = attrs.field(validator=_key)
    #: Paging a set (02-dht-rpc.md §4.2): the owners of the entries the
    #: requester already read from this holder, which leaves them out of its
    #: answer.  Empty: not paging.
    have: tuple[bytes, ...] = attrs.field(
        default=(), kw_only=True, converter=_to_have, validator=_check_have
    )
    #: The requester is read-only (client mode, BEP 43 style): do not add it to
    #: routing tables, it answers no requests (02-dht-rpc.md §1.2).
    ro: bool = attrs.field(default=False, kw_only=True, validator=_check_bool)
    #: The WebSocket port the requester listens on, at the IP address it
    #: connects from (02-dht-rpc.md §1.3); None: not given.
    ws: int | None = attrs.field(default=None, kw_only=True, validator=_check_ws)

    def to_cbor(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"type": self.TYPE, "rid": self.rid, "key": self.key}
        if self.have:
            obj["have"] = list(self.have)
        return _with_flags(obj, self.ro, self.ws)

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> FindValue:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        key = reader.bytes_("key", size=KEY_SIZE)
        have = reader.array("have", _parse_owner, min_len=1, max_len=MAX_HAVE, optional=True)
        ro = _read_ro(reader)
        ws = _read_ws(reader)
        reader.finish()
        return cls(rid, key, have=have or (), ro=ro, ws=ws)


@register
@attrs.frozen
class Value:
    """VALUE: what the receiver holds under the requested key (02-dht-rpc.md §4.2).

    Exactly one of ``record`` (an immutable or mutable record, or a
    tombstone) and ``records`` (1 .. :data:`MAX_VALUE_RECORDS` entries of a
    multi-publisher set) is set.  ``more`` (with ``records`` only) says the
    holder left out live entries for lack of room: ask again with ``have``.
    """

    TYPE: ClassVar[str] = "value"
    rid: bytes = attrs.field(validator=_rid)
    record: AnyRecord | None = attrs.field(default=None)
    records: tuple[SetEntry, ...] = attrs.field(default=(), converter=_to_entries)
    more: bool = attrs.field(default=False, kw_only=True, validator=_check_bool)

    def __attrs_post_init__(self) -> None:
        if (self.record is None) == (not self.records):
            raise ConfigError("a value carries exactly one of record and records")
        if self.more and self.record is not None:
            raise ConfigError("more goes with records (a set answer), not with record")
        if self.record is not None and not isinstance(self.record, SINGLE_RECORD_TYPES):
            raise ConfigError(
                "record must be an immutable or mutable record or a tombstone "
                f"(set entries go in records), got {type(self.record).__name__}"
            )
        if len(self.records) > MAX_VALUE_RECORDS:
            raise ConfigError(
                f"records holds {len(self.records)} entries, limit {MAX_VALUE_RECORDS}"
            )
        for entry in self.records:
            if not isinstance(entry, SetEntry):
                raise ConfigError(f"records must hold set entries, got {type(entry).__name__}")

    def to_cbor(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"type": self.TYPE, "rid": self.rid}
        if self.record is not None:
            obj["record"] = self.record.to_cbor()
        else:
            obj["records"] = [entry.to_cbor() for entry in self.records]
            if self.more:
                obj["more"] = True
        return obj

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Value:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        if reader.has("records") and not reader.has("record"):
            records = reader.array(
                "records", _parse_set_entry, min_len=1, max_len=MAX_VALUE_RECORDS
            )
            more = reader.bool_("more", optional=True)
            if more is False:
                # One encoding per message: "nothing left out" is written by leaving more out.
                raise DecodeError("field-value", child_path(path, "more"), "more is true or absent")
            reader.finish()
            return cls(rid, records=records, more=more is True)
        # With both fields, ``records`` is left unread: finish() names it
        # unknown; so is ``more`` next to ``record``.
        record = reader.nested("record", _parse_single_record)
        reader.finish()
        return cls(rid, record)


@register
@attrs.frozen
class Store:
    """STORE: keep ``record`` under ``key``; answered with :class:`Stored` (02-dht-rpc.md §4.3).

    ``cas`` is the publisher's compare-and-swap precondition (07-records.md
    §7.1 step 5): the ``seq`` it expects the receiver to hold.  Only the
    publisher sends it; replication and entry correction never do.
    """

    TYPE: ClassVar[str] = "store"
    rid: bytes = attrs.field(validator=_rid)
    key: bytes = attrs.field(validator=_key)
    record: AnyRecord = attrs.field(validator=_check_record)
    cas: int | None = attrs.field(default=None, kw_only=True, validator=_check_cas)
    #: A path-cache store (07-records.md §10.6): keep the record as a cached
    #: entry for at most this many seconds.  Never together with ``cas``.
    cache: int | None = attrs.field(default=None, kw_only=True, validator=_check_cache)
    #: The requester is read-only (client mode, BEP 43 style): do not add it to
    #: routing tables, it answers no requests (02-dht-rpc.md §1.2).
    ro: bool = attrs.field(default=False, kw_only=True, validator=_check_bool)
    #: The WebSocket port the requester listens on, at the IP address it
    #: connects from (02-dht-rpc.md §1.3); None: not given.
    ws: int | None = attrs.field(default=None, kw_only=True, validator=_check_ws)

    def __attrs_post_init__(self) -> None:
        if self.cas is not None and self.cache is not None:
            raise ConfigError("a STORE carries cas or cache, not both (07-records.md §10.6)")

    def to_cbor(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "type": self.TYPE,
            "rid": self.rid,
            "key": self.key,
            "record": self.record.to_cbor(),
        }
        if self.cas is not None:
            obj["cas"] = self.cas
        if self.cache is not None:
            obj["cache"] = self.cache
        return _with_flags(obj, self.ro, self.ws)

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Store:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        key = reader.bytes_("key", size=KEY_SIZE)
        record = reader.nested("record", _parse_any_record)
        cas = reader.uint("cas", optional=True)
        cache = reader.uint("cache", min_value=1, max_value=MAX_CACHE_LIFETIME, optional=True)
        if cas is not None and cache is not None:
            raise DecodeError("field-value", child_path(path, "cache"), "cache and cas together")
        ro = _read_ro(reader)
        ws = _read_ws(reader)
        reader.finish()
        return cls(rid, key, record, cas=cas, cache=cache, ro=ro, ws=ws)

    @classmethod
    def of(
        cls, rid: bytes, record: AnyRecord, *, cas: int | None = None, ro: bool = False
    ) -> Store:
        """A STORE of ``record`` under the key it derives (07-records.md §3)."""
        return cls(rid, record.key(), record, cas=cas, ro=ro)


@register
@attrs.frozen
class Stored:
    """STORED: the receiver now holds the value of the STORE with this ``rid``."""

    TYPE: ClassVar[str] = "stored"
    rid: bytes = attrs.field(validator=_rid)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "rid": self.rid}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Stored:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        reader.finish()
        return cls(rid)


@register
@attrs.frozen
class ErrorMessage:
    """ERROR: the request with ``rid`` failed (``rid`` is None if it could not be read)."""

    TYPE: ClassVar[str] = "error"
    code: int = attrs.field(converter=_to_code, validator=_check_code)
    message: str = attrs.field(default="", validator=_check_text)
    rid: bytes | None = attrs.field(default=None, validator=_check_optional_rid)

    @property
    def error_code(self) -> ErrorCode | None:
        """``code`` as an :class:`ErrorCode`, or None for a code this version does not know."""
        try:
            return ErrorCode(self.code)
        except ValueError:
            return None

    def to_cbor(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"type": self.TYPE, "code": self.code, "message": self.message}
        if self.rid is not None:
            obj["rid"] = self.rid
        return obj

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> ErrorMessage:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE, optional=True)
        code = reader.uint("code")
        message = reader.text("message", max_len=MAX_ERROR_MESSAGE_BYTES)
        reader.finish()
        return cls(code, message, rid)


DhtRequest: TypeAlias = Ping | FindNode | FindValue | Store
DhtResponse: TypeAlias = Pong | Nodes | Value | Stored | ErrorMessage
DhtMessage: TypeAlias = DhtRequest | DhtResponse

#: The response types that may answer each request type (ERROR answers any).
RESPONSE_TYPES: Final[dict[type[DhtRequest], tuple[type[DhtResponse], ...]]] = {
    Ping: (Pong, ErrorMessage),
    FindNode: (Nodes, ErrorMessage),
    FindValue: (Value, Nodes, ErrorMessage),
    Store: (Stored, ErrorMessage),
}
