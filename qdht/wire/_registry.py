"""The registry of protocol messages, keyed by their ``type`` field.

Every message body is a CBOR map whose ``type`` field names its CDDL rule
(``protocol-spec/00-conventions.md`` §5), so a receiver picks the one class
that may parse it instead of trying each.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar, Final, Protocol, Self, TypeVar

from qdht.errors import DecodeError
from qdht.wire._cbor import DEFAULT_LIMITS, CborLimits, dumps_canonical, loads_canonical

__all__ = [
    "WireMessage",
    "decode",
    "decode_object",
    "encode",
    "message_types",
    "peek_type",
    "register",
    "register_lazy",
]

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
#: Types whose module is not imported yet → that module (see :func:`register_lazy`).
_LAZY: dict[str, str] = {}


def register(cls: M) -> M:
    """Class decorator: make ``cls`` decodable by :func:`decode` under ``cls.TYPE``."""
    existing = _REGISTRY.get(cls.TYPE)
    if existing is not None and existing is not cls:
        raise RuntimeError(f"message type {cls.TYPE!r} registered twice")
    _REGISTRY[cls.TYPE] = cls
    _LAZY.pop(cls.TYPE, None)
    return cls


def register_lazy(module: str, types: tuple[str, ...]) -> None:
    """Declare that importing ``module`` registers ``types``; import it on first use.

    The messages of an optional layer cost a node that never speaks them
    nothing (issue 19): the first :func:`decode` of one of ``types`` imports
    ``module``, whose ``@register`` classes then take over.
    """
    for type_name in types:
        if type_name in _REGISTRY:
            raise RuntimeError(f"message type {type_name!r} registered twice")
        _LAZY[type_name] = module


def _load(type_name: str) -> type[WireMessage] | None:
    module = _LAZY.pop(type_name, None)
    if module is not None:
        importlib.import_module(module)
    return _REGISTRY.get(type_name)


def message_types() -> dict[str, type[WireMessage]]:
    """A copy of the registry: ``type`` value → message class (lazy modules imported)."""
    for type_name in list(_LAZY):
        _load(type_name)
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
        if type_name in _LAZY and expect is not None:
            # Every class in ``expect`` is imported, so this type is not one of
            # them: refuse it without loading a layer for a remote peer's sake.
            raise DecodeError("unexpected-type", f"{path}.type", repr(type_name))
        cls = _load(type_name)
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


_TYPE_KEY: Final = b"\x64type"  # the text string "type", CBOR-encoded


def _skip(data: bytes, pos: int, depth: int) -> int:
    """The offset after the CBOR item at ``pos``; raises IndexError/ValueError on garbage."""
    if depth > 8:
        raise ValueError("too deep")
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if info < 24:
        arg = info
    elif info <= 27:
        size = 1 << (info - 24)
        arg = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    else:
        raise ValueError("indefinite or reserved length")
    if major in (0, 1, 7):
        return pos
    if major in (2, 3):
        return pos + arg
    if major == 6:
        return _skip(data, pos, depth + 1)
    count = arg if major == 4 else 2 * arg
    for _ in range(count):
        pos = _skip(data, pos, depth + 1)
    return pos


def peek_type(payload: bytes) -> str | None:
    """The ``type`` field of an encoded message, without decoding the rest.

    What a node dispatches on (00-conventions.md §5): a message body is a map
    whose ``type`` is a short text string.  None when ``payload`` is not such
    a map or has no usable ``type``; the service that gets it then decodes it
    fully and reports the error.  Canonical encoding puts ``type`` after the
    shorter keys only, so this skips one to three small fields at most.
    """
    try:
        initial = payload[0]
        if initial >> 5 != 5:
            return None
        info = initial & 0x1F
        if info < 24:
            pairs, pos = info, 1
        elif info == 24:
            pairs, pos = payload[1], 2
        else:
            return None
        for _ in range(pairs):
            if payload.startswith(_TYPE_KEY, pos):
                head = payload[pos + 5]
                if head >> 5 != 3:
                    return None
                length, start = head & 0x1F, pos + 6
                if length == 24:
                    length, start = payload[start], start + 1
                elif length > 24:
                    return None
                end = start + length
                if length > MAX_TYPE_LEN or end > len(payload):
                    return None
                return payload[start:end].decode("utf-8")
            pos = _skip(payload, _skip(payload, pos, 0), 0)
    except (IndexError, ValueError, UnicodeDecodeError):
        return None
    return None
