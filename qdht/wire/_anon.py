"""Anonymous DHT operations: the requests an exit runs and its answer (10-mixnet.md §14).

These messages never travel over a session: a client puts ``exit_get`` or
``exit_put`` in the payload of one Sphinx packet (with a reply block) to an
exit mix, which runs the operation as an ordinary node and sends
``exit_answer`` back through the reply block.  The asker checks every record
it gets back (07-records.md §6), so an exit can withhold but not forge.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import attrs

from qdht.errors import ConfigError, DecodeError
from qdht.wire._contact import NODE_ID_SIZE
from qdht.wire._dht import KEY_SIZE
from qdht.wire._fields import FieldReader, child_path
from qdht.wire._records import ImmutableRecord, MutableRecord, Tombstone, decode_record
from qdht.wire._registry import register

__all__ = [
    "ANON_RECORD_TYPES",
    "ANON_STATUSES",
    "MAX_ANSWER_FRAGMENTS",
    "MAX_FORWARD_SIZE",
    "AnonAnswer",
    "AnonForward",
    "AnonGet",
    "AnonHandoff",
    "AnonHandoffAck",
    "AnonPut",
    "AnonRecord",
]

#: What an exit reports: a record found, none found, the record stored, or failure;
#: or that the answer needs more reply blocks than the request carried (§14.6).
ANON_STATUSES: Final = frozenset(
    {"found", "not-found", "stored", "failed", "too-large", "delivered"}
)
#: A fragment count is one byte (10-mixnet.md §14.6).
MAX_ANSWER_FRAGMENTS: Final = 255

#: The records an anonymous operation carries: one record under one key.
AnonRecord = ImmutableRecord | MutableRecord | Tombstone
ANON_RECORD_TYPES: Final = (ImmutableRecord, MutableRecord, Tombstone)
_SINGLE: Final = ANON_RECORD_TYPES


def _parse_single(obj: Any, path: str) -> AnonRecord:
    record = decode_record(obj, path)
    if not isinstance(record, _SINGLE):
        raise DecodeError("unexpected-type", child_path(path, "type"), "a set entry")
    return record


def _check_single(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, _SINGLE):
        raise ConfigError(f"{attribute.name} must be an immutable, mutable or tombstone record")


@register
@attrs.frozen
class AnonGet:
    """EXIT_GET: the exit looks ``key`` up and answers with what it found."""

    TYPE: ClassVar[str] = "exit_get"
    key: bytes = attrs.field()

    @key.validator
    def _check(self, _: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not bytes or len(value) != KEY_SIZE:
            raise ConfigError(f"key must be {KEY_SIZE} bytes")

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "key": self.key}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> AnonGet:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        key = reader.bytes_("key", size=KEY_SIZE)
        reader.finish()
        return cls(key)


@register
@attrs.frozen
class AnonPut:
    """EXIT_PUT: the exit stores ``record`` under the key it derives (07-records.md §3)."""

    TYPE: ClassVar[str] = "exit_put"
    record: AnonRecord = attrs.field(validator=_check_single)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "record": self.record.to_cbor()}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> AnonPut:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        record = reader.nested("record", _parse_single)
        reader.finish()
        return cls(record)


@register
@attrs.frozen
class AnonAnswer:
    """EXIT_ANSWER: how the exit's operation ended; ``record`` only with ``found``.

    ``too-large``: the answer takes ``fragments`` reply blocks (2..255), more
    than the request brought; the asker may ask again with that many.
    """

    TYPE: ClassVar[str] = "exit_answer"
    status: str = attrs.field()
    record: AnonRecord | None = attrs.field(default=None)
    fragments: int | None = attrs.field(default=None)

    @status.validator
    def _check_status(self, _: attrs.Attribute[Any], value: object) -> None:
        if value not in ANON_STATUSES:
            raise ConfigError(f"status must be one of {sorted(ANON_STATUSES)}, got {value!r}")

    @record.validator
    def _check_record(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if (value is not None) != (self.status == "found"):
            raise ConfigError("an answer carries a record exactly when its status is 'found'")
        if value is not None:
            _check_single(self, attribute, value)

    @fragments.validator
    def _check_fragments(self, _: attrs.Attribute[Any], value: object) -> None:
        if (value is not None) != (self.status == "too-large"):
            raise ConfigError("an answer carries fragments exactly when its status is 'too-large'")
        if value is not None and (type(value) is not int or not 2 <= value <= 255):
            raise ConfigError(f"fragments must be an integer in 2..255, got {value!r}")

    def to_cbor(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"type": self.TYPE, "status": self.status}
        if self.record is not None:
            obj["record"] = self.record.to_cbor()
        if self.fragments is not None:
            obj["fragments"] = self.fragments
        return obj

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> AnonAnswer:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        status = reader.text("status", max_len=16, choices=ANON_STATUSES)
        record = reader.nested("record", _parse_single, optional=True)
        fragments = reader.uint(
            "fragments", min_value=2, max_value=MAX_ANSWER_FRAGMENTS, optional=True
        )
        reader.finish()
        if (record is not None) != (status == "found"):
            raise DecodeError(
                "field-value", child_path(path, "record"), "a record exactly with 'found'"
            )
        if (fragments is not None) != (status == "too-large"):
            raise DecodeError(
                "field-value", child_path(path, "fragments"), "fragments exactly with 'too-large'"
            )
        return cls(status, record, fragments)


# ---------------------------------------------------------------- forward to a node (§14.7)

#: The largest message an exit forwards to a node (it may come in fragments, §14.6).
MAX_FORWARD_SIZE: Final = 65536
#: A hand-off's id: random, chosen by the exit, echoed by the node.
_HANDOFF_ID_SIZE: Final = 16


def _check_message(value: object) -> None:
    if type(value) is not bytes or not 1 <= len(value) <= MAX_FORWARD_SIZE:
        raise ConfigError(f"message must be 1..{MAX_FORWARD_SIZE} bytes")


def _check_sized(name: str, size: int, value: object) -> None:
    if type(value) is not bytes or len(value) != size:
        raise ConfigError(f"{name} must be {size} bytes")


@register
@attrs.frozen
class AnonForward:
    """EXIT_FORWARD: the exit hands ``message`` (one encoded message) to node ``node``.

    The exit answers ``delivered`` when the node accepted it, else ``failed``.
    """

    TYPE: ClassVar[str] = "exit_forward"
    node: bytes = attrs.field()
    message: bytes = attrs.field()

    def __attrs_post_init__(self) -> None:
        _check_sized("node", NODE_ID_SIZE, self.node)
        _check_message(self.message)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "node": self.node, "message": self.message}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> AnonForward:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        node = reader.bytes_("node", size=NODE_ID_SIZE)
        message = reader.bytes_("message", min_size=1, max_size=MAX_FORWARD_SIZE)
        reader.finish()
        return cls(node, message)


@register
@attrs.frozen
class AnonHandoff:
    """HANDOFF (a session message, exit → node): a message from an anonymous sender."""

    TYPE: ClassVar[str] = "handoff"
    id: bytes = attrs.field()
    message: bytes = attrs.field()

    def __attrs_post_init__(self) -> None:
        _check_sized("id", _HANDOFF_ID_SIZE, self.id)
        _check_message(self.message)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "id": self.id, "message": self.message}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> AnonHandoff:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        id_ = reader.bytes_("id", size=_HANDOFF_ID_SIZE)
        message = reader.bytes_("message", min_size=1, max_size=MAX_FORWARD_SIZE)
        reader.finish()
        return cls(id_, message)


@register
@attrs.frozen
class AnonHandoffAck:
    """HANDOFF_ACK (node → exit): whether the owning service accepted hand-off ``id``."""

    TYPE: ClassVar[str] = "handoff_ack"
    id: bytes = attrs.field()
    ok: bool = attrs.field()

    def __attrs_post_init__(self) -> None:
        _check_sized("id", _HANDOFF_ID_SIZE, self.id)
        if type(self.ok) is not bool:
            raise ConfigError("ok must be a bool")

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "id": self.id, "ok": self.ok}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> AnonHandoffAck:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        id_ = reader.bytes_("id", size=_HANDOFF_ID_SIZE)
        ok = reader.bool_("ok")
        reader.finish()
        return cls(id_, ok)
