"""Mailbox requests between nodes (11-messaging.md §7): put, get and delete slots and intro entries.

A node running the messaging layer holds the slots and intro boxes whose
keys are close to its node ID and answers these requests; the records they
carry are those of §5 (:mod:`qdht.wire._messaging`).

================  ==========================================================
type              what it is
================  ==========================================================
``mbox_put``      store a slot or an intro entry under ``key``, or delete a slot
``mbox_get``      read the slot or the intro box under ``key``
``mbox_reply``    the answer to either, matched by ``rid``
================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Final

import attrs

from qdht.errors import ConfigError, DecodeError
from qdht.wire._dht import RID_SIZE
from qdht.wire._fields import FieldReader
from qdht.wire._messaging import HASH_SIZE, IntroEntry, SlotRecord
from qdht.wire._registry import register

__all__ = ["MAX_INTROS_PER_REPLY", "MAX_REASON_SIZE", "MboxGet", "MboxPut", "MboxReply"]

#: Intro entries in one ``mbox_reply`` (a signed first message is about 11 KB).
MAX_INTROS_PER_REPLY: Final = 4
#: Longest refusal reason in a reply, in UTF-8 bytes.
MAX_REASON_SIZE: Final = 32
#: Largest ``skip`` of an intro-box read: a box holds at most a few hundred entries.
MAX_SKIP: Final = 4096


def _exact(size: int) -> Any:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if type(value) is not bytes or len(value) != size:
            raise ConfigError(f"{attribute.name} must be {size} bytes")

    return check


def _to_tuple(entries: Iterable[IntroEntry]) -> tuple[IntroEntry, ...]:
    return tuple(entries)


_rid = _exact(RID_SIZE)
_hash = _exact(HASH_SIZE)


@register
@attrs.frozen
class MboxPut:
    """Store ``slot`` or ``intro`` under ``key``, or delete the slot there with ``secret``.

    Exactly one of the three is set.
    """

    TYPE: ClassVar[str] = "mbox_put"
    rid: bytes = attrs.field(validator=_rid)
    key: bytes = attrs.field(validator=_hash)
    slot: SlotRecord | None = attrs.field(default=None, kw_only=True)
    intro: IntroEntry | None = attrs.field(default=None, kw_only=True)
    secret: bytes | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        given = [v for v in (self.slot, self.intro, self.secret) if v is not None]
        if len(given) != 1:
            raise ConfigError("an mbox_put carries exactly one of slot, intro and secret")
        if self.slot is not None and not isinstance(self.slot, SlotRecord):
            raise ConfigError("slot must be a SlotRecord")
        if self.intro is not None and not isinstance(self.intro, IntroEntry):
            raise ConfigError("intro must be an IntroEntry")
        if self.secret is not None and (type(self.secret) is not bytes or len(self.secret) != 32):
            raise ConfigError("secret must be 32 bytes")

    def to_cbor(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"type": self.TYPE, "rid": self.rid, "key": self.key}
        if self.slot is not None:
            obj["slot"] = self.slot.to_cbor()
        if self.intro is not None:
            obj["intro"] = self.intro.to_cbor()
        if self.secret is not None:
            obj["secret"] = self.secret
        return obj

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> MboxPut:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        key = reader.bytes_("key", size=HASH_SIZE)
        slot = reader.nested("slot", SlotRecord.from_cbor, optional=True)
        intro = reader.nested("intro", IntroEntry.from_cbor, optional=True)
        secret = reader.bytes_("secret", size=HASH_SIZE, optional=True)
        reader.finish()
        if sum(v is not None for v in (slot, intro, secret)) != 1:
            raise DecodeError("field-value", path, "exactly one of slot, intro, secret")
        return cls(rid, key, slot=slot, intro=intro, secret=secret)


@register
@attrs.frozen
class MboxGet:
    """Read the slot under ``key``, or (``intro``) the intro box there from entry ``skip`` on."""

    TYPE: ClassVar[str] = "mbox_get"
    rid: bytes = attrs.field(validator=_rid)
    key: bytes = attrs.field(validator=_hash)
    intro: bool = attrs.field(default=False, kw_only=True)
    skip: int = attrs.field(default=0, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if type(self.intro) is not bool:
            raise ConfigError("intro must be a bool")
        if type(self.skip) is not int or not 0 <= self.skip <= MAX_SKIP:
            raise ConfigError(f"skip must be in 0..{MAX_SKIP}")

    def to_cbor(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "rid": self.rid,
            "key": self.key,
            "intro": self.intro,
            "skip": self.skip,
        }

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> MboxGet:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        key = reader.bytes_("key", size=HASH_SIZE)
        intro = reader.bool_("intro")
        skip = reader.uint("skip", max_value=MAX_SKIP)
        reader.finish()
        return cls(rid, key, intro=intro, skip=skip)


@register
@attrs.frozen
class MboxReply:
    """The answer to an ``mbox_put`` or ``mbox_get`` with the same ``rid``.

    ``ok`` false is a refusal with the holder's ``reason`` (§5; "" when
    ok); a slot read answers the ``slot`` held (absent: none), an intro read
    up to four ``intros`` and whether ``more`` follow.
    """

    TYPE: ClassVar[str] = "mbox_reply"
    rid: bytes = attrs.field(validator=_rid)
    ok: bool = attrs.field()
    reason: str = attrs.field(default="", kw_only=True)
    slot: SlotRecord | None = attrs.field(default=None, kw_only=True)
    intros: tuple[IntroEntry, ...] = attrs.field(default=(), kw_only=True, converter=_to_tuple)
    more: bool = attrs.field(default=False, kw_only=True)

    def __attrs_post_init__(self) -> None:
        flags: tuple[object, object] = (self.ok, self.more)
        if not all(type(flag) is bool for flag in flags):
            raise ConfigError("ok and more must be bools")
        reason: object = self.reason
        if type(reason) is not str or len(reason.encode()) > MAX_REASON_SIZE:
            raise ConfigError(f"reason must be text of at most {MAX_REASON_SIZE} bytes")
        if self.slot is not None and not isinstance(self.slot, SlotRecord):
            raise ConfigError("slot must be a SlotRecord")
        if len(self.intros) > MAX_INTROS_PER_REPLY or not all(
            isinstance(e, IntroEntry) for e in self.intros
        ):
            raise ConfigError(f"intros must be at most {MAX_INTROS_PER_REPLY} IntroEntry")

    def to_cbor(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "type": self.TYPE,
            "rid": self.rid,
            "ok": self.ok,
            "reason": self.reason,
            "intros": [entry.to_cbor() for entry in self.intros],
            "more": self.more,
        }
        if self.slot is not None:
            obj["slot"] = self.slot.to_cbor()
        return obj

    @classmethod
    def from_cbor(cls, obj: Any, path: str) -> MboxReply:
        reader = FieldReader(obj, path)
        reader.type_tag(cls.TYPE)
        rid = reader.bytes_("rid", size=RID_SIZE)
        ok = reader.bool_("ok")
        reason = reader.text("reason", max_len=MAX_REASON_SIZE)
        slot = reader.nested("slot", SlotRecord.from_cbor, optional=True)
        intros = reader.array("intros", IntroEntry.from_cbor, max_len=MAX_INTROS_PER_REPLY)
        more = reader.bool_("more")
        reader.finish()
        return cls(rid, ok, reason=reason, slot=slot, intros=intros, more=more)
