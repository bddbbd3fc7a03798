"""Private direct messaging on the wire: prekeys, first messages, ratchet messages, mailboxes.

Implements the structures and field sizes of ``protocol-spec/11-messaging.md``;
the protocol state machines live in :mod:`qdht.messaging`.

============================  ===================================================
type                          what it is
============================  ===================================================
``prekeys``                   a user's signed prekey record (§2), stored in the DHT
``first_msg``                 the first message of a conversation (§3)
``first_env``                 the sealed envelope inside a ``first_msg`` (§3.3)
``ratchet_msg``               every later message (§4), header encrypted
``slot``                      a single-use mailbox slot record (§5.2)
``slot_delete``               the recipient deletes a slot by its hash preimage (§5.3)
``intro``                     an intro-box entry carrying a ``first_msg`` (§5.4)
============================  ===================================================
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import attrs

from qdht.errors import ConfigError, DecodeError
from qdht.wire._cbor import dumps_canonical
from qdht.wire._fields import FieldReader, check_bytes, check_uint, child_path
from qdht.wire._registry import register

__all__ = [
    "CT_SIZE",
    "HASH_SIZE",
    "MAX_BODY_SIZE",
    "MAX_ONE_TIME_PREKEYS",
    "MAX_SLOT_BOX",
    "MAX_TIME",
    "MIN_SLOT_BOX",
    "MLDSA_PUBLIC_KEY_SIZE",
    "MLDSA_SIGNATURE_SIZE",
    "XWING_PUBLIC_KEY_SIZE",
    "FirstEnvelope",
    "FirstMessage",
    "IntroEntry",
    "OneTimePrekey",
    "PrekeyRecord",
    "RatchetMessage",
    "SlotDelete",
    "SlotRecord",
]

#: Most one-time prekeys one record carries (11-messaging.md §2.1).
MAX_ONE_TIME_PREKEYS: Final = 48
XWING_PUBLIC_KEY_SIZE: Final = 1216
CT_SIZE: Final = 1120
X25519_SIZE: Final = 32
HASH_SIZE: Final = 32
MLDSA_PUBLIC_KEY_SIZE: Final = 1952
MLDSA_SIGNATURE_SIZE: Final = 3309
#: Largest time field (seconds since the Unix epoch), as the records layer's ``exp``.
MAX_TIME: Final = 2**40 - 1
MAX_PREKEY_ID: Final = 2**32 - 1
#: Largest encrypted body or header a message may carry.
MAX_BODY_SIZE: Final = 65536
#: An encrypted ratchet header: 8-byte nonce, 46..2264 bytes of header, 16-byte tag.
MIN_HEADER_SIZE: Final = 8 + 46 + 16
MAX_HEADER_SIZE: Final = 8 + 46 + 1184 + 1120 + 16
#: A sealed first-message envelope: at least the tag.
MIN_SEALED_SIZE: Final = 16
#: Slot boxes are one mix payload; the network fixes the size, the wire bounds it.
MIN_SLOT_BOX: Final = 256
MAX_SLOT_BOX: Final = 65536
MAX_POW_NONCE: Final = 2**64 - 1


# ------------------------------------------------------------------ validators


def _exact(size: int) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not bytes or len(value) != size:
            raise ConfigError(f"{attribute.name} must be {size} bytes")

    return check


def _optional_exact(size: int) -> Any:
    exact = _exact(size)

    def check(obj: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            exact(obj, attribute, value)

    return check


def _sized(min_size: int, max_size: int) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not bytes or not min_size <= len(value) <= max_size:
            raise ConfigError(f"{attribute.name} must be {min_size}..{max_size} bytes")

    return check


def _uint(max_value: int) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not int or not 0 <= value <= max_value:
            raise ConfigError(f"{attribute.name} must be an integer in 0..{max_value}")

    return check


def _optional_uint(max_value: int) -> Any:
    check_int = _uint(max_value)

    def check(obj: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            check_int(obj, attribute, value)

    return check


def _flag(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not bool:
        raise ConfigError(f"{attribute.name} must be a bool, got {type(value).__name__}")


_time = _uint(MAX_TIME)
_prekey_id = _uint(MAX_PREKEY_ID)
_xwing_pk = _exact(XWING_PUBLIC_KEY_SIZE)
_ct = _exact(CT_SIZE)
_hash = _exact(HASH_SIZE)


def _with_optional(obj: dict[str, Any], **fields: Any) -> dict[str, Any]:
    for name, value in fields.items():
        if value is not None:
            obj[name] = value
    return obj


# ------------------------------------------------------------------- prekeys


@attrs.frozen
class OneTimePrekey:
    """One one-time X-Wing prekey of a prekey record: ``[id, pk]`` on the wire."""

    id: int = attrs.field(validator=_prekey_id)
    pk: bytes = attrs.field(validator=_xwing_pk)

    def to_cbor(self) -> list[Any]:
        return [self.id, self.pk]

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> OneTimePrekey:
        if type(obj) is not list or len(obj) != 2:
            raise DecodeError("field-type", path, "a one-time prekey is [id, pk]")
        ident = check_uint(obj[0], child_path(path, 0), 0, MAX_PREKEY_ID)
        pk = check_bytes(obj[1], child_path(path, 1), size=XWING_PUBLIC_KEY_SIZE)
        return cls(ident, pk)


def _one_time_list(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not tuple or len(value) > MAX_ONE_TIME_PREKEYS:
        raise ConfigError(f"{attribute.name} must be a tuple of at most {MAX_ONE_TIME_PREKEYS}")
    if not all(isinstance(item, OneTimePrekey) for item in value):
        raise ConfigError(f"{attribute.name} must hold OneTimePrekey values")
    if len({item.id for item in value}) != len(value):
        raise ConfigError(f"{attribute.name} has a repeated prekey id")


@register
@attrs.frozen
class PrekeyRecord:
    """A user's prekeys (11-messaging.md §2): what a sender needs for first contact.

    Signed under :attr:`CONTEXT` over :meth:`signed_bytes` (the deterministic
    encoding of the map without ``sig``) by the ML-DSA-65 key whose SHA3-256
    is ``owner``: the key itself comes from the user's certificate, which
    keeps a record with 48 one-time prekeys within one DHT value.  ``ik`` is the
    user's X-Wing identity key, ``spk`` the signed prekey rotated weekly,
    ``rk`` the X25519 ratchet key that goes with it, ``intro`` the name of the
    intro box (§5.4) and ``opks`` up to 48 one-time X-Wing prekeys.
    """

    TYPE: ClassVar[str] = "prekeys"
    CONTEXT: ClassVar[bytes] = b"qdht/v1/msg-prekeys"
    owner: bytes = attrs.field(validator=_hash)
    ik: bytes = attrs.field(validator=_xwing_pk)
    spk_id: int = attrs.field(validator=_prekey_id)
    spk: bytes = attrs.field(validator=_xwing_pk)
    rk: bytes = attrs.field(validator=_exact(X25519_SIZE))
    intro: bytes = attrs.field(validator=_hash)
    opks: tuple[OneTimePrekey, ...] = attrs.field(validator=_one_time_list)
    issued: int = attrs.field(validator=_time)
    exp: int = attrs.field(validator=_time)
    sig: bytes = attrs.field(validator=_exact(MLDSA_SIGNATURE_SIZE))

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "owner": self.owner,
            "ik": self.ik,
            "spk_id": self.spk_id,
            "spk": self.spk,
            "rk": self.rk,
            "intro": self.intro,
            "opks": [item.to_cbor() for item in self.opks],
            "issued": self.issued,
            "exp": self.exp,
            "sig": self.sig,
        }

    def signed_bytes(self) -> bytes:
        """The deterministic encoding of the map without ``sig``."""
        body = self.to_cbor()
        del body["sig"]
        return dumps_canonical(body)

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> PrekeyRecord:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        owner = reader.bytes_("owner", size=HASH_SIZE)
        ik = reader.bytes_("ik", size=XWING_PUBLIC_KEY_SIZE)
        spk_id = reader.uint("spk_id", max_value=MAX_PREKEY_ID)
        spk = reader.bytes_("spk", size=XWING_PUBLIC_KEY_SIZE)
        rk = reader.bytes_("rk", size=X25519_SIZE)
        intro = reader.bytes_("intro", size=HASH_SIZE)
        opks = reader.array("opks", OneTimePrekey.from_cbor, max_len=MAX_ONE_TIME_PREKEYS)
        if len({item.id for item in opks}) != len(opks):
            raise DecodeError("field-value", child_path(path, "opks"), "repeated prekey id")
        issued = reader.uint("issued", max_value=MAX_TIME)
        exp = reader.uint("exp", max_value=MAX_TIME)
        sig = reader.bytes_("sig", size=MLDSA_SIGNATURE_SIZE)
        reader.finish()
        return cls(owner, ik, spk_id, spk, rk, intro, opks, issued, exp, sig)


# ------------------------------------------------------------- first contact


@register
@attrs.frozen
class FirstMessage:
    """The first message to a user (11-messaging.md §3): PQXDH-shaped, X-Wing only.

    ``ct_ik``, ``ct_spk`` and ``ct_opk`` encapsulate to the recipient's
    identity key, signed prekey ``spk_id`` and one-time prekey ``opk_id``;
    ``env`` is the sealed :class:`FirstEnvelope` naming the sender, and ``msg``
    the first ratchet message.  Nothing in clear names the sender.
    """

    TYPE: ClassVar[str] = "first_msg"
    spk_id: int = attrs.field(validator=_prekey_id)
    ct_ik: bytes = attrs.field(validator=_ct)
    ct_spk: bytes = attrs.field(validator=_ct)
    env: bytes = attrs.field(validator=_sized(MIN_SEALED_SIZE, MAX_BODY_SIZE))
    msg: RatchetMessage = attrs.field()
    opk_id: int | None = attrs.field(
        default=None, kw_only=True, validator=_optional_uint(MAX_PREKEY_ID)
    )
    ct_opk: bytes | None = attrs.field(
        default=None, kw_only=True, validator=_optional_exact(CT_SIZE)
    )

    def __attrs_post_init__(self) -> None:
        if (self.opk_id is None) != (self.ct_opk is None):
            raise ConfigError("opk_id and ct_opk go together")
        if not isinstance(self.msg, RatchetMessage):
            raise ConfigError("msg must be a RatchetMessage")

    def to_cbor(self) -> dict[str, Any]:
        obj = {
            "type": self.TYPE,
            "spk_id": self.spk_id,
            "ct_ik": self.ct_ik,
            "ct_spk": self.ct_spk,
            "env": self.env,
            "msg": self.msg.to_cbor(),
        }
        return _with_optional(obj, opk_id=self.opk_id, ct_opk=self.ct_opk)

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> FirstMessage:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        spk_id = reader.uint("spk_id", max_value=MAX_PREKEY_ID)
        ct_ik = reader.bytes_("ct_ik", size=CT_SIZE)
        ct_spk = reader.bytes_("ct_spk", size=CT_SIZE)
        env = reader.bytes_("env", min_size=MIN_SEALED_SIZE, max_size=MAX_BODY_SIZE)
        msg = reader.nested("msg", RatchetMessage.from_cbor)
        opk_id = reader.uint("opk_id", max_value=MAX_PREKEY_ID, optional=True)
        ct_opk = reader.bytes_("ct_opk", size=CT_SIZE, optional=True)
        if (opk_id is None) != (ct_opk is None):
            raise DecodeError("field-value", path, "opk_id and ct_opk go together")
        reader.finish()
        return cls(spk_id, ct_ik, ct_spk, env, msg, opk_id=opk_id, ct_opk=ct_opk)


@register
@attrs.frozen
class FirstEnvelope:
    """The sender's identity, sealed inside a first message (11-messaging.md §3.3).

    ``sig`` (signed mode) is the sender's ML-DSA-65 signature over the
    transcript hash and this map without ``sig``; without it (deniable mode)
    the sender is authenticated by the recipient's first reply (§3.4).
    ``pq`` is whether the session runs the PQ ratchet (§4.5).
    """

    TYPE: ClassVar[str] = "first_env"
    CONTEXT: ClassVar[bytes] = b"qdht/v1/msg-first"
    mldsa: bytes = attrs.field(validator=_exact(MLDSA_PUBLIC_KEY_SIZE))
    ik: bytes = attrs.field(validator=_xwing_pk)
    pq: bool = attrs.field(validator=_flag)
    sig: bytes | None = attrs.field(
        default=None, kw_only=True, validator=_optional_exact(MLDSA_SIGNATURE_SIZE)
    )

    def to_cbor(self) -> dict[str, Any]:
        obj = {"type": self.TYPE, "mldsa": self.mldsa, "ik": self.ik, "pq": self.pq}
        return _with_optional(obj, sig=self.sig)

    def signed_bytes(self) -> bytes:
        """The deterministic encoding of the map without ``sig``."""
        body = self.to_cbor()
        body.pop("sig", None)
        return dumps_canonical(body)

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> FirstEnvelope:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        mldsa = reader.bytes_("mldsa", size=MLDSA_PUBLIC_KEY_SIZE)
        ik = reader.bytes_("ik", size=XWING_PUBLIC_KEY_SIZE)
        pq = reader.bool_("pq")
        sig = reader.bytes_("sig", size=MLDSA_SIGNATURE_SIZE, optional=True)
        reader.finish()
        return cls(mldsa, ik, pq, sig=sig)


# -------------------------------------------------------------------- ratchet


@register
@attrs.frozen
class RatchetMessage:
    """A ratchet message (11-messaging.md §4): encrypted header and body only.

    Neither the ratchet key, the counters nor the PQ epoch appear in clear,
    so a stored message links to no other.
    """

    TYPE: ClassVar[str] = "ratchet_msg"
    hdr: bytes = attrs.field(validator=_sized(MIN_HEADER_SIZE, MAX_HEADER_SIZE))
    body: bytes = attrs.field(validator=_sized(16, MAX_BODY_SIZE))

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "hdr": self.hdr, "body": self.body}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> RatchetMessage:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        hdr = reader.bytes_("hdr", min_size=MIN_HEADER_SIZE, max_size=MAX_HEADER_SIZE)
        body = reader.bytes_("body", min_size=16, max_size=MAX_BODY_SIZE)
        reader.finish()
        return cls(hdr, body)


# ------------------------------------------------------------------ mailboxes


@register
@attrs.frozen
class SlotRecord:
    """A mailbox slot (11-messaging.md §5.2), stored under key SHA3-256(``token``).

    ``box`` is one fixed-size encrypted message, ``dh`` the hash of the
    deletion secret the recipient presents to delete it (§5.3).
    """

    TYPE: ClassVar[str] = "slot"
    token: bytes = attrs.field(validator=_hash)
    box: bytes = attrs.field(validator=_sized(MIN_SLOT_BOX, MAX_SLOT_BOX))
    dh: bytes = attrs.field(validator=_hash)
    exp: int = attrs.field(validator=_time)

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "token": self.token,
            "box": self.box,
            "dh": self.dh,
            "exp": self.exp,
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> SlotRecord:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        token = reader.bytes_("token", size=HASH_SIZE)
        box = reader.bytes_("box", min_size=MIN_SLOT_BOX, max_size=MAX_SLOT_BOX)
        dh = reader.bytes_("dh", size=HASH_SIZE)
        exp = reader.uint("exp", max_value=MAX_TIME)
        reader.finish()
        return cls(token, box, dh, exp)


@register
@attrs.frozen
class SlotDelete:
    """Delete the slot under ``key``: ``secret`` hashes to the slot's ``dh`` (§5.3)."""

    TYPE: ClassVar[str] = "slot_delete"
    key: bytes = attrs.field(validator=_hash)
    secret: bytes = attrs.field(validator=_hash)

    def to_cbor(self) -> dict[str, Any]:
        return {"type": self.TYPE, "key": self.key, "secret": self.secret}

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> SlotDelete:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        key = reader.bytes_("key", size=HASH_SIZE)
        secret = reader.bytes_("secret", size=HASH_SIZE)
        reader.finish()
        return cls(key, secret)


@register
@attrs.frozen
class IntroEntry:
    """An entry of an intro box (11-messaging.md §5.4): one first message and its work.

    ``box`` is the intro box's DHT key, ``nonce`` solves the proof of work
    over (``box``, SHA3-256 of the encoded ``first``, ``exp``).
    """

    TYPE: ClassVar[str] = "intro"
    box: bytes = attrs.field(validator=_hash)
    first: FirstMessage = attrs.field()
    exp: int = attrs.field(validator=_time)
    nonce: int = attrs.field(validator=_uint(MAX_POW_NONCE))

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.first, FirstMessage):
            raise ConfigError("first must be a FirstMessage")

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "box": self.box,
            "first": self.first.to_cbor(),
            "exp": self.exp,
            "nonce": self.nonce,
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> IntroEntry:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        box = reader.bytes_("box", size=HASH_SIZE)
        first = reader.nested("first", FirstMessage.from_cbor)
        exp = reader.uint("exp", max_value=MAX_TIME)
        nonce = reader.uint("nonce", max_value=MAX_POW_NONCE)
        reader.finish()
        return cls(box, first, exp, nonce)
