"""The Sphinx payload's framing: kind, length, an optional reply block, the data (§7).

``kind (1) ‖ length (2, big-endian) ‖ SURB slot (surb_size) ‖ data, zero-padded``.
Every packet has room for one reply block, so a request that carries one is
the same size as cover traffic that does not.  Kinds:

* ``0`` cover: a drop packet; the receiver discards it;
* ``1`` message: ``length`` bytes of data, the SURB slot all zeros;
* ``2`` request: a message whose SURB slot holds a reply block;
* ``3`` request fragment: a fragment of a larger request (§14.6), its SURB
  slot holding its own reply block;
* ``4`` reply fragment: a fragment of a larger answer, the SURB slot all zeros.
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
    "KIND_REPLY_FRAGMENT",
    "KIND_REQUEST",
    "KIND_REQUEST_FRAGMENT",
    "Message",
    "decode_payload",
    "encode_payload",
]

KIND_COVER: Final = 0
KIND_MESSAGE: Final = 1
KIND_REQUEST: Final = 2
KIND_REQUEST_FRAGMENT: Final = 3
KIND_REPLY_FRAGMENT: Final = 4
#: The kinds whose SURB slot holds a reply block.
_WITH_SURB: Final = frozenset({KIND_REQUEST, KIND_REQUEST_FRAGMENT})
_KINDS: Final = frozenset(
    {KIND_COVER, KIND_MESSAGE, KIND_REQUEST, KIND_REQUEST_FRAGMENT, KIND_REPLY_FRAGMENT}
)


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
    if kind not in _KINDS:
        raise ConfigError(f"unknown payload kind {kind!r}")
    if (surb is not None) != (kind in _WITH_SURB):
        raise ConfigError("a request (or its fragment) carries a reply block, nothing else does")
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
    if kind not in _KINDS or length > geometry.user_payload_size:
        return None
    if any(payload[start + length :]):
        return None
    slot = payload[FRAMING_SIZE:start]
    surb = None
    if kind in _WITH_SURB:
        surb = Surb.from_bytes(geometry, slot)
        if surb is None:
            return None
    elif any(slot):
        return None
    return Message(kind, payload[start : start + length], surb)
