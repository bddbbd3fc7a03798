"""Strict, deterministic CBOR: the one encoding profile of every qdht message.

Implements ``protocol-spec/00-conventions.md`` §2 (encoding profile):
RFC 8949 core deterministic encoding (§4.2.1), text-string map keys only, no
tags, floats or simple values other than ``false``/``true``/``null``, integers
within 64 bits, and limits on size, depth and item counts.

A receiver accepts bytes only if they are exactly the deterministic encoding of
what they decode to: ``dumps(loads(b)) == b``.  That single check rejects
non-shortest integers and lengths, unsorted map keys and trailing bytes;
cbor2 itself is told to reject duplicate keys, indefinite lengths and every
tag (its built-in tag decoders would otherwise build datetimes, regular
expressions, MIME messages or self-referencing containers from remote input).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final, NoReturn

import attrs
import cbor2

from qdht.errors import DecodeError

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_INT",
    "MIN_INT",
    "CborLimits",
    "dumps_canonical",
    "format_path",
    "loads_canonical",
]

MAX_INT: Final = 2**64 - 1
MIN_INT: Final = -(2**64)


@attrs.frozen
class CborLimits:
    """Resource limits applied before and while decoding one data item.

    The defaults are the protocol's (``protocol-spec/00-conventions.md`` §3).
    """

    #: Largest encoded data item accepted, in bytes (72 KiB: a 64 KiB value
    #: plus a signed record's keys, signature and framing).
    max_bytes: int = 72 * 1024
    #: Deepest nesting of arrays and maps (the top-level item is depth 1).
    max_depth: int = 16
    #: Most elements in one array, or entries in one map.
    max_container_len: int = 1024
    #: Most data items in total, counting every nested item once.
    max_items: int = 8192


DEFAULT_LIMITS: Final = CborLimits()

# cbor2 reports these conditions only as message text; map them to the
# protocol's reason codes (anything else is plain "malformed").
_CBOR2_REASONS: Final = (
    ("indefinite length", "indefinite-length"),
    ("Duplicate map key", "duplicate-key"),
    ("nesting depth", "too-deep"),
)


class _TagRejected(Exception):
    """Raised inside cbor2 when the input holds a tag (caught in loads_canonical)."""


def _reject_tag(*_: object) -> NoReturn:
    raise _TagRejected


class _RejectEveryTag(Mapping[int, Any]):
    """A ``semantic_decoders`` table mapping every tag number to a rejection.

    cbor2 consults this table before its built-in decoders, so no tag, known
    or not, is ever interpreted.
    """

    def __getitem__(self, tag: int) -> Any:
        return _reject_tag

    def __contains__(self, tag: object) -> bool:
        return True

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


_NO_TAGS: Final = _RejectEveryTag()


def dumps_canonical(obj: object) -> bytes:
    """Encode ``obj`` with RFC 8949 core deterministic encoding.

    cbor2's ``canonical=True`` sorts map keys length-first, which is the same
    as §4.2.1's bytewise order of encoded keys because every qdht map key is a
    text string (one major type).
    """
    return cbor2.dumps(obj, canonical=True)


def loads_canonical(
    data: bytes | bytearray | memoryview, limits: CborLimits = DEFAULT_LIMITS
) -> Any:
    """Decode one deterministic CBOR data item, or raise :class:`DecodeError`.

    Never raises anything else, whatever ``data`` holds.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("not-bytes", detail=f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise DecodeError("empty")
    if len(data) > limits.max_bytes:
        raise DecodeError("too-large", detail=f"{len(data)} bytes > limit {limits.max_bytes}")
    try:
        obj = cbor2.loads(
            data,
            allow_duplicate_keys=False,
            allow_indefinite=False,
            max_depth=limits.max_depth,
            semantic_decoders=_NO_TAGS,
            tag_hook=_reject_tag,
        )
    except Exception as exc:  # cbor2 raises several kinds; RecursionError included
        text = str(exc)
        if isinstance(exc.__cause__, _TagRejected) or isinstance(exc, _TagRejected):
            raise DecodeError("unsupported-type", detail="tags are not allowed") from None
        for needle, reason in _CBOR2_REASONS:
            if needle in text:
                raise DecodeError(reason, detail=text) from None
        raise DecodeError("malformed", detail=text) from None
    size = _canonical_size(obj, limits)
    if size == len(data):
        return obj
    # Not admissible, or not canonical: find out which, slowly, for the reason.
    _check_item(obj, limits, [], [0])
    try:
        encoded = dumps_canonical(obj)
    except Exception as exc:  # pragma: no cover - _check_item admits only encodable types
        raise DecodeError("malformed", detail=str(exc)) from None
    if encoded != data and data.startswith(encoded):
        raise DecodeError(
            "trailing-bytes", detail=f"{len(data) - len(encoded)} bytes after the data item"
        )
    raise DecodeError("non-deterministic", detail="not the core deterministic encoding")


def format_path(parts: list[str | int]) -> str:
    """Render path components as ``$.field[index]`` (the DecodeError path syntax)."""
    out = ["$"]
    for part in parts:
        out.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(out)


def _head_size(n: int) -> int:
    """Bytes of the shortest CBOR head carrying argument ``n`` (RFC 8949 §4.2.1)."""
    if n < 24:
        return 1
    if n < 0x100:
        return 2
    if n < 0x10000:
        return 3
    if n < 0x100000000:
        return 5
    return 9


def _canonical_size(obj: object, limits: CborLimits) -> int:
    """The length of ``obj``'s deterministic encoding, or -1 if it cannot be accepted.

    -1 means: a type outside the profile, a limit exceeded, or a map whose
    keys are not in deterministic order.  Once cbor2 has rejected tags and
    indefinite lengths, input bytes that decode to ``obj`` differ from its
    deterministic encoding only by key order (checked here) or by
    non-shortest heads, and every non-shortest head makes the input longer.
    So "keys in order and ``len(data) == _canonical_size(obj)``" is exactly
    ``dumps_canonical(obj) == data``, without encoding anything.
    """
    stack: list[tuple[object, int]] = [(obj, 1)]
    count = 0
    total = 0
    max_depth = limits.max_depth
    max_len = limits.max_container_len
    while stack:
        item, depth = stack.pop()
        count += 1
        kind = type(item)
        if kind is bytes:
            n = len(item)  # type: ignore[arg-type]
            total += _head_size(n) + n
        elif kind is str:
            text: str = item  # type: ignore[assignment]
            n = len(text) if text.isascii() else len(text.encode())
            total += _head_size(n) + n
        elif kind is int:
            value: int = item  # type: ignore[assignment]
            if value >= 0:
                if value > MAX_INT:
                    return -1
                total += _head_size(value)
            else:
                if value < MIN_INT:
                    return -1
                total += _head_size(-1 - value)
        elif kind is bool or item is None:
            total += 1
        elif kind is list:
            elements: list[object] = item  # type: ignore[assignment]
            if depth > max_depth or len(elements) > max_len:
                return -1
            total += _head_size(len(elements))
            stack.extend((element, depth + 1) for element in elements)
        elif kind is dict:
            entries: dict[object, object] = item  # type: ignore[assignment]
            if depth > max_depth or len(entries) > max_len:
                return -1
            total += _head_size(len(entries))
            previous: tuple[int, bytes] | None = None
            for key, value_ in entries.items():
                if type(key) is not str:
                    return -1
                encoded = key.encode()
                n = len(encoded)
                total += _head_size(n) + n
                # Deterministic order of text keys: shorter first, then bytewise.
                current = (n, encoded)
                if previous is not None and current <= previous:
                    return -1
                previous = current
                stack.append((value_, depth + 1))
        else:
            return -1
    if count > limits.max_items:
        return -1
    return total


def _check_item(obj: object, limits: CborLimits, parts: list[str | int], count: list[int]) -> None:
    """Admit only the profile's types, within the item-count limits."""
    count[0] += 1
    if count[0] > limits.max_items:
        raise DecodeError(
            "too-many-items", format_path(parts), f"more than {limits.max_items} items"
        )
    # bool before int: bool is a subclass of int and is always allowed.
    if obj is None or obj is True or obj is False or isinstance(obj, bytes | str):
        return
    if type(obj) is int:
        if not MIN_INT <= obj <= MAX_INT:
            raise DecodeError(
                "int-range", format_path(parts), "integer outside 64 bits (bignum tag)"
            )
        return
    # cbor2's own depth guard counts the scalars inside the deepest container
    # too, so it lets one more level of empty containers through; this check
    # is the exact one (the outermost item is at depth 1).
    if (type(obj) is list or type(obj) is dict) and len(parts) >= limits.max_depth:
        raise DecodeError("too-deep", format_path(parts), f"deeper than {limits.max_depth}")
    if type(obj) is list:
        if len(obj) > limits.max_container_len:
            raise DecodeError("too-many-items", format_path(parts), f"array of {len(obj)} elements")
        for index, item in enumerate(obj):
            parts.append(index)
            _check_item(item, limits, parts, count)
            parts.pop()
        return
    if type(obj) is dict:
        if len(obj) > limits.max_container_len:
            raise DecodeError("too-many-items", format_path(parts), f"map of {len(obj)} entries")
        for key, value in obj.items():
            if type(key) is not str:
                raise DecodeError("non-text-key", format_path(parts), f"map key {key!r}")
            parts.append(key)
            _check_item(value, limits, parts, count)
            parts.pop()
        return
    raise DecodeError(
        "unsupported-type",
        format_path(parts),
        f"{type(obj).__name__} (floats, tags and simple values are not allowed)",
    )
