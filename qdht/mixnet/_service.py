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
from qdht.mixnet._mix import KeysRotated, MessageReceived, MixRole
from qdht.mixnet._payload import KIND_REQUEST
from qdht.mixnet._routes import DirectoryView, LoopAlarm
from qdht.mixnet._sphinx import Surb
from qdht.wire import (
    KEY_SIZE,
    AnonAnswer,
    AnonGet,
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
    "MIXNET_MESSAGE_TYPES",
    "AnonymousDone",
    "ExitReplied",
    "ExitRequest",
    "MixnetCore",
]

#: The session messages the mixnet service owns.
MIXNET_MESSAGE_TYPES: Final = frozenset({MixPacket.TYPE, MixDelivery.TYPE})
#: Peer addresses remembered (from the directory and from sessions).
MAX_ADDRESSES: Final = 4096
#: Anonymous operations of this node waiting at once.
MAX_OPERATIONS: Final = 256

_Outgoing = tuple[bytes, Hashable, bytes]


@attrs.frozen
class ExitRequest:
    """A request ended at this mix: run it and answer through ``surb`` (None: a dummy)."""

    request: AnonGet | AnonPut | AnonMbox
    surb: Surb | None


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
    waiting: set[bytes]
    answers: int = 0
    best: ValidRecord | None = None
    stored: bool = False


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
        self._by_surb: dict[bytes, int] = {}
        self._deadlines: list[tuple[float, int]] = []
        self._next_handle = 1
        self._exit_requests: dict[bytes, tuple[int, float]] = {}
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

    def answer(self, surb: Surb, answer: AnonAnswer | MboxReply, now: float) -> None:
        """This exit's answer to an :class:`ExitRequest`, sent through its reply block."""
        if self.role is None:
            raise NodeStateError("only a mix answers anonymous requests")
        unix = now + self.unix_offset
        data = encode(answer)
        if len(data) > self.role.geometry.user_payload_size:
            self._drops["answer-too-large"] += 1
            data = encode(AnonAnswer("failed"))
        self.role.reply(surb, data, unix)
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
            message = decode(payload, expect=(MixPacket, MixDelivery))
        except DecodeError:
            self._drops["malformed"] += 1
            return
        if type(message) is MixPacket:
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
        ops = self._deadlines[0][0] if self._deadlines else math.inf
        deadline = min(unix - self.unix_offset, ops)
        return None if deadline == math.inf else deadline

    def handle_timer(self, now: float) -> None:
        unix = now + self.unix_offset
        if self.role is not None:
            self.role.handle_timer(unix)
        self.client.handle_timer(unix)
        self._send_dummies(unix)
        while self._deadlines and self._deadlines[0][0] <= now:
            _, handle = heapq.heappop(self._deadlines)
            op = self._ops.get(handle)
            if op is not None:
                self._finish(op, "timeout")
        self._expire_exit_requests(now)
        self._pump(unix)

    def peer_unreachable(self, node_id: bytes, now: float, reason: str) -> None:
        self._addresses.pop(node_id, None)
        self._drops["peer-unreachable"] += 1

    def stats(self) -> dict[str, Any]:
        role = self.role.stats() if self.role is not None else {}
        client = self.client.stats()
        drops: Counter[str] = Counter(self._drops)
        drops.update(role.get("drops", {}))
        drops.update(client["drops"])
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
            **dict(self._counts),
            "role": role,
            "client": client,
            "drops": dict(drops),
        }

    # ------------------------------------------------------------ internals

    def _start(self, kind: str, key: bytes, data: bytes, now: float) -> int:
        unix = now + self.unix_offset
        view = self.client.view(unix)
        if view is None:
            raise NodeStateError("no verified mix directory for this epoch yet")
        exits = [m for m in view.mixes if m.node_id != self.node_id]
        if len(exits) < self.config.exits:
            raise NodeStateError(
                f"the directory has {len(exits)} exits, an operation needs {self.config.exits}"
            )
        if len(self._ops) >= MAX_OPERATIONS:
            raise NodeStateError(f"{MAX_OPERATIONS} anonymous operations are waiting already")
        handle, self._next_handle = self._next_handle, self._next_handle + 1
        op = _Operation(handle, kind, key, set())
        for exit_entry in self._random.sample(exits, self.config.exits):
            surb_id = self.client.send(data, now=unix, exit=exit_entry, want_reply=True)
            assert surb_id is not None
            op.waiting.add(surb_id)
            self._by_surb[surb_id] = handle
        self._ops[handle] = op
        heapq.heappush(self._deadlines, (now + self.config.anonymous_timeout, handle))
        self._counts[f"anonymous_{kind}s"] += 1
        self._pump(unix)
        return handle

    def _learn(self, node_id: bytes, addr: Hashable) -> None:
        self._addresses[node_id] = addr
        self._addresses.move_to_end(node_id)
        while len(self._addresses) > MAX_ADDRESSES:
            self._addresses.popitem(last=False)

    def _send(self, peer: bytes, message: MixPacket | MixDelivery, unix: float) -> None:
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
            try:
                request = decode(message.data, expect=(AnonGet, AnonPut, AnonMbox))
            except DecodeError:
                self._drops["bad-request"] += 1
                return
            assert isinstance(request, AnonGet | AnonPut | AnonMbox)
            surb = message.surb if message.kind == KIND_REQUEST else None
            self._counts["exit_requests"] += 1
            self._events.append(ExitRequest(request, surb))
        elif type(event) is ReplyReceived:
            self._on_reply(event, unix)
        elif type(event) is LoopAlarm:
            self.alarm = event.raised
            self._counts["loop_alarms"] += int(event.raised)
            self._events.append(event)
        elif type(event) is KeysRotated:
            self._events.append(event)

    def _on_reply(self, event: ReplyReceived, unix: float) -> None:
        if self._exit_replied(event):
            return
        handle = self._by_surb.pop(event.surb_id, None)
        op = self._ops.get(handle) if handle is not None else None
        if op is None:
            self._drops["late-answer"] += 1
            return
        op.waiting.discard(event.surb_id)
        op.answers += 1
        try:
            answer = decode(event.data, expect=(AnonAnswer,))
        except DecodeError:
            self._drops["bad-answer"] += 1
            answer = None
        if type(answer) is AnonAnswer:
            if op.kind == "put":
                op.stored = op.stored or answer.status == "stored"
            elif answer.record is not None:
                try:
                    valid = validate_record(answer.record, op.key, unix, limits=self.limits)
                except RecordRejectedError:
                    self._drops["forged-record"] += 1  # withheld is all an exit can do
                else:
                    if _newer(op.best, valid):
                        op.best = valid
        immutable_found = op.best is not None and isinstance(op.best.record, ImmutableRecord)
        if op.stored or immutable_found or not op.waiting:
            self._finish(op, "answered")

    def _finish(self, op: _Operation, reason: str) -> None:
        del self._ops[op.handle]
        for surb_id in op.waiting:
            self._by_surb.pop(surb_id, None)
        ok = op.stored if op.kind == "put" else op.best is not None
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

    def start_exit_request(self, data: bytes, now: float) -> int:
        """Send ``data`` to one exit drawn from the directory, with a reply block.

        The answer comes as :class:`ExitReplied` with the returned handle (its
        ``data`` None after ``anonymous_timeout``); the caller checks it.
        """
        unix = now + self.unix_offset
        view = self.client.view(unix)
        if view is None:
            raise NodeStateError("no verified mix directory for this epoch yet")
        exits = [m for m in view.mixes if m.node_id != self.node_id]
        if not exits:
            raise NodeStateError("the directory has no exit but this node")
        if len(self._exit_requests) >= MAX_OPERATIONS:
            raise NodeStateError(f"{MAX_OPERATIONS} exit requests are waiting already")
        handle, self._next_handle = self._next_handle, self._next_handle + 1
        exit_entry = self._random.choice(exits)
        surb_id = self.client.send(data, now=unix, exit=exit_entry, want_reply=True)
        assert surb_id is not None
        deadline = now + self.config.anonymous_timeout
        self._exit_requests[surb_id] = (handle, deadline)
        heapq.heappush(self._deadlines, (deadline, handle))
        self._counts["exit_requests_sent"] += 1
        self._pump(unix)
        return handle

    def _exit_replied(self, event: ReplyReceived) -> bool:
        pending = self._exit_requests.pop(event.surb_id, None)
        if pending is None:
            return False
        self._events.append(ExitReplied(pending[0], event.data))
        return True

    def _expire_exit_requests(self, now: float) -> None:
        for surb_id, (handle, deadline) in list(self._exit_requests.items()):
            if deadline <= now:
                del self._exit_requests[surb_id]
                self._counts["exit_requests_timed_out"] += 1
                self._events.append(ExitReplied(handle, None))
