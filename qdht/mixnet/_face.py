"""The mixnet's Trio side: the ``mixnet`` service's task tree and ``node.anonymous``.

The sans-IO :class:`~qdht.mixnet.MixnetCore` does the packet work; this
module only moves it through the node (HACKING "Services"):

* ``directory`` task: every ``directory_interval`` (and at once when the
  mix keys rotate) a mix publishes its signed descriptor in the DHT (a
  mutable record under :data:`DESCRIPTOR_SALT`, and an entry in the set
  :data:`MIXES_TOPIC` so authorities find it); an authority collects the
  descriptors, checks them and publishes the epoch's directory signed with
  its key; every node fetches the directories of the current and next epoch
  from each authority, merges their signatures and accepts one only with
  ``t`` valid ones (10-mixnet.md §10, §14.3);
* ``exit`` task: runs the requests that end at this mix as an ordinary node
  (gets, puts, and forwards handed to their node over its session, §14.7)
  and answers through their reply blocks, keeping nothing about who asked;
  a message an exit hands to this node goes to the service that owns its
  type, with no peer, if that service accepts it anonymously;
* the service's timer task (from the node) drives sending, mixing, cover
  traffic and loops.
"""

from __future__ import annotations

import hashlib
import logging
import random
import struct
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, Final

import trio

from qdht.dht import ValidRecord, make_immutable, sign_mutable
from qdht.errors import ConfigError, DecodeError, LookupFailedError, QdhtError
from qdht.mixnet._config import MixnetConfig
from qdht.mixnet._directory import (
    DirectoryAuthority,
    sign_descriptor,
    sign_directory,
    verify_directory,
    with_signatures,
)
from qdht.mixnet._fragments import fragment_chunk_size
from qdht.mixnet._mix import KeysRotated
from qdht.mixnet._routes import LoopAlarm
from qdht.mixnet._service import (
    MIXNET_MESSAGE_TYPES,
    AnonymousDone,
    AnonymousMessage,
    ExitReplied,
    ExitRequest,
    HandoffDone,
    MixnetCore,
)
from qdht.node import Operations, Service, ServiceContext
from qdht.wire import (
    ANON_RECORD_TYPES,
    AnonAnswer,
    AnonForward,
    AnonGet,
    AnonMbox,
    AnonPut,
    MboxReply,
    MixDescriptor,
    MixDirectory,
    decode,
    encode,
    mutable_key,
    peek_type,
)

if TYPE_CHECKING:
    from qdht.node import Node

__all__ = [
    "DESCRIPTOR_SALT",
    "DIRECTORY_SALT",
    "MIXES_TOPIC",
    "AnonymousFace",
    "directory_salt",
    "mixnet_service",
]

logger = logging.getLogger(__name__)

#: The salt of a mix's descriptor record (its mutable key: owner ‖ salt).
DESCRIPTOR_SALT: Final = b"qdht/v1/mix-descriptor"
#: The set every mix enters, so authorities can find the descriptors.
MIXES_TOPIC: Final = b"qdht/v1/mixes"
#: The salt prefix of an authority's directory record; the epoch follows (u32).
DIRECTORY_SALT: Final = b"qdht/v1/mix-directory/"
#: Exit requests run at once; more wait in a queue of this size, then are dropped.
EXIT_CONCURRENCY: Final = 16
EXIT_QUEUE: Final = 256
#: Seconds before a failed directory round is tried again; doubles up to the interval.
RETRY_FIRST: Final = 2.0


def directory_salt(epoch: int) -> bytes:
    """The salt an authority publishes the directory of ``epoch`` under."""
    return DIRECTORY_SALT + struct.pack(">I", epoch)


class AnonymousFace:
    """``node.anonymous``: DHT operations through the mixnet, and the service's tasks."""

    def __init__(self, core: MixnetCore, context: ServiceContext) -> None:
        self.core = core
        self.config: MixnetConfig = core.config
        self.operations = Operations()
        self._context = context
        self._node: Node | None = None
        self._rotated = trio.Event()
        self._exit_send, self._exit_recv = trio.open_memory_channel[ExitRequest](EXIT_QUEUE)
        self._authority: DirectoryAuthority | None = None
        self._authority_index: int | None = None
        if self.config.authority:
            mine = context.identity.mldsa.public_key_bytes()
            if mine not in self.config.directory_keys:
                raise ConfigError(
                    "mixnet.authority: this node's ML-DSA key is not one of directory_keys"
                )
            self._authority_index = self.config.directory_keys.index(mine)
            self._authority = DirectoryAuthority(
                self.config, difficulty=context.config.puzzle_difficulty
            )
        self._registered = False
        #: How this node runs a request as an exit: ``async (node, request) ->
        #: AnonAnswer``.  Replaceable (an operator's policy, such as refusing
        #: puts; a test's lying exit); the default runs it as an ordinary node.
        self.run_request: Callable[[Node, ExitRequest], Awaitable[AnonAnswer | MboxReply]] = (
            self._run_request
        )
        #: How this exit runs an ``exit_mbox``, given the bytes its answer may take
        #: (its reply blocks' room, §14.8): set by the messaging layer when the
        #: node runs it; without it the request is refused (``no-mailbox``).
        self.run_mailbox: Callable[[Node, AnonMbox, int], Awaitable[MboxReply]] = _no_mailbox

    # ------------------------------------------------------------ events

    def on_event(self, event: object) -> None:
        if self.operations.resolve(event):
            return
        if type(event) is ExitRequest:
            try:
                self._exit_send.send_nowait(event)
            except trio.WouldBlock:
                self.core.drop("exit-busy")
        elif type(event) is AnonymousMessage:
            self._hand_on(event)
        elif type(event) is KeysRotated:
            self._rotated.set()
        elif type(event) is LoopAlarm:
            level = logging.WARNING if event.raised else logging.INFO
            logger.log(
                level,
                "mixnet n-1 alarm %s: %d of %d loops returned",
                "raised" if event.raised else "cleared",
                event.returned,
                event.judged,
            )

    # ------------------------------------------------------------ public API

    async def get(self, key: bytes) -> bytes | None:
        """The value under ``key``, looked up by exits that do not learn who asked."""
        record = await self.get_record(key)
        return None if record is None or record.deleted else record.value

    async def get_record(self, key: bytes) -> ValidRecord | None:
        """The validated record under ``key`` (the newest any exit found), or None.

        Raises ``LookupFailedError`` when no exit answered in time.
        """
        node = self._running()
        done = await self.operations.run(node, lambda now: self.core.start_get(key, now))
        assert type(done) is AnonymousDone
        if done.record is None and done.answers == 0:
            raise LookupFailedError("anonymous get: no exit answered in time")
        return done.record

    async def put_immutable(self, value: bytes, *, ttl: float | None = None) -> bytes:
        """Store ``value`` as an immutable record through the exits; return its key."""
        node = self._running()
        record = make_immutable(bytes(value), self._expiry(node, ttl))
        return await self._put(node, record)

    async def put_mutable(
        self, value: bytes, *, salt: bytes = b"", seq: int | None = None, ttl: float | None = None
    ) -> bytes:
        """Publish this identity's mutable record under ``salt`` through the exits.

        The record is signed by the node's identity, so its owner is public;
        what the mixnet hides is where the put came from.  ``seq`` None: one
        more than the version an anonymous get finds.
        """
        node = self._running()
        if seq is None:
            current = await self.get_record(node.mutable_key(salt))
            seq = 0 if current is None else current.seq + 1
        record = sign_mutable(
            node.identity.mldsa,
            salt=salt,
            seq=seq,
            value=bytes(value),
            expires=self._expiry(node, ttl),
        )
        return await self._put(node, record)

    async def put_record(self, record: Any) -> bytes:
        """Store a record signed elsewhere through the exits (a mutable record under a
        key derived from a shared secret, as a group's, 12-groups.md §14); its key.

        Exits store it once; nobody republishes it.  Raises ``LookupFailedError``
        when no exit stored it (a write-once key holding another write included).
        """
        node = self._running()
        if not isinstance(record, ANON_RECORD_TYPES):
            raise ConfigError(f"record must be one of {ANON_RECORD_TYPES}, got {type(record)}")
        return await self._put(node, record)

    async def forward(self, node_id: bytes, message: bytes, *, ack: bool = True) -> bool:
        """Have one exit hand ``message`` (one encoded message) to node ``node_id`` (§14.7).

        The node receives it from nobody: its service that owns the message's
        type takes it only if it accepts that type anonymously.  With ``ack``
        the exit answers through a reply block and this returns whether the
        node's service accepted it (False also when no answer came in time);
        without, it returns True once the message is queued.
        """
        node = self._running()
        done = await self.operations.run(
            node, lambda now: self.core.start_forward(node_id, message, now, ack=ack)
        )
        assert type(done) is AnonymousDone
        return done.ok

    async def exit_request(self, data: bytes, *, fragments: int = 1) -> bytes | None:
        """Send ``data`` to one exit with reply blocks; the answer's bytes (unchecked),
        or None if none came in time.  ``NodeStateError`` without a directory yet.

        ``fragments``: send it in that many fragments, each with a reply block,
        and get the answer back through all of them (§14.8)."""
        node = self._running()
        start = self.core.start_exit_request
        done = await self.operations.run(node, lambda now: start(data, now, fragments=fragments))
        assert type(done) is ExitReplied
        return done.data

    async def update_directory(self) -> bool:
        """One round of the directory task now; True if a directory was accepted."""
        return await self._directory_round(self._running())

    # ------------------------------------------------------------ tasks

    async def directory_task(
        self, node: Node, *, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        self._node = node
        self.core.resolve = lambda peer: _address_of(node, peer)
        task_status.started()
        retry = RETRY_FIRST
        while True:
            wait = self.config.directory_interval
            try:
                await self._directory_round(node)
                retry = RETRY_FIRST
            except QdhtError as exc:  # not joined yet, or a lookup failed: soon again
                self.core.drop("directory-round-failed")
                logger.debug("mixnet directory round failed: %s", exc)
                wait, retry = min(wait, retry), retry * 2
            self._rotated = trio.Event()
            with trio.move_on_after(wait):
                await self._rotated.wait()

    async def exit_task(self, node: Node, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        limiter = trio.CapacityLimiter(EXIT_CONCURRENCY)
        task_status.started()
        async with trio.open_nursery() as nursery:
            async for request in self._exit_recv:
                await limiter.acquire_on_behalf_of(request)
                nursery.start_soon(self._serve, node, request, limiter)

    # ------------------------------------------------------------ internals

    def _running(self) -> Node:
        if self._node is None:
            raise ConfigError("the mixnet service has not started")
        return self._node

    def _expiry(self, node: Node, ttl: float | None) -> int:
        lifetime = node.config.record_ttl if ttl is None else ttl
        return int(trio.current_time() + self.core.unix_offset + lifetime)

    async def _put(self, node: Node, record: Any) -> bytes:
        done = await self.operations.run(node, lambda now: self.core.start_put(record, now))
        assert type(done) is AnonymousDone
        if not done.ok:
            raise LookupFailedError(
                f"anonymous put: no exit stored the record ({done.answers} answered)"
            )
        key: bytes = record.key()
        return key

    async def _serve(self, node: Node, request: ExitRequest, limiter: trio.CapacityLimiter) -> None:
        try:
            answer = await self.run_request(node, request)
        finally:
            limiter.release_on_behalf_of(request)
        if request.surb is not None:
            self.core.answer_request(request, answer, trio.current_time())
            await node.flush()

    async def _run_request(self, node: Node, request: ExitRequest) -> AnonAnswer | MboxReply:
        try:
            wanted = request.request
            if type(wanted) is AnonMbox:
                return await self.run_mailbox(node, wanted, self._answer_room(request))
            if type(wanted) is AnonForward:
                return await self._hand_off(node, wanted)
            if type(wanted) is AnonGet:
                found = await node.get_record(wanted.key)
                if found is None or not isinstance(found.record, ANON_RECORD_TYPES):
                    return AnonAnswer("not-found")
                return AnonAnswer("found", found.record)
            assert type(wanted) is AnonPut
            await node.put_record(wanted.record)
            return AnonAnswer("stored")
        except QdhtError as exc:
            logger.debug("mixnet exit request failed: %s", exc)
            return AnonAnswer("failed")

    def _answer_room(self, request: ExitRequest) -> int:
        """The bytes an answer to ``request`` may take: one payload, or its reply
        blocks' fragments (§14.6)."""
        geometry = self.core.client.geometry
        if len(request.surbs) > 1:
            return len(request.surbs) * fragment_chunk_size(geometry)
        return geometry.user_payload_size

    async def _hand_off(self, node: Node, request: AnonForward) -> AnonAnswer:
        """At an exit: hand the message to its node and wait for the ack (§14.7)."""
        if request.node == node.node_id:
            self._hand_on(AnonymousMessage(node.node_id, b"", request.message))
            return AnonAnswer("delivered")  # this exit is the addressee
        if _address_of(node, request.node) is None:
            await node.find_node(request.node)  # raises LookupFailedError: answered "failed"
        done = await self.operations.run(
            node,
            lambda now: self.core.start_handoff(request.node, request.message, now),
        )
        assert type(done) is HandoffDone
        return AnonAnswer("delivered" if done.ok else "failed")

    def _hand_on(self, event: AnonymousMessage) -> None:
        """Give an anonymous message to the service owning its type, if it accepts it."""
        node = self._node
        ok = False
        if node is not None:
            kind = peek_type(event.message)
            service = node.services.owner(kind)
            core = service.core if service is not None else None
            accepted: frozenset[str] = getattr(core, "anonymous_types", frozenset())
            receive = getattr(core, "receive_anonymous", None)
            if kind in accepted and receive is not None:
                ok = bool(receive(event.message, trio.current_time()))
            else:
                self.core.drop("not-anonymous")
        if event.exit != (node.node_id if node is not None else None):
            self.core.acknowledge(event, ok, trio.current_time())

    async def _directory_round(self, node: Node) -> bool:
        now = trio.current_time()
        unix = now + self.core.unix_offset
        epoch = int(unix // self.config.epoch_period)
        role = self.core.role
        if role is not None:
            descriptor = sign_descriptor(
                node.identity,
                node.contact,
                self.config.layer,
                role.keys.public_keys(),
                now=int(unix),
            )
            await node.put_mutable(encode(descriptor), salt=DESCRIPTOR_SALT)
            if not self._registered:
                await node.put_set_entry(MIXES_TOPIC, b"")
                self._registered = True
        if self._authority is not None:
            await self._sign_directories(node, epoch, int(unix))
        accepted = False
        for e in (epoch, epoch + 1):
            accepted = await self._fetch_directory(node, e) or accepted
        return accepted

    async def _sign_directories(self, node: Node, epoch: int, unix: int) -> None:
        authority = self._authority
        assert authority is not None
        assert self._authority_index is not None
        owners = [e.owner for e in await node.get_set(MIXES_TOPIC) if e.owner is not None]

        async def collect(owner: bytes) -> None:
            descriptor = await self._fetch(node, owner, DESCRIPTOR_SALT, MixDescriptor)
            if type(descriptor) is MixDescriptor:
                authority.add_descriptor(descriptor, unix)

        async with trio.open_nursery() as nursery:
            for owner in owners:
                nursery.start_soon(collect, owner)
        for e in (epoch, epoch + 1):
            directory = authority.build(e)
            if directory is None:
                continue
            signature = sign_directory(directory, node.identity.mldsa)
            signed = with_signatures(directory, [(self._authority_index, signature)])
            await node.put_mutable(encode(signed), salt=directory_salt(e))

    async def _fetch(
        self, node: Node, owner: bytes, salt: bytes, cls: type[MixDescriptor | MixDirectory]
    ) -> object | None:
        """The ``cls`` message in the mutable record of ``owner`` under ``salt``, if any."""
        try:
            record = await node.get_record(mutable_key(owner, salt))
        except LookupFailedError:
            return None
        if record is None or record.value is None:
            return None
        try:
            return decode(record.value, expect=(cls,))
        except DecodeError:
            self.core.drop(f"{cls.TYPE}-malformed")
            return None

    async def _fetch_directory(self, node: Node, epoch: int) -> bool:
        found: dict[bytes, MixDirectory] = {}
        for key in self.config.directory_keys:
            owner = hashlib.sha3_256(key).digest()
            directory = await self._fetch(node, owner, directory_salt(epoch), MixDirectory)
            if type(directory) is not MixDirectory:
                continue
            if directory.epoch != epoch:
                self.core.drop("directory-wrong-epoch")
                continue
            signed = directory.signed_bytes()
            held = found.get(signed)
            found[signed] = (
                directory if held is None else with_signatures(held, directory.signatures)
            )
        for directory in found.values():
            view, reason = verify_directory(directory, self.config)
            if view is not None:
                self.core.set_directory(view, trio.current_time())
                await node.flush()
                return True
            assert reason is not None
            self.core.drop(reason)
        return False


async def _no_mailbox(node: Node, request: AnonMbox, room: int) -> MboxReply:
    return MboxReply(request.request.rid, False, reason="no-mailbox")


def _address_of(node: Node, peer: bytes) -> Hashable | None:
    for contact in node.core.routing.closest(peer, 1):
        if contact.node_id == peer and contact.addresses:
            return contact.addresses[0]
    return None


def mixnet_service(config: MixnetConfig) -> Any:
    """The service factory of ``Config.mixnet`` (the ``_builtin.py`` block calls it)."""

    def factory(context: ServiceContext) -> Service:
        core = MixnetCore(
            context.identity.node_id,
            config,
            now=context.now,
            unix_offset=context.unix_offset,
            limits=context.config.record_limits,
            random_source=None if config.random_seed is None else random.Random(config.random_seed),
        )
        face = AnonymousFace(core, context)
        return Service(
            "mixnet",
            core,
            MIXNET_MESSAGE_TYPES,
            on_event=face.on_event,
            tasks=(face.directory_task, face.exit_task),
            face=face,
            # Its deadlines are release times (delays, Poisson sends): a
            # stalled process must catch up, not wait as long again (§8.2).
            stall_grace=False,
        )

    return factory
