"""The TLS presentation language as RFC 9420 §2.1 uses it: integers and ``<V>`` vectors.

MLS hashes, signs and derives keys over TLS-serialized structs (GroupContext,
KDFLabel, SenderData, ...).  qdht carries its group messages in CBOR, but
every byte string that enters a hash, a KDF or an AEAD as associated data is
serialized exactly as RFC 9420 serializes it, so the symmetric half of the
group layer reproduces the official MLS vectors byte for byte.
"""

from __future__ import annotations

import struct

from qdht.errors import GroupError

__all__: list[str] = []

_MAX_VARINT = (1 << 30) - 1


def varint(n: int) -> bytes:
    """The minimal RFC 9420 §2.1.2 variable-length integer (1, 2 or 4 bytes)."""
    if n < 0 or n > _MAX_VARINT:
        raise GroupError(f"vector length {n} is outside 0..2^30-1")
    if n < 1 << 6:
        return bytes([n])
    if n < 1 << 14:
        return struct.pack(">H", 0x4000 | n)
    return struct.pack(">I", 0x80000000 | n)


def opaque(data: bytes) -> bytes:
    """``opaque data<V>``: the varint length followed by the bytes."""
    return varint(len(data)) + data


def u8(n: int) -> bytes:
    """``uint8``."""
    return struct.pack(">B", n)


def u16(n: int) -> bytes:
    """``uint16``, network byte order."""
    return struct.pack(">H", n)


def u32(n: int) -> bytes:
    """``uint32``, network byte order."""
    return struct.pack(">I", n)


def u64(n: int) -> bytes:
    """``uint64``, network byte order."""
    return struct.pack(">Q", n)


class TLSReader:
    """Reads TLS-serialized fields from a byte string; GroupError on any malformation."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise GroupError("TLS struct is truncated")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def uint(self, size: int) -> int:
        """A big-endian unsigned integer of ``size`` bytes."""
        return int.from_bytes(self._take(size), "big")

    def raw(self, n: int) -> bytes:
        """``n`` bytes as they are (a fixed-size field)."""
        return self._take(n)

    def varint(self) -> int:
        """A variable-length integer, refusing non-minimal encodings (RFC 9420 §2.1.2)."""
        first = self._take(1)[0]
        prefix = first >> 6
        if prefix == 0:
            return first
        if prefix == 1:
            n = ((first & 0x3F) << 8) | self._take(1)[0]
            minimum = 1 << 6
        elif prefix == 2:
            n = ((first & 0x3F) << 24) | int.from_bytes(self._take(3), "big")
            minimum = 1 << 14
        else:
            raise GroupError("varint prefix 0b11 is invalid in MLS")
        if n < minimum:
            raise GroupError("varint is not minimally encoded")
        return n

    def opaque(self) -> bytes:
        """``opaque x<V>``."""
        return self._take(self.varint())

    def rest(self) -> bytes:
        """Everything not yet read."""
        chunk = self._data[self._pos :]
        self._pos = len(self._data)
        return chunk

    @property
    def remaining(self) -> int:
        """How many bytes are left."""
        return len(self._data) - self._pos

    def finish(self) -> None:
        """GroupError unless every byte has been read."""
        if self._pos != len(self._data):
            raise GroupError("trailing bytes after TLS struct")
