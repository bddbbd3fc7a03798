"""Hand-written encoders and parsers for the hot path: packets, frames and hellos.

A deterministic CBOR encoding is unique, so these produce exactly the bytes
``dumps_canonical(msg.to_cbor())`` would, and accept exactly the canonical
bytes of valid messages; a parser returns None for *anything* else, and the
caller falls back to the strict general decoder (``qdht.wire.decode``), which
reports the proper reason.  Measured: the general path costs ~50 µs per
datagram on the receive side, this one a few (05-transport.md §3).
"""

from __future__ import annotations

import re
import struct
from typing import Final

import attrs

from qdht.wire._session import MLDSA_HASH_SIZE, NONCE_SIZE

__all__ = [
    "MAC_INPUT_HEAD",
    "HsView",
    "encode_data_packet",
    "encode_frag_frame",
    "encode_hs_fragment",
    "encode_msg_frame",
    "parse_data_packet",
    "parse_frame",
    "parse_hello",
    "parse_hs_fragment",
]

_DATA_TAIL: Final = b"\x64type\x64data"
_MSG_TAIL: Final = b"\x64type\x63msg"
_FRAG_TAIL: Final = b"\x64type\x64frag"


def _head(major: int, value: int) -> bytes:
    """The CBOR head of ``value`` in major type 0 or 2."""
    if value < 0x100:
        return _SMALL_HEADS[major][value]
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


def _small_heads(major: int) -> tuple[bytes, ...]:
    top = major << 5
    return tuple(bytes([top | v]) if v < 24 else bytes([top | 24, v]) for v in range(0x100))


#: Heads of the values 0..255 of the major types this module writes (0: uint,
#: 2: bstr), precomputed; 1 is never written (a phone keeps 512 heads, not 2,048).
_SMALL_HEADS: Final = (_small_heads(0), (), _small_heads(2))


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
    if end > len(data):  # a length past the end (up to 2^64: re would overflow)
        return None
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
        # The whole frame within the decoder's max_bytes, as decode() demands.
        if len(data) > 73_728 or data[end:] != _MSG_TAIL:
            return None
        return 0, 0, 1, data[start:end]
    m = _FRAG_HEAD.match(data)
    if m is None:
        return None
    start = m.end()
    end = start + _value(m.group(3))
    if end > len(data):
        return None
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
        return (
            MAC_INPUT_HEAD.pack(b"qdht-hs", self.kind, self.sid, self.rid, self.index, self.count)
            + self.body
        )


#: "qdht-hs" ‖ kind ‖ sid ‖ rid ‖ index ‖ count: the start of a fragment's MAC input.
MAC_INPUT_HEAD: Final = struct.Struct("!7sBIIBB")


_HS_TAIL: Final = b"\x64type\x62hs"
# The usual shape of a fragment, packed and unpacked in one call: no mac2,
# 32-bit sid, rid 0 or 32-bit, a body of 256..65535 bytes.  Other shapes take
# the general path.  Fields: map+"c", count, "i", index, "rid"+head, [rid],
# "sid"+head, sid, "body"+head, body length.
_HS_RID32: Final = struct.Struct(">3sB2sB5sI5sI6sH")
_HS_RID0: Final = struct.Struct(">3sB2sB5s5sI6sH")
_RID32_KEY: Final = b"\x63rid\x1a"
_RID0_KEY: Final = b"\x63rid\x00"
_SID_KEY: Final = b"\x63sid\x1a"
_BODY_KEY: Final = b"\x64body\x59"
#: "kind" and its one-byte head, "mac1" and its head, by kind.
_KIND_MAC1: Final = tuple(b"\x64kind" + bytes([k]) + b"\x64mac1\x50" for k in range(7))
#: Bytes after the body of a fragment without mac2: kind, mac1 and the type.
_HS_TAIL_SIZE: Final = len(_KIND_MAC1[0]) + 16 + len(_HS_TAIL)


def encode_hs_fragment(frag: HsView, mac2: bytes | None = None) -> bytes:
    """The canonical ``session-hs`` packet of ``frag`` (with ``mac2`` if given)."""
    mac2 = mac2 if mac2 is not None else frag.mac2
    sid, rid, body = frag.sid, frag.rid, frag.body
    if mac2 is None and sid >= 0x10000 and 0x100 <= len(body) <= 0xFFFF:
        if rid >= 0x10000:
            head = _HS_RID32.pack(
                b"\xa8\x61c", frag.count, b"\x61i", frag.index, _RID32_KEY, rid, _SID_KEY, sid,
                _BODY_KEY, len(body),
            )  # fmt: skip
            return b"".join((head, body, _KIND_MAC1[frag.kind], frag.mac1, _HS_TAIL))
        if rid == 0:
            head = _HS_RID0.pack(
                b"\xa8\x61c", frag.count, b"\x61i", frag.index, _RID0_KEY, _SID_KEY, sid,
                _BODY_KEY, len(body),
            )  # fmt: skip
            return b"".join((head, body, _KIND_MAC1[frag.kind], frag.mac1, _HS_TAIL))
    uint = _SMALL_HEADS[0]
    body = frag.body
    return b"".join(
        (
            b"\xa8\x61c" if mac2 is None else b"\xa9\x61c",
            uint[frag.count],  # count, index <= 16 and kind <= 6: one-byte heads
            b"\x61i",
            uint[frag.index],
            b"\x63rid",
            _head(0, frag.rid),
            b"\x63sid",
            _head(0, frag.sid),
            b"\x64body",
            _head(2, len(body)),
            body,
            b"\x64kind",
            uint[frag.kind],
            b"\x64mac1\x50",
            frag.mac1,
            _HS_TAIL if mac2 is None else b"\x64mac2\x50" + mac2 + _HS_TAIL,
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


def _parse_hs_usual(data: bytes) -> HsView | None:
    """The fragment if ``data`` has the usual shape (see ``_HS_RID32``) and is valid, else None."""
    if data[7:12] == _RID32_KEY:
        lead, count, i_key, index, _, rid, sid_key, sid, body_key, size = _HS_RID32.unpack_from(
            data
        )
        if rid < 0x10000:
            return None
        start = _HS_RID32.size
    else:
        lead, count, i_key, index, rid_key, sid_key, sid, body_key, size = _HS_RID0.unpack_from(
            data
        )
        if rid_key != _RID0_KEY:
            return None
        rid = 0
        start = _HS_RID0.size
    end = start + size
    if (
        lead != b"\xa8\x61c"
        or i_key != b"\x61i"
        or sid_key != _SID_KEY
        or body_key != _BODY_KEY
        or not 1 <= count <= 16
        or index >= count
        or sid < 0x10000
        or size < 0x100
        or len(data) != end + _HS_TAIL_SIZE
    ):
        return None
    kind = data[end + 5]
    if not 1 <= kind <= 6 or data[end : end + 12] != _KIND_MAC1[kind] or data[-8:] != _HS_TAIL:
        return None
    return HsView(kind, sid, rid, index, count, data[start:end], data[end + 12 : end + 28])


def parse_hs_fragment(data: bytes) -> HsView | None:
    """A canonical, valid ``session-hs`` packet as an :class:`HsView`, else None."""
    if data[:1] == b"\xa8" and len(data) >= _HS_RID0.size + 0x100 + _HS_TAIL_SIZE:
        usual = _parse_hs_usual(data)
        if usual is not None:
            return usual
    m = _HS_HEAD.match(data)
    if m is None:
        return None
    start = m.end()
    end = start + _value(m.group(5))
    if end > len(data):
        return None
    tail = _HS_END.fullmatch(data, end)
    if tail is None:
        return None
    kind_head, mac1, mac2 = tail.groups()
    if (mac2 is not None) != (data[0] == 0xA9):
        return None
    count_head, index_head, rid_head, sid_head, _ = m.groups()
    # count, index and kind must be one-byte heads to be in range at all.
    if len(count_head) != 1 or len(index_head) != 1 or len(kind_head) != 1:
        return None
    count, index, kind = count_head[0], index_head[0], kind_head[0]
    rid = _value(rid_head)
    sid = _value(sid_head)
    if not 1 <= kind <= 6 or not 1 <= sid <= 0xFFFFFFFF:
        return None
    if rid > 0xFFFFFFFF or not 1 <= count <= 16 or index >= count or end - start > 65_535:
        return None
    return HsView(kind, sid, rid, index, count, data[start:end], mac1, mac2)


# Version 1..255; mldsa and nonce as one-byte-length (< 256) and short (< 24) byte strings.
_HELLO: Final = re.compile(
    rb"\xa4\x61v([\x01-\x17]|\x18[\x18-\xff])\x64type\x65hello\x65mldsa\x58"
    + bytes([MLDSA_HASH_SIZE])
    + rb"(.{%d})\x65nonce" % MLDSA_HASH_SIZE
    + bytes([0x40 | NONCE_SIZE])
    + rb"(.{%d})" % NONCE_SIZE,
    re.S,
)


def parse_hello(data: bytes) -> tuple[int, bytes, bytes] | None:
    """(version, mldsa, nonce) of a canonical, valid ``session-hello`` without early data.

    None for anything else: hellos with early data (pqIK) and malformed ones
    go to the general decoder, which gives the reason.
    """
    m = _HELLO.fullmatch(data)
    if m is None:
        return None
    version, mldsa, nonce = m.groups()
    return _value(version), mldsa, nonce
