"""The mix role, sans-IO: unwrap, delay, forward (10-mixnet.md §8).

A :class:`MixRole` is fed packets with :meth:`~MixRole.receive_packet` and
gives back what to send with :meth:`~MixRole.packets_to_send`; a driver calls
:meth:`~MixRole.handle_timer` at :meth:`~MixRole.get_timer` and reads
:meth:`~MixRole.next_event`.  ``now`` is Unix time in seconds (mix-key epochs
are network-wide), passed in by the driver.

Every invalid packet is dropped and counted by reason in
``stats()["drops"]``: ``wrong-size``, ``bad-version``, ``rate-limited``,
``replay``, ``bad-kem``, ``bad-mac`` (no held key verifies it),
``bad-commands``, ``bad-payload`` (the exit's zero tag failed: tampering),
``queue-full``, ``bad-framing`` (a delivered payload that does not decode).
"""

from __future__ import annotations

import heapq
import itertools
import os
import random
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import attrs

from qdht.errors import CryptoError
from qdht.mixnet._config import MixnetConfig
from qdht.mixnet._keys import MixKeyring
from qdht.mixnet._payload import KIND_COVER, KIND_MESSAGE, Message, decode_payload, encode_payload
from qdht.mixnet._routes import DirectoryView, Party, select_path
from qdht.mixnet._sphinx import (
    Deliver,
    Drop,
    Forward,
    Surb,
    create_surb,
    replay_tag,
    surb_reply_packet,
    unwrap,
)
from qdht.ratelimit import TokenBuckets
from qdht.wire import MixDelivery, MixPacket

__all__ = ["LATENESS_SAMPLES", "KeysRotated", "MessageReceived", "MixRole", "Outgoing"]

#: Release lateness samples a mix keeps (the latest).
LATENESS_SAMPLES: Final = 4096


@attrs.frozen
class Outgoing:
    """Send ``message`` to the node ``peer`` over its session."""

    peer: bytes
    message: MixPacket | MixDelivery


@attrs.frozen
class MessageReceived:
    """A packet ended here: this mix is its recipient (an exit's request, say)."""

    message: Message


@attrs.frozen
class KeysRotated:
    """A new epoch began: publish a fresh descriptor with these keys (epoch → key)."""

    epoch: int
    public_keys: dict[int, bytes]


#: Drop reasons of a packet whose MAC did not verify: its tag is not remembered.
_UNVERIFIED = frozenset({"wrong-size", "bad-version", "bad-kem", "bad-mac"})


class MixRole(Party[MessageReceived | KeysRotated]):
    """One mix: per-epoch keys, replay filters, the delay queue and its own loops."""

    def __init__(
        self,
        node_id: bytes,
        config: MixnetConfig,
        *,
        now: float,
        rng: Callable[[int], bytes] = os.urandom,
        random_source: random.Random | None = None,
    ) -> None:
        super().__init__(node_id, config, rng, random_source)
        self.keys = MixKeyring(
            config.epoch_period, config.replay_capacity, config.replay_fp_rate, rng=rng
        )
        self._limits: TokenBuckets[bytes] = TokenBuckets(
            rate=config.decap_rate, burst=config.decap_burst, max_keys=config.max_rate_sessions
        )
        self._queue: list[tuple[float, int, bytes, bytes | None, bytes]] = []
        #: Seconds each of the latest releases ran after its due time (timer lateness).
        self.release_lateness: deque[float] = deque(maxlen=LATENESS_SAMPLES)
        self._seq = itertools.count()
        self._outbox: list[Outgoing] = []
        self._directory: DirectoryView | None = None
        self._next_loop: float | None = None
        self._rotate(now)

    # ------------------------------------------------------------- inputs

    def receive_packet(self, data: bytes, from_peer: bytes, now: float) -> None:
        """A PACKET's bytes from the session with ``from_peer``."""
        self._counts["received"] += 1
        if len(data) != self.geometry.packet_size:
            self._drop("wrong-size")
            return
        if not self._limits.allow(from_peer, now):
            self._drop("rate-limited")
            return
        tag = replay_tag(self.geometry, data)
        positions = self.keys.positions(tag)
        # Looked up before decapsulation to save the work; inserted only after the MAC.
        if self.keys.seen(positions):
            self._drop("replay")
            return
        result: Forward | Deliver | Drop = Drop("bad-mac")
        for held in self.keys.candidates():
            result = unwrap(self.geometry, held.key, data)
            if not isinstance(result, Drop) or result.reason not in _UNVERIFIED:
                held.replays.add(tag, positions)  # the MAC verified under this key
                break
            if result.reason == "bad-version":
                break
        if isinstance(result, Drop):
            self._drop(result.reason)
            return
        if len(self._queue) >= self.config.max_queue:
            self._drop("queue-full")
            return
        release = now + result.delay_ms / 1000.0
        item: tuple[float, int, bytes, bytes | None, bytes]
        if isinstance(result, Forward):
            item = (release, next(self._seq), result.next_hop, None, result.packet)
        else:
            surb = result.surb_id if result.surb_id is not None else b""
            item = (release, next(self._seq), result.recipient, surb, result.payload)
        heapq.heappush(self._queue, item)
        self._counts["mixed"] += 1

    def receive_delivery(self, delivery: MixDelivery, now: float) -> None:
        """A DELIVERY for this node: one of this mix's own loops coming home."""
        if delivery.surb is None or not self._loops.returned_loop(delivery.surb):
            self._drop("unexpected-delivery")
            return
        self._counts["loops_returned"] += 1

    def expects(self, surb_id: bytes) -> bool:
        """Whether ``surb_id`` names one of this mix's own loops still out."""
        return self._loops.is_loop(surb_id)

    def set_directory(self, view: DirectoryView, now: float) -> None:
        """The verified directory of the current epoch (starts the mix loops)."""
        self._directory = view
        if self._next_loop is None and self.config.lambda_mix_loop > 0:
            self._next_loop = now + self._random.expovariate(self.config.lambda_mix_loop)

    def reply(self, surb: Surb, data: bytes, now: float, *, kind: int = KIND_MESSAGE) -> None:
        """Answer a request through its reply block (this mix was the exit).

        ``kind``: ``KIND_MESSAGE``, or ``KIND_REPLY_FRAGMENT`` for one fragment
        of a larger answer (§14.6).
        """
        first_hop, packet = surb_reply_packet(
            self.geometry, surb, encode_payload(self.geometry, kind, data)
        )
        self._counts["replies_sent"] += 1
        if first_hop == self.node_id:  # the reply path starts here: mix it like any packet
            self.receive_packet(packet, self.node_id, now)
        else:
            self._outbox.append(Outgoing(first_hop, MixPacket(packet)))

    # ------------------------------------------------------------ outputs

    def packets_to_send(self, now: float) -> list[Outgoing]:
        """Everything due by ``now``, in release order."""
        self._release(now)
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next run (Unix time)."""
        times = [self.keys.next_rotation()]
        if self._queue:
            times.append(self._queue[0][0])
        if self._next_loop is not None:
            times.append(self._next_loop)
        judge = self._loops.next_judgement()
        if judge is not None:
            times.append(judge)
        return min(times)

    def handle_timer(self, now: float) -> None:
        self._rotate(now)
        self._release(now)
        self._send_loops(now)
        self._judge_loops(now)

    def stats(self) -> dict[str, Any]:
        held = self.keys.candidates()
        return {
            **self._stats(len(self._queue)),
            "epoch": self.keys.current,
            "replay_tags": sum(len(k.replays) for k in held),
            "replay_filter_bytes": sum(k.replays.memory_bytes for k in held),
            "replay_fp_rate": max((k.replays.expected_fp_rate() for k in held), default=0.0),
        }

    # ------------------------------------------------------------ internals

    def _rotate(self, now: float) -> None:
        if self.keys.rotate(now):
            self._events.append(KeysRotated(self.keys.current, self.keys.public_keys()))

    def _release(self, now: float) -> None:
        queue = self._queue
        while queue and queue[0][0] <= now:
            due, _, peer, surb, data = heapq.heappop(queue)
            self.release_lateness.append(now - due)
            if surb is None:
                self._outbox.append(Outgoing(peer, MixPacket(data)))
            elif peer != self.node_id:
                self._outbox.append(Outgoing(peer, MixDelivery(data, surb or None)))
                self._counts["delivered"] += 1
            elif surb:
                self._drop("unexpected-delivery")  # a reply block must not end at a mix
            else:
                self._deliver_here(data)

    def _deliver_here(self, payload: bytes) -> None:
        message = decode_payload(self.geometry, payload)
        if message is None:
            self._drop("bad-framing")
        elif message.kind == KIND_COVER:
            self._counts["cover_received"] += 1
        else:
            self._counts["messages_received"] += 1
            self._events.append(MessageReceived(message))

    def _send_loops(self, now: float) -> None:
        rate = self.config.lambda_mix_loop
        view = self._directory
        while self._next_loop is not None and self._next_loop <= now and view is not None:
            self._next_loop += self._random.expovariate(rate)
            path = select_path(view, self.config, self._random, exclude=self.node_id)
            if path is None:
                self._drop("no-route")
                continue
            try:
                surb, keys = create_surb(self.geometry, path, self.node_id, rng=self._rng)
            except CryptoError:  # a directory key nobody can encapsulate to (§10.2)
                self._drop("bad-mix-key")
                continue
            self._loops.sent_loop(keys.surb_id, now)
            cover = encode_payload(self.geometry, KIND_COVER)
            first_hop, packet = surb_reply_packet(self.geometry, surb, cover)
            self._outbox.append(Outgoing(first_hop, MixPacket(packet)))
