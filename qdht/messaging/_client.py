"""The messaging client's state machine (11-messaging.md §7), sans-IO.

:class:`MessagingClient` is everything one user's node keeps and decides:
its prekeys, its contacts and their mailboxes, the outbox of slot records
and intro entries waiting to be written, the inbox, and the constant-rate
poll plan.  It reads no clock and does no I/O: the Trio side
(:mod:`qdht.messaging._face`) fetches prekey records, performs the mailbox
requests the plan names through a :class:`~qdht.messaging.Delivery`, and
hands the answers back.  Every step that advances a ratchet commits its
new state together with its product in one :class:`MessagingStore`
transaction (see there).  Times are Unix seconds.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

import attrs

from qdht.crypto import sha3_256
from qdht.crypto.xwing import XWingPrivateKey
from qdht.errors import ConfigError, DecodeError
from qdht.identity import compute_node_id
from qdht.messaging._first_contact import accept_first, initiate
from qdht.messaging._mailbox import POLL_WINDOW, Mailbox, intro_box_key, solve_intro
from qdht.messaging._msgstore import MessagingStore
from qdht.messaging._prekeys import PrekeyStore, Signer
from qdht.messaging._ratchet import RatchetSession, RatchetState
from qdht.wire import (
    IntroEntry,
    PrekeyRecord,
    SlotRecord,
    dumps_canonical,
    encode,
    loads_canonical,
)

__all__ = [
    "DIRECTORY_PREFIX",
    "PREKEY_SALT",
    "IncomingMessage",
    "MessagingClient",
    "OutboxItem",
    "PollPlan",
    "directory_topic",
    "directory_value",
    "parse_directory_value",
]

#: Salt of the user's mutable record holding its prekey record (§7.1).
PREKEY_SALT: Final = b"qdht/v1/msg-prekeys"
#: Set topic prefix of a node's directory entry: the topic is this ‖ node ID (§7.1).
DIRECTORY_PREFIX: Final = b"qdht/v1/msg-dir/"
#: How long an intro entry lives (at most 8 days, §5.4).
INTRO_ENTRY_LIFETIME: Final = 7 * 86400
#: Refusals that mean the holder has the entry already: the write is done.
_ALREADY_HELD: Final = frozenset({"intro-duplicate"})
#: Intro boxes polled per tick: the current signed prekey's and the previous one's.
INTRO_BOXES: Final = 2

Rng = Callable[[int], bytes]


def directory_topic(node_id: bytes) -> bytes:
    """The set topic whose entries map ``node_id`` to its owner key (§7.1)."""
    return DIRECTORY_PREFIX + node_id


def directory_value(xwing_public: bytes, nonce: bytes) -> bytes:
    """A node's directory entry value: what binds its node ID to the entry's signer."""
    return dumps_canonical({"v": 1, "xwing": xwing_public, "nonce": nonce})


def parse_directory_value(node_id: bytes, value: bytes, owner: bytes) -> bytes | None:
    """The X-Wing public key of ``node_id`` if ``value`` (signed by ``owner``) proves it."""
    try:
        obj = loads_canonical(value)
        if not isinstance(obj, dict) or obj.get("v") != 1 or set(obj) != {"v", "xwing", "nonce"}:
            return None
        xwing, nonce = obj["xwing"], obj["nonce"]
        if type(xwing) is not bytes or type(nonce) is not bytes:
            return None
        if compute_node_id(xwing, owner, nonce) != node_id:
            return None
    except (DecodeError, ConfigError, ValueError):
        return None
    return xwing


@attrs.frozen
class IncomingMessage:
    """A message that arrived: inbox ``id``, ``sender`` node ID, ``time``, ``data``.

    ``time`` is the Unix time the sender wrote into the message (its clock, as it
    claims; authenticated with the rest of the message).  ``verified`` is False
    while the sender of a deniable first message has not proved its identity
    key yet (§3.4): ``sender`` is then only what the message claims.
    """

    id: int
    sender: bytes
    time: float
    data: bytes
    verified: bool = True


@attrs.frozen
class OutboxItem:
    """A write waiting for the next tick: a slot, an intro entry or a slot deletion."""

    id: int
    kind: str
    key: bytes
    payload: bytes


@attrs.frozen
class PollPlan:
    """One tick's requests: always ``len(slots)`` slot reads, ``len(intros)`` intro-box reads
    and ``writes_per_tick`` writes or cover reads, whatever arrives (§7.3)."""

    slots: tuple[bytes, ...]
    intros: tuple[bytes, ...]
    writes: tuple[OutboxItem, ...]
    cover_writes: tuple[bytes, ...]


@attrs.define
class _Contact:
    node_id: bytes
    mldsa: bytes | None = None
    mailbox: Mailbox | None = None
    added: float = 0.0


def _payload(data: bytes, unix: float, sender: tuple[bytes, bytes] | None = None) -> bytes:
    obj: dict[str, Any] = {"t": int(unix), "d": data}
    if sender is not None:
        obj["n"] = [sender[0], sender[1]]
    return dumps_canonical(obj)


def _parse_payload(data: bytes) -> tuple[int, bytes, tuple[bytes, bytes] | None] | None:
    try:
        obj = loads_canonical(data)
    except (DecodeError, ValueError):
        return None
    if not isinstance(obj, dict) or not set(obj) <= {"t", "d", "n"}:
        return None
    t, d, n = obj.get("t"), obj.get("d"), obj.get("n")
    if type(t) is not int or t < 0 or type(d) is not bytes:
        return None
    if n is None:
        return t, d, None
    if (
        type(n) is not list
        or len(n) != 2
        or not all(type(x) is bytes for x in n)
        or len(n[0]) != 32
        or len(n[1]) != 8
    ):
        return None
    return t, d, (n[0], n[1])


class MessagingClient:
    """One user's messaging state and decisions (§7), sans-IO; see the module docstring."""

    def __init__(
        self,
        *,
        mldsa_key: Signer,
        identity_key: XWingPrivateKey,
        node_id: bytes,
        nonce: bytes,
        store: MessagingStore,
        slot_size: int,
        one_time_prekeys: int,
        intro_pow_bits: int,
        poll_slots: int,
        poll_window: int,
        writes_per_tick: int,
        deniable: bool = False,
        rng: Rng = os.urandom,
    ) -> None:
        self.mldsa_key = mldsa_key
        self.identity_key = identity_key
        self.node_id = node_id
        self.nonce = nonce
        self.store = store
        self.slot_size = slot_size
        self.intro_pow_bits = intro_pow_bits
        self.poll_slots = poll_slots
        self.poll_window = min(poll_window, POLL_WINDOW)
        self.writes_per_tick = writes_per_tick
        #: First messages go without a signature (§3.4 deniable mode).
        self.deniable = deniable
        self.rng = rng
        self.drops: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        saved = store.get("prekeys")
        if saved is None:
            self.prekeys = PrekeyStore(
                mldsa_key, identity_key, one_time_target=one_time_prekeys, rng=rng
            )
        else:
            self.prekeys = PrekeyStore.from_bytes(
                saved, mldsa_key, identity_key, one_time_target=one_time_prekeys, rng=rng
            )
        self.contacts: dict[bytes, _Contact] = {}
        for node, mldsa, session, mailbox, added in store.execute(
            "SELECT node_id, mldsa, session, mailbox, added FROM contacts"
        ):
            contact = _Contact(bytes(node), None if mldsa is None else bytes(mldsa), None, added)
            if session is not None:
                ratchet = RatchetSession(
                    RatchetState.from_bytes(bytes(session)), identity_key=identity_key, rng=rng
                )
                contact.mailbox = Mailbox.from_bytes(bytes(mailbox), ratchet, slot_size=slot_size)
            self.contacts[contact.node_id] = contact
        self._poll_owner: dict[bytes, bytes] = {}
        self._poll_cursor = 0
        #: Outbox IDs whose write is under way (the I/O side sets and clears them).
        self.in_flight: set[int] = set()

    # ------------------------------------------------------------ prekeys

    def prekey_step(self, unix: float) -> PrekeyRecord | None:
        """Rotate and refill the prekeys; the record to publish if it changed (saved first)."""
        self.prekeys.rotate(unix)
        self.prekeys.refill()
        if not self.prekeys.dirty:
            return None
        record = self.prekeys.record(unix)
        with self.store.transaction():
            self.store.put("prekeys", self.prekeys.to_bytes())
        return record

    def intro_boxes(self) -> list[bytes]:
        """The DHT keys of this user's intro boxes, newest signed prekey first."""
        spks = sorted(self.prekeys.signed.values(), key=lambda s: s.id, reverse=True)
        return [intro_box_key(spk.intro) for spk in spks[:INTRO_BOXES]]

    # ------------------------------------------------------------ contacts

    def add_contact(self, node_id: bytes, unix: float) -> bool:
        """Remember ``node_id`` as a contact; False if it was one already."""
        if node_id in self.contacts:
            return False
        if node_id == self.node_id:
            raise ConfigError("a node cannot be its own contact")
        contact = self.contacts[node_id] = _Contact(node_id, added=unix)
        with self.store.transaction():
            self._save_contact(contact)
        return True

    def is_verified(self, node_id: bytes) -> bool:
        """Whether ``node_id`` has a session whose peer is authenticated (§3.4)."""
        contact = self.contacts.get(node_id)
        return (
            contact is not None and contact.mailbox is not None and contact.mailbox.session.verified
        )

    def has_session(self, node_id: bytes) -> bool:
        contact = self.contacts.get(node_id)
        return contact is not None and contact.mailbox is not None

    def _save_contact(self, contact: _Contact) -> None:
        mailbox = contact.mailbox
        self.store.execute(
            "INSERT OR REPLACE INTO contacts (node_id, mldsa, session, mailbox, added) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                contact.node_id,
                contact.mldsa,
                None if mailbox is None else mailbox.session.to_bytes(),
                None if mailbox is None else mailbox.to_bytes(),
                contact.added,
            ),
        )

    # ------------------------------------------------------------ sending

    def _outbox(self, contact: bytes, kind: str, key: bytes, payload: bytes, unix: float) -> int:
        cursor = self.store.execute(
            "INSERT INTO outbox (contact, kind, key, payload, state, created) "
            "VALUES (?, ?, ?, ?, 'queued', ?)",
            (contact, kind, key, payload, unix),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def queue_message(self, node_id: bytes, data: bytes, unix: float) -> int:
        """Encrypt ``data`` into the contact's next slot; the message ID (outbox row)."""
        contact = self.contacts.get(node_id)
        if contact is None or contact.mailbox is None:
            raise ConfigError("no session with that contact yet: send a first message")
        try:
            key, record = contact.mailbox.send(_payload(data, unix), now=unix)
        except ConfigError as exc:
            raise ConfigError(f"data too large for one {self.slot_size}-byte slot: {exc}") from None
        with self.store.transaction():
            self._save_contact(contact)
            ident = self._outbox(node_id, "slot", key, encode(record), unix)
        self.counters["messages_queued"] += 1
        return ident

    def queue_first(
        self, node_id: bytes, record: PrekeyRecord, signer: bytes, data: bytes, unix: float
    ) -> int:
        """Start a conversation with the owner of ``record`` (verified against ``signer``)."""
        contact = self.contacts.get(node_id)
        if contact is None:
            self.add_contact(node_id, unix)
            contact = self.contacts[node_id]
        try:
            first = initiate(
                mldsa_key=self.mldsa_key,
                identity_key=self.identity_key,
                record=record,
                signer=signer,
                data=_payload(data, unix, (self.node_id, self.nonce)),
                now=unix,
                pad_to=self.slot_size,
                deniable=self.deniable,
                rng=self.rng,
            )
        except ConfigError as exc:
            raise ConfigError(f"cannot start a conversation: {exc}") from None
        box = intro_box_key(record.intro)
        entry = solve_intro(
            box, first.message, exp=int(unix) + INTRO_ENTRY_LIFETIME, bits=self.intro_pow_bits
        )
        contact.mldsa = signer
        contact.mailbox = Mailbox(first.session, slot_size=self.slot_size)
        with self.store.transaction():
            self._save_contact(contact)
            ident = self._outbox(node_id, "intro", box, encode(entry), unix)
        self.counters["first_messages_queued"] += 1
        return ident

    def write_done(self, item: OutboxItem, ok: bool, reason: str = "") -> None:
        """A write was answered: stored (``ok``), refused, or to be retried (``reason`` "").

        A holder that already holds the entry (``intro-duplicate``) counts as
        stored; a stored write is never marked refused afterwards.
        """
        if not ok and not reason:
            return  # unreachable holders: stays queued for the next tick
        ok = ok or reason in _ALREADY_HELD
        if not ok:
            self.drops[f"write-refused-{reason}"] += 1
        state = "stored" if ok else "refused"
        with self.store.transaction():
            self.store.execute(
                "UPDATE outbox SET state = ? WHERE id = ? AND state = 'queued'", (state, item.id)
            )

    def delivery_state(self, message_id: int) -> str:
        """``"queued"``, ``"stored"`` (in the recipient's mailbox) or ``"refused"``."""
        row = self.store.execute(
            "SELECT state FROM outbox WHERE id = ? AND kind != 'delete'", (message_id,)
        ).fetchone()
        if row is None:
            raise ConfigError(f"no message with ID {message_id}")
        return str(row[0])

    def is_queued(self, item: OutboxItem) -> bool:
        row = self.store.execute("SELECT state FROM outbox WHERE id = ?", (item.id,)).fetchone()
        return row is not None and row[0] == "queued"

    # ------------------------------------------------------------ polling

    def poll_plan(self) -> PollPlan:
        """This tick's requests; their number never depends on traffic (§7.3)."""
        keys: list[tuple[bytes, bytes]] = []
        per_contact = [
            [(key, c.node_id) for key in c.mailbox.poll_keys(self.poll_window)]
            for c in self.contacts.values()
            if c.mailbox is not None
        ]
        for row in range(max((len(ks) for ks in per_contact), default=0)):
            keys.extend(ks[row] for ks in per_contact if row < len(ks))
        if len(keys) > self.poll_slots:
            start = self._poll_cursor % len(keys)
            keys = (keys[start:] + keys[:start])[: self.poll_slots]
            self._poll_cursor = start + self.poll_slots
        self._poll_owner = dict(keys)
        slots = [key for key, _ in keys]
        slots += [self.rng(32) for _ in range(self.poll_slots - len(slots))]
        intros = self.intro_boxes()[:INTRO_BOXES]
        intros += [self.rng(32) for _ in range(INTRO_BOXES - len(intros))]
        writes = self.queued(self.writes_per_tick)
        cover = tuple(self.rng(32) for _ in range(self.writes_per_tick - len(writes)))
        counters = self.counters
        counters["ticks"] += 1
        counters["slot_reads"] += len(slots)
        counters["intro_reads"] += len(intros)
        counters["writes"] += len(writes)
        counters["cover_writes"] += len(cover)
        counters["mailbox_ops"] += len(slots) + len(intros) + len(writes) + len(cover)
        return PollPlan(tuple(slots), tuple(intros), writes, cover)

    def queued(self, limit: int) -> tuple[OutboxItem, ...]:
        """Claim the oldest ``limit`` writes still waiting and not being written right now.

        They join :attr:`in_flight` until the I/O side calls :meth:`write_done`
        or :meth:`release`.
        """
        rows = self.store.execute(
            "SELECT id, kind, key, payload FROM outbox WHERE state = 'queued' ORDER BY id LIMIT ?",
            (limit + len(self.in_flight),),
        ).fetchall()
        items = [OutboxItem(r[0], r[1], bytes(r[2]), bytes(r[3])) for r in rows]
        claimed = tuple(item for item in items if item.id not in self.in_flight)[:limit]
        self.in_flight.update(item.id for item in claimed)
        return claimed

    def release(self, item: OutboxItem) -> None:
        """The write of ``item`` ended (however); it may be claimed again if still queued."""
        self.in_flight.discard(item.id)

    def on_slot(self, key: bytes, record: SlotRecord, unix: float) -> IncomingMessage | None:
        """A slot read this tick; the message it held, or None (counted)."""
        owner = self._poll_owner.get(key)
        contact = self.contacts.get(owner) if owner is not None else None
        if contact is None or contact.mailbox is None:
            self.drops["slot-unpolled"] += 1
            return None
        got = contact.mailbox.receive(key, record, window=self.poll_window)
        if got is None:
            return None
        data, delete = got
        del self._poll_owner[key]
        parsed = _parse_payload(data)
        with self.store.transaction():
            self._save_contact(contact)
            self._outbox(contact.node_id, "delete", key, delete.secret, unix)
            self.counters["deletes_queued"] += 1
            if parsed is None or parsed[2] is not None:
                self.drops["payload-malformed"] += 1
                return None
            verified = contact.mailbox.session.verified
            return self._inbox(contact.node_id, parsed[0], parsed[1], verified)

    def _inbox(self, sender: bytes, t: int, data: bytes, verified: bool = True) -> IncomingMessage:
        cursor = self.store.execute(
            "INSERT INTO inbox (sender, time, data, verified) VALUES (?, ?, ?, ?)",
            (sender, float(t), data, int(verified)),
        )
        assert cursor.lastrowid is not None
        self.counters["messages_received"] += 1
        if not verified:
            self.counters["unverified_received"] += 1
        return IncomingMessage(cursor.lastrowid, sender, float(t), data, verified)

    def on_intro(self, entry: IntroEntry, unix: float) -> IncomingMessage | None:
        """An intro-box entry read this tick; the first message it opened, or None (counted)."""
        digest = sha3_256(encode(entry.first))
        seen = self.store.execute("SELECT 1 FROM intros WHERE digest = ?", (digest,)).fetchone()
        if seen is not None:
            return None
        accepted = accept_first(self.prekeys, entry.first, rng=self.rng)
        if accepted is None:
            with self.store.transaction():
                self.store.execute(
                    "INSERT OR IGNORE INTO intros (digest, exp) VALUES (?, ?)", (digest, entry.exp)
                )
            return None
        parsed = _parse_payload(accepted.data)
        sender: bytes | None = None
        if parsed is not None and parsed[2] is not None:
            node_id, nonce = parsed[2]
            try:
                claimed = compute_node_id(
                    accepted.sender_ik, sha3_256(accepted.sender_mldsa), nonce
                )
            except ConfigError:
                claimed = b""
            if claimed == node_id and node_id != self.node_id:
                sender = node_id
        with self.store.transaction():
            self.store.put("prekeys", self.prekeys.to_bytes())
            self.store.execute(
                "INSERT OR IGNORE INTO intros (digest, exp) VALUES (?, ?)", (digest, entry.exp)
            )
            if parsed is None or sender is None:
                self.drops["first-sender"] += 1
                return None
            contact = self.contacts.get(sender)
            if contact is not None and contact.mailbox is not None and not accepted.signed:
                # A deniable first message proves nothing yet (§3.4): it never
                # replaces a session, or anyone could take over a conversation.
                self.drops["first-unverified-taken"] += 1
                return None
            if contact is None:
                contact = self.contacts[sender] = _Contact(sender, added=unix)
            # Both sides may have started at once: the lower node ID's session wins.
            if contact.mailbox is None or sender < self.node_id:
                contact.mailbox = Mailbox(accepted.session, slot_size=self.slot_size)
                contact.mldsa = accepted.sender_mldsa
            self._save_contact(contact)
            return self._inbox(sender, parsed[0], parsed[1], accepted.signed)

    def expire(self, unix: float) -> None:
        """Forget expired intro digests."""
        with self.store.transaction():
            self.store.execute("DELETE FROM intros WHERE exp <= ?", (int(unix),))

    # ------------------------------------------------------------ inbox

    def untaken(self) -> list[IncomingMessage]:
        """Inbox messages no ``incoming()`` iterator has handed out yet, oldest first."""
        rows = self.store.execute(
            "SELECT id, sender, time, data, verified FROM inbox WHERE taken = 0 ORDER BY id"
        ).fetchall()
        return [IncomingMessage(r[0], bytes(r[1]), r[2], bytes(r[3]), bool(r[4])) for r in rows]

    def mark_taken(self, message_id: int) -> None:
        with self.store.transaction():
            self.store.execute("UPDATE inbox SET taken = 1 WHERE id = ?", (message_id,))

    def inbox(self) -> list[IncomingMessage]:
        rows = self.store.execute(
            "SELECT id, sender, time, data, verified FROM inbox ORDER BY id"
        ).fetchall()
        return [IncomingMessage(r[0], bytes(r[1]), r[2], bytes(r[3]), bool(r[4])) for r in rows]

    def stats(self) -> dict[str, Any]:
        drops: Counter[str] = Counter(self.drops)
        drops.update(self.prekeys.drops)
        for contact in self.contacts.values():
            if contact.mailbox is not None:
                drops.update(contact.mailbox.drops)
                drops.update(contact.mailbox.session.drops)
        queued = self.store.execute("SELECT COUNT(*) FROM outbox WHERE state = 'queued'")
        return {
            **dict(self.counters),
            "contacts": len(self.contacts),
            "sessions": sum(1 for c in self.contacts.values() if c.mailbox is not None),
            "outbox_queued": queued.fetchone()[0],
            "one_time_prekeys": len(self.prekeys.one_time),
            "drops": dict(drops),
        }
