"""Field-by-field reading of a decoded CBOR map into a message class.

Every message class parses its map with a :class:`FieldReader`, so that every
decode error names the offending field by path and uses the reason codes of
``protocol-spec/00-conventions.md`` §4.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from qdht.errors import DecodeError

__all__ = ["FieldReader", "check_bytes", "check_uint", "child_path"]

T = TypeVar("T")

#: What ``FieldReader._get`` returns for an optional field that is absent.
_ABSENT: Any = object()


def child_path(path: str, key: str | int) -> str:
    """The path of ``key`` (a map key or an array index) inside ``path``."""
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"


class FieldReader:
    """Reads typed fields out of one decoded CBOR map, then checks none are left.

    ``reader.finish()`` must be called last: it rejects fields the message
    does not define (``unknown-field``), because qdht maps are closed
    (``protocol-spec/00-conventions.md`` §5).
    """

    __slots__ = ("_map", "_seen", "path")

    def __init__(self, obj: object, path: str = "$") -> None:
        if type(obj) is not dict:
            raise DecodeError("not-a-map", path, f"expected a map, got {_kind(obj)}")
        self._map: dict[str, Any] = obj
        self._seen: set[str] = set()
        self.path = path

    def _get(self, key: str, optional: bool) -> Any:
        """The field's value; ``_ABSENT`` if an optional field is not there.

        An optional field that is present must hold a value of its type: a
        CBOR ``null`` is not the same as leaving the field out.
        """
        self._seen.add(key)
        if key not in self._map:
            if optional:
                return _ABSENT
            raise DecodeError("missing-field", child_path(self.path, key))
        return self._map[key]

    def has(self, key: str) -> bool:
        """Whether the map holds ``key`` (does not mark it as read)."""
        return key in self._map

    def type_tag(self, expected: str) -> None:
        """Read the ``type`` field and check it is ``expected``."""
        value = self._get("type", False)
        if value != expected:
            raise DecodeError("wrong-type", child_path(self.path, "type"), f"expected {expected!r}")

    def bytes_(
        self,
        key: str,
        *,
        size: int | None = None,
        min_size: int = 0,
        max_size: int | None = None,
        optional: bool = False,
    ) -> Any:
        """A byte string of exactly ``size`` bytes, or within [min_size, max_size]."""
        value = self._get(key, optional)
        if value is _ABSENT:
            return None
        return check_bytes(
            value, child_path(self.path, key), size=size, min_size=min_size, max_size=max_size
        )

    def text(
        self,
        key: str,
        *,
        max_len: int,
        min_len: int = 0,
        choices: frozenset[str] | None = None,
        optional: bool = False,
    ) -> Any:
        """A text string of at most ``max_len`` UTF-8 bytes, optionally from ``choices``."""
        value = self._get(key, optional)
        if value is _ABSENT:
            return None
        path = child_path(self.path, key)
        if type(value) is not str:
            raise DecodeError("field-type", path, f"expected text, got {_kind(value)}")
        length = len(value.encode())
        if not min_len <= length <= max_len:
            raise DecodeError("field-size", path, f"{length} bytes, allowed {min_len}..{max_len}")
        if choices is not None and value not in choices:
            raise DecodeError("field-value", path, f"{value!r} is not one of {sorted(choices)}")
        return value

    def uint(
        self, key: str, *, max_value: int = 2**64 - 1, min_value: int = 0, optional: bool = False
    ) -> Any:
        """An unsigned integer within [min_value, max_value]."""
        value = self._get(key, optional)
        if value is _ABSENT:
            return None
        return check_uint(value, child_path(self.path, key), min_value, max_value)

    def bool_(self, key: str, *, optional: bool = False) -> Any:
        """A boolean."""
        value = self._get(key, optional)
        if value is _ABSENT:
            return None
        if type(value) is not bool:
            raise DecodeError(
                "field-type", child_path(self.path, key), f"expected bool, got {_kind(value)}"
            )
        return value

    def array(
        self,
        key: str,
        parse_item: Callable[[Any, str], T],
        *,
        max_len: int,
        min_len: int = 0,
        optional: bool = False,
    ) -> Any:
        """An array whose items ``parse_item(item, path)`` turns into values."""
        value = self._get(key, optional)
        if value is _ABSENT:
            return None
        path = child_path(self.path, key)
        if type(value) is not list:
            raise DecodeError("field-type", path, f"expected an array, got {_kind(value)}")
        if not min_len <= len(value) <= max_len:
            raise DecodeError(
                "field-size", path, f"{len(value)} items, allowed {min_len}..{max_len}"
            )
        return tuple(parse_item(item, child_path(path, i)) for i, item in enumerate(value))

    def nested(self, key: str, parse: Callable[[Any, str], T], *, optional: bool = False) -> Any:
        """A nested item parsed by ``parse(item, path)``."""
        value = self._get(key, optional)
        if value is _ABSENT:
            return None
        return parse(value, child_path(self.path, key))

    def finish(self) -> None:
        """Reject any field that was not read."""
        for key in self._map:
            if key not in self._seen:
                raise DecodeError("unknown-field", child_path(self.path, key))


def check_bytes(
    value: object,
    path: str,
    *,
    size: int | None = None,
    min_size: int = 0,
    max_size: int | None = None,
) -> bytes:
    """``value`` as bytes of the allowed size, or DecodeError at ``path``."""
    if type(value) is not bytes:
        raise DecodeError("field-type", path, f"expected bytes, got {_kind(value)}")
    if size is not None:
        if len(value) != size:
            raise DecodeError("field-size", path, f"{len(value)} bytes, expected {size}")
    elif len(value) < min_size or (max_size is not None and len(value) > max_size):
        raise DecodeError("field-size", path, f"{len(value)} bytes, allowed {min_size}..{max_size}")
    return value


def check_uint(value: object, path: str, min_value: int = 0, max_value: int = 2**64 - 1) -> int:
    """``value`` as an unsigned integer in range, or DecodeError at ``path``."""
    if type(value) is not int or value < 0:
        raise DecodeError("field-type", path, f"expected an unsigned integer, got {_kind(value)}")
    if not min_value <= value <= max_value:
        raise DecodeError("field-value", path, f"{value} outside {min_value}..{max_value}")
    return value


def _kind(value: object) -> str:
    """The CBOR kind of a decoded value, for error details."""
    return {
        bytes: "bytes",
        str: "text",
        int: "integer",
        bool: "bool",
        list: "array",
        dict: "map",
        type(None): "null",
    }.get(type(value), type(value).__name__)
