"""Watching keys: WATCH, WATCHING, NOTIFY and NOTIFIED.

Implements ``protocol-spec/08-watch.md``.  A *watcher* asks the nodes that
hold a key to tell it when the record(s) under the key change; each such
*holder* answers ``watching`` with the lifetime it grants, and pushes a
``notify`` whenever it accepts a newer record under the key, accepts a
tombstone, or sees the key's record expire.  ``notify`` is itself a request,
acknowledged with ``notified``, so a holder learns which watchers are gone.

=============  ==========================  =========================================
request        success response            meaning
=============  ==========================  =========================================
``watch``      ``watching``                tell me about changes under ``key`` for ``ttl`` s
``notify``     ``notified``                the record(s) under ``key`` changed
=============  ==========================  =========================================

Either request may instead be answered with ``error``
(:class:`~qdht.wire.ErrorMessage`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import attrs

from qdht.errors import ConfigError, DecodeError
from qdht.wire._dht import KEY_SIZE, RID_SIZE, ErrorMessage
from qdht.wire._fields import FieldReader, child_path
from qdht.wire._records import RECORD_TYPES, AnyRecord, Tombstone, decode_record
from qdht.wire._registry import register

__all__ = [
    "MAX_WATCH_TTL",
    "NOTIFY_EVENTS",
    "WATCH_RESPONSE_TYPES",
    "Notified",
    "Notify",
    "Watch",
    "Watching",
]

#: Longest subscription a ``watch`` may ask for and a ``watching`` may grant, in seconds.
MAX_WATCH_TTL: Final = 600
#: What a ``notify`` reports (08-watch.md §4.1), named after its record.
NOTIFY_EVENTS: Final = ("update", "deleted", "expired")

# ------------------------------------------------------------------ validators


def _exact(size: int) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not bytes or len(value) != size:
            raise ConfigError(f"{attribute.name} must be {size} bytes")

    return check


def _ttl(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or not 0 <= value <= MAX_WATCH_TTL:
        raise ConfigError(f"{attribute.name} must be an integer in 0..{MAX_WATCH_TTL}")


def _optional_uint(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (type(value) is not int or not 0 <= value <= 2**64 - 1):
        raise ConfigError(f"{attribute.name} must be an unsigned 64-bit integer or None")


def _flag(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not bool:
        raise ConfigError(f"{attribute.name} must be a bool, got {type(value).__name__}")


def _port(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (type(value) is not int or not 1 <= value <= 65535):
        raise ConfigError(f"{attribute.name} must be a port in 1..65535 or None")


def _read_flags(reader: FieldReader) -> tuple[bool, int | None]:
    """The optional ``ro`` and ``ws`` of a request (02-dht-rpc.md §1.2, §1.3)."""
    ro = reader.bool_("ro", optional=True)
    if ro is False:
        raise DecodeError("field-value", child_path(reader.path, "ro"), "ro is true or absent")
    ws: int | None = reader.uint("ws", min_value=1, max_value=65535, optional=True)
    return ro is True, ws


def _with_flags(obj: dict[str, Any], ro: bool, ws: int | None) -> dict[str, Any]:
    if ro:
        obj["ro"] = True
    if ws is not None:
        obj["ws"] = ws
    return obj


_rid = _exact(RID_SIZE)
_key = _exact(KEY_SIZE)


# -------------------------------------------------------------------- messages


@register
@attrs.frozen
class Watch:
    """WATCH: push changes under ``key`` to me for ``ttl`` seconds (0: stop).

    ``since`` is the highest ``seq`` the watcher already holds for the key
    (None: it holds nothing); a holder that takes a *new* subscription sends
    what it holds right away unless that is no newer (08-watch.md §3.2).
    """

    TYPE: ClassVar[str] = "watch"
    rid: bytes = attrs.field(validator=_rid)
    key: bytes = attrs.field(validator=_key)
    ttl: int = attrs.field(validator=_ttl)
    since: int | None = attrs.field(default=None, kw_only=True, validator=_optional_uint)
    #: Client-mode requester (02-dht-rpc.md §1.2).
    ro: bool = attrs.field(default=False, kw_only=True, validator=_flag)
    #: The requester's WebSocket port (02-dht-rpc.md §1.3); None: not given.
    ws: int | None = attrs.field(default=None, kw_only=True, validator=_port)

    def to_cbor(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"type": self.TYPE, "rid": self.rid, "key": self.key, "ttl": self.ttl}
        if self.since is not None:
            obj["since"] = self.since
        return _with_flags(obj, self.ro, self.ws)

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Watch:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        key = reader.bytes_("key", size=KEY_SIZE)
        ttl = reader.uint("ttl", max_value=MAX_WATCH_TTL)
        since = reader.uint("since", optional=True)
        ro, ws = _read_flags(reader)
        reader.finish()
        return cls(rid, key, ttl, since=since, ro=ro, ws=ws)


@register
@attrs.frozen
class Watching:
    """WATCHING: the subscription of the WATCH with ``rid`` lives ``ttl`` seconds (0: ended)."""

    TYPE: ClassVar[str] = "watching"
    rid: bytes = attrs.field(validator=_rid)
    ttl: int = attrs.field(validator=_ttl)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "rid": self.rid, "ttl": self.ttl}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Watching:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        ttl = reader.uint("ttl", max_value=MAX_WATCH_TTL)
        reader.finish()
        return cls(rid, ttl)


def _check_record(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, RECORD_TYPES):
        raise ConfigError(f"{attribute.name} must be a record or None, got {type(value).__name__}")


@register
@attrs.frozen
class Notify:
    """NOTIFY: the record(s) under ``key`` changed at the sending holder.

    ``record`` is the record the holder just accepted (a new version, one set
    entry, or a tombstone: the key was deleted), or None: the key's record
    expired at the holder (a hint, 08-watch.md §4.2).  :attr:`event` names
    which of the three it is.
    """

    TYPE: ClassVar[str] = "notify"
    rid: bytes = attrs.field(validator=_rid)
    key: bytes = attrs.field(validator=_key)
    record: AnyRecord | None = attrs.field(default=None, validator=_check_record)
    ro: bool = attrs.field(default=False, kw_only=True, validator=_flag)
    ws: int | None = attrs.field(default=None, kw_only=True, validator=_port)

    @property
    def event(self) -> str:
        """``"update"``, ``"deleted"`` (a tombstone) or ``"expired"`` (no record)."""
        if self.record is None:
            return "expired"
        return "deleted" if isinstance(self.record, Tombstone) else "update"

    def to_cbor(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"type": self.TYPE, "rid": self.rid, "key": self.key}
        if self.record is not None:
            obj["record"] = self.record.to_cbor()
        return _with_flags(obj, self.ro, self.ws)

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Notify:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        key = reader.bytes_("key", size=KEY_SIZE)
        record = reader.nested("record", decode_record, optional=True)
        ro, ws = _read_flags(reader)
        reader.finish()
        return cls(rid, key, record, ro=ro, ws=ws)


@register
@attrs.frozen
class Notified:
    """NOTIFIED: the NOTIFY with ``rid`` arrived.

    ``stop`` says the receiver does not watch the key (any more): the holder
    drops the subscription (08-watch.md §4.3).
    """

    TYPE: ClassVar[str] = "notified"
    rid: bytes = attrs.field(validator=_rid)
    stop: bool = attrs.field(default=False, kw_only=True, validator=_flag)

    def to_cbor(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"type": self.TYPE, "rid": self.rid}
        if self.stop:
            obj["stop"] = True
        return obj

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Notified:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        stop = reader.bool_("stop", optional=True)
        if stop is False:
            raise DecodeError("field-value", child_path(path, "stop"), "stop is true or absent")
        reader.finish()
        return cls(rid, stop=stop is True)


#: The response types that may answer each watch request type (ERROR answers any).
WATCH_RESPONSE_TYPES: Final[dict[type, tuple[type, ...]]] = {
    Watch: (Watching, ErrorMessage),
    Notify: (Notified, ErrorMessage),
}
