"""The ``training`` service's sans-IO core: rounds and gossip on a node (14-training.md).

:class:`TrainingCore` owns the training message types (``round_announce``,
``round_update``, the ten ``secagg_*`` messages, ``gossip_model`` and
``device_signed``) and
runs, on one node, any of three roles over the round cores of
:mod:`qdht.models.training`:

* **coordinator** (:class:`RoundCoordinator`): the face starts each round;
  the core sends the signed announcement to every enrolled device, takes
  their updates (or SecAgg messages) until the deadline, and reports the
  round's end as :class:`RoundEnded`;
* **device** (:class:`RoundDevice`): an announcement that verifies and
  samples this node is reported as :class:`RoundJoined` (the face fetches
  the model and trains), and the core answers the coordinator's SecAgg
  stages; SecAgg messages that arrive while the device is still fetching
  or training wait (a few per round) until its update is ready;
* **gossip** (:class:`GossipLearner`): every period the model goes to a
  random DHT neighbour; received models are merged and trained.

Every message comes in with ``now``; remote input never raises: it is
dropped and counted under a reason (the round cores' reasons, plus
``early-data``, ``not-the-sender``, ``not-a-coordinator``, ``not-a-device``, ``not-gossiping``,
``secagg-backlog``).  Time is an argument; randomness is the round cores'.
"""

from __future__ import annotations

import collections
import math
import random
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Final

import attrs

from qdht import validators
from qdht.crypto import mldsa
from qdht.errors import DecodeError, InvalidSignatureError, NodeStateError
from qdht.models.training._gossip import GossipLearner
from qdht.models.training._round import RoundCoordinator, RoundDevice, RoundResult
from qdht.node import Outgoing
from qdht.wire import (
    FL_SIGNED_CONTEXT,
    DeviceSigned,
    GossipModel,
    RoundAnnounce,
    RoundUpdate,
    SecAggForward,
    SecAggKeys,
    SecAggMasked,
    SecAggNeighbours,
    SecAggReveal,
    SecAggSetup,
    SecAggShares,
    SecAggSubmitted,
    SecAggUnlinked,
    SecAggUnmask,
    decode,
    encode,
    peek_type,
    signed_message_bytes,
)

__all__ = [
    "ANONYMOUS_TRAINING_TYPES",
    "TRAINING_MESSAGE_TYPES",
    "RoundEnded",
    "RoundJoined",
    "SendAnonymously",
    "TrainingCore",
    "TrainingLayerConfig",
]

#: What a coordinator receives.
_TO_COORDINATOR: Final = frozenset(
    {
        RoundUpdate.TYPE,
        SecAggKeys.TYPE,
        SecAggShares.TYPE,
        SecAggMasked.TYPE,
        SecAggSubmitted.TYPE,
        SecAggReveal.TYPE,
    }
)
_COORDINATOR_CLASSES: Final = (
    RoundUpdate,
    SecAggKeys,
    SecAggShares,
    SecAggMasked,
    SecAggSubmitted,
    SecAggReveal,
)
#: What a device receives from its coordinator during a SecAgg round.
_TO_DEVICE: Final = frozenset(
    {SecAggSetup.TYPE, SecAggNeighbours.TYPE, SecAggForward.TYPE, SecAggUnmask.TYPE}
)
#: Every message type the ``training`` service owns.
TRAINING_MESSAGE_TYPES: Final = frozenset(
    {RoundAnnounce.TYPE, GossipModel.TYPE, DeviceSigned.TYPE, SecAggUnlinked.TYPE}
    | _TO_COORDINATOR
    | _TO_DEVICE
)
#: What the service accepts from an anonymous sender (a mixnet exit's hand-off,
#: 10-mixnet.md §14.7): a device's signed message, or an unlinked masked input (§9.5).
ANONYMOUS_TRAINING_TYPES: Final = frozenset({DeviceSigned.TYPE, SecAggUnlinked.TYPE})


@attrs.frozen
class TrainingLayerConfig:
    """The training layer (``qdht.Config.training``; None: off).  14-training.md.

    The roles (coordinator, device, gossip) are started through
    ``node.training``; this holds the service's own limits.
    """

    #: Accepted announcements waiting for the device to fetch and train; more
    #: are dropped (``busy``).
    max_waiting_rounds: int = attrs.field(default=4, validator=validators.positive_int)
    #: SecAgg messages kept while the device is still fetching or training.
    secagg_backlog: int = attrs.field(default=8, validator=validators.positive_int)
    #: A device looks for the announced model version this many times ...
    fetch_attempts: int = attrs.field(default=5, validator=validators.positive_int)
    #: ... this many seconds apart (the new version may still be propagating).
    fetch_retry: float = attrs.field(default=1.0, validator=validators.positive)
    #: Lifetime of a device's enrolment record (renewed at half of it).
    enrol_ttl: float = attrs.field(default=3600.0, validator=validators.positive)
    #: Through the mixnet (14-training.md §9.5; needs ``Config.mixnet``): a
    #: device sends its updates and SecAgg messages signed (its masked SecAgg
    #: input unsigned and unlinked instead, with a signed claim), each through one
    #: exit, so the coordinator never learns its address or timing; a
    #: coordinator (which also needs ``Config.resolve``) resolves its devices'
    #: certificates to check those signatures.  Off by default: it needs a
    #: running mixnet, and each message then takes seconds and, signed, a few
    #: packets.
    mixnet: bool = attrs.field(default=False, validator=validators.instance_of(bool))
    #: Through the mixnet, a SecAgg device sends its masked input unsigned and
    #: unlinked (``secagg_unlinked``) and, separately, a signed claim
    #: (``secagg_submitted``); each leaves after its own delay drawn uniformly
    #: from [0, this many seconds], so arrival times do not pair them (§9.5).
    #: Keep it well below a SecAgg stage (a quarter of the round).
    unlinked_delay: float = attrs.field(default=2.0, validator=validators.non_negative)


@attrs.frozen
class RoundJoined:
    """A device accepted ``announce`` (genuine, current, sampled): fetch the model, train."""

    announce: RoundAnnounce


@attrs.frozen
class SendAnonymously:
    """A device's signed message (``device_signed``) for ``coordinator``, to go
    through the mixnet (the face hands it to ``node.anonymous.forward``)."""

    coordinator: bytes
    data: bytes
    #: Seconds to wait before handing it to the mixnet (an unlinked input and its claim, §9.5).
    delay: float = 0.0


@attrs.frozen
class RoundEnded:
    """The coordinator's open round ended (aggregated and published, or abandoned)."""

    result: RoundResult


def _claimed_sender(payload: bytes, coordinator: RoundCoordinator) -> bytes | None:
    """Who a message to the coordinator says it is from: an update's ``node``, or the
    cohort member at a SecAgg message's ``index`` (None: unknown, left to the round core)."""
    try:
        message = decode(payload, expect=_COORDINATOR_CLASSES)
    except DecodeError:
        return None
    if isinstance(message, RoundUpdate):
        return message.node
    index = getattr(message, "index", 0)
    agg = coordinator.secagg
    if agg is None or not 1 <= index <= len(agg.setup.ids):
        return None
    return agg.setup.ids[index - 1]


class TrainingCore:
    """Sans-IO: the coordinator, device and gossip roles of one node."""

    def __init__(
        self,
        node_id: bytes,
        config: TrainingLayerConfig,
        *,
        unix_offset: float,
        rng: random.Random | None = None,
    ) -> None:
        self.node_id = node_id
        #: Draws the delays of unlinked inputs and claims (§9.5).
        self.rng = rng if rng is not None else random.SystemRandom()
        self.config = config
        self.unix_offset = unix_offset
        self.coordinator: RoundCoordinator | None = None
        self.device: RoundDevice | None = None
        self.gossip: GossipLearner | None = None
        #: Where to reach a node: learned from its messages, or given (enrolment).
        self.addresses: dict[bytes, Hashable] = {}
        #: The devices a coordinator announces its rounds to.
        self.enrolled: list[bytes] = []
        self._out: list[Outgoing] = []
        self._events: collections.deque[RoundJoined | RoundEnded | SendAnonymously] = (
            collections.deque()
        )
        #: Signs a device's messages for the mixnet (the face sets it: the node's
        #: ML-DSA key with :data:`FL_SIGNED_CONTEXT`); None: send them directly.
        self.sign: Callable[[bytes], bytes] | None = None
        #: A coordinator's devices' ML-DSA-65 public keys, from their certificates.
        self.device_keys: dict[bytes, bytes] = {}
        self.anonymous_types = ANONYMOUS_TRAINING_TYPES
        self._new_deadline = math.inf
        self._prepared: int | None = None  # the round whose SecAgg update is ready
        self._backlog: list[bytes] = []
        self.drops: collections.Counter[str] = collections.Counter()
        self.counters: collections.Counter[str] = collections.Counter()
        #: Choose a gossip neighbour's address (the face sets it: the DHT routing table).
        self.address_of: Callable[[bytes], Hashable | None] = self.addresses.get

    # ------------------------------------------------------------ roles

    def start_round(self, now: float) -> RoundAnnounce:
        """Announce the coordinator's next round to every enrolled device.

        Raises what :meth:`RoundCoordinator.start_round` raises
        (``PrivacyBudgetExceededError`` when the budget cannot pay for it).
        """
        coordinator = self._coordinator()
        announce = coordinator.start_round(now, wall_clock=math.floor(now + self.unix_offset))
        wire = encode(announce)
        self._out.extend((n, self.addresses.get(n), wire) for n in self.enrolled)
        self.counters["announced"] += 1
        self._take_coordinator_output()
        self._deadline_moved(coordinator.get_timer())
        return announce

    def _coordinator(self) -> RoundCoordinator:
        if self.coordinator is None:
            raise NodeStateError("this node is not coordinating (node.training.coordinate)")
        return self.coordinator

    def submit_update(self, announce: RoundAnnounce, data: bytes) -> None:
        """Send a trained, encoded ``round_update`` to the announcement's coordinator."""
        self._to_coordinator(announce.coordinator, data)
        self.counters["updates_sent"] += 1

    def _to_coordinator(self, coordinator: bytes, data: bytes) -> None:
        """A device's message to its coordinator: over the session, or signed for the mixnet."""
        if self.sign is None:
            self._send(coordinator, data)
            return
        signature = self.sign(signed_message_bytes(self.node_id, data))
        signed = encode(DeviceSigned(self.node_id, data, signature))
        self.counters["sent_anonymously"] += 1
        self._events.append(SendAnonymously(coordinator, signed))

    def receive_anonymous(self, payload: bytes, now: float) -> bool:
        """A message from an anonymous sender (a mixnet hand-off, §9.5): True if accepted.

        Only a ``device_signed`` message whose signature verifies under the key
        of the device it names is taken; its inner message is then handled as
        if that device had sent it over its session (the checks of §9.3 apply).
        """
        coordinator = self.coordinator
        if coordinator is None:
            self.drops["not-a-coordinator"] += 1
            return False
        if peek_type(payload) == SecAggUnlinked.TYPE:  # unsigned, from nobody (§9.5)
            dropped: int = sum(coordinator.stats()["drops"].values())
            coordinator.receive_secagg(payload, now)
            accepted: bool = sum(coordinator.stats()["drops"].values()) == dropped
            self.counters["unlinked_received" if accepted else "unlinked_dropped"] += 1
            return accepted
        try:
            signed = decode(payload, expect=(DeviceSigned,))
        except DecodeError:
            self.drops["malformed-signed"] += 1
            return False
        assert type(signed) is DeviceSigned
        key = self.device_keys.get(signed.node)
        if key is None:
            self.drops["unknown-device"] += 1
            return False
        try:
            mldsa.verify(key, signed.signed_bytes(), signed.sig, FL_SIGNED_CONTEXT)
        except InvalidSignatureError:
            self.drops["bad-device-signature"] += 1
            return False
        kind = peek_type(signed.message)
        if kind not in _TO_COORDINATOR:
            self.drops["not-signable"] += 1
            return False
        before: int = sum(self.stats()["drops"].values())
        self.counters["received_anonymously"] += 1
        self._at_coordinator(signed.node, None, kind, signed.message, now)
        after: int = sum(self.stats()["drops"].values())
        return after == before

    def secagg_ready(self, announce: RoundAnnounce) -> None:
        """The device's SecAgg update for ``announce`` is prepared: answer what waited."""
        self._prepared = announce.round
        backlog, self._backlog = self._backlog, []
        for data in backlog:
            self._device_secagg(announce.coordinator, data)

    def give_up(self, reason: str) -> None:
        """The device could not take part in a round it accepted (no model, say)."""
        self.drops[reason] += 1

    def start_gossip(self, learner: GossipLearner) -> None:
        self.gossip = learner
        self._deadline_moved(learner.get_timer())

    def _deadline_moved(self, when: float | None) -> None:
        if when is not None:
            self._new_deadline = min(self._new_deadline, when)

    def _send(self, node_id: bytes, data: bytes) -> None:
        self._out.append((node_id, self.addresses.get(node_id), data))

    def _take_coordinator_output(self) -> None:
        if self.coordinator is not None:
            for node_id, data in self.coordinator.messages_to_send():
                self._send(node_id, data)

    # ------------------------------------------------------------ ServiceCore

    def receive_message(
        self, node_id: bytes, addr: Hashable, payload: bytes, now: float, *, early: bool = False
    ) -> None:
        if early:  # none of these is an idempotent request: wait for the full handshake
            self.drops["early-data"] += 1
            return
        kind = peek_type(payload)
        if kind == DeviceSigned.TYPE:  # only through the mixnet (receive_anonymous)
            self.drops["signed-over-session"] += 1
        elif kind == SecAggUnlinked.TYPE:  # over a session it would be linked: refused
            self.drops["unlinked-over-session"] += 1
        elif kind == RoundAnnounce.TYPE:
            self._announcement(node_id, addr, payload, now)
        elif kind in _TO_COORDINATOR:
            self._at_coordinator(node_id, addr, kind, payload, now)
        elif kind in _TO_DEVICE:
            self._at_device(node_id, payload)
        elif kind == GossipModel.TYPE:
            if self.gossip is None:
                self.drops["not-gossiping"] += 1
                return
            self.addresses.setdefault(node_id, addr)
            before = self.gossip.merged
            self.gossip.receive(payload, now)
            self.counters["gossip_merged"] += self.gossip.merged - before
        else:  # pragma: no cover - the node routes only the types above here
            self.drops["unexpected-message"] += 1

    def _announcement(self, node_id: bytes, addr: Hashable, payload: bytes, now: float) -> None:
        device = self.device
        if device is None:
            self.drops["not-a-device"] += 1
            return
        if node_id == device.coordinator_id:
            self.addresses[node_id] = addr
        accepted = device.receive_announcement(payload, now + self.unix_offset)
        if accepted is None:
            return
        waiting = sum(type(e) is RoundJoined for e in self._events)
        if waiting >= self.config.max_waiting_rounds:
            self.drops["busy"] += 1
            return
        self.counters["rounds_joined"] += 1
        self._prepared, self._backlog = None, []
        self._events.append(RoundJoined(accepted))

    def _at_coordinator(
        self, node_id: bytes, addr: Hashable, kind: str | None, payload: bytes, now: float
    ) -> None:
        coordinator = self.coordinator
        if coordinator is None:
            self.drops["not-a-coordinator"] += 1
            return
        if addr is not None:
            self.addresses.setdefault(node_id, addr)
        before = sum(coordinator.stats()["drops"].values())
        if _claimed_sender(payload, coordinator) not in (node_id, None):
            self.drops["not-the-sender"] += 1  # one node speaking for another
            return
        if kind == RoundUpdate.TYPE:
            coordinator.receive_update(payload, now)
            if sum(coordinator.stats()["drops"].values()) == before:
                self.counters["updates_accepted"] += 1
        else:
            coordinator.receive_secagg(payload, now)
        self._take_coordinator_output()

    def _at_device(self, node_id: bytes, payload: bytes) -> None:
        device = self.device
        if device is None:
            self.drops["not-a-device"] += 1
            return
        if node_id != device.coordinator_id:
            self.drops["secagg-unexpected"] += 1
            return
        if self._prepared is None or self._prepared != device.last_round:
            if len(self._backlog) >= self.config.secagg_backlog:
                self.drops["secagg-backlog"] += 1
                return
            self._backlog.append(payload)
            return
        self._device_secagg(node_id, payload)

    def _device_secagg(self, coordinator: bytes, payload: bytes) -> None:
        assert self.device is not None
        reply = self.device.receive_secagg(payload)
        if reply is None:
            return
        self.counters["secagg_sent"] += 1
        if self.sign is not None and peek_type(reply) == SecAggMasked.TYPE:
            self._send_unlinked(coordinator, reply)
        else:
            self._to_coordinator(coordinator, reply)

    def _send_unlinked(self, coordinator: bytes, reply: bytes) -> None:
        """Through the mixnet, the masked input goes unsigned with no index, and a
        signed claim of it separately, each after its own random delay (§9.5)."""
        masked = decode(reply, expect=(SecAggMasked,))
        assert type(masked) is SecAggMasked
        unlinked = encode(SecAggUnlinked(masked.round_id, masked.y))
        claim = encode(SecAggSubmitted(masked.round_id, masked.index))
        signed = encode(
            DeviceSigned(self.node_id, claim, self._sign(signed_message_bytes(self.node_id, claim)))
        )
        limit = self.config.unlinked_delay
        for data in (unlinked, signed):
            self._events.append(SendAnonymously(coordinator, data, self.rng.uniform(0.0, limit)))
        self.counters["sent_anonymously"] += 2
        self.counters["unlinked_sent"] += 1

    def _sign(self, data: bytes) -> bytes:
        assert self.sign is not None
        return self.sign(data)

    def messages_to_send(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> object | None:
        return self._events.popleft() if self._events else None

    @property
    def new_deadline(self) -> float:
        return self._new_deadline

    def get_timer(self) -> float | None:
        self._new_deadline = math.inf
        timers = [
            t
            for t in (
                self.coordinator.get_timer() if self.coordinator is not None else None,
                self.gossip.get_timer() if self.gossip is not None else None,
            )
            if t is not None
        ]
        return min(timers) if timers else None

    def handle_timer(self, now: float) -> None:
        coordinator = self.coordinator
        if coordinator is not None:
            timer = coordinator.get_timer()
            if timer is not None and now >= timer:
                result = coordinator.handle_timer(now)
                self._take_coordinator_output()
                if result is not None:
                    self.counters["rounds_abandoned" if result.abandoned else "rounds"] += 1
                    self._events.append(RoundEnded(result))
        if self.gossip is not None and now >= self.gossip.get_timer():
            for peer, data in self.gossip.handle_timer(now):
                address = self.addresses.get(peer)
                if address is None:
                    address = self.address_of(peer)
                self._out.append((peer, address, data))
                self.counters["gossip_sent"] += 1

    def peer_unreachable(self, node_id: bytes, now: float, reason: str) -> None:
        pass  # a device that cannot be reached simply misses the round (§2.4)

    def stats(self) -> dict[str, Any]:
        drops: collections.Counter[str] = collections.Counter(self.drops)
        roles: dict[str, Any] = {}
        for role, core in (
            ("coordinator", self.coordinator),
            ("device", self.device),
            ("gossip", self.gossip),
        ):
            if core is not None:
                part = core.stats()
                drops.update(part.pop("drops"))
                roles[role] = part
        return {
            **dict(self.counters),
            **roles,
            "enrolled": len(self.enrolled),
            "drops": dict(drops),
        }

    def enrol(self, devices: Iterable[tuple[bytes, Hashable]]) -> None:
        """Add devices (node id, address) to the coordinator's announcement list."""
        for node_id, addr in devices:
            if addr is not None:
                self.addresses[node_id] = addr
            if node_id not in self.enrolled:
                self.enrolled.append(node_id)
