"""The messaging service's sans-IO core (11-messaging.md §7): mailbox requests, both sides.

As a holder it keeps the slots and intro boxes other nodes put here and
enforces §5's rules (:class:`~qdht.messaging.SlotHolder`,
:class:`~qdht.messaging.IntroHolder`); as a client it sends ``mbox_put`` and
``mbox_get`` requests, matches their ``mbox_reply`` by ``rid`` and times them
out.  ``now`` is the node's clock; holder rules use Unix time, ``now +
unix_offset``.  Remote input never raises: it is dropped and counted.
"""

from __future__ import annotations

import heapq
import os
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any, Final

import attrs

from qdht.errors import ConfigError, DecodeError, LookupFailedError
from qdht.messaging._mailbox import (
    INTRO_CAP,
    INTRO_POW_BITS,
    IntroHolder,
    SlotHolder,
    intro_refusal,
    slot_refusal,
)
from qdht.wire import (
    MAX_INTROS_PER_REPLY,
    MAX_REASON_SIZE,
    RID_SIZE,
    MboxGet,
    MboxPut,
    MboxReply,
    SlotDelete,
    decode,
    encode,
)

__all__ = ["MBOX_TIMEOUT", "MailboxCore", "MboxDone"]

#: How long a mailbox request waits for its reply.
MBOX_TIMEOUT: Final = 5.0
#: Requests of this node waiting for their reply at once.
MAX_PENDING: Final = 1024
#: How often held slots and intro entries are checked for expiry, seconds.
EXPIRY_INTERVAL: Final = 600.0

Request = MboxPut | MboxGet


@attrs.frozen
class MboxDone:
    """The request started as ``handle`` ended: ``reply`` is None when it failed (``reason``)."""

    handle: int
    reply: MboxReply | None
    reason: str = ""


class MailboxCore:
    """Sans-IO: hold slots and intro boxes, and run this node's own mailbox requests."""

    def __init__(
        self,
        *,
        slot_size: int,
        intro_pow_bits: int = INTRO_POW_BITS,
        intro_cap: int = INTRO_CAP,
        unix_offset: float = 0.0,
        rng: Callable[[int], bytes] = os.urandom,
        more_stats: Callable[[], dict[str, Any]] | None = None,
        on_held: Callable[[MboxPut], int | None] | None = None,
    ) -> None:
        self._more_stats = more_stats
        #: Called with every put this node accepted (the face journals them for
        #: the disk): a ticket means "answer once :meth:`saved` reaches it".
        self.on_held = on_held
        self.slots = SlotHolder(slot_size=slot_size)
        self.intros = IntroHolder(cap=intro_cap, pow_bits=intro_pow_bits)
        self.unix_offset = unix_offset
        self._rng = rng
        self._out: list[tuple[bytes, Hashable, bytes]] = []
        self._events: list[MboxDone] = []
        self._pending: dict[bytes, tuple[int, bytes]] = {}
        self._deadlines: list[tuple[float, bytes]] = []
        self._new_deadline = float("inf")
        self._next_expiry: float | None = None
        self._next_handle = 1
        #: Answers to accepted puts, held until their ticket is saved: (ticket, answer).
        self._unsaved: list[tuple[int, tuple[bytes, Hashable, bytes] | MboxDone]] = []
        self._ticket: int | None = None
        self.counters: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()

    # ------------------------------------------------------------ holder side

    def hold(self, request: Request, now: float) -> MboxReply:
        """Apply ``request`` to what this node holds (§5 rules) and return the reply."""
        unix = now + self.unix_offset
        rid = request.rid
        self._ticket = None
        if isinstance(request, MboxGet):
            self.counters["gets_answered"] += 1
            if not request.intro:
                return MboxReply(rid, True, slot=self.slots.get(request.key, now=unix))
            entries = self.intros.get(request.key, now=unix)
            page = entries[request.skip : request.skip + MAX_INTROS_PER_REPLY]
            more = bool(page) and request.skip + len(page) < len(entries)
            return MboxReply(rid, True, intros=page, more=more)
        self.counters["puts_answered"] += 1
        holder: SlotHolder | IntroHolder = self.intros if request.intro is not None else self.slots
        before = dict(holder.drops)
        if request.slot is not None:
            ok = self.slots.put(request.key, request.slot, now=unix)
        elif request.intro is not None:
            ok = self.intros.put(request.key, request.intro, now=unix)
        else:
            assert request.secret is not None
            ok = self.slots.delete(SlotDelete(request.key, request.secret), now=unix)
        if ok:
            if self.on_held is not None:
                self._ticket = self.on_held(request)
            return MboxReply(rid, True)
        moved = [r for r, n in holder.drops.items() if n != before.get(r, 0)]
        return MboxReply(rid, False, reason=moved[0][:MAX_REASON_SIZE] if moved else "refused")

    def refusal(self, request: Request, now: float) -> str | None:
        """Why a holder would refuse ``request`` whatever it holds (an exit's check, §7.4)."""
        if isinstance(request, MboxGet):
            return None
        unix = now + self.unix_offset
        if request.slot is not None:
            return slot_refusal(request.key, request.slot, now=unix, slot_size=self.slots.slot_size)
        if request.intro is not None:
            return intro_refusal(
                request.key, request.intro, now=unix, pow_bits=self.intros.pow_bits
            )
        return None

    # ------------------------------------------------------------ client side

    def start_request(
        self, node_id: bytes, addr: Hashable, make: Callable[[bytes], Request], now: float
    ) -> int:
        """Send ``make(rid)`` to ``node_id`` at ``addr``; :class:`MboxDone` reports by handle."""
        if len(self._pending) >= MAX_PENDING:
            raise LookupFailedError(f"{MAX_PENDING} mailbox requests are waiting already")
        handle, self._next_handle = self._next_handle, self._next_handle + 1
        rid = self._rng(RID_SIZE)
        request: object = make(rid)
        if not isinstance(request, MboxPut | MboxGet) or request.rid != rid:
            raise ConfigError("make(rid) must return an MboxPut or MboxGet with that rid")
        payload = encode(request)
        self.counters["requests_sent"] += 1
        self.counters["request_bytes_sent"] += len(payload)
        self._pending[rid] = (handle, node_id)
        deadline = now + MBOX_TIMEOUT
        heapq.heappush(self._deadlines, (deadline, rid))
        self._new_deadline = min(self._new_deadline, deadline)
        self._out.append((node_id, addr, payload))
        return handle

    def saved(self, ticket: int) -> None:
        """The held puts up to ``ticket`` are on disk: send the answers that waited."""
        waiting = self._unsaved
        self._unsaved = [(t, answer) for t, answer in waiting if t > ticket]
        for t, answer in waiting:
            if t <= ticket:
                if isinstance(answer, MboxDone):
                    self._events.append(answer)
                else:
                    self._out.append(answer)

    def _answer(self, answer: tuple[bytes, Hashable, bytes] | MboxDone) -> None:
        """Send ``answer`` to the request :meth:`hold` just applied, once it is saved."""
        ticket, self._ticket = self._ticket, None
        if ticket is not None:
            self._unsaved.append((ticket, answer))
        elif isinstance(answer, MboxDone):
            self._events.append(answer)
        else:
            self._out.append(answer)

    def restore(self, request: MboxPut, now: float) -> bool:
        """Apply a put kept on disk (after a restart) without reporting it again."""
        on_held, self.on_held = self.on_held, None
        try:
            return self.hold(request, now).ok
        finally:
            self.on_held = on_held

    def run_local(self, make: Callable[[bytes], Request], now: float) -> int:
        """Apply a request to this node's own holder; reported like a remote one."""
        handle, self._next_handle = self._next_handle, self._next_handle + 1
        request = make(bytes(RID_SIZE))
        self._answer(MboxDone(handle, self.hold(request, now)))
        return handle

    # ------------------------------------------------------------ ServiceCore

    def receive_message(
        self, node_id: bytes, addr: Hashable, payload: bytes, now: float, *, early: bool = False
    ) -> None:
        try:
            message = decode(payload, expect=(MboxPut, MboxGet, MboxReply))
        except DecodeError:
            self.drops["mbox-malformed"] += 1
            return
        if isinstance(message, MboxReply):
            pending = self._pending.get(message.rid)
            if early or pending is None or pending[1] != node_id:
                self.drops["mbox-unexpected-reply"] += 1
                return
            del self._pending[message.rid]
            self.counters["reply_bytes_received"] += len(payload)
            self._events.append(MboxDone(pending[0], message))
            return
        assert isinstance(message, MboxPut | MboxGet)
        if early and isinstance(message, MboxPut):
            # A put in replayable early data is refused; the sender retries in the session.
            self.drops["mbox-early-put"] += 1
            return
        reply = self.hold(message, now)
        self._answer((node_id, addr, encode(reply)))

    def messages_to_send(self) -> list[tuple[bytes, Hashable, bytes]]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> object | None:
        return self._events.pop(0) if self._events else None

    @property
    def new_deadline(self) -> float:
        return self._new_deadline

    def get_timer(self) -> float | None:
        self._new_deadline = float("inf")
        while self._deadlines and self._deadlines[0][1] not in self._pending:
            heapq.heappop(self._deadlines)
        timeout = self._deadlines[0][0] if self._deadlines else None
        if self._next_expiry is None:
            return timeout
        return self._next_expiry if timeout is None else min(timeout, self._next_expiry)

    def handle_timer(self, now: float) -> None:
        if self._next_expiry is None or now >= self._next_expiry:
            unix = now + self.unix_offset
            self.counters["expired"] += self.slots.expire(unix)
            for box in self.intros.boxes.values():
                for digest in [d for d, entry in box.items() if entry.exp <= unix]:
                    del box[digest]
                    self.counters["expired"] += 1
            for key in [k for k, box in self.intros.boxes.items() if not box]:
                del self.intros.boxes[key]
            self._next_expiry = now + EXPIRY_INTERVAL
        while self._deadlines and self._deadlines[0][0] <= now:
            _, rid = heapq.heappop(self._deadlines)
            pending = self._pending.pop(rid, None)
            if pending is not None:
                self._events.append(MboxDone(pending[0], None, "timeout"))

    def peer_unreachable(self, node_id: bytes, now: float, reason: str) -> None:
        for rid, (handle, peer) in list(self._pending.items()):
            if peer == node_id:
                del self._pending[rid]
                self._events.append(MboxDone(handle, None, reason))

    def stats(self) -> dict[str, Any]:
        drops = Counter(self.drops)
        drops.update(self.slots.drops)
        drops.update(self.intros.drops)
        more = dict(self._more_stats()) if self._more_stats is not None else {}
        drops.update(more.pop("drops", {}))
        return {
            **more,
            **dict(self.counters),
            "slots_held": len(self.slots.slots),
            "intro_entries_held": self.intros.stats()["entries"],
            "waiting": len(self._pending),
            "answers_unsaved": len(self._unsaved),
            "drops": dict(drops),
        }
