"""Session-layer packets and the plaintext frames inside them (structure only).

Implements the wire forms of ``protocol-spec/04-handshake.md`` and
``protocol-spec/05-transport.md``.  Outer packets (``hs``, ``cookie``,
``data``) travel in datagrams; frames (``msg``, ``frag``, ``keepalive``,
``close``) are the plaintext of a ``data`` packet; ``hello`` is the payload
of a handshake message.  The session core (``qdht.session``) gives them meaning.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import attrs

from qdht.errors import ConfigError
from qdht.wire._fields import FieldReader
from qdht.wire._registry import register

__all__ = [
    "HS_KINDS",
    "MAC_SIZE",
    "MAX_FRAGMENTS",
    "MAX_HS_FRAGMENTS",
    "MAX_PAYLOAD",
    "CloseFrame",
    "CookieReply",
    "DataPacket",
    "FragmentFrame",
    "HandshakeFragment",
    "Hello",
    "KeepaliveFrame",
    "MessageFrame",
]

MAC_SIZE: Final = 16
#: Largest receiver/sender index (32 bits); 0 means "not yet known".
MAX_INDEX: Final = 2**32 - 1
#: Handshake message kinds: 1 to 4 are pqXX messages 1 to 4, 5 and 6 pqIK messages 1 and 2.
HS_KINDS: Final = range(1, 7)
#: Most fragments one handshake message may be split into.
MAX_HS_FRAGMENTS: Final = 16
#: Most fragments one transport message may be split into.
MAX_FRAGMENTS: Final = 4096
#: Largest body of one datagram-borne field (a datagram is at most 64 KiB).
MAX_BODY: Final = 65_535
#: Largest application message a frame may carry: the wire ceiling, equal to the
#: largest ``max_message_size`` (05-transport.md §1, 00-conventions.md §3).
MAX_PAYLOAD: Final = 73_728
SALT_SIZE: Final = 16
COOKIE_BOX_SIZE: Final = 32
MLDSA_HASH_SIZE: Final = 32
NONCE_SIZE: Final = 8


def _bytes_field(max_size: int, size: int | None = None) -> Any:
    def check(_: object, attribute: Any, value: object) -> None:
        if type(value) is not bytes:
            raise ConfigError(f"{attribute.name} must be bytes")
        if size is not None and len(value) != size:
            raise ConfigError(f"{attribute.name} must be {size} bytes")
        if len(value) > max_size:
            raise ConfigError(f"{attribute.name} must be at most {max_size} bytes")

    return attrs.field(validator=check)


def _uint_field(max_value: int, min_value: int = 0) -> Any:
    def check(_: object, attribute: Any, value: object) -> None:
        if type(value) is not int or not min_value <= value <= max_value:
            raise ConfigError(f"{attribute.name} must be an integer in {min_value}..{max_value}")

    return attrs.field(validator=check)


@register
@attrs.frozen
class HandshakeFragment:
    """One fragment of a handshake message (04-handshake.md §4)."""

    TYPE: ClassVar[str] = "hs"

    kind: int = _uint_field(6, 1)
    sid: int = _uint_field(MAX_INDEX, 1)
    rid: int = _uint_field(MAX_INDEX)
    index: int = _uint_field(MAX_HS_FRAGMENTS - 1)
    count: int = _uint_field(MAX_HS_FRAGMENTS, 1)
    body: bytes = _bytes_field(MAX_BODY)
    mac1: bytes = _bytes_field(MAC_SIZE, MAC_SIZE)
    mac2: bytes | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        if self.index >= self.count:
            raise ConfigError("index must be below count")
        if self.mac2 is not None and (type(self.mac2) is not bytes or len(self.mac2) != MAC_SIZE):
            raise ConfigError(f"mac2 must be {MAC_SIZE} bytes")

    def mac_input(self) -> bytes:
        """The bytes both MACs cover (04-handshake.md §5.1): every field but the MACs.

        ``"qdht-hs" ‖ kind (1) ‖ BE32(sid) ‖ BE32(rid) ‖ i (1) ‖ c (1) ‖ body``
        """
        return (
            b"qdht-hs"
            + bytes([self.kind])
            + self.sid.to_bytes(4, "big")
            + self.rid.to_bytes(4, "big")
            + bytes([self.index, self.count])
            + self.body
        )

    def to_cbor(self) -> dict[str, Any]:
        obj = {
            "type": self.TYPE,
            "kind": self.kind,
            "sid": self.sid,
            "rid": self.rid,
            "i": self.index,
            "c": self.count,
            "body": self.body,
            "mac1": self.mac1,
        }
        if self.mac2 is not None:
            obj["mac2"] = self.mac2
        return obj

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> HandshakeFragment:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        kind = r.uint("kind", min_value=1, max_value=6)
        sid = r.uint("sid", min_value=1, max_value=MAX_INDEX)
        rid = r.uint("rid", max_value=MAX_INDEX)
        count = r.uint("c", min_value=1, max_value=MAX_HS_FRAGMENTS)
        index = r.uint("i", max_value=count - 1)
        body = r.bytes_("body", max_size=MAX_BODY)
        mac1 = r.bytes_("mac1", size=MAC_SIZE)
        mac2 = r.bytes_("mac2", size=MAC_SIZE, optional=True)
        r.finish()
        return cls(kind, sid, rid, index, count, body, mac1, mac2)


@register
@attrs.frozen
class CookieReply:
    """A responder under load answers a first message with an encrypted cookie (§5)."""

    TYPE: ClassVar[str] = "cookie"

    rid: int = _uint_field(MAX_INDEX, 1)
    salt: bytes = _bytes_field(SALT_SIZE, SALT_SIZE)
    box: bytes = _bytes_field(COOKIE_BOX_SIZE, COOKIE_BOX_SIZE)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "rid": self.rid, "salt": self.salt, "box": self.box}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> CookieReply:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        rid = r.uint("rid", min_value=1, max_value=MAX_INDEX)
        salt = r.bytes_("salt", size=SALT_SIZE)
        box = r.bytes_("box", size=COOKIE_BOX_SIZE)
        r.finish()
        return cls(rid, salt, box)


@register
@attrs.frozen
class DataPacket:
    """A transport packet: receiver index, counter nonce and AEAD ciphertext (05 §2)."""

    TYPE: ClassVar[str] = "data"

    rid: int = _uint_field(MAX_INDEX, 1)
    n: int = _uint_field(2**64 - 2)
    ct: bytes = _bytes_field(MAX_BODY)

    def __attrs_post_init__(self) -> None:
        if len(self.ct) < 16:
            raise ConfigError("ct must hold at least the 16-byte tag")

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "rid": self.rid, "n": self.n, "ct": self.ct}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> DataPacket:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        rid = r.uint("rid", min_value=1, max_value=MAX_INDEX)
        n = r.uint("n", max_value=2**64 - 2)
        ct = r.bytes_("ct", min_size=16, max_size=MAX_BODY)
        r.finish()
        return cls(rid, n, ct)


@register
@attrs.frozen
class Hello:
    """A handshake payload: the sender's identity proof (and pqIK early data) (04 §6)."""

    TYPE: ClassVar[str] = "hello"

    version: int = _uint_field(255, 1)
    mldsa: bytes = _bytes_field(MLDSA_HASH_SIZE, MLDSA_HASH_SIZE)
    nonce: bytes = _bytes_field(NONCE_SIZE, NONCE_SIZE)
    early: bytes | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        if self.early is not None and (type(self.early) is not bytes or len(self.early) > 4096):
            raise ConfigError("early must be bytes of at most 4096 bytes")

    def to_cbor(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "type": self.TYPE,
            "v": self.version,
            "mldsa": self.mldsa,
            "nonce": self.nonce,
        }
        if self.early is not None:
            obj["early"] = self.early
        return obj

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> Hello:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        version = r.uint("v", min_value=1, max_value=255)
        mldsa = r.bytes_("mldsa", size=MLDSA_HASH_SIZE)
        nonce = r.bytes_("nonce", size=NONCE_SIZE)
        early = r.bytes_("early", max_size=4096, optional=True)
        r.finish()
        return cls(version, mldsa, nonce, early)


@register
@attrs.frozen
class MessageFrame:
    """A whole application message inside one transport packet (05 §3)."""

    TYPE: ClassVar[str] = "msg"

    payload: bytes = _bytes_field(MAX_PAYLOAD)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "p": self.payload}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> MessageFrame:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        payload = r.bytes_("p", max_size=MAX_PAYLOAD)
        r.finish()
        return cls(payload)


@register
@attrs.frozen
class FragmentFrame:
    """One fragment of an application message (05 §4)."""

    TYPE: ClassVar[str] = "frag"

    msg_id: int = _uint_field(2**64 - 1)
    index: int = _uint_field(MAX_FRAGMENTS - 1)
    count: int = _uint_field(MAX_FRAGMENTS, 2)
    payload: bytes = _bytes_field(MAX_BODY)

    def __attrs_post_init__(self) -> None:
        if self.index >= self.count:
            raise ConfigError("index must be below count")

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "id": self.msg_id,
            "i": self.index,
            "c": self.count,
            "p": self.payload,
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> FragmentFrame:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        msg_id = r.uint("id")
        count = r.uint("c", min_value=2, max_value=MAX_FRAGMENTS)
        index = r.uint("i", max_value=count - 1)
        payload = r.bytes_("p", min_size=1, max_size=MAX_BODY)
        r.finish()
        return cls(msg_id, index, count, payload)


@register
@attrs.frozen
class KeepaliveFrame:
    """An empty frame: confirms new keys to the responder and keeps NAT state (05 §5)."""

    TYPE: ClassVar[str] = "keepalive"

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> KeepaliveFrame:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        r.finish()
        return cls()


@register
@attrs.frozen
class CloseFrame:
    """The sender is closing the session; the receiver discards its keys (05 §5)."""

    TYPE: ClassVar[str] = "close"

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> CloseFrame:
        r = FieldReader(obj, path)
        r.type_tag(cls.TYPE)
        r.finish()
        return cls()
