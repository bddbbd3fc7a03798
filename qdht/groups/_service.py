"""The groups service: a node's groups over the DHT (12-groups.md §12).

The group state machine is :class:`qdht.messaging.Group` (sans-IO); this
module is its Trio driver.  Each group runs as a task tree inside the
service's nursery: a timer (the window Δ of the current commit slot), a
watcher of the current slot (plus a slow poll, for a member whose watch
lapsed), and one reader per member of each kept epoch for its messages.
Where the bytes go is behind :class:`Delivery`: :class:`DhtDelivery` stores
them in write-once DHT records, :class:`AnonymousDelivery` has mixnet exits
do it (the default when the node runs the mixnet).  Every group's state is
saved in the data directory (``groups.sqlite``, 12 §13) and taken back at
start.

    async with open_node(Config(..., groups=GroupsConfig())) as node:
        gid = await node.groups.create()
        await node.groups.add(gid, key_package_from_the_joiner)
        await node.groups.send(gid, b"hello")
        async for notice in node.groups.events(): ...
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.errors import ConfigError, DecodeError, GroupError, NodeStateError, StoreError
from qdht.groups._config import GroupsConfig
from qdht.groups._delivery import (
    AnonymousDelivery,
    Delivery,
    DhtDelivery,
    NoDelivery,
    record_key,
)
from qdht.groups._layout import (
    APP_DATA,
    APP_PROPOSAL,
    PART_SIZE,
    frame,
    join_parts,
    leaf_signing_key,
    message_name,
    message_signing_key,
    sealed_name,
    slot_part_name,
    split_slot,
    unframe,
    welcome_signing_key,
)
from qdht.groups._store import GROUPS_FILE, GroupStore, SavedGroup
from qdht.messaging import (
    ApplicationMessage,
    CommitBundle,
    EpochChanged,
    Group,
    GroupConfig,
    GroupInvitations,
    MemberKeys,
    Removed,
    key_package_ref,
    leaf_ref,
)
from qdht.node import QuietCore, Service, ServiceContext
from qdht.wire import (
    CborLimits,
    KeyPackage,
    LeafNode,
    Proposal,
    decode,
    dumps_canonical,
    encode,
    loads_canonical,
)

if TYPE_CHECKING:
    from qdht.node import Node

__all__ = [
    "GroupJoined",
    "GroupNotice",
    "GroupsCore",
    "GroupsFace",
    "groups_service",
]

_EXPORT_LABEL = b"qdht group records"
#: Limits of a runner's saved state (local data, 12 §13).
_SAVED_LIMITS = CborLimits(max_bytes=64 * 1024 * 1024, max_container_len=1 << 20, max_items=1 << 22)


@attrs.frozen
class GroupJoined:
    """This node joined a group through a Welcome, at ``epoch``."""

    epoch: int


@attrs.frozen
class GroupNotice:
    """One event of one group: ``event`` is a :mod:`qdht.messaging` group event
    (``ApplicationMessage``, ``MemberAdded``, ``MemberRemoved``, ``EpochChanged``,
    ``Removed``, ``Equivocation``, ``ForkDetected``) or :class:`GroupJoined`."""

    group_id: bytes
    event: object


class GroupsCore(QuietCore):
    """The service's core: it owns no message types (groups talk through records);
    it holds the counters that ``node.stats()`` reports under ``groups``."""

    def __init__(self, config: GroupConfig) -> None:
        self.groups: dict[bytes, Group] = {}
        self.invitations = GroupInvitations(config=config)
        self.counts: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()

    def drop(self, reason: str) -> None:
        self.drops[reason] += 1

    def stats(self) -> dict[str, Any]:
        drops = Counter(self.drops)
        for stats in [g.stats() for g in self.groups.values()] + [self.invitations.stats()]:
            counted = stats["drops"]
            assert isinstance(counted, dict)
            drops.update(counted)
        return {"groups": len(self.groups), **dict(self.counts), "drops": dict(drops)}


@attrs.frozen
class _Pending:
    """A commit of ours on its way to the slot: saved first, so a crash resumes it (12 §13)."""

    epoch: int
    commit_hash: bytes
    parts: tuple[bytes, ...]
    sealed: tuple[tuple[int, bytes], ...]
    welcomes: tuple[tuple[bytes, bytes], ...]
    expires: int

    @classmethod
    def of(cls, bundle: CommitBundle, part_size: int, expires: int) -> _Pending:
        return cls(
            bundle.epoch,
            bundle.commit_hash,
            tuple(split_slot(bundle.slot, part_size)),
            tuple(sorted(bundle.sealed.items())),
            tuple(sorted(bundle.welcomes.items())),
            expires,
        )

    def to_obj(self) -> list[object]:
        return [
            self.epoch,
            self.commit_hash,
            list(self.parts),
            [list(s) for s in self.sealed],
            [list(w) for w in self.welcomes],
            self.expires,
        ]

    @classmethod
    def from_obj(cls, obj: list[Any]) -> _Pending:
        epoch, digest, parts, sealed, welcomes, expires = obj
        return cls(
            int(epoch),
            bytes(digest),
            tuple(bytes(p) for p in parts),
            tuple((int(i), bytes(v)) for i, v in sealed),
            tuple((bytes(r), bytes(v)) for r, v in welcomes),
            int(expires),
        )


class _Runner:
    """One group's task tree."""

    def __init__(self, face: GroupsFace, group: Group) -> None:
        self.face = face
        self.group = group
        self.delivery = face.delivery
        self.wake = trio.Event()
        self.epoch_changed = trio.Event()
        self.written: set[bytes] = set()
        self.seen: set[bytes] = set()
        self.sent: Counter[int] = Counter()
        self.read: dict[tuple[int, int], int] = {}
        self.stored: dict[int, list[bytes]] = {}
        self.winners: dict[int, bytes] = {}
        self.secrets: dict[int, bytes] = {}
        self.readers: dict[int, trio.CancelScope] = {}
        self.cancel = trio.CancelScope()
        self.nursery: trio.Nursery | None = None
        self.commit_lock = trio.Lock()
        self.auto_commit_epoch = -1
        self.pieces: dict[tuple[int, int], list[bytes]] = {}
        self.pending: _Pending | None = None
        self.leaves_stored: set[bytes] = set()
        self.holding = False

    # -- saved state (12 §13) --------------------------------------------

    def dump(self) -> bytes:
        """What this runner adds to the group's saved state: message counters,
        records to release later, the winners seen and a commit on its way."""
        return dumps_canonical(
            {
                "v": 1,
                "sent": sorted(self.sent.items()),
                "read": sorted([e, s, n] for (e, s), n in self.read.items()),
                "stored": sorted([e, keys] for e, keys in self.stored.items()),
                "winners": sorted(self.winners.items()),
                "pending": None if self.pending is None else self.pending.to_obj(),
            }
        )

    def restore(self, data: bytes) -> None:
        """Take back what :meth:`dump` saved; ConfigError if it is not that."""
        try:
            obj = loads_canonical(data, _SAVED_LIMITS)
            if obj["v"] != 1:
                raise ConfigError(f"unknown runner state version {obj['v']!r}")
            self.sent = Counter({int(e): int(n) for e, n in obj["sent"]})
            self.read = {(int(e), int(s)): int(n) for e, s, n in obj["read"]}
            self.stored = {int(e): [bytes(k) for k in keys] for e, keys in obj["stored"]}
            self.winners = {int(e): bytes(h) for e, h in obj["winners"]}
            pending = obj["pending"]
            self.pending = None if pending is None else _Pending.from_obj(pending)
        except (KeyError, TypeError, ValueError, DecodeError) as exc:
            raise ConfigError(f"not a saved group runner: {exc}") from None

    # -- task tree -----------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self.cancel:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                self._start_readers()
                nursery.start_soon(self._timer)
                nursery.start_soon(self._slots)
                if self.pending is not None:
                    nursery.start_soon(self._resume, self.pending)
                task_status.started()

    async def _resume(self, pending: _Pending) -> None:
        """After a restart: finish publishing the commit saved before it (12 §13)."""
        async with self.commit_lock:
            group = self.group
            if group.epoch == pending.epoch and group.active:
                await self._publish(pending, group.slot_key(), self.epoch_changed)
            elif self.winners.get(pending.epoch + 1) == pending.commit_hash:
                await self._welcome(dict(pending.welcomes))
                self.pending = None
                self.face.changed(self)
            else:
                self.pending = None
                self.face.changed(self)

    async def _timer(self) -> None:
        while True:
            self.wake = wake = trio.Event()
            # While a commit of ours is on its way to the slot its window stays
            # open: applying it before the slot holds it could leave us alone.
            when = None if self.holding else self.group.get_timer()
            with trio.move_on_at(math.inf if when is None else when):
                await wake.wait()
            if when is not None and trio.current_time() >= when and not self.holding:
                self.group.handle_timer(trio.current_time())
                self._after()

    async def _slots(self) -> None:
        while self.group.active:
            changed = self.epoch_changed
            key = self.group.slot_key()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_slot, key)
                nursery.start_soon(self._poll_slot, key)
                await changed.wait()
                nursery.cancel_scope.cancel()

    async def _watch_slot(self, key: MLDSAPrivateKey) -> None:
        async with self.delivery.watch(key, b"slot") as values:
            async for part0 in values:
                await self._on_slot(key, part0)

    async def _poll_slot(self, key: MLDSAPrivateKey) -> None:
        # Read at once (a commit may be there before the watch is set up), then slowly.
        while True:
            await self.read_slot(key)
            await trio.sleep(self.face.config.poll_interval)

    async def read_slot(self, key: MLDSAPrivateKey) -> bool:
        """Read the slot under ``key`` once; whether the epoch has a valid commit pending."""
        epoch = self.group.epoch
        part0 = await self.delivery.fetch(key, b"slot")
        if part0 is not None:
            await self._on_slot(key, part0)
        return self.group.epoch != epoch or self.group.get_timer() is not None

    async def _on_slot(self, key: MLDSAPrivateKey, part0: bytes) -> None:
        if part0 in self.seen or part0 in self.written:
            return
        self.seen.add(part0)
        rest: list[bytes] = []
        for i in range(1, part0[0] if part0 else 0):
            piece = await self.delivery.fetch(key, slot_part_name(part0, i))
            if piece is None:
                self.face.core.drop("missing-slot-part")
                self.seen.discard(part0)  # the poll retries
                return
            rest.append(piece)
        slot = join_parts(part0, rest)
        if slot is None:
            self.face.core.drop("bad-slot-parts")
            return
        sealed = await self.delivery.fetch(key, sealed_name(part0, self.group.index))
        self.group.receive_commit(slot, sealed, trio.current_time())
        self._after()

    def _start_readers(self) -> None:
        """Read every other member's messages of the current epoch; let the old go."""
        assert self.nursery is not None
        group = self.group
        epoch = group.epoch
        secret = group.export_secret(_EXPORT_LABEL, b"", 32)
        self.secrets[epoch] = secret
        scope = trio.CancelScope()
        self.readers[epoch] = scope
        key = message_signing_key(secret)
        senders = [i for i in group.members() if i != group.index]
        self.nursery.start_soon(self._read_epoch, scope, epoch, key, secret, senders)
        keep = self.face.config.group.keep_epochs
        for old in [e for e in self.readers if e < epoch - keep]:
            self.readers.pop(old).cancel()
            self.secrets.pop(old, None)
        if self.delivery.polls:
            # Polling costs a request per key and round: the previous epoch's
            # senders get one more round for their late messages, older ones none.
            for old in [e for e in self.readers if e < epoch]:
                self.readers[old].deadline = min(
                    self.readers[old].deadline, trio.current_time() + 2 * self.delivery.poll
                )
        for old in [e for e in self.sent if e < epoch - keep]:
            del self.sent[old]
        for gone in [k for k in self.read if k[0] < epoch - keep]:
            del self.read[gone]
        for old in [e for e in self.stored if e < epoch - keep]:
            # Superseded: what this node wrote for that epoch is no longer kept alive.
            for record in self.stored.pop(old):
                self.delivery.release(record)
        for piece in [p for p in self.pieces if p[0] < epoch - keep]:
            del self.pieces[piece]

    async def _read_epoch(
        self,
        scope: trio.CancelScope,
        epoch: int,
        key: MLDSAPrivateKey,
        secret: bytes,
        senders: list[int],
    ) -> None:
        with scope:
            async with trio.open_nursery() as nursery:
                for sender in senders:
                    nursery.start_soon(self._read_sender, epoch, key, secret, sender)

    async def _read_sender(
        self, epoch: int, key: MLDSAPrivateKey, secret: bytes, sender: int
    ) -> None:
        while True:
            n = self.read.get((epoch, sender), 0)
            name = message_name(secret, sender, n)
            async with self.delivery.watch(key, name) as values:
                async for value in values:
                    message = self.group.open_message(value)
                    if message is not None:
                        self.read[(epoch, sender)] = n + 1
                        self._on_message(message)
                    self._after()
                    if message is not None:
                        break

    def _on_message(self, message: ApplicationMessage) -> None:
        framed = unframe(message.data)
        if framed is None:
            self.face.core.drop("bad-frame")
            return
        kind, payload = framed
        if kind == APP_DATA:
            self.face.core.counts["messages_received"] += 1
            self.face.publish(self.group.group_id, attrs.evolve(message, data=payload))
            return
        assert kind == APP_PROPOSAL
        # A proposal does not fit one padded message: pieces ``index ‖ count ‖ bytes``,
        # in order (each sender's messages are read in order).
        if len(payload) < 2 or payload[1] == 0 or payload[0] >= payload[1]:
            self.face.core.drop("bad-frame")
            return
        pieces = self.pieces.setdefault((message.epoch, message.sender), [])
        if payload[0] != len(pieces):
            pieces.clear()
            if payload[0] != 0:
                self.face.core.drop("bad-frame")
                return
        pieces.append(payload[2:])
        if len(pieces) < payload[1]:
            return
        data = b"".join(pieces)
        del self.pieces[(message.epoch, message.sender)]
        if self.group.receive_proposal(data) is not None and self.nursery is not None:
            self.nursery.start_soon(self._commit_held, self.group.epoch)

    async def _commit_held(self, epoch: int) -> None:
        """Commit held proposals in turn (12 §7.2), unless someone did first."""
        if self.auto_commit_epoch == epoch:
            return
        self.auto_commit_epoch = epoch
        await trio.sleep(self.group.committer_delay())
        if self.group.epoch == epoch and self.group.active:
            await self.commit(lambda group: None, attempts=1)

    def _after(self) -> None:
        """Hand the core's events out; follow an epoch change; have the state saved."""
        group = self.group
        while (event := group.next_event()) is not None:
            if isinstance(event, EpochChanged):
                self.winners[event.epoch] = event.commit_hash
                # Only the current slot is read: what was seen of older ones can go.
                self.seen.clear()
                self.written.clear()
                for old in [e for e in self.winners if e < event.epoch - 8]:
                    del self.winners[old]
                changed, self.epoch_changed = self.epoch_changed, trio.Event()
                changed.set()
                self._start_readers()
            self.face.publish(group.group_id, event)
            if isinstance(event, Removed):
                self.epoch_changed.set()
                self.face.forget(group.group_id)
        self.face.changed(self)
        self.wake.set()

    # -- operations ----------------------------------------------------

    async def _store(
        self,
        epoch: int,
        key: MLDSAPrivateKey,
        name: bytes,
        value: bytes,
        expires: int | None = None,
    ) -> bool:
        """Write one record of ``epoch``; remember it, to let it go with the epoch."""
        ok = await self.delivery.store(key, name, value, expires=expires)
        if ok:
            self.stored.setdefault(epoch, []).append(record_key(key, name))
        return ok

    async def commit(
        self, make: Callable[[Group], Sequence[Proposal] | None], *, attempts: int | None = None
    ) -> bool:
        """Commit what ``make`` proposes until a commit of ours wins; whether one did."""
        async with self.commit_lock:
            for _ in range(attempts or self.face.config.commit_attempts):
                if not self.group.active:
                    return False
                if await self._commit_once(make):
                    return True
            return False

    async def _commit_once(self, make: Callable[[Group], Sequence[Proposal] | None]) -> bool:
        group = self.group
        epoch = group.epoch
        key = group.slot_key()
        changed = self.epoch_changed
        if await self.read_slot(key):
            # Compare-and-swap on an empty slot: this epoch has a commit already.
            # Follow it into the next epoch, then commit there.
            if group.epoch == epoch:
                await changed.wait()
            return False
        proposals = make(group)
        bundle = group.commit(trio.current_time(), proposals)
        size = min(PART_SIZE, self.delivery.max_value)
        self.pending = _Pending.of(bundle, size, self.delivery.expiry())
        self._after()
        # On disk before any of it leaves: after a crash the same commit goes on
        # (the new leaf keys are in the saved state), never a second one.
        await self.face.save(self)
        return await self._publish(self.pending, key, changed)

    async def _publish(self, pending: _Pending, key: MLDSAPrivateKey, changed: trio.Event) -> bool:
        """Write a commit's records, the slot last; wait for the epoch's decision."""
        group = self.group
        epoch = pending.epoch
        self.written.add(pending.parts[0])
        self.holding = True
        try:
            await self._write_commit(pending, key)
        finally:
            self.holding = False
            self.wake.set()
        if group.epoch == epoch:
            await changed.wait()
        won = self.winners.get(epoch + 1) == pending.commit_hash
        if won and pending.welcomes:
            await self._welcome(dict(pending.welcomes))
        self.pending = None
        self.face.changed(self)
        return won

    async def _write_commit(self, pending: _Pending, key: MLDSAPrivateKey) -> None:
        """The sealed secrets and further pieces, then the slot (12 §12)."""
        group = self.group
        epoch = pending.epoch
        part0 = pending.parts[0]
        expires = pending.expires
        async with trio.open_nursery() as nursery:
            for leaf, sealed in pending.sealed:
                nursery.start_soon(
                    self._store, epoch, key, sealed_name(part0, leaf), sealed, expires
                )
            for i, piece in enumerate(pending.parts[1:], 1):
                nursery.start_soon(
                    self._store, epoch, key, slot_part_name(part0, i), piece, expires
                )
        self.face.core.counts["commits_written"] += 1
        if not await self._store(epoch, key, b"slot", part0, expires):
            # Every holder keeps another commit: ours can be seen by nobody.
            group.withdraw(pending.commit_hash)
            self.face.core.counts["slot_taken"] += 1
            self._after()

    async def _welcome(self, welcomes: dict[bytes, bytes]) -> None:
        """Our commit won: store the roster's leaves, then each joiner's Welcome (12 §8)."""
        group = self.group
        epoch = group.epoch
        async with trio.open_nursery() as nursery:
            for index in group.members():
                leaf = group.leaf(index)
                assert leaf is not None
                ref = leaf_ref(leaf)
                if ref in self.leaves_stored:
                    continue  # written by this node for an earlier Welcome
                self.leaves_stored.add(ref)
                nursery.start_soon(self._store, epoch, leaf_signing_key(ref), b"leaf", encode(leaf))
        async with trio.open_nursery() as nursery:
            for ref, welcome in welcomes.items():
                nursery.start_soon(
                    self._store, epoch, welcome_signing_key(ref), b"welcome", welcome
                )
        self.face.core.counts["welcomes_sent"] += len(welcomes)

    async def send_proposal(self, proposal: bytes) -> None:
        """Send a proposal to the members, in as many messages as it needs (12 §12)."""
        size = self.face.config.group.pad_size - 16
        pieces = [proposal[i : i + size] for i in range(0, len(proposal), size)]
        for i, piece in enumerate(pieces):
            await self.send(bytes([i, len(pieces)]) + piece, APP_PROPOSAL)

    async def send(self, data: bytes, kind: int = APP_DATA) -> None:
        group = self.group
        epoch = group.epoch
        secret = self.secrets[epoch]
        n = self.sent[epoch]
        self.sent[epoch] += 1
        value = group.seal_message(frame(kind, data))
        # The ratchet moved and the name is taken: on disk before the message leaves,
        # so a crash never seals another message with this key (12 §13).
        await self.face.save(self)
        name = message_name(secret, group.index, n)
        if not await self._store(epoch, message_signing_key(secret), name, value):
            raise GroupError("the message's record holds another message")
        self.face.core.counts["messages_sent"] += 1


class GroupsFace:
    """``node.groups``: create, add, remove, update, leave, send, events (12 §12)."""

    def __init__(
        self, config: GroupsConfig, unix_offset: float, data_dir: Path | None = None
    ) -> None:
        self.config = config
        self.core = GroupsCore(config.group)
        self._unix_offset = unix_offset
        self._node: Node | None = None
        self._nursery: trio.Nursery | None = None
        self._runners: dict[bytes, _Runner] = {}
        self._subscribers: list[trio.MemorySendChannel[GroupNotice]] = []
        # What happens before anyone listens (groups resumed at start, a Welcome
        # read while joining the network) is kept for the first subscriber.
        self._backlog: deque[GroupNotice] | None = deque(maxlen=config.event_buffer)
        self.delivery: Delivery = NoDelivery()
        self.store = GroupStore(None if data_dir is None else data_dir / GROUPS_FILE)
        self._dirty: set[bytes] = set()
        #: SHA-256 of each group's state as last written (dump_parts' first part).
        self._saved_state: dict[bytes, bytes] = {}
        self._invitations_dirty = False
        self._save_wanted = trio.Event()
        self._save_lock = trio.Lock()

    # -- the service's task -------------------------------------------

    async def run(self, node: Node, *, task_status: trio.TaskStatus[None]) -> None:
        self._node = node
        if isinstance(self.delivery, NoDelivery):
            self.delivery = self._delivery_for(node)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._load()
                nursery.start_soon(self._saver)
                task_status.started()
                await trio.sleep_forever()
        except* NodeStateError:
            # The node stopped under a task (a watch closed, a put refused) just
            # before it cancels this service: nothing to do but end.
            pass
        finally:
            with trio.CancelScope(shield=True), contextlib.suppress(StoreError):
                await self.flush()  # what changed since the last save, before the file closes

    def _delivery_for(self, node: Node) -> Delivery:
        mode = self.config.delivery
        if mode == "auto":
            mode = "anonymous" if "mixnet" in node.services else "direct"
        if mode == "anonymous":
            if "mixnet" not in node.services:
                raise ConfigError("groups.delivery is 'anonymous' but the mixnet layer is off")
            return AnonymousDelivery(
                node,
                self.config.record_ttl,
                self._unix_offset,
                self.config.anonymous_poll,
                self.config.anonymous_concurrency,
            )
        return DhtDelivery(node, self.config.record_ttl, self._unix_offset)

    def _load(self) -> None:
        """Take back the groups and key packages saved in the data directory (12 §13)."""
        invitations = self.store.invitations()
        if invitations is not None:
            try:
                self.core.invitations.restore(invitations)
            except ConfigError:
                self.core.drop("bad-saved-state")
        assert self._nursery is not None
        for ref in self.core.invitations.pending():
            self._nursery.start_soon(self._await_welcome, ref)
        for _gid, state, extra, trees in self.store.groups():
            try:
                group = Group.load(
                    state, trio.current_time(), config=self.config.group, trees=trees
                )
                runner = _Runner(self, group)
                runner.restore(extra)
            except ConfigError:
                self.core.drop("bad-saved-state")
                continue
            if group.active:
                self._launch(runner)
                self.core.counts["restored"] += 1

    async def _saver(self) -> None:
        while True:
            await self._save_wanted.wait()
            self._save_wanted = trio.Event()
            try:
                await self.flush()
            except StoreError:
                self.core.drop("store-error")
                await trio.sleep(1.0)
                self._save_wanted.set()

    def changed(self, runner: _Runner | None = None) -> None:
        """Have ``runner``'s group (None: the key packages) saved soon."""
        if runner is None:
            self._invitations_dirty = True
        else:
            self._dirty.add(runner.group.group_id)
        self._save_wanted.set()

    async def save(self, runner: _Runner | None = None) -> None:
        """Have ``runner``'s group saved, and return once it is (StoreError if it cannot be)."""
        self.changed(runner)
        await self.flush()

    async def flush(self) -> None:
        """Write every change not yet saved; return once it is on disk."""
        async with self._save_lock:
            dirty, self._dirty = self._dirty, set()
            rows: dict[bytes, SavedGroup | None] = {}
            digests: dict[bytes, bytes] = {}
            for gid in dirty:
                runner = self._runners.get(gid)
                if runner is None:
                    rows[gid] = None
                    continue
                state, trees = runner.group.dump_parts()
                # A message changes the trees only: the state is written when it changed.
                digests[gid] = digest = hashlib.sha256(state).digest()
                unchanged = self._saved_state.get(gid) == digest
                rows[gid] = SavedGroup(None if unchanged else state, runner.dump(), trees)
            invitations = None
            if self._invitations_dirty:
                self._invitations_dirty = False
                invitations = self.core.invitations.dump()
            if not rows and invitations is None:
                return
            try:
                await self.store.save(rows, invitations)
            except StoreError:
                self._dirty |= dirty
                self._invitations_dirty = self._invitations_dirty or invitations is not None
                for gid in dirty:  # write the whole state next time
                    self._saved_state.pop(gid, None)
                raise
            for gid in dirty:
                if gid in digests:
                    self._saved_state[gid] = digests[gid]
                else:
                    self._saved_state.pop(gid, None)

    def _start(self, group: Group) -> None:
        self._launch(_Runner(self, group))

    def _launch(self, runner: _Runner) -> None:
        if self._nursery is None:
            raise ConfigError("the groups service is not running (the node is not open)")
        gid = runner.group.group_id
        self.core.groups[gid] = runner.group
        self._runners[gid] = runner
        self.changed(runner)
        self._nursery.start_soon(runner.run)

    def forget(self, group_id: bytes) -> None:
        """Stop running ``group_id`` here (removed, or left), and delete its saved state."""
        runner = self._runners.pop(group_id, None)
        self.core.groups.pop(group_id, None)
        if runner is not None:
            runner.cancel.cancel()
            self._dirty.add(group_id)
            self._save_wanted.set()

    def publish(self, group_id: bytes, event: object) -> None:
        notice = GroupNotice(group_id, event)
        if self._backlog is not None:
            self._backlog.append(notice)
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(notice)
            except trio.WouldBlock:
                self.core.counts["events_dropped"] += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(channel)

    def _runner(self, group_id: bytes) -> _Runner:
        runner = self._runners.get(group_id)
        if runner is None:
            raise ConfigError(f"no group {group_id.hex()[:16]} on this node")
        return runner

    def _identity(self) -> bytes:
        if self._node is None:
            raise ConfigError("the groups service is not running (the node is not open)")
        return self._node.node_id

    # -- public API ----------------------------------------------------

    def groups(self) -> list[bytes]:
        """The IDs of the groups this node is a member of."""
        return list(self._runners)

    def group(self, group_id: bytes) -> Group:
        """The state machine of ``group_id`` (epoch, members, ...): read it, do not drive it."""
        return self._runner(group_id).group

    async def create(self, group_id: bytes | None = None) -> bytes:
        """A new group with this node as its only member; its ID (random by default)."""
        gid = os.urandom(32) if group_id is None else group_id
        if gid in self._runners:
            raise ConfigError(f"group {gid.hex()[:16]} exists already")
        group = Group.create(gid, MemberKeys.generate(self._identity()), config=self.config.group)
        self._start(group)
        self.core.counts["created"] += 1
        return gid

    def key_package(self) -> bytes:
        """A fresh key package (encoded) to hand to a member who will add this node.

        The node then waits for the Welcome (12 §8) in the background and
        reports :class:`GroupJoined` once it joined.
        """
        kp = self.core.invitations.new_key_package(self._identity())
        if self._nursery is None:
            raise ConfigError("the groups service is not running (the node is not open)")
        self.changed()  # its private keys go to the data directory too
        self._nursery.start_soon(self._await_welcome, key_package_ref(kp))
        return encode(kp)

    async def _await_welcome(self, ref: bytes) -> None:
        async with self.delivery.watch(welcome_signing_key(ref), b"welcome") as values:
            async for welcome in values:
                if await self._join(welcome):
                    return

    async def _join(self, welcome: bytes) -> bool:
        leaves = await self._welcome_leaves(welcome)
        group = self.core.invitations.receive_welcome(welcome, leaves, trio.current_time())
        if group is None:
            return False
        self.changed()  # the key package is used up: saved with the new group
        self._start(group)
        self.core.counts["joined"] += 1
        self.publish(group.group_id, GroupJoined(group.epoch))
        return True

    async def _welcome_leaves(self, welcome: bytes) -> dict[bytes, LeafNode]:
        """The roster's leaves a Welcome names, read from their records (12 §12)."""
        refs = self.core.invitations.roster_refs(welcome)
        leaves: dict[bytes, LeafNode] = {}

        async def fetch(ref: bytes) -> None:
            data = await self.delivery.fetch(leaf_signing_key(ref), b"leaf")
            if data is None:
                return
            try:
                leaf = decode(data, expect=(LeafNode,))
            except DecodeError:
                self.core.drop("bad-leaf-record")
                return
            assert isinstance(leaf, LeafNode)
            leaves[ref] = leaf

        async with trio.open_nursery() as nursery:
            for ref in refs:
                nursery.start_soon(fetch, ref)
        return leaves

    async def add(self, group_id: bytes, key_package: bytes) -> None:
        """Add the owner of ``key_package`` (from its :meth:`key_package`); GroupError if
        the key package is invalid or no commit of ours won."""
        runner = self._runner(group_id)
        try:
            kp = decode(key_package, expect=(KeyPackage,))
        except DecodeError as exc:
            raise ConfigError(f"key_package is not a valid key package: {exc}") from None
        assert isinstance(kp, KeyPackage)
        if not await runner.commit(lambda group: [group.propose_add(kp)]):
            raise GroupError("add: no commit of ours won the slot")

    async def remove(self, group_id: bytes, member: int | bytes) -> None:
        """Remove a member, by leaf index or identity (node ID)."""
        runner = self._runner(group_id)

        def proposals(group: Group) -> list[Proposal]:
            members = group.members()
            index = member if isinstance(member, int) else None
            if isinstance(member, bytes):
                index = next((i for i, who in members.items() if who == member), None)
            if index is None or index not in members or index == group.index:
                raise ConfigError(f"remove: {member!r} is not another member of the group")
            return [group.propose_remove(index)]

        if not await runner.commit(proposals):
            raise GroupError("remove: no commit of ours won the slot")

    async def update(self, group_id: bytes) -> None:
        """Commit fresh leaf keys for this member (heals a stolen state)."""
        if not await self._runner(group_id).commit(lambda group: []):
            raise GroupError("update: no commit of ours won the slot")

    async def leave(self, group_id: bytes) -> None:
        """Ask the others to remove this member, wait until one did, forget the group.

        The members commit the request in turn (12 §7.2); bound the wait with
        ``trio.move_on_after``: the group is forgotten here either way.
        """
        runner = self._runner(group_id)
        group = runner.group
        try:
            while group.active:
                # A proposal holds for one epoch: ask again in each new one.
                changed = runner.epoch_changed
                await runner.send_proposal(encode(group.propose_leave()))
                await changed.wait()
        finally:
            self.forget(group_id)

    async def synced(self, group_id: bytes) -> int:
        """Catch up: return once the current epoch's slot was read empty (no commit
        anyone wrote is left to apply); the epoch this member stands at then.

        A node that was off (a command-line client) calls it before sending, so
        its message goes to the epoch the others are in.
        """
        runner = self._runner(group_id)
        group = runner.group
        while group.active:
            epoch, changed = group.epoch, runner.epoch_changed
            if not await runner.read_slot(group.slot_key()):
                return group.epoch
            if group.epoch == epoch:
                await changed.wait()
        raise GroupError("this member was removed from the group")

    def pending_invitations(self) -> int:
        """How many key packages handed out still wait for their Welcome."""
        return len(self.core.invitations.pending())

    async def accept_welcomes(self) -> int:
        """Read the Welcome of every key package still waiting for one, once, and join
        where there is one; how many groups were joined (the background watch would
        too, later)."""
        joined = 0
        for ref in self.core.invitations.pending():
            welcome = await self.delivery.fetch(welcome_signing_key(ref), b"welcome")
            if welcome is not None and ref in self.core.invitations.pending():
                joined += await self._join(welcome)
        return joined

    async def send(self, group_id: bytes, data: bytes) -> None:
        """Send ``data`` to the group's other members."""
        if type(data) is not bytes:
            raise ConfigError("data must be bytes")
        await self._runner(group_id).send(data)

    @asynccontextmanager
    async def events(self) -> AsyncIterator[trio.MemoryReceiveChannel[GroupNotice]]:
        """``async with node.groups.events() as notices: async for notice in notices``.

        The first subscriber also gets what happened before it subscribed (at
        most ``event_buffer`` events).
        """
        send, receive = trio.open_memory_channel[GroupNotice](self.config.event_buffer)
        backlog, self._backlog = self._backlog or (), None
        for notice in backlog:
            send.send_nowait(notice)
        self._subscribers.append(send)
        try:
            async with receive:
                yield receive
        finally:
            if send in self._subscribers:
                self._subscribers.remove(send)
            await send.aclose()


def groups_service(config: GroupsConfig) -> Callable[[ServiceContext], Service]:
    """The factory of the ``groups`` service for ``config`` (``Config.groups``)."""

    def factory(context: ServiceContext) -> Service:
        face = GroupsFace(config, context.unix_offset, context.data_dir)
        return Service(
            "groups", face.core, frozenset(), tasks=(face.run,), close=face.store.close, face=face
        )

    return factory
