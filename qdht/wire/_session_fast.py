"""Hand-written encoders and parsers for the hot path: ``data`` packets and their frames.

A deterministic CBOR encoding is unique, so these produce exactly the bytes
``dumps_canonical(msg.to_cbor())`` would, and accept exactly the canonical
bytes of valid messages; a parser returns None for *anything* else, and the
caller falls back to the strict general decoder (``qdht.wire.decode``), which
reports the proper reason.  Measured: the general path costs ~50 µs per
datagram on the receive side, this one a few (05-transport.md §3).
"""

from __future__ import annotations

import re
from typing import Final

import attrs

__all__ = [
    "HsView",
    "encode_data_packet",
    "encode_frag_frame",
    "encode_hs_fragment",
    "encode_msg_frame",
    "parse_data_packet",
    "parse_frame",
    "parse_hs_fragment",
]

_DATA_TAIL: Final = b"\x64type\x64data"
_MSG_TAIL: Final = b"\x64type\x63msg"
_FRAG_TAIL: Final = b"\x64type\x64frag"


def _head(major: int, value: int) -> bytes:
    top = major << 5
    if value < 24:
        return bytes([top | value])
    if value < 0x100:
        return bytes([top | 24, value])
    if value < 0x10000:
        return bytes([top | 25]) + value.to_bytes(2, "big")
    if value < 0x100000000:
        return bytes([top | 26]) + value.to_bytes(4, "big")
    return bytes([top | 27]) + value.to_bytes(8, "big")


def encode_data_packet(rid: int, n: int, ct: bytes) -> bytes:
    """The canonical ``session-data`` packet."""
    return b"".join(
        (
            b"\xa4\x61n",
            _head(0, n),
            b"\x62ct",
            _head(2, len(ct)),
            ct,
            b"\x63rid",
            _head(0, rid),
            _DATA_TAIL,
        )
    )


def encode_msg_frame(payload: bytes) -> bytes:
    """The canonical ``session-msg`` frame."""
    return b"".join((b"\xa2\x61p", _head(2, len(payload)), payload, _MSG_TAIL))


def encode_frag_frame(msg_id: int, index: int, count: int, payload: bytes) -> bytes:
    """The canonical ``session-frag`` frame."""
    return b"".join(
        (
            b"\xa5\x61c",
            _head(0, count),
            b"\x61i",
            _head(0, index),
            b"\x61p",
            _head(2, len(payload)),
            payload,
            b"\x62id",
            _head(0, msg_id),
            _FRAG_TAIL,
        )
    )


# Shortest-form heads as regular expressions (one match replaces a chain of
# Python calls; the lookaheads reject a longer form than the value needs).
_UINT: Final = (
    rb"([\x00-\x17]|\x18[\x18-\xff]|\x19(?!\x00)..|\x1a(?!\x00\x00)....|\x1b(?!\x00{4})........)"
)
_BSTR: Final = (
    rb"([\x40-\x57]|\x58[\x18-\xff]|\x59(?!\x00)..|\x5a(?!\x00\x00)....|\x5b(?!\x00{4})........)"
)
_DATA_HEAD: Final = re.compile(rb"\xa4\x61n" + _UINT + rb"\x62ct" + _BSTR, re.S)
_DATA_END: Final = re.compile(rb"\x63rid" + _UINT + re.escape(_DATA_TAIL), re.S)
_MSG_HEAD: Final = re.compile(rb"\xa2\x61p" + _BSTR, re.S)
_FRAG_HEAD: Final = re.compile(rb"\xa5\x61c" + _UINT + rb"\x61i" + _UINT + rb"\x61p" + _BSTR, re.S)
_FRAG_END: Final = re.compile(rb"\x62id" + _UINT + re.escape(_FRAG_TAIL), re.S)


def _value(head: bytes) -> int:
    """The argument of a head matched by ``_UINT``/``_BSTR``."""
    if len(head) == 1:
        return head[0] & 31
    return int.from_bytes(head[1:], "big")


def parse_data_packet(data: bytes) -> tuple[int, int, bytes] | None:
    """(rid, n, ct) of a canonical, valid ``session-data`` packet, else None."""
    m = _DATA_HEAD.match(data)
    if m is None:
        return None
    start = m.end()
    end = start + _value(m.group(2))
    tail = _DATA_END.fullmatch(data, end)
    if tail is None:
        return None
    rid, n = _value(tail.group(1)), _value(m.group(1))
    if not 1 <= rid <= 0xFFFFFFFF or n > 2**64 - 2 or not 16 <= end - start <= 65_535:
        return None
    return rid, n, data[start:end]


def parse_frame(data: bytes) -> tuple[int, int, int, bytes] | None:
    """A canonical, valid ``msg`` or ``frag`` frame as (id, index, count, payload), else None.

    A whole message is reported as ``(0, 0, 1, payload)``.
    """
    m = _MSG_HEAD.match(data)
    if m is not None:
        start = m.end()
        end = start + _value(m.group(1))
        if end - start > 73_728 or data[end:] != _MSG_TAIL:
            return None
        return 0, 0, 1, data[start:end]
    m = _FRAG_HEAD.match(data)
    if m is None:
        return None
    start = m.end()
    end = start + _value(m.group(3))
    tail = _FRAG_END.fullmatch(data, end)
    if tail is None:
        return None
    count, index, msg_id = _value(m.group(1)), _value(m.group(2)), _value(tail.group(1))
    if not 2 <= count <= 4096 or index >= count or not 1 <= end - start <= 65_535:
        return None
    return msg_id, index, count, data[start:end]


@attrs.define
class HsView:
    """A ``session-hs`` fragment as plain fields (the hot-path twin of HandshakeFragment).

    No validation on construction: only :func:`parse_hs_fragment` (which
    checks every field) and the session core (which builds valid ones) make them.
    """

    kind: int
    sid: int
    rid: int
    index: int
    count: int
    body: bytes
    mac1: bytes
    mac2: bytes | None = None

    def mac_input(self) -> bytes:
        """The bytes both MACs cover (04-handshake.md §5.1)."""
        return b"".join(
            (
                b"qdht-hs",
                bytes([self.kind]),
                self.sid.to_bytes(4, "big"),
                self.rid.to_bytes(4, "big"),
                bytes([self.index, self.count]),
                self.body,
            )
        )


_HS_TAIL: Final = b"\x64type\x62hs"


def encode_hs_fragment(frag: HsView, mac2: bytes | None = None) -> bytes:
    """The canonical ``session-hs`` packet of ``frag`` (with ``mac2`` if given)."""
    mac2 = mac2 if mac2 is not None else frag.mac2
    return b"".join(
        (
            b"\xa9" if mac2 is not None else b"\xa8",
            b"\x61c",
            _head(0, frag.count),
            b"\x61i",
            _head(0, frag.index),
            b"\x63rid",
            _head(0, frag.rid),
            b"\x63sid",
            _head(0, frag.sid),
            b"\x64body",
            _head(2, len(frag.body)),
            frag.body,
            b"\x64kind",
            _head(0, frag.kind),
            b"\x64mac1\x50",
            frag.mac1,
            b"\x64mac2\x50" + mac2 if mac2 is not None else b"",
            _HS_TAIL,
        )
    )


_HS_HEAD: Final = re.compile(
    rb"[\xa8\xa9]\x61c"
    + _UINT
    + rb"\x61i"
    + _UINT
    + rb"\x63rid"
    + _UINT
    + rb"\x63sid"
    + _UINT
    + rb"\x64body"
    + _BSTR,
    re.S,
)
_HS_END: Final = re.compile(
    rb"\x64kind" + _UINT + rb"\x64mac1\x50(.{16})(?:\x64mac2\x50(.{16}))?" + re.escape(_HS_TAIL),
    re.S,
)


def parse_hs_fragment(data: bytes) -> HsView | None:
    """A canonical, valid ``session-hs`` packet as an :class:`HsView`, else None."""
    m = _HS_HEAD.match(data)
    if m is None:
        return None
    start = m.end()
    end = start + _value(m.group(5))
    tail = _HS_END.fullmatch(data, end)
    if tail is None:
        return None
    mac2 = tail.group(3)
    if (mac2 is not None) != (data[0] == 0xA9):
        return None
    count, index, rid, sid = (_value(m.group(k)) for k in (1, 2, 3, 4))
    kind = _value(tail.group(1))
    if not 1 <= kind <= 6 or not 1 <= sid <= 0xFFFFFFFF:
        return None
    if rid > 0xFFFFFFFF or not 1 <= count <= 16 or index >= count or end - start > 65_535:
        return None
    return HsView(kind, sid, rid, index, count, data[start:end], tail.group(2), mac2)
