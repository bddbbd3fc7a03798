"""The Sphinx payload's framing: kind, length, an optional reply block, the data (§7).

``kind (1) ‖ length (2, big-endian) ‖ SURB slot (surb_size) ‖ data, zero-padded``.
Every packet has room for one reply block, so a request that carries one is
the same size as cover traffic that does not.  Kinds:

* ``0`` cover: a drop packet; the receiver discards it;
* ``1`` message: ``length`` bytes of data, the SURB slot all zeros;
* ``2`` request: a message whose SURB slot holds a reply block.
"""

from __future__ import annotations

import struct
from typing import Final

import attrs

from qdht.errors import ConfigError
from qdht.mixnet._geometry import FRAMING_SIZE, Geometry
from qdht.mixnet._sphinx import Surb

__all__ = [
    "KIND_COVER",
    "KIND_MESSAGE",
    "KIND_REQUEST",
    "Message",
    "decode_payload",
    "encode_payload",
]

KIND_COVER: Final = 0
KIND_MESSAGE: Final = 1
KIND_REQUEST: Final = 2


@attrs.frozen
class Message:
    """A decoded payload: its kind, its data and the reply block it carries, if any."""

    kind: int
    data: bytes
    surb: Surb | None = None


def encode_payload(
    geometry: Geometry, kind: int, data: bytes = b"", surb: Surb | None = None
) -> bytes:
    """The Sphinx payload of ``geometry.payload_size`` bytes that carries ``data``."""
    if kind not in (KIND_COVER, KIND_MESSAGE, KIND_REQUEST):
        raise ConfigError(f"unknown payload kind {kind!r}")
    if (surb is not None) != (kind == KIND_REQUEST):
        raise ConfigError("a request carries a reply block and nothing else does")
    if len(data) > geometry.user_payload_size:
        raise ConfigError(f"data must be at most {geometry.user_payload_size} bytes")
    slot = surb.to_bytes() if surb is not None else bytes(geometry.surb_size)
    body = struct.pack(">BH", kind, len(data)) + slot + data
    return body.ljust(geometry.payload_size, b"\x00")


def decode_payload(geometry: Geometry, payload: bytes) -> Message | None:
    """The message in a Sphinx payload, or None if its framing is invalid."""
    if len(payload) != geometry.payload_size:
        return None
    kind, length = struct.unpack_from(">BH", payload)
    start = FRAMING_SIZE + geometry.surb_size
    if kind > KIND_REQUEST or length > geometry.user_payload_size:
        return None
    if any(payload[start + length :]):
        return None
    slot = payload[FRAMING_SIZE:start]
    surb = None
    if kind == KIND_REQUEST:
        surb = Surb.from_bytes(geometry, slot)
        if surb is None:
            return None
    elif any(slot):
        return None
    return Message(kind, payload[start : start + length], surb)
