"""The ``training`` service on a node: ``node.training`` (14-training.md).

:func:`training_service` builds the service from ``Config.training``: the
sans-IO :class:`TrainingCore` and its Trio face, :class:`TrainingFace`.

* :meth:`TrainingFace.coordinate` runs rounds in the caller's task: before
  each round it publishes the current model as the next version of the
  task's model in the model store (``node.models``), announces the round,
  and waits for the core to close it at its deadline.
* :meth:`TrainingFace.join` makes the node a device of a coordinator: it
  enrols in the DHT (a set entry under :func:`enrol_topic` holding its
  contact, bound to its keys: an ``enrolment``), and the service's device
  task takes part in each round the node is sampled for: fetch the
  announced version with the model store, check its hash, train on the
  local data, send the update (or run SecAgg+).
* :meth:`TrainingFace.start_gossip` runs gossip learning with the node's
  DHT neighbours (§8), no coordinator needed.

Training runs in the node's task (NumPy on small models); a device of a big
model would move it to a thread.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import trio
from numpy.typing import NDArray

from qdht.crypto.hashes import sha3_256
from qdht.errors import (
    ConfigError,
    DecodeError,
    IdentityError,
    LookupFailedError,
    ModelError,
    NodeStateError,
    PrivacyBudgetExceededError,
    QdhtError,
    RPCError,
)
from qdht.identity import certificate_node_id, node_id_from_hashes, puzzle_ok
from qdht.models.training._gossip import GossipLearner
from qdht.models.training._privacy import PrivacyBudget
from qdht.models.training._round import (
    RoundCoordinator,
    RoundDevice,
    RoundParams,
    RoundResult,
    model_hash,
)
from qdht.models.training._service import (
    TRAINING_MESSAGE_TYPES,
    RoundEnded,
    RoundJoined,
    SendAnonymously,
    TrainingCore,
    TrainingLayerConfig,
)
from qdht.models.training._trainer import Params, Trainer, TrainingConfig
from qdht.node import Service, ServiceContext
from qdht.wire import (
    FL_SIGNED_CONTEXT,
    Contact,
    Enrolment,
    ModelManifest,
    RoundAnnounce,
    SetEntry,
    decode,
    encode,
)

if TYPE_CHECKING:
    from qdht.node import Node

__all__ = [
    "CoordinatedRun",
    "TrainingFace",
    "enrol_topic",
    "training_model_name",
    "training_service",
]


#: Signed messages a device holds for the mixnet at once; more are dropped.
ANONYMOUS_BACKLOG = 16


def enrol_topic(coordinator: bytes, task: bytes) -> bytes:
    """The DHT set devices of (coordinator, task) enrol in: SHA3-256 of both, tagged."""
    return sha3_256(b"qdht/v1/fl-enrol", coordinator, task)


def training_model_name(task: bytes) -> str:
    """The name the coordinator publishes task ``task``'s model under in the model store."""
    return "fl-" + task.hex()[:32]


@attrs.frozen
class CoordinatedRun:
    """What :meth:`TrainingFace.coordinate` did: every round's result, and why it stopped."""

    results: list[RoundResult]
    #: "" (all rounds ran) or "budget" (the next round would exceed the privacy budget).
    stopped: str
    model: Params


class TrainingFace:
    """``node.training``: coordinate rounds, take part as a device, or gossip."""

    def __init__(self, context: ServiceContext, config: TrainingLayerConfig) -> None:
        self.config = config
        self.identity = context.identity
        self.unix_offset = context.unix_offset
        self.core = TrainingCore(context.identity.node_id, config, unix_offset=context.unix_offset)
        self._node: Node | None = None
        self._joined_send, self._joined = trio.open_memory_channel[RoundAnnounce](math.inf)
        self._ended: RoundResult | None = None
        self._ended_event = trio.Event()
        self._coordinator_key = b""
        self._coordinating = False
        self._on_round: Callable[[RoundAnnounce, str], object] | None = None
        #: The enrolment entry (topic, value) this node renews, once joined.
        self._enrolment: tuple[bytes, bytes] | None = None
        self._enrolled = trio.Event()
        #: Signed messages waiting to go through the mixnet (§9.5).
        self._anon_send, self._anon_recv = trio.open_memory_channel[SendAnonymously](
            ANONYMOUS_BACKLOG
        )
        if config.mixnet:
            key = context.identity.mldsa
            self.core.sign = lambda data: key.sign(data, FL_SIGNED_CONTEXT)

    # ------------------------------------------------------------ plumbing

    def on_event(self, event: object) -> None:
        if type(event) is RoundJoined:
            self._joined_send.send_nowait(event.announce)
        elif type(event) is RoundEnded:
            self._ended = event.result
            self._ended_event.set()
        elif type(event) is SendAnonymously:
            try:
                self._anon_send.send_nowait(event)
            except trio.WouldBlock:
                self.core.drops["anonymous-backlog"] += 1

    @property
    def node(self) -> Node:
        if self._node is None:
            raise NodeStateError("the training service has not started (use it inside open_node)")
        return self._node

    async def device_task(self, node: Node, *, task_status: trio.TaskStatus[None]) -> None:
        """Take part in each round this node accepted, one at a time."""
        self._node = node
        self.core.address_of = lambda peer: _address_of(node, peer)
        task_status.started()
        async for announce in self._joined:
            try:
                await self._take_part(node, announce)
            except NodeStateError:  # the node is stopping: this task is cancelled next
                return

    async def anonymous_task(self, node: Node, *, task_status: trio.TaskStatus[None]) -> None:
        """Send the device's signed messages through the mixnet, each by one exit (§9.5)."""
        task_status.started()

        async def send(message: SendAnonymously) -> None:
            if message.delay > 0:  # an unlinked input or its claim (§9.5)
                await trio.sleep(message.delay)
            try:
                delivered = await node.anonymous.forward(message.coordinator, message.data)
            except QdhtError:  # no directory yet, queue full: the message is lost
                delivered = False
            if not delivered:
                self.core.drops["anonymous-undelivered"] += 1

        async with trio.open_nursery() as nursery:
            async for message in self._anon_recv:
                nursery.start_soon(send, message)

    def stats(self) -> dict[str, Any]:
        """The service's counters (also in ``node.stats()["training"]``)."""
        return self.core.stats()

    # ------------------------------------------------------------ coordinator

    async def coordinate(
        self,
        task: bytes,
        model: Params,
        params: RoundParams,
        *,
        rounds: int,
        devices: Sequence[Contact] = (),
        budget: PrivacyBudget | None = None,
        rng: np.random.Generator | None = None,
        on_round: Callable[[RoundResult], object] | None = None,
    ) -> CoordinatedRun:
        """Run ``rounds`` rounds of ``task`` from ``model`` with this node as coordinator.

        The devices are ``devices`` plus those enrolled in the DHT
        (:func:`enrol_topic`).  Each round publishes the model to the model
        store (``Config.models`` must be on), announces, and waits for the
        deadline; ``on_round`` is called with each :class:`RoundResult`.
        A round the privacy budget cannot pay for is not run: the run stops
        there (``stopped == "budget"``).
        """
        node = self.node
        if self._coordinating:
            raise NodeStateError("this node is coordinating already")
        if type(task) is not bytes or len(task) != 32:
            raise ConfigError("task must be 32 bytes")
        if type(rounds) is not int or rounds < 1:
            raise ConfigError(f"rounds must be a positive integer, got {rounds!r}")
        models = node.models  # NodeStateError when the model store is off
        found = await self.enrolled(task)
        contacts = {c.node_id: c for c in [*devices, *found]}
        if not contacts:
            raise ConfigError("no devices: pass devices= or let devices join (node.training.join)")
        core = self.core
        core.enrolled = []
        core.enrol((n, c.addresses[0] if c.addresses else None) for n, c in contacts.items())
        ids = list(contacts)
        if self.config.mixnet:
            await self._learn_device_keys(node, ids)
        coordinator = RoundCoordinator(
            signing_key=self.identity.mldsa,
            node_id=node.node_id,
            task=task,
            model=model,
            params=params,
            population=len(ids),
            budget=budget,
            rng=rng,
            enrolled=ids if params.secagg else (),
        )
        self._coordinating = True
        core.coordinator = coordinator
        results: list[RoundResult] = []
        stopped = ""
        name = training_model_name(task)
        try:
            for _ in range(rounds):
                try:
                    if budget is not None and params.dp:  # before publishing anything
                        budget.check(params.q32 / 2**32, params.noise_milli / 1e3)
                    current = np.asarray(coordinator.model, dtype="<f4")
                    await models.publish(name, {"params": current})
                    self._ended_event = trio.Event()
                    core.start_round(trio.current_time())
                except PrivacyBudgetExceededError:
                    core.counters["budget_stops"] += 1
                    stopped = "budget"
                    break
                await node.flush()
                await self._ended_event.wait()
                assert self._ended is not None
                results.append(self._ended)
                if on_round is not None:
                    on_round(self._ended)
            # The devices can fetch the final model too.
            await models.publish(name, {"params": np.asarray(coordinator.model, "<f4")})
        finally:
            self._coordinating = False
        return CoordinatedRun(results, stopped, coordinator.model)

    async def _learn_device_keys(self, node: Node, ids: Sequence[bytes]) -> None:
        """Resolve each device's certificate: its ML-DSA key checks its signed messages."""
        keys = self.core.device_keys

        async def learn(node_id: bytes) -> None:
            try:
                cert = await node.resolve_identity(node_id)
            except (LookupFailedError, IdentityError):
                self.core.drops["device-unresolved"] += 1
                return
            if certificate_node_id(cert) == node_id:  # not a rotated successor
                keys[node_id] = cert.mldsa_public

        async with trio.open_nursery() as nursery:
            for node_id in ids:
                if node_id not in keys:
                    nursery.start_soon(learn, node_id)

    async def enrolled(self, task: bytes, coordinator: bytes | None = None) -> list[Contact]:
        """The devices enrolled in the DHT for (``coordinator``, default this node, ``task``)."""
        node = self.node
        topic = enrol_topic(coordinator or node.node_id, task)
        try:
            entries = await node.get_set(topic)
        except LookupFailedError:
            return []
        difficulty = node.config.puzzle_difficulty
        out = []
        for entry in entries:
            record = entry.record
            if not isinstance(record, SetEntry):
                continue
            try:
                enrolment = decode(record.value, expect=(Enrolment,))
            except DecodeError:
                self.core.drops["bad-enrolment"] += 1
                continue
            assert isinstance(enrolment, Enrolment)
            # The entry's signer must be the contact's node (§9.1): no third parties.
            claimed = node_id_from_hashes(enrolment.xwing, record.owner, enrolment.nonce)
            if claimed != enrolment.contact.node_id or not puzzle_ok(claimed, difficulty):
                self.core.drops["enrolment-not-own"] += 1
                continue
            out.append(enrolment.contact)
        return out

    # ------------------------------------------------------------ device

    async def join(
        self,
        coordinator: Contact,
        coordinator_key: bytes,
        task: bytes,
        trainer: Trainer,
        x: NDArray[np.floating],
        y: NDArray[np.integer],
        *,
        rng: np.random.Generator | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
        enrol: bool = True,
        on_round: Callable[[RoundAnnounce, str], object] | None = None,
    ) -> None:
        """Take part, as a device with data ``x``, ``y``, in ``coordinator``'s rounds of ``task``.

        ``coordinator_key`` is its ML-DSA-65 public key (announcements are
        signed with it and it publishes the model).  With ``enrol`` the node
        enrols in the DHT so the coordinator finds it.  The node then trains
        in every round it is sampled for, in the service's task, and calls
        ``on_round(announcement, outcome)``: ``sent`` (the update went out),
        ``secagg`` (its update waits for the SecAgg stages), or why it could
        not take part (``model-unavailable``, ``trained-too-late``).
        """
        node = self.node
        if self.core.device is not None:
            raise NodeStateError("this node is a device of a coordinator already")
        if type(task) is not bytes or len(task) != 32:
            raise ConfigError("task must be 32 bytes")
        device = RoundDevice(
            node_id=node.node_id,
            coordinator_id=coordinator.node_id,
            coordinator_key=coordinator_key,
            trainer=trainer,
            x=x,
            y=y,
            rng=rng,
            random_bytes=random_bytes,
        )
        self._coordinator_key = coordinator_key
        self._on_round = on_round
        if coordinator.addresses:
            self.core.addresses[coordinator.node_id] = coordinator.addresses[0]
        self.core.device = device
        if enrol:
            xwing = sha3_256(self.identity.xwing.public_key_bytes())
            enrolment = Enrolment(node.contact, xwing, self.identity.nonce)
            self._enrolment = (enrol_topic(coordinator.node_id, task), encode(enrolment))
            await self._enrol(node)
            self._enrolled.set()

    async def _enrol(self, node: Node) -> None:
        assert self._enrolment is not None
        topic, value = self._enrolment
        await node.put_set_entry(topic, value, ttl=self.config.enrol_ttl)

    async def enrol_task(self, node: Node, *, task_status: trio.TaskStatus[None]) -> None:
        """Renew the device's enrolment at half its lifetime, while the node runs."""
        task_status.started()
        await self._enrolled.wait()
        while True:
            await trio.sleep(self.config.enrol_ttl / 2)
            try:
                await self._enrol(node)
            except (LookupFailedError, RPCError):
                self.core.drops["enrol-failed"] += 1
            except NodeStateError:  # the node is stopping: this task is cancelled next
                return

    async def _take_part(self, node: Node, announce: RoundAnnounce) -> None:
        outcome = await self._train(node, announce)
        if outcome not in ("sent", "secagg"):
            self.core.give_up(outcome)
        if self._on_round is not None:
            self._on_round(announce, outcome)

    async def _train(self, node: Node, announce: RoundAnnounce) -> str:
        core, device = self.core, self.core.device
        assert device is not None
        model = await self._fetch_model(node, announce)
        if model is None:
            return "model-unavailable"
        if trio.current_time() + self.unix_offset >= announce.deadline:
            return "trained-too-late"
        if announce.secagg:
            device.prepare_secagg(announce, model)
            core.secagg_ready(announce)
        else:
            core.submit_update(announce, device.train(announce, model))
        await node.flush()
        return "secagg" if announce.secagg else "sent"

    async def _fetch_model(self, node: Node, announce: RoundAnnounce) -> Params | None:
        name = training_model_name(announce.task)
        for attempt in range(self.config.fetch_attempts):
            if attempt:
                await trio.sleep(self.config.fetch_retry)
            try:
                fetched = await node.models.fetch(self._coordinator_key, name)
            except (ModelError, LookupFailedError, RPCError):
                continue
            params = _params(node, fetched.manifest)
            if params is not None and model_hash(params) == announce.model:
                return params
        return None

    # ------------------------------------------------------------ gossip

    def start_gossip(
        self,
        task: bytes,
        trainer: Trainer,
        x: NDArray[np.floating],
        y: NDArray[np.integer],
        *,
        period: float = 10.0,
        config: TrainingConfig | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        """Gossip learning (§8) with this node's DHT neighbours; no coordinator."""
        node = self.node
        if self.core.gossip is not None:
            raise NodeStateError("this node gossips already")
        neighbours = [c.node_id for c in node.core.routing]
        if not neighbours:
            raise NodeStateError("gossip needs DHT neighbours: bootstrap the node first")
        learner = GossipLearner(
            task=task,
            trainer=trainer,
            x=x,
            y=y,
            neighbours=neighbours,
            period=period,
            now=trio.current_time(),
            config=config,
            rng=rng,
        )
        self.core.start_gossip(learner)
        node.services.wake_timers()

    @property
    def gossip_model(self) -> Params:
        """The gossip model as it is now (NodeStateError when not gossiping)."""
        if self.core.gossip is None:
            raise NodeStateError("this node is not gossiping (node.training.start_gossip)")
        return self.core.gossip.model


def _params(node: Node, manifest: ModelManifest) -> Params | None:
    """The single float32 tensor of a training model, from the node's chunk store."""
    if len(manifest.tensors) != 1 or manifest.tensors[0].dtype != "F32":
        return None
    store = node.models.store
    try:
        data = b"".join(store.load(key) for key in manifest.tensors[0].chunk_keys)
    except ModelError:
        return None
    if len(data) != manifest.tensors[0].nbytes:
        return None
    return np.frombuffer(data, dtype="<f4").astype(np.float64)


def _address_of(node: Node, peer: bytes) -> Hashable | None:
    for contact in node.core.routing.closest(peer, 1):
        if contact.node_id == peer and contact.addresses:
            return contact.addresses[0]
    return None


def training_service(config: TrainingLayerConfig) -> Callable[[ServiceContext], Service]:
    """The factory of the ``training`` service configured by ``config``."""
    if not isinstance(config, TrainingLayerConfig):
        raise ConfigError(
            f"expected a qdht.models.training.TrainingLayerConfig, got {type(config).__name__}"
        )

    def factory(context: ServiceContext) -> Service:
        if config.mixnet and context.config.mixnet is None:
            raise ConfigError("training.mixnet needs the mixnet layer (Config.mixnet)")
        face = TrainingFace(context, config)
        tasks = [face.device_task, face.enrol_task]
        if config.mixnet:
            tasks.append(face.anonymous_task)
        return Service(
            "training",
            face.core,
            TRAINING_MESSAGE_TYPES,
            on_event=face.on_event,
            tasks=tasks,
            face=face,
        )

    return factory
