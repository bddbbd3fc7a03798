"""The mixnet client, sans-IO: Poisson sending with cover traffic, replies, loops (§11).

Loopix's three streams, each a Poisson process drawn from ``now``:

* payload (λ_P): each tick sends the oldest queued real message, or a drop
  cover packet if none waits, so an observer sees the same stream either way;
* loops (λ_L): a packet through ``hops`` mixes that comes back to the client
  (built as a reply block the client uses itself, so its last mix sees an
  ordinary reply);
* drops (λ_D): a cover packet whose last mix discards it.

The client judges its loops like a mix does (:class:`LoopAlarm`).  ``now`` is
Unix time in seconds.
"""

from __future__ import annotations

import os
import random
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Final

import attrs

from qdht.errors import ConfigError, CryptoError
from qdht.mixnet._config import MixnetConfig
from qdht.mixnet._keys import epoch_of
from qdht.mixnet._mix import Outgoing
from qdht.mixnet._payload import (
    KIND_COVER,
    KIND_MESSAGE,
    KIND_REPLY_FRAGMENT,
    KIND_REQUEST,
    KIND_REQUEST_FRAGMENT,
    decode_payload,
    encode_payload,
)
from qdht.mixnet._routes import DirectoryView, Party, select_path
from qdht.mixnet._sphinx import PathHop, SurbKeys, create_packet, create_surb, open_surb_reply
from qdht.mixnet._sphinx import surb_reply_packet as _surb_reply_packet
from qdht.wire import MixDelivery, MixEntry, MixPacket

__all__ = ["MixClient", "ReplyReceived"]

#: Reply blocks a client waits on at once; the oldest is forgotten first.
MAX_PENDING_REPLIES: Final = 1024
#: First hops remembered as possible last hops of reply blocks.
MAX_CONTACTED: Final = 256


@attrs.frozen
class ReplyReceived:
    """The answer to a request sent with :meth:`MixClient.send` (``want_reply``).

    ``kind`` is the reply payload's: a whole answer (``KIND_MESSAGE``) or one
    fragment of a larger one (``KIND_REPLY_FRAGMENT``, §14.6).
    """

    surb_id: bytes
    data: bytes
    kind: int = KIND_MESSAGE


@attrs.frozen
class _Queued:
    """A real message waiting for a payload tick."""

    data: bytes
    exit: MixEntry | None
    surb_id: bytes | None
    fragment: bool = False


class MixClient(Party[ReplyReceived]):
    """Sends through the mixnet on Poisson schedules and opens the replies."""

    def __init__(
        self,
        node_id: bytes,
        config: MixnetConfig,
        *,
        now: float,
        rng: Callable[[int], bytes] = os.urandom,
        random_source: random.Random | None = None,
        stratified: bool = False,
        exclude: bytes | None = None,
        contacted_only: bool = False,
    ) -> None:
        super().__init__(node_id, config, rng, random_source)
        self.stratified = stratified
        #: A node kept off every path: the client's own mix role, if it has one.
        self.exclude = exclude
        #: End reply blocks and loops only at mixes this client sent to (a node
        #: in a real network, whose deliveries need a session; §14.1).
        self.contacted_only = contacted_only
        self._contacted: OrderedDict[bytes, None] = OrderedDict()
        self._directories: dict[int, DirectoryView] = {}
        self._queue: deque[_Queued] = deque()
        self._outbox: list[Outgoing] = []
        self._replies: OrderedDict[bytes, tuple[SurbKeys, int]] = OrderedDict()
        self._loop_keys: dict[bytes, SurbKeys] = {}
        draw = self._random.expovariate
        self._next: dict[str, float | None] = {
            name: (now + draw(rate) if rate > 0 else None) for name, rate in self._rates().items()
        }

    def _rates(self) -> dict[str, float]:
        c = self.config
        return {"payload": c.lambda_payload, "loop": c.lambda_loop, "drop": c.lambda_drop}

    # ------------------------------------------------------------- inputs

    def set_directory(self, view: DirectoryView) -> None:
        """A verified directory (§10); the client keeps the current and next epochs'."""
        self._directories[view.epoch] = view
        for epoch in sorted(self._directories)[:-3]:
            del self._directories[epoch]

    def send(
        self,
        data: bytes,
        *,
        now: float,
        exit: MixEntry | None = None,
        want_reply: bool = False,
        fragment: bool = False,
    ) -> bytes | None:
        """Queue ``data`` for the next payload tick; the reply block's id if ``want_reply``.

        The path ends at ``exit`` (drawn at random if None), which receives the
        message; with ``want_reply`` the packet carries a reply block routed
        back to this client, and the answer comes as :class:`ReplyReceived`.
        With ``fragment`` the data is one fragment of a larger request
        (payload kind 3, §14.6), which always carries a reply block.
        """
        if len(data) > self.geometry.user_payload_size:
            raise ConfigError(f"data must be at most {self.geometry.user_payload_size} bytes")
        if fragment and not want_reply:
            raise ConfigError("a request fragment carries its own reply block: want_reply=True")
        if len(self._queue) >= self.config.max_send_queue:
            raise ConfigError(f"send queue full ({self.config.max_send_queue} messages)")
        surb_id = self._rng(16) if want_reply else None
        self._queue.append(_Queued(data, exit, surb_id, fragment))
        return surb_id

    def room(self) -> int:
        """How many more messages :meth:`send` takes before its queue is full."""
        return self.config.max_send_queue - len(self._queue)

    def forget(self, surb_ids: list[bytes]) -> None:
        """Forget the keys of reply blocks whose answers are no longer wanted."""
        for surb_id in surb_ids:
            self._replies.pop(surb_id, None)

    def receive_delivery(self, delivery: MixDelivery, now: float) -> None:
        """A DELIVERY from a path's last mix: a reply or one of our loops."""
        surb_id = delivery.surb
        if surb_id is None:
            self._drop("unexpected-delivery")
            return
        loop_keys = self._loop_keys.pop(surb_id, None)
        if loop_keys is not None:
            if open_surb_reply(self.geometry, loop_keys, delivery.payload) is None:
                self._drop("bad-payload")
            elif self._loops.returned_loop(surb_id, now):
                self._counts["loops_returned"] += 1
            return
        entry = self._replies.pop(surb_id, None)
        if entry is None:
            self._drop("unknown-surb")  # used twice, expired, or never ours
            return
        payload = open_surb_reply(self.geometry, entry[0], delivery.payload)
        message = decode_payload(self.geometry, payload) if payload is not None else None
        if message is None or message.kind not in (KIND_MESSAGE, KIND_REPLY_FRAGMENT):
            self._drop("bad-payload")
            return
        self._counts["replies_received"] += 1
        self._events.append(ReplyReceived(surb_id, message.data, message.kind))

    # ------------------------------------------------------------ outputs

    def packets_to_send(self, now: float) -> list[Outgoing]:
        self.handle_timer(now)
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> float | None:
        times = [t for t in self._next.values() if t is not None]
        judge = self._loops.next_judgement()
        if judge is not None:
            times.append(judge)
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        rates = self._rates()
        for stream, rate in rates.items():
            due = self._next[stream]
            while due is not None and due <= now:
                self._tick(stream, now)
                due += self._random.expovariate(rate)
            self._next[stream] = due
        self._expire_replies(now)
        self._judge_loops(now)

    def stats(self) -> dict[str, Any]:
        newest = self._directories[max(self._directories)] if self._directories else None
        return {
            **self._stats(len(self._queue)),
            "pending_replies": len(self._replies),
            # The newest verified directory: what the page shows (issue 19).
            "directory_epoch": None if newest is None else newest.epoch,
            "directory_mixes": 0 if newest is None else len(newest.mixes),
        }

    def loop_latencies(self) -> list[float]:
        """Send-to-return seconds of the latest loops: one-way latency of an L-hop path."""
        return list(self._loops.latencies)

    # ------------------------------------------------------------ internals

    def view(self, now: float) -> DirectoryView | None:
        """The verified directory of the epoch ``now`` falls in, if the client has it."""
        return self._view(now)

    def _view(self, now: float) -> DirectoryView | None:
        return self._directories.get(epoch_of(now, self.config.epoch_period))

    def _tick(self, stream: str, now: float) -> None:
        view = self._view(now)
        if view is None:
            self._drop("no-directory")
            return
        try:
            if stream == "loop":
                self._send_loop(view, now)
            elif stream == "payload" and self._queue:
                self._send_real(view, self._queue.popleft(), now)
            else:
                self._send_drop(view)
        except CryptoError:  # a directory key nobody can encapsulate to (§10.2)
            self._drop("bad-mix-key")

    def _path(self, view: DirectoryView, last: MixEntry | None = None) -> list[PathHop] | None:
        return select_path(
            view,
            self.config,
            self._random,
            stratified=self.stratified,
            last=last,
            exclude=self.exclude,
        )

    def _reply_last(self, view: DirectoryView) -> MixEntry | None:
        """The last hop of a reply block: a mix this client sent to lately, or any (None).

        The last hop hands the reply to this node over a session (§8.3): one
        the client opened as a first hop is there already, even when the
        client cannot be reached otherwise (client mode, NAT).  First hops
        are drawn uniformly, so over time every mix can be a last hop.
        """
        if not self.contacted_only:
            return None
        known = [m for m in view.mixes if m.node_id in self._contacted]
        if self.stratified:
            known = [m for m in known if m.layer % self.config.hops == self.config.hops - 1]
        return self._random.choice(known) if known else None

    def _emit(self, first_hop: bytes, packet: bytes) -> None:
        self._outbox.append(Outgoing(first_hop, MixPacket(packet)))
        if self.contacted_only:
            self._contacted[first_hop] = None
            self._contacted.move_to_end(first_hop)
            while len(self._contacted) > MAX_CONTACTED:
                self._contacted.popitem(last=False)

    def _send_drop(self, view: DirectoryView) -> None:
        path = self._path(view)
        if path is None:
            self._drop("no-route")
            return
        payload = encode_payload(self.geometry, KIND_COVER)
        packet = create_packet(self.geometry, path, path[-1].node_id, payload)
        self._emit(path[0].node_id, packet)
        self._counts["drop_sent"] += 1

    def _send_loop(self, view: DirectoryView, now: float) -> None:
        path = self._path(view, last=self._reply_last(view))
        if path is None:
            self._drop("no-route")
            return
        surb, keys = create_surb(self.geometry, path, self.node_id, rng=self._rng)
        payload = encode_payload(self.geometry, KIND_COVER)
        first_hop, packet = _surb_reply_packet(self.geometry, surb, payload)
        self._loop_keys[keys.surb_id] = keys
        self._loops.sent_loop(keys.surb_id, now)
        self._emit(first_hop, packet)

    def _send_real(self, view: DirectoryView, item: _Queued, now: float) -> None:
        exits = [m for m in view.mixes if m.node_id != self.exclude]
        if item.exit is None and not exits:
            self._drop("no-route")
            return
        exit_entry = item.exit or self._random.choice(exits)
        path = select_path(
            view,
            self.config,
            self._random,
            stratified=self.stratified,
            exclude=self.exclude,
            last=exit_entry,
        )
        if path is None:
            self._drop("no-route")
            return
        if item.surb_id is None:
            payload = encode_payload(self.geometry, KIND_MESSAGE, item.data)
        else:
            back = self._path(view, last=self._reply_last(view))
            if back is None:
                self._drop("no-route")
                return
            fixed = iter([item.surb_id, self._rng(32)])
            surb, keys = create_surb(
                self.geometry, back, self.node_id, rng=lambda n: next(fixed)[:n]
            )
            epoch = epoch_of(now, self.config.epoch_period)
            self._replies[item.surb_id] = (keys, epoch)
            while len(self._replies) > MAX_PENDING_REPLIES:
                self._replies.popitem(last=False)
            kind = KIND_REQUEST_FRAGMENT if item.fragment else KIND_REQUEST
            payload = encode_payload(self.geometry, kind, item.data, surb)
        packet = create_packet(self.geometry, path, path[-1].node_id, payload)
        self._emit(path[0].node_id, packet)
        self._counts["messages_sent"] += 1

    def _expire_replies(self, now: float) -> None:
        """A reply block dies with the mix keys of its epoch (prev/current/next, §7)."""
        oldest = epoch_of(now, self.config.epoch_period) - 1
        for surb_id in [s for s, (_, e) in self._replies.items() if e < oldest]:
            del self._replies[surb_id]
        for loop_id in [i for i in self._loop_keys if not self._loops.is_loop(i)]:
            del self._loop_keys[loop_id]
