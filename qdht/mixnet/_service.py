"""The mixnet as a node service, sans-IO: one core over a mix role and a client (§14).

:class:`MixnetCore` implements ``qdht.node.ServiceCore``: it owns the
``packet`` and ``delivery`` session messages, runs the node's
:class:`~qdht.mixnet.MixClient` (every mixnet node is a client) and, with
``MixnetConfig.mix``, its :class:`~qdht.mixnet.MixRole`.  ``now`` is the
node's clock; the mixnet's epochs are Unix time, so the core adds the
node's ``unix_offset`` before calling its parts.

Anonymous DHT operations (§14): :meth:`MixnetCore.start_get` and
:meth:`MixnetCore.start_put` send one EXIT_GET / EXIT_PUT to each of
``MixnetConfig.exits`` exits drawn from the directory, each in one packet
with a reply block; the answers come back as :class:`ReplyReceived`, every
record is validated against the key asked for, and :class:`AnonymousDone`
reports the outcome by handle.  At an exit, a request becomes an
:class:`ExitRequest` event: the node's Trio side runs it as an ordinary
lookup and answers with :meth:`MixnetCore.answer`.  The exit keeps no state
about who asked: the reply block is all it has, and it forgets it once used.

:meth:`MixnetCore.start_forward` sends EXIT_FORWARD to one exit (§14.7),
which hands the message to its node over a session (HANDOFF,
:meth:`MixnetCore.start_handoff`, ending in :class:`HandoffDone`); at that
node the message becomes an :class:`AnonymousMessage` with no sender, which
the face gives to the owning service and acknowledges (HANDOFF_ACK).

A request or answer larger than one payload travels in fragments (§14.6):
each fragment of a request is its own packet on its own path to the same
exit with its own reply block, so the answer can come back in as many
fragments; both ends reassemble in a bounded :class:`~qdht.mixnet.Reassembler`.
A get first asks with one reply block; an exit whose answer needs more says
``too-large`` with the count, and the get asks once more with that many.
"""

from __future__ import annotations

import heapq
import math
import os
import random
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Any, Final

import attrs

from qdht.dht import RecordLimits, ValidRecord, validate_record
from qdht.errors import ConfigError, DecodeError, NodeStateError, RecordRejectedError
from qdht.mixnet._client import MixClient, ReplyReceived
from qdht.mixnet._config import MixnetConfig
from qdht.mixnet._fragments import (
    Reassembled,
    Reassembler,
    fragment_count,
    parse_fragment,
    split_message,
)
from qdht.mixnet._mix import KeysRotated, MessageReceived, MixRole
from qdht.mixnet._payload import (
    KIND_REPLY_FRAGMENT,
    KIND_REQUEST_FRAGMENT,
)
from qdht.mixnet._routes import DirectoryView, LoopAlarm
from qdht.mixnet._sphinx import Surb
from qdht.ratelimit import TokenBuckets
from qdht.wire import (
    KEY_SIZE,
    NODE_ID_SIZE,
    AnonAnswer,
    AnonForward,
    AnonGet,
    AnonHandoff,
    AnonHandoffAck,
    AnonMbox,
    AnonPut,
    AnonRecord,
    ImmutableRecord,
    MboxReply,
    MixDelivery,
    MixPacket,
    decode,
    encode,
)

__all__ = [
    "MAX_HANDOFFS",
    "MIXNET_MESSAGE_TYPES",
    "AnonymousDone",
    "AnonymousMessage",
    "ExitReplied",
    "ExitRequest",
    "HandoffDone",
    "MixnetCore",
]

#: The session messages the mixnet service owns.
MIXNET_MESSAGE_TYPES: Final = frozenset(
    {MixPacket.TYPE, MixDelivery.TYPE, AnonHandoff.TYPE, AnonHandoffAck.TYPE}
)
#: Peer addresses remembered (from the directory and from sessions).
MAX_ADDRESSES: Final = 4096
#: Anonymous operations of this node waiting at once.
MAX_OPERATIONS: Final = 256
#: Hand-offs an exit waits on at once (§14.7); more are answered ``failed``.
MAX_HANDOFFS: Final = 64

_Outgoing = tuple[bytes, Hashable, bytes]


@attrs.frozen
class ExitRequest:
    """A request ended at this mix: run it and answer through ``surb`` (None: a dummy).

    A request that came in fragments (§14.6) brought one reply block per
    fragment (``surbs``, ``surb`` the first) under ``message_id``; answer it
    with :meth:`MixnetCore.answer_request`, which uses as many as it needs.
    """

    request: AnonGet | AnonPut | AnonForward | AnonMbox
    surb: Surb | None
    surbs: tuple[Surb, ...] = ()
    message_id: bytes = b""


@attrs.frozen
class AnonymousMessage:
    """A message an exit handed to this node for an anonymous sender (§14.7).

    The face hands ``message`` to the service that owns its type, if that
    service accepts the type anonymously, and acknowledges with
    :meth:`MixnetCore.acknowledge` (``exit`` and ``id`` say where the ack goes;
    the exit is not the sender and is never passed on).
    """

    exit: bytes
    id: bytes
    message: bytes


@attrs.frozen
class HandoffDone:
    """This exit's hand-off ``handle`` ended: the node accepted it (``ok``) or not."""

    handle: int
    ok: bool


@attrs.frozen
class AnonymousDone:
    """The anonymous operation ``handle`` ended.

    ``ok``: a get found a valid record (``record``) or a put was stored by at
    least one exit's holders.  ``answers`` counts the exits that answered;
    ``reason`` says why it ended (``"answered"``, ``"timeout"``).
    """

    handle: int
    ok: bool
    record: ValidRecord | None
    answers: int
    reason: str


@attrs.frozen
class ExitReplied:
    """The answer to :meth:`MixnetCore.start_exit_request` ``handle``: the bytes an
    exit sent back through the reply block, or None if none came in time."""

    handle: int
    data: bytes | None


@attrs.define
class _Operation:
    handle: int
    kind: str  # "get" | "put"
    key: bytes
    data: bytes
    deadline: float
    #: The message ids (one per exit asked) still unanswered.
    waiting: set[bytes] = attrs.Factory(set)
    #: Message id -> the ids of the reply blocks sent with it.
    surbs: dict[bytes, list[bytes]] = attrs.Factory(dict)
    answers: int = 0
    best: ValidRecord | None = None
    stored: bool = False
    retried: bool = False
    #: Exits asked at once (``MixnetConfig.exits``; one for a forward).
    exits: int = 2


def _newer(a: ValidRecord | None, b: ValidRecord) -> bool:
    return a is None or b.seq > a.seq


class MixnetCore:
    """The mixnet service's core: routes session messages to the mix role and the client."""

    def __init__(
        self,
        node_id: bytes,
        config: MixnetConfig,
        *,
        now: float,
        unix_offset: float,
        limits: RecordLimits | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        random_source: random.Random | None = None,
    ) -> None:
        self.node_id = node_id
        self.config = config
        self.unix_offset = unix_offset
        self.limits = limits or RecordLimits()
        self._rng = rng
        self._random = random_source or random.SystemRandom()
        unix = now + unix_offset
        self.role: MixRole | None = None
        if config.mix:
            self.role = MixRole(node_id, config, now=unix, rng=rng, random_source=self._random)
        self.client = MixClient(
            node_id,
            config,
            now=unix,
            rng=rng,
            random_source=self._random,
            exclude=node_id if config.mix else None,
            contacted_only=True,
        )
        #: Finds a peer's address when neither the directory nor a session gave one.
        self.resolve: Callable[[bytes], Hashable | None] | None = None
        self._addresses: OrderedDict[bytes, Hashable] = OrderedDict()
        self._out: list[_Outgoing] = []
        self._events: deque[object] = deque()
        self._drops: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()
        self._ops: dict[int, _Operation] = {}
        self._by_surb: dict[bytes, bytes] = {}  # reply block id -> message id
        self._by_message: dict[bytes, int] = {}  # message id -> operation handle
        bounds = (config.max_fragments, config.max_open_messages, config.fragment_timeout)
        #: Requests arriving in fragments at this exit; answers arriving at this client.
        self.exit_fragments = Reassembler(*bounds)
        self.reply_fragments = Reassembler(*bounds)
        self._deadlines: list[tuple[float, int]] = []
        self._next_handle = 1
        #: Exit requests of other layers: reply block id -> handle, and per
        #: handle its deadline, reply block ids and fragments' message id.
        self._exit_requests: dict[bytes, int] = {}
        self._exit_pending: dict[int, tuple[float, list[bytes], bytes]] = {}
        #: EXIT_FORWARDs this exit runs (one bucket: askers are anonymous), and
        #: the hand-offs this node accepts from each exit (§14.7).
        self._forwards: TokenBuckets[bytes] = TokenBuckets(
            rate=config.forward_rate, burst=config.forward_burst, max_keys=1
        )
        self._handoffs_in: TokenBuckets[bytes] = TokenBuckets(
            rate=config.forward_rate, burst=config.forward_burst, max_keys=MAX_ADDRESSES
        )
        #: This exit's hand-offs waiting for an ack: id -> (handle, node, deadline).
        self._handoffs: dict[bytes, tuple[int, bytes, float]] = {}
        rate = config.lambda_dummy_lookup
        self._next_dummy = unix + self._random.expovariate(rate) if rate > 0 else math.inf
        self.directory_epochs: set[int] = set()
        self.alarm = False
        self._pump(unix)

    # ------------------------------------------------------------ local API

    def set_directory(self, view: DirectoryView, now: float) -> None:
        """A directory that passed :func:`~qdht.mixnet.verify_directory` (§10.2)."""
        unix = now + self.unix_offset
        self.client.set_directory(view)
        self.directory_epochs = {e for e in self.directory_epochs if e >= view.epoch - 2}
        self.directory_epochs.add(view.epoch)
        for entry in view.mixes:
            if entry.contact.addresses:
                self._learn(entry.node_id, entry.contact.addresses[0])
        if self.role is not None and self.client.view(unix) is view:
            self.role.set_directory(view, unix)
        self._pump(unix)

    def drop(self, reason: str) -> None:
        """Count a drop seen by the Trio side (a descriptor or directory refused)."""
        self._drops[reason] += 1

    def start_get(self, key: bytes, now: float) -> int:
        """Send EXIT_GET ``key`` to ``exits`` exits; the outcome is an :class:`AnonymousDone`."""
        if type(key) is not bytes or len(key) != KEY_SIZE:
            raise ConfigError(f"key must be {KEY_SIZE} bytes")
        return self._start("get", key, encode(AnonGet(key)), now)

    def start_put(self, record: AnonRecord, now: float) -> int:
        """Send EXIT_PUT ``record`` to ``exits`` exits; the outcome is an :class:`AnonymousDone`."""
        data = encode(AnonPut(record))
        return self._start("put", record.key(), data, now)

    def start_forward(self, node: bytes, message: bytes, now: float, *, ack: bool = True) -> int:
        """Send EXIT_FORWARD: one exit hands ``message`` to ``node`` (§14.7).

        The outcome is an :class:`AnonymousDone` (``ok``: the node's service
        accepted it).  Without ``ack`` a one-packet forward carries no reply
        block and is done (``reason`` ``"sent"``) once queued.
        """
        if type(node) is not bytes or len(node) != NODE_ID_SIZE:
            raise ConfigError(f"node must be {NODE_ID_SIZE} bytes")
        data = encode(AnonForward(node, bytes(message)))
        if not ack and len(data) <= self.client.geometry.user_payload_size:
            unix = now + self.unix_offset
            exits = self._exits(unix, 1)
            self.client.send(data, now=unix, exit=self._random.choice(exits))
            handle, self._next_handle = self._next_handle, self._next_handle + 1
            self._counts["anonymous_forwards"] += 1
            self._events.append(AnonymousDone(handle, True, None, 0, "sent"))
            self._pump(unix)
            return handle
        return self._start("forward", node, data, now, exits=1)

    def start_handoff(self, node: bytes, message: bytes, now: float) -> int:
        """At an exit: hand ``message`` to ``node`` over its session (HANDOFF).

        The outcome is a :class:`HandoffDone` (on the ack, or ``False`` after
        ``handoff_timeout``).  Raises ``NodeStateError`` with
        :data:`MAX_HANDOFFS` waiting already.
        """
        if len(self._handoffs) >= MAX_HANDOFFS:
            raise NodeStateError(f"{MAX_HANDOFFS} hand-offs are waiting already")
        handle, self._next_handle = self._next_handle, self._next_handle + 1
        handoff_id = self._rng(16)
        deadline = now + self.config.handoff_timeout
        self._handoffs[handoff_id] = (handle, node, deadline)
        heapq.heappush(self._deadlines, (deadline, -handle))
        self._send(node, AnonHandoff(handoff_id, message), now + self.unix_offset)
        self._counts["handoffs_sent"] += 1
        return handle

    def acknowledge(self, message: AnonymousMessage, ok: bool, now: float) -> None:
        """This node's answer to a hand-off: its service accepted the message, or not."""
        self._send(message.exit, AnonHandoffAck(message.id, ok), now + self.unix_offset)
        self._counts["handoffs_accepted" if ok else "handoffs_refused"] += 1

    def answer(self, surb: Surb, answer: AnonAnswer | MboxReply, now: float) -> None:
        """This exit's answer to a one-packet request, sent through its reply block."""
        self._reply((surb,), b"", answer, now)

    def answer_request(
        self, request: ExitRequest, answer: AnonAnswer | MboxReply, now: float
    ) -> None:
        """This exit's answer to ``request``, in as many of its reply blocks as it takes.

        An ``exit_mbox`` that came in fragments is answered through every
        reply block it brought (empty fragments past the answer, §14.8), so
        the asker gets as many packets back whatever the answer says.
        """
        surbs = request.surbs or ((request.surb,) if request.surb is not None else ())
        if not surbs:
            raise ConfigError("a request without a reply block (a dummy) gets no answer")
        pad = type(request.request) is AnonMbox
        self._reply(surbs, request.message_id, answer, now, pad=pad)

    def _reply(
        self,
        surbs: tuple[Surb, ...],
        message_id: bytes,
        answer: AnonAnswer | MboxReply,
        now: float,
        *,
        pad: bool = False,
    ) -> None:
        role = self.role
        if role is None:
            raise NodeStateError("only a mix answers anonymous requests")
        unix = now + self.unix_offset
        geometry = role.geometry
        data = encode(answer)
        if len(data) > geometry.user_payload_size or (pad and message_id and len(surbs) > 1):
            count = fragment_count(geometry, len(data))
            if message_id and count <= len(surbs):
                count = len(surbs) if pad else count
                for fragment, surb in zip(
                    split_message(geometry, data, message_id, count=count), surbs, strict=False
                ):
                    role.reply(surb, fragment.to_bytes(), unix, kind=KIND_REPLY_FRAGMENT)
                self._counts["exit_answers"] += 1
                self._counts["exit_answer_fragments"] += count
                self._pump(unix)
                return
            if count <= self.config.max_fragments:
                self._counts["exit_too_large"] += 1
                data = encode(AnonAnswer("too-large", fragments=count))
            else:
                self._drops["answer-too-large"] += 1
                data = encode(AnonAnswer("failed"))
        role.reply(surbs[0], data, unix)
        self._counts["exit_answers"] += 1
        self._pump(unix)

    # ------------------------------------------------------------ ServiceCore

    def receive_message(
        self, node_id: bytes, addr: Hashable, payload: bytes, now: float, *, early: bool = False
    ) -> None:
        unix = now + self.unix_offset
        if addr is not None:
            self._learn(node_id, addr)
        try:
            message = decode(payload, expect=(MixPacket, MixDelivery, AnonHandoff, AnonHandoffAck))
        except DecodeError:
            self._drops["malformed"] += 1
            return
        if type(message) is AnonHandoff or type(message) is AnonHandoffAck:
            self._on_handoff(node_id, message, now)
        elif type(message) is MixPacket:
            if self.role is None:
                self._drops["not-a-mix"] += 1
                return
            self.role.receive_packet(message.data, node_id, unix)
        else:
            assert type(message) is MixDelivery
            surb = message.surb
            if self.role is not None and surb is not None and self.role.expects(surb):
                self.role.receive_delivery(message, unix)
            else:
                self.client.receive_delivery(message, unix)
        self._pump(unix)

    def _on_handoff(self, peer: bytes, message: AnonHandoff | AnonHandoffAck, now: float) -> None:
        if type(message) is AnonHandoffAck:
            waiting = self._handoffs.get(message.id)
            if waiting is None or waiting[1] != peer:
                self._drops["late-handoff-ack"] += 1
                return
            del self._handoffs[message.id]
            self._events.append(HandoffDone(waiting[0], message.ok))
            return
        if not self._handoffs_in.allow(peer, now):
            self._drops["handoff-rate"] += 1
            return
        assert type(message) is AnonHandoff
        self._counts["handoffs_received"] += 1
        self._events.append(AnonymousMessage(peer, message.id, message.message))

    def messages_to_send(self) -> list[_Outgoing]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> object | None:
        return self._events.popleft() if self._events else None

    @property
    def new_deadline(self) -> float:
        timer = self.get_timer()
        return math.inf if timer is None else timer

    def get_timer(self) -> float | None:
        times = [self._next_dummy]
        for part in (self.role, self.client):
            if part is not None:
                t = part.get_timer()
                if t is not None:
                    times.append(t)
        unix = min(times)
        for fragments in (self.exit_fragments, self.reply_fragments):
            t = fragments.get_timer()
            if t is not None:
                times.append(t)
        unix = min(times)
        ops = self._deadlines[0][0] if self._deadlines else math.inf
        deadline = min(unix - self.unix_offset, ops)
        return None if deadline == math.inf else deadline

    def handle_timer(self, now: float) -> None:
        unix = now + self.unix_offset
        if self.role is not None:
            self.role.handle_timer(unix)
        self.client.handle_timer(unix)
        self._send_dummies(unix)
        self.exit_fragments.expire(unix)
        self.reply_fragments.expire(unix)
        while self._deadlines and self._deadlines[0][0] <= now:
            _, handle = heapq.heappop(self._deadlines)
            if handle < 0:  # a hand-off (§14.7)
                self._expire_handoffs(now)
                continue
            pending = self._exit_pending.get(handle)
            if pending is not None:
                self._counts["exit_requests_timed_out"] += 1
                self._end_exit_request(handle, None)
                continue
            op = self._ops.get(handle)
            if op is not None and op.deadline <= now:  # else: a retry moved it
                self._finish(op, "timeout")
        self._pump(unix)

    def _expire_handoffs(self, now: float) -> None:
        for handoff_id, (handle, _, deadline) in list(self._handoffs.items()):
            if deadline <= now:
                del self._handoffs[handoff_id]
                self._counts["handoffs_timed_out"] += 1
                self._events.append(HandoffDone(handle, False))

    def peer_unreachable(self, node_id: bytes, now: float, reason: str) -> None:
        for handoff_id, (handle, node, _) in list(self._handoffs.items()):
            if node == node_id:
                del self._handoffs[handoff_id]
                self._events.append(HandoffDone(handle, False))
        self._addresses.pop(node_id, None)
        self._drops["peer-unreachable"] += 1

    def stats(self) -> dict[str, Any]:
        role = self.role.stats() if self.role is not None else {}
        client = self.client.stats()
        drops: Counter[str] = Counter(self._drops)
        drops.update(role.get("drops", {}))
        drops.update(client["drops"])
        drops.update(self.exit_fragments.drops)
        drops.update(self.reply_fragments.drops)
        return {
            "mix": self.role is not None,
            "mixed": role.get("mixed", 0),
            "queued": role.get("queued", 0) + client["queued"],
            "replays": role.get("drops", {}).get("replay", 0),
            "loops_sent": role.get("loops_sent", 0) + client["loops_sent"],
            "loops_returned": role.get("loops_returned", 0) + client.get("loops_returned", 0),
            "loop_alarm": self.alarm,
            "epoch": role.get("epoch"),
            "directory_epochs": sorted(self.directory_epochs),
            "open_fragmented": len(self.exit_fragments) + len(self.reply_fragments),
            "pending_operations": len(self._ops),
            **dict(self._counts),
            "role": role,
            "client": client,
            "drops": dict(drops),
        }

    # ------------------------------------------------------------ internals

    def _exits(self, unix: float, needed: int) -> list[Any]:
        view = self.client.view(unix)
        if view is None:
            raise NodeStateError("no verified mix directory for this epoch yet")
        exits = [m for m in view.mixes if m.node_id != self.node_id]
        if len(exits) < needed:
            raise NodeStateError(
                f"the directory has {len(exits)} exits, an operation needs {needed}"
            )
        return exits

    def _start(
        self, kind: str, key: bytes, data: bytes, now: float, *, exits: int | None = None
    ) -> int:
        unix = now + self.unix_offset
        wanted = self.config.exits if exits is None else exits
        candidates = self._exits(unix, wanted)
        if len(self._ops) >= MAX_OPERATIONS:
            raise NodeStateError(f"{MAX_OPERATIONS} anonymous operations are waiting already")
        count = self._fragments_for(data, 1)
        if count > self.config.max_fragments:
            raise ConfigError(
                f"the {kind} request is {len(data)} bytes: {count} fragments, more than "
                f"max_fragments {self.config.max_fragments}"
            )
        handle, self._next_handle = self._next_handle, self._next_handle + 1
        op = _Operation(handle, kind, key, data, math.inf, exits=wanted)
        self._send_requests(op, candidates, count, now)
        self._ops[handle] = op
        self._counts[f"anonymous_{kind}s"] += 1
        self._pump(unix)
        return handle

    def _fragments_for(self, data: bytes, replies: int) -> int:
        """Fragments a request of ``data`` takes when it wants ``replies`` reply blocks."""
        geometry = self.client.geometry
        if len(data) <= geometry.user_payload_size and replies == 1:
            return 1
        return max(fragment_count(geometry, len(data)), replies)

    def _send_requests(self, op: _Operation, exits: list[Any], count: int, now: float) -> None:
        """Send ``op`` to ``exits`` fresh exits, in ``count`` fragments each (§14.6).

        The fragments of the exits are interleaved in the payload stream, and
        the operation's deadline allows for the payload slots its packets wait for.
        """
        unix = now + self.unix_offset
        client, geometry = self.client, self.client.geometry
        chosen = self._random.sample(exits, op.exits)
        if client.room() < count * len(chosen):
            raise NodeStateError("the mixnet send queue is full")
        if count == 1:
            for exit_entry in chosen:
                surb_id = client.send(op.data, now=unix, exit=exit_entry, want_reply=True)
                assert surb_id is not None
                self._expect(op, surb_id, surb_id)
        else:
            ids = [self._rng(16) for _ in chosen]
            splits = [split_message(geometry, op.data, i, count=count) for i in ids]
            for index in range(count):
                for exit_entry, message_id, fragments in zip(chosen, ids, splits, strict=True):
                    data = fragments[index].to_bytes()
                    surb_id = client.send(
                        data, now=unix, exit=exit_entry, want_reply=True, fragment=True
                    )
                    assert surb_id is not None
                    self._expect(op, message_id, surb_id)
            self._counts["fragmented_requests"] += len(chosen)
        op.deadline = self._deadline(now, len(chosen))
        heapq.heappush(self._deadlines, (op.deadline, op.handle))

    def _deadline(self, now: float, last: int) -> float:
        """When a request whose ``last`` packets were just queued times out.

        Its last packet leaves after every real message queued before it: give
        it those payload slots, twice over for the Poisson stream's spread.
        """
        queued = self.config.max_send_queue - self.client.room()
        rate = self.config.lambda_payload
        extra = 2 * max(0, queued - last) / rate if rate > 0 else 0.0
        return now + self.config.anonymous_timeout + extra

    def _expect(self, op: _Operation, message_id: bytes, surb_id: bytes) -> None:
        op.waiting.add(message_id)
        op.surbs.setdefault(message_id, []).append(surb_id)
        self._by_surb[surb_id] = message_id
        self._by_message[message_id] = op.handle

    def _learn(self, node_id: bytes, addr: Hashable) -> None:
        self._addresses[node_id] = addr
        self._addresses.move_to_end(node_id)
        while len(self._addresses) > MAX_ADDRESSES:
            self._addresses.popitem(last=False)

    def _send(
        self,
        peer: bytes,
        message: MixPacket | MixDelivery | AnonHandoff | AnonHandoffAck,
        unix: float,
    ) -> None:
        if peer == self.node_id:  # a reply path that starts at this mix
            if self.role is not None and type(message) is MixPacket:
                self.role.receive_packet(message.data, peer, unix)
            else:
                self._drops["to-self"] += 1
            return
        addr = self._addresses.get(peer)
        if addr is None and self.resolve is not None:
            addr = self.resolve(peer)
        self._out.append((peer, addr, encode(message)))

    def _pump(self, unix: float) -> None:
        busy = True
        while busy:
            busy = False
            for part in (self.role, self.client):
                if part is None:
                    continue
                for out in part.packets_to_send(unix):
                    busy = True
                    self._send(out.peer, out.message, unix)
                while (event := part.next_event()) is not None:
                    busy = True
                    self._on_event(event, unix)

    def _on_event(self, event: object, unix: float) -> None:
        if type(event) is MessageReceived:
            message = event.message
            surbs = (message.surb,) if message.surb is not None else ()
            whole: Reassembled | None = Reassembled(b"", message.data, surbs)
            if message.kind == KIND_REQUEST_FRAGMENT:
                fragment = parse_fragment(self.client.geometry, message.data)
                if fragment is None:
                    self._drops["bad-fragment"] += 1
                    return
                whole = self.exit_fragments.add(fragment, message.surb, unix)
            if whole is None:
                return
            try:
                request = decode(whole.data, expect=(AnonGet, AnonPut, AnonForward, AnonMbox))
            except DecodeError:
                self._drops["bad-request"] += 1
                return
            if type(request) is AnonForward and not self._forwards.allow(b"", unix):
                self._drops["forward-rate"] += 1
                return
            assert isinstance(request, AnonGet | AnonPut | AnonForward | AnonMbox)
            surb = whole.surbs[0] if whole.surbs else None
            self._counts["exit_requests"] += 1
            self._events.append(ExitRequest(request, surb, whole.surbs, whole.message_id))
        elif type(event) is ReplyReceived:
            self._on_reply(event, unix)
        elif type(event) is LoopAlarm:
            self.alarm = event.raised
            self._counts["loop_alarms"] += int(event.raised)
            self._events.append(event)
        elif type(event) is KeysRotated:
            self._events.append(event)

    def _on_reply(self, event: ReplyReceived, unix: float) -> None:
        if self._exit_replied(event, unix):
            return
        message_id = self._by_surb.pop(event.surb_id, None)
        handle = self._by_message.get(message_id) if message_id is not None else None
        op = self._ops.get(handle) if handle is not None else None
        if op is None or message_id not in op.waiting:
            self._drops["late-answer"] += 1
            return
        data = event.data
        if event.kind == KIND_REPLY_FRAGMENT:
            fragment = parse_fragment(self.client.geometry, event.data)
            if fragment is None or fragment.message_id != message_id:
                self._drops["bad-fragment"] += 1
                return
            whole = self.reply_fragments.add(fragment, None, unix)
            if whole is None:
                return
            data = whole.data
        op.waiting.discard(message_id)
        self._forget(op, [message_id])
        try:
            answer = decode(data, expect=(AnonAnswer,))
        except DecodeError:
            self._drops["bad-answer"] += 1
            answer = None
        if type(answer) is AnonAnswer and answer.status == "too-large":
            self._on_too_large(op, answer, unix)
        elif type(answer) is AnonAnswer:
            op.answers += 1
            if op.kind == "put":
                op.stored = op.stored or answer.status == "stored"
            elif op.kind == "forward":
                op.stored = op.stored or answer.status == "delivered"
            elif answer.record is not None:
                try:
                    valid = validate_record(answer.record, op.key, unix, limits=self.limits)
                except RecordRejectedError:
                    self._drops["forged-record"] += 1  # withheld is all an exit can do
                else:
                    if _newer(op.best, valid):
                        op.best = valid
        else:
            op.answers += 1
        immutable_found = op.best is not None and isinstance(op.best.record, ImmutableRecord)
        if op.stored or immutable_found or not op.waiting:
            self._finish(op, "answered")

    def _on_too_large(self, op: _Operation, answer: AnonAnswer, unix: float) -> None:
        """An exit needs ``answer.fragments`` reply blocks: ask once more with that many."""
        count = answer.fragments or 0
        if op.retried or count > self.config.max_fragments:
            self._drops["answer-too-large"] += 1
            return
        op.retried = True
        view = self.client.view(unix)
        exits = [m for m in view.mixes if m.node_id != self.node_id] if view else []
        try:
            now = unix - self.unix_offset
            self._send_requests(op, exits, self._fragments_for(op.data, count), now)
        except (NodeStateError, ValueError):  # no room, or too few exits now
            self._drops["retry-failed"] += 1
            return
        self._counts["anonymous_retries"] += 1

    def _forget(self, op: _Operation, message_ids: list[bytes]) -> None:
        """Drop what the client holds for these requests' reply blocks."""
        for message_id in message_ids:
            surb_ids = op.surbs.pop(message_id, [])
            for surb_id in surb_ids:
                self._by_surb.pop(surb_id, None)
            self.client.forget(surb_ids)
            self._by_message.pop(message_id, None)
        self.reply_fragments.discard(message_ids)

    def _finish(self, op: _Operation, reason: str) -> None:
        del self._ops[op.handle]
        self._forget(op, list(op.surbs))
        ok = op.stored if op.kind in ("put", "forward") else op.best is not None
        self._counts["anonymous_ok" if ok else "anonymous_failed"] += 1
        self._events.append(AnonymousDone(op.handle, ok, op.best, op.answers, reason))

    def _send_dummies(self, unix: float) -> None:
        rate = self.config.lambda_dummy_lookup
        while self._next_dummy <= unix:
            self._next_dummy += self._random.expovariate(rate)
            if self.client.view(unix) is None:
                continue
            try:
                self.client.send(encode(AnonGet(self._rng(KEY_SIZE))), now=unix)
            except ConfigError:  # the send queue is full: real messages come first
                self._drops["dummy-skipped"] += 1
                continue
            self._counts["dummy_lookups"] += 1

    # ------------------------------------------------------------ requests of other layers
    # One request to one exit, its answer's bytes handed back unchecked: the
    # messaging layer's mailbox requests (exit_mbox, 11-messaging.md §7.4).

    def start_exit_request(self, data: bytes, now: float, *, fragments: int = 1) -> int:
        """Send ``data`` to one exit drawn from the directory, with reply blocks.

        With ``fragments`` above one (or ``data`` larger than one payload) the
        request goes in ``fragments`` fragments (§14.6; at least as many as
        ``data`` needs), each its own packet with its own reply block on its
        own path to the same exit, and the exit answers through all of them
        (10-mixnet.md §14.8), so every request of one shape costs the same
        packets both ways.  The answer comes as :class:`ExitReplied` with the
        returned handle (its ``data`` None after ``anonymous_timeout``); the
        caller checks it.  ``ConfigError`` past ``max_fragments``.
        """
        unix = now + self.unix_offset
        view = self.client.view(unix)
        if view is None:
            raise NodeStateError("no verified mix directory for this epoch yet")
        exits = [m for m in view.mixes if m.node_id != self.node_id]
        if not exits:
            raise NodeStateError("the directory has no exit but this node")
        if len(self._exit_pending) >= MAX_OPERATIONS:
            raise NodeStateError(f"{MAX_OPERATIONS} exit requests are waiting already")
        count = self._fragments_for(data, fragments)
        if count > self.config.max_fragments:
            raise ConfigError(
                f"the exit request is {len(data)} bytes in {count} fragments, more than "
                f"max_fragments {self.config.max_fragments}"
            )
        if self.client.room() < count:
            raise NodeStateError("the mixnet send queue is full")
        handle, self._next_handle = self._next_handle, self._next_handle + 1
        exit_entry = self._random.choice(exits)
        message_id = b""
        if count == 1:
            surb_id = self.client.send(data, now=unix, exit=exit_entry, want_reply=True)
            assert surb_id is not None
            surb_ids = [surb_id]
        else:
            message_id = self._rng(16)
            surb_ids = []
            for fragment in split_message(self.client.geometry, data, message_id, count=count):
                surb_id = self.client.send(
                    fragment.to_bytes(), now=unix, exit=exit_entry, want_reply=True, fragment=True
                )
                assert surb_id is not None
                surb_ids.append(surb_id)
        self._counts["exit_request_packets"] += count
        deadline = self._deadline(now, 1)
        for surb_id in surb_ids:
            self._exit_requests[surb_id] = handle
        self._exit_pending[handle] = (deadline, surb_ids, message_id)
        heapq.heappush(self._deadlines, (deadline, handle))
        self._counts["exit_requests_sent"] += 1
        self._pump(unix)
        return handle

    def _exit_replied(self, event: ReplyReceived, unix: float) -> bool:
        handle = self._exit_requests.get(event.surb_id)
        if handle is None:
            return False
        message_id = self._exit_pending[handle][2]
        data: bytes | None = event.data
        if event.kind == KIND_REPLY_FRAGMENT:
            fragment = parse_fragment(self.client.geometry, event.data)
            if fragment is None or fragment.message_id != message_id:
                del self._exit_requests[event.surb_id]
                self._drops["bad-fragment"] += 1
                return True
            whole = self.reply_fragments.add(fragment, None, unix)
            del self._exit_requests[event.surb_id]
            if whole is None:
                return True
            data = whole.data
        self._end_exit_request(handle, data)
        return True

    def _end_exit_request(self, handle: int, data: bytes | None) -> None:
        _, surb_ids, message_id = self._exit_pending.pop(handle)
        for surb_id in surb_ids:
            self._exit_requests.pop(surb_id, None)
        self.client.forget(surb_ids)
        if message_id:
            self.reply_fragments.discard([message_id])
        self._events.append(ExitReplied(handle, data))
