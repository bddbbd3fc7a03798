"""The geometry of a mix network's packets: one value every node must share.

A packet is ``header ‖ payload``; the header's size depends only on the path
length and the KEM, and every packet of a network has the same size
(``protocol-spec/10-mixnet.md`` §2).  The geometry's hash salts every per-hop
key derivation, so packets built for one geometry never verify under another.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any, Final

import attrs

from qdht.crypto import xwing
from qdht.errors import ConfigError

__all__ = [
    "COMMANDS_SIZE",
    "DEFAULT_PAYLOAD_SIZE",
    "FRAMING_SIZE",
    "MAC_SIZE",
    "NODE_ID_SIZE",
    "SURB_ID_SIZE",
    "TAG_SIZE",
    "VERSION",
    "Geometry",
]

#: The header's first two bytes, authenticated by every hop's MAC.
VERSION: Final = b"\x00\x01"
NODE_ID_SIZE: Final = 32
MAC_SIZE: Final = 32
SURB_ID_SIZE: Final = 16
#: Zero bytes at the front of every payload plaintext, checked by its final reader.
TAG_SIZE: Final = 32
#: Routing commands per slot: ``next-hop`` (1 + 32 + 32) and ``delay`` (1 + 4)
#: fill it; a terminal slot (``recipient``, ``delay``, ``surb-reply``) needs 55.
COMMANDS_SIZE: Final = 70
DEFAULT_PAYLOAD_SIZE: Final = 2048
#: A payload's kind (1 byte) and data length (2 bytes), §7.
FRAMING_SIZE: Final = 3
ALLOWED_HOPS: Final = (3, 5)
_GEOMETRY_LABEL: Final = b"qdht/mix/geometry/v1"


def _hops(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or value not in ALLOWED_HOPS:
        raise ConfigError(f"{attribute.name} must be one of {ALLOWED_HOPS}, got {value!r}")


def _payload(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or not 256 <= value <= 65536:
        raise ConfigError(f"{attribute.name} must be an integer in 256..65536, got {value!r}")


@attrs.frozen(cache_hash=True)  # the hop's layout is looked up by geometry per packet
class Geometry:
    """Path length and user payload size, and every size derived from them (§2).

    Every packet of a network has :attr:`packet_size` bytes, every reply block
    :attr:`surb_size`; the geometry's :attr:`digest` salts every hop key.
    """

    hops: int = attrs.field(default=3, validator=_hops)
    #: The application bytes one packet carries (§7: a request also carries a SURB).
    user_payload_size: int = attrs.field(default=DEFAULT_PAYLOAD_SIZE, validator=_payload)

    @property
    def kem_ciphertext_size(self) -> int:
        return xwing.CIPHERTEXT_SIZE

    @property
    def slot_size(self) -> int:
        """One hop's routing slot: its commands and the next hop's KEM ciphertext."""
        return COMMANDS_SIZE + xwing.CIPHERTEXT_SIZE

    @property
    def routing_info_size(self) -> int:
        return self.hops * self.slot_size

    @property
    def header_size(self) -> int:
        """``version ‖ ct ‖ routing info ‖ MAC``."""
        return len(VERSION) + xwing.CIPHERTEXT_SIZE + self.routing_info_size + MAC_SIZE

    @property
    def payload_size(self) -> int:
        """The Sphinx payload: framing, room for one reply block, the user payload (§7)."""
        return FRAMING_SIZE + self.surb_size + self.user_payload_size

    @property
    def block_size(self) -> int:
        """The LIONESS block: the zero tag and the Sphinx payload."""
        return TAG_SIZE + self.payload_size

    @property
    def packet_size(self) -> int:
        return self.header_size + self.block_size

    @property
    def surb_size(self) -> int:
        """``header ‖ first hop id ‖ payload key seed``."""
        return self.header_size + NODE_ID_SIZE + 32

    @property
    def digest(self) -> bytes:
        """SHA-256 of the geometry's parameters: the HKDF salt of every hop key (§3)."""
        params = struct.pack(
            ">HBHHI", 1, self.hops, COMMANDS_SIZE, MAC_SIZE, self.user_payload_size
        )
        return hashlib.sha256(_GEOMETRY_LABEL + b"X-Wing" + params).digest()
