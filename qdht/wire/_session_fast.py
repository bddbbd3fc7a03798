"""Hand-written encoders and parsers for the hot path: ``data`` packets and their frames.

A deterministic CBOR encoding is unique, so these produce exactly the bytes
``dumps_canonical(msg.to_cbor())`` would, and accept exactly the canonical
bytes of valid messages; a parser returns None for *anything* else, and the
caller falls back to the strict general decoder (``qdht.wire.decode``), which
reports the proper reason.  Measured: the general path costs ~50 µs per
datagram on the receive side, this one a few (05-transport.md §3).
"""

from __future__ import annotations

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


class _Reject(Exception):
    pass


def _arg(data: bytes, pos: int, major: int) -> tuple[int, int]:
    """(argument, next position) of a shortest-form head of ``major`` at ``pos``."""
    if pos >= len(data):
        raise _Reject
    b = data[pos]
    if b >> 5 != major:
        raise _Reject
    ai = b & 31
    if ai < 24:
        return ai, pos + 1
    size = {24: 1, 25: 2, 26: 4, 27: 8}.get(ai)
    if size is None or pos + 1 + size > len(data):
        raise _Reject
    value = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
    if value < (24 if size == 1 else 1 << (4 * size)):
        raise _Reject  # not the shortest form
    return value, pos + 1 + size


def _bstr(data: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = _arg(data, pos, 2)
    end = pos + length
    if end > len(data):
        raise _Reject
    return data[pos:end], end


def _expect(data: bytes, pos: int, literal: bytes) -> int:
    if data[pos : pos + len(literal)] != literal:
        raise _Reject
    return pos + len(literal)


def parse_data_packet(data: bytes) -> tuple[int, int, bytes] | None:
    """(rid, n, ct) of a canonical, valid ``session-data`` packet, else None."""
    try:
        pos = _expect(data, 0, b"\xa4\x61n")
        n, pos = _arg(data, pos, 0)
        pos = _expect(data, pos, b"\x62ct")
        ct, pos = _bstr(data, pos)
        pos = _expect(data, pos, b"\x63rid")
        rid, pos = _arg(data, pos, 0)
        pos = _expect(data, pos, _DATA_TAIL)
    except _Reject:
        return None
    if pos != len(data) or not 1 <= rid <= 0xFFFFFFFF or n > 2**64 - 2:
        return None
    if not 16 <= len(ct) <= 65_535:
        return None
    return rid, n, ct


def parse_frame(data: bytes) -> tuple[int, int, int, bytes] | None:
    """A canonical, valid ``msg`` or ``frag`` frame as (id, index, count, payload), else None.

    A whole message is reported as ``(0, 0, 1, payload)``.
    """
    try:
        if data[:3] == b"\xa2\x61p":
            payload, pos = _bstr(data, 3)
            if data[pos:] != _MSG_TAIL or len(payload) > 73_728:
                return None
            return 0, 0, 1, payload
        pos = _expect(data, 0, b"\xa5\x61c")
        count, pos = _arg(data, pos, 0)
        pos = _expect(data, pos, b"\x61i")
        index, pos = _arg(data, pos, 0)
        pos = _expect(data, pos, b"\x61p")
        payload, pos = _bstr(data, pos)
        pos = _expect(data, pos, b"\x62id")
        msg_id, pos = _arg(data, pos, 0)
        pos = _expect(data, pos, _FRAG_TAIL)
    except _Reject:
        return None
    if pos != len(data) or not 2 <= count <= 4096 or index >= count:
        return None
    if not 1 <= len(payload) <= 65_535 or msg_id > 2**64 - 1:
        return None
    return msg_id, index, count, payload


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


def parse_hs_fragment(data: bytes) -> HsView | None:
    """A canonical, valid ``session-hs`` packet as an :class:`HsView`, else None."""
    if data[:1] not in (b"\xa8", b"\xa9"):
        return None
    try:
        pos = _expect(data, 1, b"\x61c")
        count, pos = _arg(data, pos, 0)
        pos = _expect(data, pos, b"\x61i")
        index, pos = _arg(data, pos, 0)
        pos = _expect(data, pos, b"\x63rid")
        rid, pos = _arg(data, pos, 0)
        pos = _expect(data, pos, b"\x63sid")
        sid, pos = _arg(data, pos, 0)
        pos = _expect(data, pos, b"\x64body")
        body, pos = _bstr(data, pos)
        pos = _expect(data, pos, b"\x64kind")
        kind, pos = _arg(data, pos, 0)
        pos = _expect(data, pos, b"\x64mac1\x50")
        mac1, pos = data[pos : pos + 16], pos + 16
        mac2 = None
        if data[0] == 0xA9:
            pos = _expect(data, pos, b"\x64mac2\x50")
            mac2, pos = data[pos : pos + 16], pos + 16
        pos = _expect(data, pos, _HS_TAIL)
    except _Reject:
        return None
    if pos != len(data) or not 1 <= kind <= 6 or not 1 <= sid <= 0xFFFFFFFF:
        return None
    if rid > 0xFFFFFFFF or not 1 <= count <= 16 or index >= count or len(body) > 65_535:
        return None
    return HsView(kind, sid, rid, index, count, body, mac1, mac2)
