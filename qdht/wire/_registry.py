"""The registry of protocol messages, keyed by their ``type`` field.

Every message body is a CBOR map whose ``type`` field names its CDDL rule
(``protocol-spec/00-conventions.md`` §5), so a receiver picks the one class
that may parse it instead of trying each.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Protocol, Self, TypeVar

from qdht.errors import DecodeError
from qdht.wire._cbor import DEFAULT_LIMITS, CborLimits, dumps_canonical, loads_canonical

__all__ = ["WireMessage", "decode", "decode_object", "encode", "message_types", "register"]

#: Longest allowed ``type`` value, in bytes.
MAX_TYPE_LEN: Final = 32


class WireMessage(Protocol):
    """What every message class provides (an ``@attrs.frozen`` class in practice)."""

    #: The value of the message's ``type`` field, also the suffix of its CDDL rule.
    TYPE: ClassVar[str]

    def to_cbor(self) -> dict[str, Any]:
        """The message as a CBOR map, ``type`` field included."""
        ...

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Self:
        """Parse a decoded map; raise DecodeError naming the offending field."""
        ...


M = TypeVar("M", bound=type[WireMessage])

_REGISTRY: dict[str, type[WireMessage]] = {}


def register(cls: M) -> M:
    """Class decorator: make ``cls`` decodable by :func:`decode` under ``cls.TYPE``."""
    existing = _REGISTRY.get(cls.TYPE)
    if existing is not None and existing is not cls:
        raise RuntimeError(f"message type {cls.TYPE!r} registered twice")
    _REGISTRY[cls.TYPE] = cls
    return cls


def message_types() -> dict[str, type[WireMessage]]:
    """A copy of the registry: ``type`` value → message class."""
    return dict(_REGISTRY)


def encode(message: WireMessage) -> bytes:
    """The deterministic CBOR encoding of ``message``."""
    return dumps_canonical(message.to_cbor())


def decode(
    data: bytes | bytearray | memoryview,
    *,
    limits: CborLimits = DEFAULT_LIMITS,
    expect: tuple[type[WireMessage], ...] | None = None,
) -> WireMessage:
    """Decode one message strictly; raise only :class:`qdht.errors.DecodeError`.

    ``expect`` restricts the classes acceptable in the caller's context (for
    example only transport packets on the outer layer); any other registered
    type is rejected with reason ``unexpected-type``.
    """
    return decode_object(loads_canonical(data, limits), expect=expect)


def decode_object(
    obj: object, *, path: str = "$", expect: tuple[type[WireMessage], ...] | None = None
) -> WireMessage:
    """Turn an already-decoded CBOR map into its message class."""
    if type(obj) is not dict:
        raise DecodeError("not-a-map", path, "a message body must be a map")
    if "type" not in obj:
        raise DecodeError("missing-type", f"{path}.type")
    type_name = obj["type"]
    if type(type_name) is not str or len(type_name.encode()) > MAX_TYPE_LEN:
        raise DecodeError("field-type", f"{path}.type", "type must be a short text string")
    cls = _REGISTRY.get(type_name)
    if cls is None:
        raise DecodeError("unknown-type", f"{path}.type", repr(type_name))
    if expect is not None and cls not in expect:
        raise DecodeError("unexpected-type", f"{path}.type", repr(type_name))
    try:
        return cls.from_cbor(obj, path)
    except DecodeError:
        raise
    except Exception as exc:  # a parser bug must still surface as a decode error
        raise DecodeError("malformed", path, f"{type(exc).__name__}: {exc}") from None
