"""How mailbox requests reach the holders (11-messaging.md §7.4): directly or through exits.

:class:`DirectDelivery` asks the holders itself, which shows them this
node's address.  :class:`MixnetDelivery` puts each request in one mix packet
with a reply block to one exit (``exit_mbox``, 10-mixnet.md §14.8); the exit
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
    from qdht.node import Node

__all__ = [
    "FIRST_MESSAGE_OVERHEAD",
    "Delivery",
    "DirectDelivery",
    "MixnetDelivery",
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
    """The mix user payload a slot write (in ``exit_mbox``) and a slot read's reply need."""
    slot = SlotRecord(bytes(32), bytes(slot_size), bytes(32), MAX_TIME)
    put = encode(AnonMbox(MboxPut(bytes(RID_SIZE), bytes(32), slot=slot)))
    reply = encode(MboxReply(bytes(RID_SIZE), True, slot=slot))
    return max(len(put), len(reply))


def _is_intro(request: Request) -> bool:
    if isinstance(request, MboxGet):
        return request.intro
    return request.intro is not None


class MixnetDelivery:
    """Each request in one mix packet to one exit, its reply through a reply block (§7.4).

    Intro requests that do not fit the mix payload (a first message is about
    9 KB more than a slot) go through ``direct`` and are counted
    (``intro_direct``); a slot request always fits, which the layer checks
    when it starts (:func:`slot_payload_needed`).
    """

    name = "mixnet"

    def __init__(
        self,
        direct: DirectDelivery,
        *,
        payload_size: int,
        slot_size: int,
        counters: Counter[str],
        drops: Counter[str],
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if payload_size < slot_payload_needed(slot_size):
            raise ConfigError(
                f"messaging through the mixnet needs mixnet.user_payload_size >= "
                f"{slot_payload_needed(slot_size)} for {slot_size}-byte slots "
                f"(or messaging delivery='direct')"
            )
        self.direct = direct
        self.payload_size = payload_size
        self.intro_reads_fit = payload_size >= slot_size + FIRST_MESSAGE_OVERHEAD
        self.counters = counters
        self.drops = drops
        self.rng = rng

    async def request(
        self, node: Node, key: bytes, make: Callable[[bytes], Request]
    ) -> list[MboxReply]:
        rid = self.rng(RID_SIZE)
        request = make(rid)
        data = encode(AnonMbox(request))
        reading = isinstance(request, MboxGet)
        if _is_intro(request) and (
            len(data) > self.payload_size or (reading and not self.intro_reads_fit)
        ):
            self.counters["intro_direct"] += 1
            return await self.direct.request(node, key, make)
        try:
            answer = await node.anonymous.exit_request(data)
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
    node: Node, direct: DirectDelivery, message: AnonMbox, *, payload_size: int
) -> MboxReply:
    """Run an ``exit_mbox`` at this exit (10-mixnet.md §14.8): the answer for the reply block.

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
    while entries and len(encode(MboxReply(rid, True, intros=entries, more=True))) > payload_size:
        entries.pop()
        more = True
    return MboxReply(rid, True, intros=entries, more=more)
