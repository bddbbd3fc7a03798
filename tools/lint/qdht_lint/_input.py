"""Reading messages to lint: raw CBOR, CBOR sequences, hex lines, JSON lines.

* ``cbor``: the whole input is one message (anything after the first item is
  that message's trailing bytes);
* ``cbor-seq``: RFC 8742, consecutive items; split at item boundaries found by
  a permissive decoder, so non-deterministic or profile-breaking items are
  still split where they end;
* ``hex``: one message per line in hex (spaces allowed); blank lines and
  ``#`` comments ignored;
* ``jsonl``: one JSON object per line with a ``"hex"`` field; other fields
  (``"id"``, ``"comment"``, ...) are carried into the report.

``auto`` picks ``jsonl`` if the first non-blank character is ``{``, ``hex`` if
the input is ASCII hex digits, whitespace and ``#`` comments, else
``cbor-seq``.  Problems with the input itself raise :class:`InputError`.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any, Final

import attrs
import cbor2

__all__ = ["FORMATS", "InputError", "Message", "detect_format", "parse_input"]

FORMATS: Final = ("auto", "cbor", "cbor-seq", "hex", "jsonl")

_HEX_TEXT = re.compile(rb"\A(?:[0-9a-fA-F \t\r\n]|#[^\n]*)*\Z")


class InputError(Exception):
    """The linter's own input is unusable (unreadable, empty, not CBOR, bad line)."""


@attrs.frozen
class Message:
    """One message to lint and where it came from."""

    #: ``file:line`` for line formats, ``file@offset`` for CBOR.
    source: str
    data: bytes
    #: Extra JSON-lines fields (``id``, ``comment``, ...).
    fields: dict[str, Any] = attrs.field(factory=dict)


def detect_format(content: bytes) -> str:
    """``jsonl``, ``hex`` or ``cbor-seq`` for ``content`` (see the module doc)."""
    stripped = content.lstrip()
    if stripped.startswith(b"{"):
        return "jsonl"
    if stripped and _HEX_TEXT.match(content):
        return "hex"
    return "cbor-seq"


def parse_input(content: bytes, name: str, fmt: str = "auto") -> list[Message]:
    """Split ``content`` (read from ``name``) into messages; raise InputError."""
    if fmt == "auto":
        if not content.strip():
            raise InputError(f"{name}: empty input")
        fmt = detect_format(content)
    if fmt == "cbor":
        if not content:
            raise InputError(f"{name}: empty input")
        return [Message(f"{name}@0", content)]
    if fmt == "cbor-seq":
        return _cbor_sequence(content, name)
    if fmt == "hex":
        return _hex_lines(content, name)
    if fmt == "jsonl":
        return _json_lines(content, name)
    raise InputError(f"unknown input format {fmt!r} (choose from {', '.join(FORMATS)})")


def _cbor_sequence(content: bytes, name: str) -> list[Message]:
    if not content:
        raise InputError(f"{name}: empty input")
    out: list[Message] = []
    fp = io.BytesIO(content)
    decoder = cbor2.CBORDecoder(fp)
    start = 0
    size = len(content)
    while start < size:
        try:
            decoder.decode()
            end = fp.tell()
        except Exception:  # any decoding failure: find the end from the headers
            found = item_end(content, start)
            if found is None:
                if start == 0:
                    raise InputError(f"{name}: not CBOR (no data item at byte 0)") from None
                # Lint what is left as one (malformed) message rather than drop it.
                found = size
            end = found
            fp.seek(end)
            decoder = cbor2.CBORDecoder(fp)
        out.append(Message(f"{name}@{start}", content[start:end]))
        start = end
    return out


def item_end(data: bytes, start: int) -> int | None:
    """Offset just after the CBOR data item at ``start``, from its headers alone.

    Works on items a decoder refuses (bad tag contents, invalid UTF-8, ...);
    None if the bytes are truncated or not well-formed CBOR.
    """
    size = len(data)
    pos = start
    # Each entry: items still to read at this level (-1: indefinite, until break).
    pending = [1]
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        if pos >= size:
            return None
        initial = data[pos]
        pos += 1
        if initial == 0xFF:
            if pending[-1] != -1:
                return None
            pending.pop()
            continue
        if pending[-1] > 0:
            pending[-1] -= 1
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            arg = info
        elif info <= 27:
            width = 1 << (info - 24)
            if pos + width > size:
                return None
            arg = int.from_bytes(data[pos : pos + width], "big")
            pos += width
        elif info == 31 and major in (2, 3, 4, 5):
            pending.append(-1)
            continue
        else:
            return None
        if major in (2, 3):
            pos += arg
            if pos > size:
                return None
        elif major == 4 and arg:
            pending.append(arg)
        elif major == 5 and arg:
            pending.append(2 * arg)
        elif major == 6:
            pending.append(1)
    return pos


def _hex_lines(content: bytes, name: str) -> list[Message]:
    out: list[Message] = []
    for number, line in enumerate(_lines(content, name), 1):
        text = line.split("#", 1)[0].strip()  # a comment may end a line
        if not text:
            continue
        try:
            data = bytes.fromhex(text)
        except ValueError:
            raise InputError(f"{name}:{number}: not a hex line") from None
        out.append(Message(f"{name}:{number}", data))
    if not out:
        raise InputError(f"{name}: empty input (no hex lines)")
    return out


def _json_lines(content: bytes, name: str) -> list[Message]:
    out: list[Message] = []
    for number, line in enumerate(_lines(content, name), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}:{number}: not a JSON line ({exc.msg})") from None
        if type(obj) is not dict or type(obj.get("hex")) is not str:
            raise InputError(f'{name}:{number}: a JSON line needs a "hex" text field')
        try:
            data = bytes.fromhex(obj["hex"])
        except ValueError:
            raise InputError(f'{name}:{number}: "hex" is not hex') from None
        fields = {k: v for k, v in obj.items() if k != "hex"}
        out.append(Message(f"{name}:{number}", data, fields))
    if not out:
        raise InputError(f"{name}: empty input (no JSON lines)")
    return out


def _lines(content: bytes, name: str) -> list[str]:
    # Split on newlines only: str.splitlines() would also split inside a
    # JSON string holding U+2028 or a form feed.
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{name}: not UTF-8 text") from None
    return [line.removesuffix("\r") for line in text.split("\n")]
