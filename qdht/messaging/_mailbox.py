"""Mailboxes in the DHT (11-messaging.md §5): single-use slots and intro boxes, sans-IO.

Messages wait in slot records whose keys only the two parties can derive:
per direction, ``root = KDF(epoch secret, "mailbox", direction)`` and slot
``i`` has the write token ``w_i = KDF(root, "slot-token", i)`` and the
deletion secret ``d_i = KDF(root, "slot-delete", i)``; its DHT key is
``H(w_i)``.  Indices start at a point derived from the root, so an outsider
cannot guess where a chain is, and the chain changes with every PQ epoch
(the mailbox rotates and heals with the ratchet).  A stored slot holds one
fixed-size ratchet message and names neither sender nor recipient.

:class:`Mailbox` is one conversation's client side (what to write, which keys
to poll, what a fetched slot holds); :class:`SlotHolder` and
:class:`IntroHolder` are the rules a DHT node applies to the slots and intro
entries it stores.  The DHT puts and gets, the mixnet and the polling timer
belong to the node.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

import attrs

from qdht.crypto import sha3_256
from qdht.errors import ConfigError, DecodeError
from qdht.messaging._kdf import derive
from qdht.messaging._ratchet import RatchetSession
from qdht.wire import (
    MAX_SLOT_BOX,
    MIN_SLOT_BOX,
    FirstMessage,
    IntroEntry,
    RatchetMessage,
    SlotDelete,
    SlotRecord,
    decode,
    dumps_canonical,
    encode,
    loads_canonical,
)

__all__ = [
    "DEFAULT_SLOT_SIZE",
    "INTRO_CAP",
    "INTRO_POW_BITS",
    "POLL_WINDOW",
    "SLOT_LIFETIME",
    "IntroHolder",
    "Mailbox",
    "Slot",
    "SlotHolder",
    "intro_box_key",
    "intro_refusal",
    "intro_work",
    "slot_at",
    "slot_refusal",
    "solve_intro",
]

DAY: Final = 86400
#: Slots expire 14 days after they are written (§5.2).
SLOT_LIFETIME: Final = 14 * DAY
#: One mix payload: the encoded ratchet message in a slot (§5.2).
DEFAULT_SLOT_SIZE: Final = 2048
#: Slots polled ahead per contact and epoch (§5.5).
POLL_WINDOW: Final = 32
#: Epoch chains polled per contact: a sender writes to the newest epoch both
#: sides know, at most one behind the newest the reader holds; one more for
#: slots written just before that.
POLL_EPOCHS: Final = 3
#: Entries an intro box holds at most (§5.4).
INTRO_CAP: Final = 64
#: Leading zero bits of an intro entry's proof of work (§5.4).
INTRO_POW_BITS: Final = 16
#: An intro entry lives no longer than a signed prekey is current, plus a day.
INTRO_LIFETIME: Final = 8 * DAY
_INTRO_BOX_LABEL: Final = b"qdht/v1/msg-intro-box"
_INTRO_POW_LABEL: Final = b"qdht/v1/msg-intro-pow"


@attrs.frozen
class Slot:
    """Slot ``index`` of one chain: write token, DHT key, deletion secret and its hash."""

    index: int
    token: bytes
    key: bytes
    delete_secret: bytes
    delete_hash: bytes


def _chain_root(epoch_secret: bytes, from_initiator: bool) -> bytes:
    return derive(epoch_secret, b"mailbox", context=b"\x01" if from_initiator else b"\x00")


def _start(root: bytes) -> int:
    return int.from_bytes(derive(root, b"slot-start", length=4), "big")


def slot_at(root: bytes, index: int) -> Slot:
    """Slot ``index`` of the chain with ``root`` (§5.1)."""
    i = index.to_bytes(8, "big")
    token = derive(root, b"slot-token", context=i)
    secret = derive(root, b"slot-delete", context=i)
    return Slot(index, token, sha3_256(token), secret, sha3_256(secret))


def _check_slot_size(slot_size: int) -> int:
    if type(slot_size) is not int or not MIN_SLOT_BOX <= slot_size <= MAX_SLOT_BOX:
        raise ConfigError(f"slot_size must be in {MIN_SLOT_BOX}..{MAX_SLOT_BOX}")
    return slot_size


class Mailbox:
    """One conversation's slots (§5.1 to §5.3): where to write, what to poll, what arrived.

    Writes go to the chain of :meth:`RatchetSession.mailbox_epoch`, the
    newest epoch both sides know; reads cover the peer's chain of every epoch
    the session still holds.  ``now`` is Unix seconds (slot expiry is absolute).
    """

    def __init__(self, session: RatchetSession, *, slot_size: int = DEFAULT_SLOT_SIZE) -> None:
        self.session = session
        self.slot_size = _check_slot_size(slot_size)
        #: Next index to write, per epoch of our chain.
        self.written: dict[int, int] = {}
        #: Per epoch of the peer's chain: the lowest index not yet read, and those read above it.
        self.read_floor: dict[int, int] = {}
        self.read_above: dict[int, set[int]] = {}
        self.drops: Counter[str] = Counter()
        self._slots: dict[tuple[bytes, int], Slot] = {}

    def _root(self, epoch: int, from_initiator: bool) -> bytes | None:
        secret = self.session.epoch_secret(epoch)
        return None if secret is None else _chain_root(secret, from_initiator)

    def send(self, data: bytes, *, now: float) -> tuple[bytes, SlotRecord]:
        """(DHT key, slot record) carrying ``data``: put it under that key.

        ConfigError if ``data`` does not fit one slot; SessionError if the
        session cannot send yet.
        """
        epoch = self.session.mailbox_epoch()
        root = self._root(epoch, self.session.state.initiator)
        assert root is not None
        index = self.written.get(epoch, _start(root))
        message = self.session.encrypt(data, pad_to=self.slot_size)
        self.written[epoch] = index + 1
        for old in [e for e in self.written if e < epoch - 2]:
            del self.written[old]
        slot = self._slot(root, index)
        return slot.key, SlotRecord(
            slot.token, encode(message), slot.delete_hash, int(now) + SLOT_LIFETIME
        )

    def _slot(self, root: bytes, index: int) -> Slot:
        slot = self._slots.get((root, index))
        if slot is None:
            if len(self._slots) > 16 * POLL_WINDOW:
                self._slots.clear()
            slot = self._slots[(root, index)] = slot_at(root, index)
        return slot

    def _peer_slots(self, window: int) -> dict[bytes, tuple[int, Slot]]:
        slots: dict[bytes, tuple[int, Slot]] = {}
        peer_is_initiator = not self.session.state.initiator
        for epoch in sorted(self.session.state.epochs)[-POLL_EPOCHS:]:
            root = self._root(epoch, peer_is_initiator)
            assert root is not None
            index = self.read_floor.setdefault(epoch, _start(root))
            above = self.read_above.get(epoch, set())
            count = 0
            while count < window:
                if index not in above:
                    slot = self._slot(root, index)
                    slots[slot.key] = (epoch, slot)
                    count += 1
                index += 1
        return slots

    def poll_keys(self, window: int = POLL_WINDOW) -> list[bytes]:
        """The slot keys to GET now: the next ``window`` unread slots of each epoch's chain."""
        return list(self._peer_slots(window))

    def receive(
        self, key: bytes, record: SlotRecord, *, window: int = POLL_WINDOW
    ) -> tuple[bytes, SlotDelete] | None:
        """The message in a fetched slot and the request that deletes it, or None (counted)."""
        found = self._peer_slots(window).get(key)
        if found is None:
            self.drops["slot-unknown"] += 1
            return None
        epoch, slot = found
        if record.token != slot.token or record.dh != slot.delete_hash:
            self.drops["slot-forged"] += 1
            return None
        try:
            message = decode(record.box, expect=(RatchetMessage,))
        except DecodeError:
            self.drops["slot-decode"] += 1
            return None
        assert isinstance(message, RatchetMessage)
        data = self.session.decrypt(message)
        if data is None:
            self.drops["slot-decrypt"] += 1
            return None
        above = self.read_above.setdefault(epoch, set())
        above.add(slot.index)
        while self.read_floor[epoch] in above:
            above.discard(self.read_floor[epoch])
            self.read_floor[epoch] += 1
        polled = sorted(self.session.state.epochs)[-POLL_EPOCHS:]
        for old in [e for e in self.read_floor if e < polled[0]]:
            del self.read_floor[old]
            self.read_above.pop(old, None)
        return data, SlotDelete(key, slot.delete_secret)

    def stats(self) -> dict[str, Any]:
        return {"drops": dict(self.drops), "session": self.session.stats()}

    def to_bytes(self) -> bytes:
        """The slot positions as deterministic CBOR (the session persists itself)."""
        return dumps_canonical(
            {
                "v": 1,
                "written": sorted(self.written.items()),
                "read": [
                    [epoch, floor, sorted(self.read_above.get(epoch, ()))]
                    for epoch, floor in sorted(self.read_floor.items())
                ],
            }
        )

    @classmethod
    def from_bytes(
        cls, data: bytes, session: RatchetSession, *, slot_size: int = DEFAULT_SLOT_SIZE
    ) -> Mailbox:
        """Restore slot positions written by :meth:`to_bytes` around ``session``."""
        mailbox = cls(session, slot_size=slot_size)
        try:
            obj = loads_canonical(data)
            if obj["v"] != 1:
                raise ConfigError("unknown mailbox version")
            mailbox.written = dict(obj["written"])
            for epoch, floor, above in obj["read"]:
                mailbox.read_floor[epoch] = floor
                mailbox.read_above[epoch] = set(above)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a mailbox state: {exc}") from None
        return mailbox


# ---------------------------------------------------------------- holders


@attrs.frozen
class _Tombstone:
    exp: int


def slot_refusal(key: bytes, record: SlotRecord, *, now: float, slot_size: int) -> str | None:
    """Why §5.2 refuses ``record`` under ``key`` whatever is held (None: it may be stored)."""
    if sha3_256(record.token) != key:
        return "slot-token"
    if len(record.box) != slot_size:
        return "slot-size"
    if not now < record.exp <= now + SLOT_LIFETIME:
        return "slot-expiry"
    return None


class SlotHolder:
    """What a DHT node holding slots enforces (§5.2, §5.3), sans-IO.

    A slot is written once (a different second write is refused; the same
    record again is accepted as a replica), only by whoever knows the token
    that hashes to its key, with the network's fixed box size and at most 14
    days to live; it is deleted by whoever shows the preimage of its ``dh``,
    which leaves a tombstone until its expiry so it cannot be written again.
    """

    def __init__(self, *, slot_size: int = DEFAULT_SLOT_SIZE) -> None:
        self.slot_size = _check_slot_size(slot_size)
        self.slots: dict[bytes, SlotRecord | _Tombstone] = {}
        self.drops: Counter[str] = Counter()

    def _refuse(self, reason: str) -> bool:
        self.drops[reason] += 1
        return False

    def put(self, key: bytes, record: SlotRecord, *, now: float) -> bool:
        """Store ``record`` under ``key``; False (counted) if a rule refuses it."""
        reason = slot_refusal(key, record, now=now, slot_size=self.slot_size)
        if reason is not None:
            return self._refuse(reason)
        held = self.slots.get(key)
        if held is not None and held.exp > now:
            if held == record:
                return True
            return self._refuse("slot-deleted" if isinstance(held, _Tombstone) else "slot-taken")
        self.slots[key] = record
        return True

    def get(self, key: bytes, *, now: float) -> SlotRecord | None:
        held = self.slots.get(key)
        if isinstance(held, SlotRecord) and held.exp > now:
            return held
        return None

    def delete(self, request: SlotDelete, *, now: float) -> bool:
        """Tombstone the slot if ``request.secret`` hashes to its ``dh``."""
        held = self.slots.get(request.key)
        if not isinstance(held, SlotRecord) or held.exp <= now:
            return self._refuse("slot-missing")
        if sha3_256(request.secret) != held.dh:
            return self._refuse("slot-secret")
        self.slots[request.key] = _Tombstone(held.exp)
        return True

    def expire(self, now: float) -> int:
        """Forget expired slots and tombstones; how many went."""
        gone = [key for key, held in self.slots.items() if held.exp <= now]
        for key in gone:
            del self.slots[key]
        return len(gone)

    def stats(self) -> dict[str, Any]:
        return {"slots": len(self.slots), "drops": dict(self.drops)}


def intro_box_key(intro: bytes) -> bytes:
    """The DHT key of the intro box named ``intro`` in a prekey record (§5.4)."""
    return sha3_256(_INTRO_BOX_LABEL, intro)


def intro_work(box: bytes, first: FirstMessage, exp: int, nonce: int) -> bytes:
    """The proof-of-work digest of an intro entry (§5.4)."""
    return sha3_256(
        _INTRO_POW_LABEL,
        box,
        sha3_256(encode(first)),
        exp.to_bytes(8, "big"),
        nonce.to_bytes(8, "big"),
    )


def _leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def solve_intro(
    box: bytes, first: FirstMessage, *, exp: int, bits: int = INTRO_POW_BITS
) -> IntroEntry:
    """An intro entry for ``first`` whose work has ``bits`` leading zero bits."""
    if type(bits) is not int or not 0 <= bits <= 32:
        raise ConfigError("bits must be in 0..32")
    nonce = 0
    while _leading_zero_bits(intro_work(box, first, exp, nonce)) < bits:
        nonce += 1
    return IntroEntry(box, first, exp, nonce)


def intro_refusal(key: bytes, entry: IntroEntry, *, now: float, pow_bits: int) -> str | None:
    """Why §5.4 refuses ``entry`` in the box ``key`` whatever the box holds (None: may be)."""
    if entry.box != key:
        return "intro-box"
    if not now < entry.exp <= now + INTRO_LIFETIME:
        return "intro-expiry"
    if _leading_zero_bits(intro_work(entry.box, entry.first, entry.exp, entry.nonce)) < pow_bits:
        return "intro-pow"
    return None


class IntroHolder:
    """What a DHT node holding intro boxes enforces (§5.4), sans-IO.

    A box takes at most ``cap`` entries, each with enough work, a lifetime of
    at most 8 days and not already held; the oldest-expiring entry is never
    evicted for a new one, so a flood fills a box but cannot rotate it.
    """

    def __init__(self, *, cap: int = INTRO_CAP, pow_bits: int = INTRO_POW_BITS) -> None:
        if type(cap) is not int or cap < 1:
            raise ConfigError("cap must be a positive integer")
        self.cap = cap
        self.pow_bits = pow_bits
        self.boxes: dict[bytes, dict[bytes, IntroEntry]] = {}
        self.drops: Counter[str] = Counter()

    def put(self, key: bytes, entry: IntroEntry, *, now: float) -> bool:
        """Add ``entry`` to the box under ``key``; False (counted) if refused."""
        reason = self._check(key, entry, now)
        if reason is not None:
            self.drops[reason] += 1
            return False
        self.boxes.setdefault(key, {})[
            intro_work(entry.box, entry.first, entry.exp, entry.nonce)
        ] = entry
        return True

    def _check(self, key: bytes, entry: IntroEntry, now: float) -> str | None:
        reason = intro_refusal(key, entry, now=now, pow_bits=self.pow_bits)
        if reason is not None:
            return reason
        box = self.boxes.get(key, {})
        for digest in [d for d, held in box.items() if held.exp <= now]:
            del box[digest]
        if any(held.first == entry.first for held in box.values()):
            return "intro-duplicate"
        if len(box) >= self.cap:
            return "intro-full"
        return None

    def get(self, key: bytes, *, now: float) -> list[IntroEntry]:
        return [entry for entry in self.boxes.get(key, {}).values() if entry.exp > now]

    def stats(self) -> dict[str, Any]:
        return {
            "boxes": len(self.boxes),
            "entries": sum(len(box) for box in self.boxes.values()),
            "drops": dict(self.drops),
        }
