"""ECHO and ECHOED: the diagnostic echo protocol (``protocol-spec/15-echo.md``).

A service of its own, run only by nodes that register it (the worked example
of a node service, ``qdht.testing.echo_service``): a request carries up to
``MAX_ECHO_DATA`` bytes and the answer returns them unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import attrs

from qdht.errors import ConfigError
from qdht.wire._dht import RID_SIZE
from qdht.wire._fields import FieldReader
from qdht.wire._registry import register

__all__ = ["MAX_ECHO_DATA", "Echo", "Echoed"]

#: Most bytes an ECHO may carry (fits one 1200-byte datagram with the session's overhead).
MAX_ECHO_DATA: Final = 1024


def _rid(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not bytes or len(value) != RID_SIZE:
        raise ConfigError(f"{attribute.name} must be {RID_SIZE} bytes")


def _data(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not bytes or len(value) > MAX_ECHO_DATA:
        raise ConfigError(f"{attribute.name} must be bytes of at most {MAX_ECHO_DATA}")


def _parse(cls: type[Echo] | type[Echoed], obj: Any, path: str) -> tuple[bytes, bytes]:
    reader = FieldReader(obj, path)
    reader.type_tag(cls.TYPE)
    rid = reader.bytes_("rid", size=RID_SIZE)
    data = reader.bytes_("data", max_size=MAX_ECHO_DATA)
    reader.finish()
    return rid, data


@register
@attrs.frozen
class Echo:
    """ECHO: please send ``data`` back, answering ``rid``."""

    TYPE: ClassVar[str] = "echo"
    rid: bytes = attrs.field(validator=_rid)
    data: bytes = attrs.field(validator=_data)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "rid": self.rid, "data": self.data}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Echo:
        return cls(*_parse(cls, obj, path))


@register
@attrs.frozen
class Echoed:
    """ECHOED: the ``data`` of the ECHO with ``rid``, unchanged."""

    TYPE: ClassVar[str] = "echoed"
    rid: bytes = attrs.field(validator=_rid)
    data: bytes = attrs.field(validator=_data)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "rid": self.rid, "data": self.data}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Echoed:
        return cls(*_parse(cls, obj, path))
