"""The messaging layer in a node (11-messaging.md §7): config, delivery, Trio face, service.

``Config(messaging=MessagingConfig())`` turns it on; ``node.messaging`` is
the :class:`MessagingFace`.  The service's task tree (one nursery, cancelled
with the node) has the timer of :class:`~qdht.messaging.MailboxCore`, the
prekey task (publish the directory entry and the prekey record, rotate,
refill) and the poll task (one constant-size batch of mailbox requests per
``poll_interval``: the contacts' next slots or cover keys, the intro boxes,
and the sending queue's writes or cover reads).

Every mailbox request goes through a :class:`Delivery`
(``MessagingConfig.delivery``).  :class:`DirectDelivery` asks the holders
themselves; what that reveals is in §7.4 (the holders of a slot see the
addresses of both parties).  :class:`MixnetDelivery` sends the same requests
in mix packets to exits with single-use reply blocks; "auto", the default,
is the mixnet whenever the node runs it.  A node that runs the mixnet also
serves the ``exit_mbox`` requests other clients send it as an exit.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from qdht import validators
from qdht.errors import (
    ConfigError,
    ContactError,
    LookupFailedError,
    NodeStateError,
    RPCError,
    StoreError,
)
from qdht.messaging._client import (
    PREKEY_SALT,
    IncomingMessage,
    MessagingClient,
    OutboxItem,
    directory_topic,
    directory_value,
    parse_directory_value,
)
from qdht.messaging._delivery import (
    Delivery,
    DirectDelivery,
    MixnetDelivery,
    serve_exit,
)
from qdht.messaging._holder import MailboxCore
from qdht.messaging._mailbox import DEFAULT_SLOT_SIZE, INTRO_POW_BITS, POLL_WINDOW
from qdht.messaging._msgstore import HELD_FILE, MESSAGING_FILE, HeldStore, MessagingStore
from qdht.messaging._prekeys import parse_prekey_record
from qdht.wire import (
    MAX_SLOT_BOX,
    MIN_SLOT_BOX,
    RID_SIZE,
    AnonMbox,
    Contact,
    IntroEntry,
    MboxGet,
    MboxPut,
    MboxReply,
    PrekeyRecord,
    SlotRecord,
    decode,
    encode,
    mutable_key,
)

if TYPE_CHECKING:
    from qdht.node import Node, Service, ServiceContext

__all__ = [
    "DELIVERY_MODES",
    "DENIABLE_MIN_SLOT_SIZE",
    "SENDER_AUTH_MODES",
    "MessagingConfig",
    "MessagingFace",
    "contact_node_id",
    "messaging_service",
]

#: Pages of an intro box read per holder and tick at most.
MAX_INTRO_PAGES: Final = 16
#: Wait before retrying a failed prekey publication, seconds: doubling up to the second.
PUBLISH_RETRY_FIRST: Final = 1.0
PUBLISH_RETRY: Final = 60.0
#: Longest wait between prekey rotation checks, seconds.
PREKEY_CHECK: Final = 3600.0

Request = MboxPut | MboxGet
#: ``MessagingConfig.delivery``: "auto" is "mixnet" when the node runs the mixnet.
DELIVERY_MODES: Final = ("auto", "direct", "mixnet")
#: ``MessagingConfig.sender_auth`` of first messages (§3.4).
SENDER_AUTH_MODES: Final = ("signature", "deniable")
#: The least slot size of deniable mode: until the sender answers, the
#: responder's headers carry a 1120-byte X-Wing ciphertext besides the PQ
#: ratchet's 1184-byte key, which would leave no room for data in 2048 bytes.
DENIABLE_MIN_SLOT_SIZE: Final = 3072


def _slot_size(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or not MIN_SLOT_BOX <= value <= MAX_SLOT_BOX:
        raise ConfigError(f"{attribute.name} must be in {MIN_SLOT_BOX}..{MAX_SLOT_BOX}")


def _bits(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or not 0 <= value <= 32:
        raise ConfigError(f"{attribute.name} must be an integer in 0..32")


def _one_of(choices: tuple[str, ...]) -> Callable[[Any, attrs.Attribute[Any], object], None]:
    def check(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in choices:
            raise ConfigError(
                f"{attribute.name} must be one of {', '.join(choices)}; got {value!r}"
            )

    return check


@attrs.frozen
class MessagingConfig:
    """The messaging layer's settings (``qdht.Config.messaging``; None: off).

    ``slot_size`` and ``intro_pow_bits`` must be the same on every node of a
    network: holders refuse other sizes and less work.
    """

    #: Encoded size of every slot's ratchet message: one mix payload.
    slot_size: int = attrs.field(default=DEFAULT_SLOT_SIZE, validator=_slot_size)
    #: One-time prekeys kept published (the record grows 1.2 KB per key; at most 48).
    one_time_prekeys: int = attrs.field(default=32, validator=validators.non_negative_int)
    #: Leading zero bits of an intro entry's proof of work.
    intro_pow_bits: int = attrs.field(default=INTRO_POW_BITS, validator=_bits)
    #: Seconds between two poll ticks.
    poll_interval: float = attrs.field(default=30.0, validator=validators.positive)
    #: Slot reads per tick, whatever the contacts (cover keys fill the rest).
    poll_slots: int = attrs.field(default=8, validator=validators.positive_int)
    #: Unread slots per contact and epoch chain offered to the poll set.
    poll_window: int = attrs.field(default=2, validator=validators.positive_int)
    #: Writes per tick (queued messages, deletions; cover reads fill the rest).
    writes_per_tick: int = attrs.field(default=2, validator=validators.positive_int)
    #: Holders each slot and intro entry is written to (the closest nodes to its key).
    replicas: int = attrs.field(default=3, validator=validators.positive_int)
    #: How requests travel (§7.4): "mixnet" (to exits, in mix packets with reply
    #: blocks; needs ``Config.mixnet``), "direct" (to the holders; shows them this
    #: node's address), "auto" (the mixnet when the node runs it, else direct).
    delivery: str = attrs.field(default="auto", validator=_one_of(DELIVERY_MODES))
    #: How a first message authenticates its sender (§3.4): "signature" (ML-DSA-65,
    #: at once, provably to anyone) or "deniable" (after one round trip; until
    #: then the recipient shows the sender's messages as unverified).
    sender_auth: str = attrs.field(default="signature", validator=_one_of(SENDER_AUTH_MODES))

    def __attrs_post_init__(self) -> None:
        if self.one_time_prekeys > 48:
            raise ConfigError("one_time_prekeys must be at most 48")
        if self.poll_window > POLL_WINDOW:
            raise ConfigError(f"poll_window must be at most {POLL_WINDOW}")
        if self.sender_auth == "deniable" and self.slot_size < DENIABLE_MIN_SLOT_SIZE:
            raise ConfigError(
                f"sender_auth 'deniable' needs slot_size >= {DENIABLE_MIN_SLOT_SIZE} (the "
                f"responder's headers carry an X-Wing ciphertext until the sender answers)"
            )


def _intro_read(box: bytes, skip: int) -> Callable[[bytes], Request]:
    return lambda rid: MboxGet(rid, box, intro=True, skip=skip)


def contact_node_id(contact: bytes | str | Contact) -> bytes:
    """The node ID named by a node ID (bytes or 64 hex digits), a contact URI or a Contact."""
    if isinstance(contact, Contact):
        return contact.node_id
    if type(contact) is bytes:
        if len(contact) != 32:
            raise ConfigError("a node ID is 32 bytes")
        return contact
    if type(contact) is str:
        text = contact.strip()
        if len(text) == 64:
            try:
                return bytes.fromhex(text)
            except ValueError:
                pass
        try:
            return Contact.from_uri(text).node_id
        except (ContactError, ConfigError, ValueError) as exc:
            raise ConfigError(f"contact must be a node ID or a contact URI: {exc}") from None
    raise ConfigError(f"contact must be a node ID or a contact URI, got {type(contact).__name__}")


class _Incoming:
    """``async for message in node.messaging.incoming()``: messages not handed out yet."""

    def __init__(self, face: MessagingFace) -> None:
        self._face = face

    def __aiter__(self) -> _Incoming:
        return self

    async def __anext__(self) -> IncomingMessage:
        face = self._face
        while True:
            waiting = face.client.untaken()
            if waiting:
                face.client.mark_taken(waiting[0].id)
                return waiting[0]
            await face._arrived.wait()


class MessagingFace:
    """``node.messaging``: contacts, ``send``, incoming messages, delivery state."""

    def __init__(self, context: ServiceContext, config: MessagingConfig) -> None:
        from qdht.node import Operations

        self.config = config
        self.unix_offset = context.unix_offset
        data_dir = None if context.data_dir is None else Path(context.data_dir)
        self.store = MessagingStore(None if data_dir is None else data_dir / MESSAGING_FILE)
        self.held = HeldStore(None if data_dir is None else data_dir / HELD_FILE)
        self._held_unsaved = trio.Event()
        identity = context.identity
        self._xwing_public = identity.xwing.public_key_bytes()
        self._nonce = identity.nonce
        self.core = MailboxCore(
            slot_size=config.slot_size,
            intro_pow_bits=config.intro_pow_bits,
            unix_offset=context.unix_offset,
            more_stats=self.stats,
        )
        self._restore_held(context.now)
        self.core.on_held = self._keep_held
        self.client = MessagingClient(
            mldsa_key=identity.mldsa,
            identity_key=identity.xwing,
            node_id=identity.node_id,
            nonce=identity.nonce,
            store=self.store,
            slot_size=config.slot_size,
            one_time_prekeys=config.one_time_prekeys,
            intro_pow_bits=config.intro_pow_bits,
            poll_slots=config.poll_slots,
            poll_window=config.poll_window,
            writes_per_tick=config.writes_per_tick,
            deniable=config.sender_auth == "deniable",
        )
        self.operations = Operations()
        self.direct = DirectDelivery(self.core, self.operations, config.replicas)
        self.delivery: Delivery = self.direct
        mixnet = context.config.mixnet
        #: The mix user payload, if the node runs the mixnet (and so serves as an exit).
        self.mix_payload: int | None = None if mixnet is None else mixnet.user_payload_size
        if config.delivery == "mixnet" and mixnet is None:
            raise ConfigError("messaging delivery 'mixnet' needs the mixnet (Config.mixnet)")
        if config.delivery != "direct" and mixnet is not None:
            self.delivery = MixnetDelivery(
                self.direct,
                mixnet=mixnet,
                slot_size=config.slot_size,
                counters=self.client.counters,
                drops=self.client.drops,
            )
        self._node: Node | None = None
        self._arrived = trio.Event()
        self._republish = trio.Event()
        self._published = False
        self._ready = trio.Event()
        #: When the next poll tick starts (node clock).
        self.next_tick = math.inf

    # ------------------------------------------------------------ held mailboxes

    def _keep_held(self, request: MboxPut) -> int:
        """Journal a put this node accepted as a holder, so its mailboxes survive a
        restart; the core answers it once :meth:`holder_task` saved its ticket."""
        if request.slot is not None:
            exp = request.slot.exp
        elif request.intro is not None:
            exp = request.intro.exp
        else:  # a deletion: its tombstone lives as long as the slot would have
            held = self.core.slots.slots.get(request.key)
            exp = held.exp if held is not None else 2**40
        stored = attrs.evolve(request, rid=bytes(RID_SIZE))
        ticket = self.held.append(request.key, encode(stored), exp)
        self._held_unsaved.set()
        return ticket

    def _restore_held(self, now: float) -> None:
        unix = now + self.unix_offset
        # Files written before the holder had its own: move their rows over once.
        old = self.store.execute("SELECT key, request, exp FROM held ORDER BY id").fetchall()
        for key, blob, exp in old:
            self.held.append(bytes(key), bytes(blob), exp)
        self.held.expire(unix)
        self.held.save()
        if old:
            with self.store.transaction():
                self.store.execute("DELETE FROM held")
        rows = self.held.rows()
        for blob in rows:
            request = decode(blob, expect=(MboxPut,))
            assert isinstance(request, MboxPut)
            self.core.restore(request, now)
        self.core.counters["restored"] = len(rows)

    async def holder_task(self, node: Node, *, task_status: trio.TaskStatus[None]) -> None:
        """Save the puts this node accepted as a holder, off the event loop.

        Puts journalled while one save runs go together into the next (group
        commit); their answers wait for it.  The save runs in a worker thread,
        except under ``trio.testing.MockClock``, where it runs inline (as the
        DHT's record store does).  A failing save is retried every second.
        """
        testing = sys.modules.get("trio.testing")
        simulated = testing is not None and isinstance(
            trio.lowlevel.current_clock(), testing.MockClock
        )
        task_status.started()
        while True:
            await self._held_unsaved.wait()
            self._held_unsaved = trio.Event()
            try:
                saved = (
                    self.held.save() if simulated else await trio.to_thread.run_sync(self.held.save)
                )
            except StoreError:
                self.core.drops["held-save-failed"] += 1
                await trio.sleep(1.0)
                self._held_unsaved.set()
                continue
            self.core.saved(saved)
            await node.flush()

    # ------------------------------------------------------------ public API

    def _unix(self) -> float:
        return trio.current_time() + self.unix_offset

    def _running(self) -> Node:
        if self._node is None:
            raise ConfigError("the messaging layer is not running (use it inside open_node)")
        return self._node

    def add_contact(self, contact: bytes | str | Contact) -> bytes:
        """Remember a contact (node ID, hex node ID or contact URI); its node ID."""
        node_id = contact_node_id(contact)
        self.client.add_contact(node_id, self._unix())
        return node_id

    def contacts(self) -> list[bytes]:
        """The node IDs of every contact, in the order they were added."""
        return list(self.client.contacts)

    async def send(self, contact: bytes | str | Contact, data: bytes) -> int:
        """Queue ``data`` for ``contact``; the message ID (see :meth:`delivery_state`).

        A contact without a session yet gets a first message: its prekey
        record is fetched from the DHT now (``LookupFailedError`` if there is
        none, or it is refused).  The message is written at the next ticks.
        ``ConfigError`` if ``data`` does not fit one slot.
        """
        node = self._running()
        if type(data) is not bytes:
            raise ConfigError(f"data must be bytes, got {type(data).__name__}")
        node_id = contact_node_id(contact)
        if self.client.has_session(node_id):
            return self.client.queue_message(node_id, data, self._unix())
        record, signer = await self.fetch_prekeys(node, node_id)
        return self.client.queue_first(node_id, record, signer, data, self._unix())

    def verified(self, contact: bytes | str | Contact) -> bool:
        """Whether the contact's identity is authenticated (§3.4): False for a contact
        that wrote first in deniable mode until it answered, or with no session yet."""
        return self.client.is_verified(contact_node_id(contact))

    def delivery_state(self, message_id: int) -> str:
        """``"queued"``, ``"stored"`` (held in the recipient's mailbox) or ``"refused"``."""
        return self.client.delivery_state(message_id)

    def incoming(self) -> _Incoming:
        """Messages as they arrive (those waiting since the last run first):
        ``async for message in node.messaging.incoming()``; each is handed out once."""
        return _Incoming(self)

    def inbox(self) -> list[IncomingMessage]:
        """Every message received, oldest first (kept in the data directory)."""
        return self.client.inbox()

    async def poll(self) -> None:
        """Run one tick now, besides the constant-rate ones (reveals the extra timing)."""
        await self._tick(self._running())

    async def flush(self) -> None:
        """Write every queued message now (reveals timing; the CLI uses it before exiting)."""
        node = self._running()
        while True:
            writes = self.client.queued(self.config.writes_per_tick)
            if not writes:
                if not self.client.in_flight:
                    return
                # A poll tick is writing the rest: wait for it to end.
                await trio.sleep(min(1.0, self.config.poll_interval / 4))
                continue
            async with trio.open_nursery() as nursery:
                for item in writes:
                    nursery.start_soon(self._write, node, item)
            if all(self.client.is_queued(item) for item in writes):
                raise LookupFailedError("no holder answered the queued writes")

    async def published(self) -> None:
        """Return once this node's directory entry and prekey record are in the DHT."""
        await self._ready.wait()

    # ------------------------------------------------------------ prekeys

    async def fetch_prekeys(self, node: Node, node_id: bytes) -> tuple[PrekeyRecord, bytes]:
        """The verified prekey record of ``node_id`` and its owner's ML-DSA-65 key (§7.1)."""
        for entry in await node.get_set(directory_topic(node_id)):
            value, owner = entry.value, entry.owner
            public_key = getattr(entry.record, "public_key", None)
            if value is None or owner is None or public_key is None:
                continue
            xwing = parse_directory_value(node_id, value, owner)
            if xwing is None:
                self.client.drops["directory-forged"] += 1
                continue
            found = await node.get_record(mutable_key(owner, PREKEY_SALT))
            if found is None or found.value is None:
                raise LookupFailedError("the contact has published no prekey record")
            parsed = parse_prekey_record(found.value, now=self._unix(), signer=public_key)
            if not isinstance(parsed, str) and parsed.ik != xwing:
                parsed = "prekeys-ik"
            if isinstance(parsed, str):
                self.client.drops[parsed] += 1
                raise LookupFailedError(f"the contact's prekey record was refused: {parsed}")
            return parsed, public_key
        raise LookupFailedError("no messaging directory entry for that node ID")

    async def prekey_task(self, node: Node, *, task_status: trio.TaskStatus[None]) -> None:
        """Publish the directory entry and the prekey record; rotate and refill them."""
        self._node = node
        task_status.started()
        pending: PrekeyRecord | None = None
        directory = False
        retry = PUBLISH_RETRY_FIRST
        while True:
            record = self.client.prekey_step(self._unix())
            pending = (
                record
                or pending
                or (None if self._published else self.client.prekeys.record(self._unix()))
            )
            try:
                if not directory:
                    value = directory_value(self._xwing_public, self._nonce)
                    await node.put_set_entry(directory_topic(node.node_id), value)
                    directory = True
                if pending is not None:
                    await node.put_mutable(encode(pending), salt=PREKEY_SALT)
                    pending, self._published = None, True
                    self.client.counters["prekeys_published"] += 1
                    self._ready.set()
            except NodeStateError:
                await trio.sleep_forever()  # the node is stopping
            except (LookupFailedError, RPCError, StoreError):
                self.client.counters["prekey_publish_failed"] += 1
                await trio.sleep(retry)
                retry = min(2 * retry, PUBLISH_RETRY)
                continue
            retry = PUBLISH_RETRY_FIRST
            with trio.move_on_after(PREKEY_CHECK):
                await self._republish.wait()
            self._republish = trio.Event()

    # ------------------------------------------------------------ polling

    async def poll_task(self, node: Node, *, task_status: trio.TaskStatus[None]) -> None:
        """One tick per ``poll_interval``, on a fixed schedule."""
        self._node = node
        if self.mix_payload is not None:
            node.anonymous.run_mailbox = self.serve_exit
        task_status.started()
        start = self.next_tick = trio.current_time()
        ticks = 0
        while True:
            await self._tick(node)
            ticks += 1
            interval = self.config.poll_interval
            if start + ticks * interval < trio.current_time():  # a slow tick: skip, never burst
                ticks = math.ceil((trio.current_time() - start) / interval)
            self.next_tick = start + ticks * interval
            await trio.sleep_until(self.next_tick)

    async def _tick(self, node: Node) -> None:
        plan = self.client.poll_plan()
        async with trio.open_nursery() as nursery:
            for key in plan.slots:
                nursery.start_soon(self._read_slot, node, key)
            for box in plan.intros:
                nursery.start_soon(self._read_intros, node, box)
            for item in plan.writes:
                nursery.start_soon(self._write, node, item)
            for key in plan.cover_writes:
                nursery.start_soon(self._read_slot, node, key)
        if self.client.prekeys.dirty:
            self._republish.set()
        self.client.expire(self._unix())
        self.held.expire(self._unix())
        self._held_unsaved.set()

    def _arrival(self) -> None:
        self._arrived.set()
        self._arrived = trio.Event()

    async def _read_slot(self, node: Node, key: bytes) -> None:
        replies = await self.delivery.request(node, key, lambda rid: MboxGet(rid, key))
        seen: set[SlotRecord] = set()
        for reply in replies:
            if reply.slot is None or reply.slot in seen:
                continue
            seen.add(reply.slot)
            if self.client.on_slot(key, reply.slot, self._unix()) is not None:
                self._arrival()
                return

    async def _read_intros(self, node: Node, box: bytes) -> None:
        entries: dict[bytes, IntroEntry] = {}
        skip = 0
        for _ in range(MAX_INTRO_PAGES):
            replies = await self.delivery.request(node, box, _intro_read(box, skip))
            more = False
            for reply in replies:
                for entry in reply.intros:
                    entries.setdefault(encode(entry.first), entry)
                more |= reply.more
            if not more:
                break
            # A page through an exit may be cut to fit one mix payload (§7.4).
            skip += max(1, max(len(reply.intros) for reply in replies))
        for entry in entries.values():
            if self.client.on_intro(entry, self._unix()) is not None:
                self._arrival()

    async def _write(self, node: Node, item: OutboxItem) -> None:
        def make(rid: bytes) -> MboxPut:
            if item.kind == "slot":
                record = decode(item.payload, expect=(SlotRecord,))
                assert isinstance(record, SlotRecord)
                return MboxPut(rid, item.key, slot=record)
            if item.kind == "intro":
                entry = decode(item.payload, expect=(IntroEntry,))
                assert isinstance(entry, IntroEntry)
                return MboxPut(rid, item.key, intro=entry)
            return MboxPut(rid, item.key, secret=item.payload)

        try:
            replies = await self.delivery.request(node, item.key, make)
        finally:
            self.client.release(item)
        if any(reply.ok for reply in replies):
            self.client.write_done(item, True)
        elif replies:
            self.client.write_done(item, False, replies[0].reason or "refused")

    async def serve_exit(self, node: Node, message: AnonMbox, room: int) -> MboxReply:
        """Run another client's ``exit_mbox`` as this node's exit (10-mixnet.md §14.8)."""
        return await serve_exit(node, self.direct, message, room=room)

    def close(self) -> None:
        self.held.close()
        self.store.close()

    def stats(self) -> dict[str, Any]:
        """The client's counters (merged into the service's ``stats()`` by its core)."""
        return {**self.client.stats(), "delivery": self.delivery.name}


def messaging_service(config: MessagingConfig) -> Callable[[ServiceContext], Service]:
    """The messaging layer's service factory (``Config.messaging`` adds it by itself)."""

    def factory(context: ServiceContext) -> Service:
        from qdht.node import Service

        face = MessagingFace(context, config)
        return Service(
            "messaging",
            face.core,
            {MboxPut.TYPE, MboxGet.TYPE, MboxReply.TYPE},
            on_event=face.operations.resolve,
            tasks=(face.holder_task, face.prekey_task, face.poll_task),
            close=face.close,
            face=face,
        )

    return factory
