"""How mailbox requests reach the holders (11-messaging.md §7.4): directly or through exits.

:class:`DirectDelivery` asks the holders itself, which shows them this
node's address.  :class:`MixnetDelivery` sends each request to one exit in
F fragments with a reply block each (``exit_mbox``, 10-mixnet.md §14.8); the exit
runs it with :func:`serve_exit`, which is the same direct delivery run at
the exit, and answers through the reply block.  The client behaves the same
way with either: the same requests per tick, the same checks on what comes
back.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

import attrs
import trio

from qdht.crypto import sha3_256
from qdht.errors import ConfigError, DecodeError, LookupFailedError, NodeStateError
from qdht.messaging._holder import MailboxCore, MboxDone
from qdht.wire import (
    MAX_TIME,
    RID_SIZE,
    AnonMbox,
    Contact,
    MboxGet,
    MboxPut,
    MboxReply,
    SlotRecord,
    decode,
    encode,
)

if TYPE_CHECKING:
    from qdht.mixnet import Geometry, MixnetConfig
    from qdht.node import Node

__all__ = [
    "FIRST_MESSAGE_OVERHEAD",
    "Delivery",
    "DirectDelivery",
    "MixnetDelivery",
    "intro_fragments",
    "mailbox_fragments",
    "serve_exit",
    "slot_payload_needed",
]

#: Bytes an intro entry with a signed first message (one-time prekey
#: included) adds to the slot size, inside an ``exit_mbox`` or an
#: ``mbox_reply`` (measured: 10,135 with the reference sizes; a test checks).
FIRST_MESSAGE_OVERHEAD: Final = 10240

Request = MboxPut | MboxGet


class Delivery(Protocol):
    """How mailbox requests reach the holders of a key.

    ``request`` sends ``make(rid)`` for each holder of ``key`` and returns
    the replies that came back (none: nobody answered).  Direct delivery
    asks the holders itself; a mixnet delivery sends the same requests
    through mixes with single-use reply blocks and returns the replies they
    carry back, so the client's behaviour is the same with either.
    """

    name: str

    async def request(
        self, node: Node, key: bytes, make: Callable[[bytes], Request]
    ) -> list[MboxReply]: ...


def _distance(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


class DirectDelivery:
    """Ask the ``replicas`` closest nodes to the key (this node included, unless a client).

    Reveals this node's address to every holder it asks (§7.4).
    """

    name = "direct"

    def __init__(self, core: MailboxCore, operations: Any, replicas: int) -> None:
        self.core = core
        self.operations = operations
        self.replicas = replicas

    async def _holders(self, node: Node, key: bytes) -> list[Contact | None]:
        try:
            found: list[Contact | None] = list(await node.find_node(key))
        except LookupFailedError:
            found = []
        except NodeStateError:
            return []  # the node is stopping; its cancellation follows
        ranked: list[tuple[int, int, Contact | None]] = [
            (_distance(c.node_id, key), i, c) for i, c in enumerate(found) if c is not None
        ]
        if not node.client_mode:
            ranked.append((_distance(node.node_id, key), -1, None))
        ranked.sort(key=lambda item: (item[0], item[1]))
        return [c for _, _, c in ranked[: self.replicas]]

    async def request(
        self, node: Node, key: bytes, make: Callable[[bytes], Request]
    ) -> list[MboxReply]:
        replies: list[MboxReply] = []
        core = self.core

        async def ask(holder: Contact | None) -> None:
            if holder is None:
                start: Callable[[float], int] = lambda now: core.run_local(make, now)  # noqa: E731
            else:
                addr = holder.addresses[0] if holder.addresses else None
                node_id = holder.node_id

                def start(now: float) -> int:
                    return core.start_request(node_id, addr, make, now)

            try:
                done = await self.operations.run(node, start)
            except LookupFailedError:
                return
            assert isinstance(done, MboxDone)
            if done.reply is not None:
                replies.append(done.reply)

        async with trio.open_nursery() as nursery:
            for holder in await self._holders(node, key):
                nursery.start_soon(ask, holder)
        return replies


def slot_payload_needed(slot_size: int) -> int:
    """The bytes of a slot write (in ``exit_mbox``) and of a slot read's reply, the larger."""
    slot = SlotRecord(bytes(32), bytes(slot_size), bytes(32), MAX_TIME)
    put = encode(AnonMbox(MboxPut(bytes(RID_SIZE), bytes(32), slot=slot)))
    reply = encode(MboxReply(bytes(RID_SIZE), True, slot=slot))
    return max(len(put), len(reply))


def _fragments(geometry: Geometry, size: int) -> int:
    from qdht.mixnet import fragment_count  # only a node running the mixnet gets here

    return 1 if size <= geometry.user_payload_size else fragment_count(geometry, size)


def mailbox_fragments(slot_size: int, geometry: Geometry) -> int:
    """F, the packets (and reply blocks) of every slot request through the mixnet (§7.4).

    One if a slot write and a slot read's reply fit one payload, else the
    fragments the larger of them needs (§14.6): 2 for 2,048-byte slots in
    2,048-byte payloads.
    """
    return _fragments(geometry, slot_payload_needed(slot_size))


def intro_fragments(slot_size: int, geometry: Geometry) -> int:
    """The fragments of an intro write, and of an intro read's reply with one entry (§7.4)."""
    return _fragments(geometry, slot_size + FIRST_MESSAGE_OVERHEAD)


def _is_intro(request: Request) -> bool:
    if isinstance(request, MboxGet):
        return request.intro
    return request.intro is not None


class MixnetDelivery:
    """Each request to one exit in fragments with reply blocks, answered through them (§7.4).

    Every slot request (read, write, deletion, cover read) goes in
    :attr:`fragments` packets, each with a reply block, and its answer comes
    back through all of them, so every request of a tick costs the same
    packets both ways whatever it is.  An intro write (a first message) goes
    in :attr:`intro_fragments` packets if that is at most ``max_fragments``,
    else directly.  Intro reads go through the mixnet only if a page of one
    entry fits :attr:`fragments` (large payloads); else directly: reading the
    boxes at their own size every tick would overrun the payload stream, and
    a direct read shows the holders only that this node reads its own box.
    Requests sent directly are counted (``intro_direct``; the writes among
    them also as ``intro_writes_direct``).  ``ConfigError``
    if a slot request needs more than ``max_fragments``.
    """

    name = "mixnet"

    def __init__(
        self,
        direct: DirectDelivery,
        *,
        mixnet: MixnetConfig,
        slot_size: int,
        counters: Counter[str],
        drops: Counter[str],
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        geometry = mixnet.geometry
        self.fragments = mailbox_fragments(slot_size, geometry)
        if self.fragments > mixnet.max_fragments:
            raise ConfigError(
                f"messaging through the mixnet needs {self.fragments} fragments per slot "
                f"request with {slot_size}-byte slots and mixnet.user_payload_size "
                f"{geometry.user_payload_size}, more than mixnet.max_fragments "
                f"{mixnet.max_fragments} (or messaging delivery='direct')"
            )
        self.intro_fragments = intro_fragments(slot_size, geometry)
        self.intro_writes_fit = self.intro_fragments <= mixnet.max_fragments
        self.intro_reads_fit = self.intro_fragments <= self.fragments
        self.direct = direct
        self.counters = counters
        self.drops = drops
        self.rng = rng

    async def request(
        self, node: Node, key: bytes, make: Callable[[bytes], Request]
    ) -> list[MboxReply]:
        rid = self.rng(RID_SIZE)
        request = make(rid)
        fragments = self.fragments
        if _is_intro(request):
            if isinstance(request, MboxGet):
                fits = self.intro_reads_fit
            else:
                fits, fragments = self.intro_writes_fit, max(fragments, self.intro_fragments)
            if not fits:
                self.counters["intro_direct"] += 1
                if isinstance(request, MboxPut):
                    self.counters["intro_writes_direct"] += 1
                return await self.direct.request(node, key, make)
        try:
            answer = await node.anonymous.exit_request(
                encode(AnonMbox(request)), fragments=fragments
            )
        except (NodeStateError, ConfigError):  # no directory (or mixnet service) yet
            self.counters["mixnet_unready"] += 1
            return []
        if answer is None:
            self.counters["exit_timeouts"] += 1
            return []
        try:
            reply = decode(answer, expect=(MboxReply,))
        except DecodeError:
            self.drops["exit-reply-malformed"] += 1
            return []
        assert isinstance(reply, MboxReply)
        if reply.rid != rid:
            self.drops["exit-reply-rid"] += 1
            return []
        self.counters["exit_replies"] += 1
        return [reply]


async def serve_exit(
    node: Node, direct: DirectDelivery, message: AnonMbox, *, room: int
) -> MboxReply:
    """Run an ``exit_mbox`` at this exit (10-mixnet.md §14.8): the answer for its reply blocks.

    An intro page is cut to the ``room`` its reply blocks have.

    Keeps nothing about who asked: the request goes to the holders with
    fresh ``rid``s, which are forgotten once answered or timed out.
    """
    core = direct.core
    request = message.request
    rid = request.rid
    reason = core.refusal(request, trio.current_time())
    if reason is not None:
        core.drops[f"exit-{reason}"] += 1
        return MboxReply(rid, False, reason=reason)
    core.counters["exit_requests"] += 1
    replies = await direct.request(
        node, request.key, lambda fresh: attrs.evolve(request, rid=fresh)
    )
    if not replies:
        return MboxReply(rid, False, reason="unreachable")
    if isinstance(request, MboxPut):
        if any(reply.ok for reply in replies):
            return MboxReply(rid, True)
        return MboxReply(rid, False, reason=replies[0].reason or "refused")
    if not request.intro:
        for reply in replies:
            if reply.slot is not None and sha3_256(reply.slot.token) == request.key:
                return MboxReply(rid, True, slot=reply.slot)
        return MboxReply(rid, True)
    best = max(replies, key=lambda reply: len(reply.intros))
    entries, more = list(best.intros), best.more
    while entries and len(encode(MboxReply(rid, True, intros=entries, more=True))) > room:
        entries.pop()
        more = True
    return MboxReply(rid, True, intros=entries, more=more)
