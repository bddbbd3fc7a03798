"""The public node: ``async with qdht.open_node(config) as node: ...``.

A node is a set of services over one session layer (HACKING "Services"):
the :class:`~qdht.session.SessionDriver` moves datagrams between the
transport and the :class:`~qdht.session.SessionEndpoint` (handshakes,
encryption); every message a session delivers goes to the service that owns
its ``type`` (:class:`~qdht.node.ServiceTable`).  The DHT runs as three
services over one :class:`~qdht.dht.DhtCore`: ``dht`` (requests, lookups),
``watch`` and ``replication``; ``Config.services`` and ``open_node(...,
services=...)`` add more without any change here.

One nursery per node holds the session driver's task tree and one task
tree per service (each started with ``nursery.start``).  Leaving the
``async with`` block cancels them all, closes the transports the node opened
and the files it keeps in ``data_dir``, and ends every ``events()``
subscription and ``watch()``: nothing outlives the node.  An error in any
service's tasks stops the node and is raised from the ``async with``.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import math
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from qdht._lazy import forget_generated_sources, release_free_memory
from qdht.config import Config, parse_listen
from qdht.dht import (
    DEFAULT_LIST_LIFETIME,
    RPC_TYPES,
    WATCH_TYPES,
    DhtCore,
    DhtEvent,
    LookupCompleted,
    LookupTrace,
    MemoryRecordStore,
    NodeEvent,
    PutCompleted,
    RecordStore,
    ReplicationPart,
    RequestCompleted,
    RequestFailed,
    RoutingTable,
    RpcPart,
    ValidRecord,
    WatchPart,
    WatchUpdate,
    make_immutable,
    sign_contact_list,
    sign_mutable,
    sign_set_entry,
    sign_tombstone,
    verify_contact_list,
)
from qdht.errors import (
    ConfigError,
    ContactError,
    DecodeError,
    LookupFailedError,
    NodeStateError,
    QdhtError,
    RecordRejectedError,
    RPCError,
    SessionError,
    StoreError,
)
from qdht.identity import Identity
from qdht.node._builtin import builtin_services
from qdht.node._persist import RECORDS_FILE, ROUTING_FILE, load_snapshot, save_snapshot
from qdht.node._published import PUBLISHED_FILE, PublishedRecords
from qdht.node._service import (
    Operations,
    Service,
    ServiceContext,
    ServiceFactory,
    ServiceTable,
    run_service,
)
from qdht.node._watching import KeyWatch, WatchHub
from qdht.session import (
    KEYLOG_ENV,
    HandshakeFailed,
    MessageReceived,
    SessionDriver,
    SessionEndpoint,
)
from qdht.transport import (
    DatagramTransport,
    MultiTransport,
    open_udp_transport,
)
from qdht.wire import (
    KEY_SIZE,
    MAX_LIST_CONTACTS,
    MAX_SALT_SIZE,
    MAX_TOPIC_SIZE,
    Address,
    AnyRecord,
    Contact,
    IdentityCertificate,
    ImmutableRecord,
    MutableRecord,
    SetEntry,
    Tombstone,
    encode,
    immutable_key,
    mutable_key,
    set_key,
)

if TYPE_CHECKING:
    from qdht.messaging import MessagingFace
    from qdht.mixnet import AnonymousFace
    from qdht.models import ModelsFace
    from qdht.models.training import TrainingFace
    from qdht.node._resolver import ResolverFace

__all__ = ["EventSubscription", "Node", "open_node"]

if TYPE_CHECKING:
    from qdht.groups import GroupsFace

logger = logging.getLogger(__name__)

#: Bytes a STORE message adds around its value (type, rid, key, framing), with margin.
STORE_OVERHEAD: Final = 128
#: Own keys refused as ``stale`` that one republish turn checks with a get.
STALE_CHECKS: Final = 16
_TEST_NET_V4: Final = "192.0.2.1"  # RFC 5737: only used to ask the kernel for a route
_TEST_NET_V6: Final = "2001:db8::1"  # RFC 3849


class EventSubscription:
    """Node events for one subscriber: ``async with node.events() as events:``
    then ``async for event in events:``.

    Events are :class:`~qdht.dht.NodeDiscovered`,
    :class:`~qdht.dht.RoutingTableChanged`, :class:`~qdht.dht.LookupCompleted`
    (with its ``trace``), :class:`~qdht.dht.ValueStored` and
    :class:`~qdht.dht.PutCompleted`.  The buffer holds
    ``Config.event_queue_size`` events; while it is full, new events are lost
    for this subscriber and counted in :attr:`dropped` (the node never waits
    for a slow subscriber).  Iteration ends when the node stops.
    """

    def __init__(self, node: Node, size: int) -> None:
        self._node = node
        self._send, self._receive = trio.open_memory_channel[NodeEvent](size)
        self.dropped = 0

    def _offer(self, event: NodeEvent) -> None:
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.dropped += 1
            self._node._events_dropped += 1
        except trio.ClosedResourceError:
            pass

    def _close(self) -> None:
        self._send.close()

    async def aclose(self) -> None:
        """Stop receiving events (also done by leaving the ``async with`` block)."""
        self._node._subscribers.discard(self)
        self._send.close()
        await self._receive.aclose()

    async def __aenter__(self) -> EventSubscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> EventSubscription:
        return self

    async def __anext__(self) -> NodeEvent:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None


class Node:
    """A running qdht node; create it with :func:`open_node`.

    Attributes: :attr:`node_id` (32 bytes), :attr:`contact` (a
    :class:`~qdht.wire.Contact` with the advertised addresses),
    :attr:`contact_uri` (its first address as a ``qdht+udp://...`` URI).
    """

    def __init__(
        self,
        config: Config,
        identity: Identity,
        transport: DatagramTransport,
        keylog: Callable[[str], None] | None = None,
        services: Iterable[ServiceFactory] = (),
    ) -> None:
        self.config = config
        self.identity = identity
        self.transport = transport
        now = trio.current_time()
        #: Unix time = trio time + this; records carry absolute Unix expiry times.
        self._unix_offset = time.time() - now
        self._data_dir = Path(config.data_dir) if config.data_dir is not None else None
        if self._data_dir is not None:
            self._data_dir.mkdir(parents=True, exist_ok=True)
        self.endpoint = SessionEndpoint(identity, config.session, keylog=keylog)
        self._driver = SessionDriver(transport, self.endpoint, self._step)
        kinds = {address.transport for address in transport.local_addresses}
        ws_ports = [a.port for a in transport.local_addresses if a.transport == "ws"]
        self.core = DhtCore(
            identity.node_id,
            now=now,
            # The table refuses IDs that do not solve the network's puzzle
            # (the handshake checks it too; this also covers restored snapshots).
            routing=attrs.evolve(config.routing, puzzle_difficulty=config.puzzle_difficulty),
            lookup=config.lookup,
            rpc=config.rpc,
            records=self._open_records(),
            record_limits=config.record_limits,
            record_config=config.records,
            reputation=config.reputation,
            watch_config=config.watch,
            watch_limits=config.watch_limits,
            replication=config.replication,
            unix_offset=self._unix_offset,
            client_mode=config.client_mode,
            transports=kinds,
            ws_port=ws_ports[0] if ws_ports else None,
        )
        self.core.session_established = self._session_established
        #: The records this node published, with their republish schedule.
        self._published = PublishedRecords(
            self._data_dir / PUBLISHED_FILE if self._data_dir is not None else None
        )
        self._restore_routing(now)
        self._upkeep_wake = trio.Event()
        self._republished = 0
        self._superseded = 0
        self._watches = WatchHub(self.core, self._flush)
        self.contact = Contact(
            identity.node_id,
            tuple(_advertised(a, config.advertise_host) for a in transport.local_addresses)[:4],
        )
        self._operations = Operations()
        self._subscribers: set[EventSubscription] = set()
        self._events_dropped = 0
        self._drops: dict[str, int] = {}
        self._running = True
        #: Set when the record store has changes to save (``_save_records``).
        self._records_unsaved = trio.Event()
        self._bootstrap = {"answered": 0, "refused": 0, "unreachable": 0}
        #: The node's services, by name: ``dht``, ``watch``, ``replication``, then
        #: those of ``Config.services`` and ``open_node(services=...)``.
        self.services = ServiceTable()
        core = self.core
        # The DHT first: it is the default service (message types nobody owns).
        self.services.add(
            Service(
                "dht",
                RpcPart(core),
                RPC_TYPES,
                on_event=self._dispatch,
                tasks=(_save_records, _save_routing_periodically),
                close=self._close_dht,
            )
        )
        self.services.add(Service("watch", WatchPart(core), WATCH_TYPES, on_event=self._dispatch))
        self.services.add(
            Service(
                "replication",
                ReplicationPart(core),
                on_event=self._dispatch,
                tasks=(_republish_own_records,),
                close=self._published.close,
            )
        )
        context = ServiceContext(config, identity, now, self._unix_offset, self._data_dir)
        for factory in (*builtin_services(config), *config.services, *services):
            if not callable(factory):
                raise ConfigError(f"services: expected a service factory, got {factory!r}")
            self.services.add(factory(context))

    def _open_records(self) -> RecordStore:
        """SQLite under ``data_dir`` (durable once a STORE is answered), else memory."""
        limits, record_limits = self.config.storage, self.config.record_limits
        if self._data_dir is None:
            return MemoryRecordStore(limits, record_limits=record_limits)
        from qdht.dht import SqliteRecordStore  # sqlite3 only with a data directory

        return SqliteRecordStore(self._data_dir / RECORDS_FILE, limits, record_limits=record_limits)

    def _restore_routing(self, now: float) -> None:
        """Load the routing table saved by the last run (a bad snapshot is ignored)."""
        if self._data_dir is None:
            return
        snapshot = load_snapshot(self._data_dir / ROUTING_FILE)
        if snapshot is None:
            return
        try:
            table = RoutingTable.from_snapshot(
                snapshot, now=now, local_id=self.node_id, config=self.core.routing.config
            )
        except DecodeError as exc:
            logger.warning("routing table snapshot ignored: %s", exc)
            return
        self.core.routing = table

    def _save_routing(self) -> None:
        if self._data_dir is None:
            return
        try:
            snapshot = self.core.routing.to_snapshot(trio.current_time())
            save_snapshot(self._data_dir / ROUTING_FILE, snapshot)
        except OSError as exc:
            self._drop("snapshot-error")
            logger.warning("cannot save the routing table: %s", exc)

    def remembered_contacts(self, n: int | None = None) -> list[Contact]:
        """Up to ``n`` (default ``Config.rejoin_contacts``) peers from the routing
        table, spread over its buckets: what a restarted node rejoins through."""
        n = self.config.rejoin_contacts if n is None else n
        routing = self.core.routing
        buckets = [routing.bucket_contacts(i)[::-1] for i in range(routing.bucket_count)]
        chosen: list[Contact] = []
        depth = 0
        while len(chosen) < n and any(depth < len(b) for b in buckets):
            for bucket in buckets:
                if depth < len(bucket) and len(chosen) < n:
                    chosen.append(bucket[depth])
            depth += 1
        return chosen

    def _session_established(self, node_id: bytes) -> bool:
        state = self.endpoint.peer_state(node_id)
        return state is not None and bool(state["established"])

    # ------------------------------------------------------------ identity

    @property
    def node_id(self) -> bytes:
        return self.identity.node_id

    @property
    def contact_uri(self) -> str:
        """``qdht+<transport>://<ip>:<port>/<node-id-hex>`` of the first address."""
        return self.contact.to_uri()

    @property
    def client_mode(self) -> bool:
        return self.config.client_mode

    # -- layer faces (one property per built-in layer: `return self._face("<name>")`) --

    @property
    def messaging(self) -> MessagingFace:
        """Direct messaging (``Config.messaging``); NodeStateError when it is off."""
        face: MessagingFace = self._face("messaging")
        return face

    @property
    def resolver(self) -> ResolverFace:
        """Identity resolution (``Config.resolve``), 16-resolve.md."""
        face: ResolverFace = self._face("resolve")
        return face

    async def resolve_identity(self, node_id: bytes) -> IdentityCertificate:
        """The current identity certificate of node ``node_id``, from the network
        (:meth:`ResolverFace.resolve`); needs ``Config.resolve``."""
        return await self.resolver.resolve(self, node_id)

    @property
    def models(self) -> ModelsFace:
        """The model store (``Config.models``): publish, fetch, list, watch models."""
        face: ModelsFace = self._face("models")
        return face

    @property
    def anonymous(self) -> AnonymousFace:
        """DHT operations through the mixnet (``Config.mixnet``); NodeStateError when off."""
        face: AnonymousFace = self._face("mixnet")
        return face

    async def put_record(self, record: AnyRecord) -> bytes:
        """Store a record signed elsewhere once (a mixnet exit's anonymous put, 10-mixnet.md
        §14); it is not republished.  Returns its key; raises as :meth:`put_immutable`."""
        self._check_running()
        await self._put_record(record)
        return record.key()

    def _face(self, name: str) -> Any:
        """The face of the built-in layer ``name``; NodeStateError when it is off."""
        if name not in self.services:
            raise NodeStateError(f"the {name} layer is off: enable it in qdht.Config")
        return self.services.get(name).face

    @property
    def groups(self) -> GroupsFace:
        """Group messaging (``Config.groups``): ``qdht.groups.GroupsFace``."""
        face: GroupsFace = self._face("groups")
        return face

    @property
    def training(self) -> TrainingFace:
        """Federated training (``Config.training``): coordinate, join, gossip."""
        face: TrainingFace = self._face("training")
        return face

    @property
    def last_lookup_trace(self) -> LookupTrace | None:
        """The trace (hops, RPCs, timeouts, duration) of the last find_node/get/put."""
        return self.core.last_trace

    def __repr__(self) -> str:
        mode = " client" if self.client_mode else ""
        return f"<qdht.Node {self.node_id.hex()[:16]}{mode} at {self.contact.address}>"

    # ------------------------------------------------------------ public API

    async def bootstrap(self, contacts: Iterable[str | Contact] | None = None) -> int:
        """Join the network through ``contacts`` (default: ``Config.bootstrap``).

        Each contact pins a node ID: the session handshake proves who answers,
        and a contact answered by another identity is refused (counted in
        ``stats()["bootstrap"]["refused"]``, never retried).  Contacts are tried
        in parallel, each up to ``Config.bootstrap_attempts`` times with
        exponential backoff; once one answered, the others get
        ``Config.bootstrap_grace`` more seconds.  Then a lookup for our own
        ID, and one for a random ID in each bucket farther away (Kademlia's
        join), fill the routing table.  Returns how many contacts answered.
        A client-mode node then returns the memory the join freed to the
        system (``malloc_trim``; issue 19: a phone's resident memory).
        """
        self._check_running()
        parsed = _parse_contacts(self.config.bootstrap if contacts is None else contacts)
        parsed = [c for c in parsed if c.node_id != self.node_id]
        answered = refused = 0

        async def join(contact: Contact) -> None:
            nonlocal answered, refused
            delay = self.config.bootstrap_backoff
            # A first contact waits for the whole handshake: on a lossy path it
            # takes retransmissions, and a handshake failure ends the wait early.
            timeout = self.config.session.handshake_timeout + self.config.routing.max_timeout
            for attempt in range(self.config.bootstrap_attempts):
                event = await self._run(lambda now: self.core.ping(contact, now, timeout=timeout))
                if type(event) is RequestCompleted:
                    answered += 1
                    return
                assert type(event) is RequestFailed
                if event.reason == "wrong-identity":
                    refused += 1
                    logger.warning(
                        "bootstrap contact %s is answered by another node ID: refused",
                        contact.to_uri(),
                    )
                    return
                if answered or attempt + 1 == self.config.bootstrap_attempts:
                    break  # once joined, a failing contact is not worth more waiting
                await trio.sleep(delay * _jitter(self.node_id, contact.node_id, attempt))
                delay *= 2

        joined = trio.Event()

        async def join_and_signal(contact: Contact) -> None:
            await join(contact)
            if answered:
                joined.set()

        async def stop_waiting(scope: trio.CancelScope) -> None:
            # Once joined, slow contacts get a short grace period, not a full
            # handshake timeout each.
            await joined.wait()
            await trio.sleep(self.config.bootstrap_grace)
            scope.cancel()

        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stop_waiting, scope)
                async with trio.open_nursery() as joins:
                    for contact in parsed:
                        joins.start_soon(join_and_signal, contact)
                scope.cancel()  # every contact finished first
        self._bootstrap["answered"] += answered
        self._bootstrap["refused"] += refused
        # Contacts that gave up, and those still trying when the grace period ended.
        self._bootstrap["unreachable"] += len(parsed) - answered - refused
        if answered:
            # On a lossy path the lookup for our own ID can come back empty
            # (every request to the few contacts known so far lost): try again,
            # or the table would hold little more than the bootstrap contacts.
            for attempt in range(self.config.bootstrap_attempts):
                found = await self._lookup(self.node_id, "bootstrap")
                if found.contacts:
                    break
                await trio.sleep(
                    self.config.bootstrap_backoff * _jitter(self.node_id, b"self", attempt)
                )
            # Kademlia §2.3: then refresh every bucket farther than the closest
            # neighbour, so the table knows every part of the ID space.
            routing = self.core.routing
            targets = [routing.random_id_in_bucket(i) for i in range(routing.bucket_count - 1)]
            async with trio.open_nursery() as nursery:
                for target in targets:
                    nursery.start_soon(self._refresh, target)
        if self.config.client_mode:
            release_free_memory()
        return answered

    async def find_node(self, node_id: bytes) -> list[Contact]:
        """The k closest nodes to ``node_id`` that answered, nearest first.

        This node itself is never in the list (a lookup does not ask itself).
        """
        _check_key(node_id, "node_id")
        event = await self._lookup(node_id, "find_node")
        return list(event.contacts)

    # ------------------------------------------------------------ records

    async def put(self, value: bytes, *, ttl: float | None = None) -> bytes:
        """Same as :meth:`put_immutable`."""
        return await self.put_immutable(value, ttl=ttl)

    async def put_immutable(self, value: bytes, *, ttl: float | None = None) -> bytes:
        """Store ``value`` as an immutable record on the k closest nodes; return its key.

        The key is the hash of the value (07-records.md §3), so anyone may store
        it again and nobody can change it.  It lives ``ttl`` seconds (default
        ``Config.record_ttl``, at most ``record_limits.max_ttl``); this node stores
        it again every ``Config.republish_interval`` until then (across restarts,
        with a ``data_dir``).  Returns once the STOREs were answered, if at least
        one node (possibly this one) stored it.  Raises ``LookupFailedError``
        when no node could be reached and ``RPCError`` when every node refused.
        """
        self._check_running()
        value = self._check_value(value)
        record = make_immutable(value, self._expiry(ttl))
        await self._put_record(record)
        return self._remember(immutable_key(value), record)

    def mutable_key(self, salt: bytes = b"") -> bytes:
        """The key of this node's mutable record under ``salt``."""
        _check_salt(salt)
        return mutable_key(self.identity.mldsa_public_hash, salt)

    async def put_mutable(
        self,
        value: bytes,
        *,
        salt: bytes = b"",
        seq: int | None = None,
        cas: int | None = None,
        ttl: float | None = None,
    ) -> bytes:
        """Publish ``value`` as this node's mutable record under ``salt``; return its key.

        The record is signed with the node identity's ML-DSA-65 key: its key is
        bound to that owner and ``salt`` (:meth:`mutable_key`), and only this
        identity can change it.  ``seq`` must grow with every version; None
        takes the next one: ``cas + 1`` when ``cas`` is given, else one more
        than the highest sequence number known here or found by a get.
        ``cas`` (compare-and-swap) makes holders refuse the put unless the
        version they hold has sequence number ``cas``.

        Raises ``RecordRejectedError`` with ``reason`` ``"cas-mismatch"`` or
        ``"stale"`` (a version at least as new is stored) when every holder
        that answered refused for that reason; ``LookupFailedError`` /
        ``RPCError`` as :meth:`put_immutable`.
        """
        self._check_running()
        value = self._check_value(value)
        _check_salt(salt)
        _check_seq(seq, "seq")
        _check_seq(cas, "cas")
        key = self.mutable_key(salt)
        if seq is None:
            seq = cas + 1 if cas is not None else await self._next_seq(key)
            _check_seq(seq, "the next seq")
        record = sign_mutable(
            self.identity.mldsa, salt=salt, seq=seq, value=value, expires=self._expiry(ttl)
        )
        await self._put_record(record, cas=cas)
        return self._remember(key, record)

    async def put_signed(self, record: MutableRecord, *, ttl_remember: bool = True) -> bytes:
        """Publish a mutable ``record`` signed elsewhere (``qdht.dht.sign_mutable``); its key.

        For records whose signing key is not this node's identity: a key
        derived from a shared secret, as a group's commit slot (12-groups.md
        §12).  Holders apply the merge rules (07-records.md §7.1): a record
        under a write-once salt (``qdht.dht.WRITE_ONCE_PREFIX``) that every
        holder refused because it holds another raises ``RecordRejectedError``
        with ``reason`` ``"stale"``.  This node
        keeps republishing it until it expires unless ``ttl_remember`` is off.
        """
        self._check_running()
        if not isinstance(record, MutableRecord):
            raise ConfigError(f"record must be a MutableRecord, got {type(record).__name__}")
        self._check_value(record.value)
        await self._put_record(record)
        key = mutable_key(record.owner, record.salt)
        if ttl_remember:
            return self._remember(key, record)
        self._forget_if_superseded(key, record.seq)  # an older version stops here
        return key

    async def delete(self, key: bytes, *, salt: bytes | None = None) -> None:
        """Delete this node's mutable record ``key`` with a signed tombstone.

        ``salt`` is needed only for a record this node did not publish itself
        (or published before its ``data_dir`` was set).  The tombstone gets a
        higher sequence number than any version known and lives at least as
        long as they do (07-records.md §5.3); gets then report the key deleted.
        Immutable records cannot be deleted: they expire.
        """
        self._check_running()
        _check_key(key, "key")
        published = self._published.get(key)
        if salt is None:
            if published is None or isinstance(published.record, ImmutableRecord | SetEntry):
                raise ConfigError(
                    "delete: this node has not published a mutable record under that key; "
                    "pass salt= to delete a record of this identity published elsewhere"
                )
            salt = published.record.salt
        if self.mutable_key(salt) != key:
            raise ConfigError(
                "delete: key is not this identity's mutable key for that salt "
                "(only the owner can delete a record; immutable records expire instead)"
            )
        current = await self.get_record(key)
        known = [r for r in (current.record if current else None,) if r is not None]
        if published is not None:
            known.append(published.record)
        seq = max((r.seq for r in known if isinstance(r, MutableRecord | Tombstone)), default=-1)
        expires = max([self._expiry(None), *(r.expires for r in known)])
        tombstone = sign_tombstone(self.identity.mldsa, salt=salt, seq=seq + 1, expires=expires)
        await self._put_record(tombstone)
        self._remember(key, tombstone)

    def set_key(self, topic: bytes) -> bytes:
        """The key of the multi-publisher set ``topic`` (07-records.md §5.4)."""
        _check_topic(topic)
        return set_key(topic)

    async def put_set_entry(
        self, topic: bytes, value: bytes, *, seq: int | None = None, ttl: float | None = None
    ) -> bytes:
        """Publish this node's entry in the set ``topic``; return the set's key.

        Each publisher has one entry per set, replaced by a higher ``seq``
        (None: the next one).  Set entries have a smaller value limit
        (``record_limits.max_set_value_size``, 4 KiB).
        """
        self._check_running()
        _check_topic(topic)
        value = self._check_value(value, self.config.record_limits.max_set_value_size)
        _check_seq(seq, "seq")
        key = set_key(topic)
        if seq is None:
            published = self._published.get(key)
            seq = 0
            if published is not None and isinstance(published.record, SetEntry):
                seq = published.record.seq + 1
            for entry in await self.get_set(topic):
                if entry.owner == self.identity.mldsa_public_hash:
                    seq = max(seq, entry.seq + 1)
        entry_record = sign_set_entry(
            self.identity.mldsa, topic=topic, seq=seq, value=value, expires=self._expiry(ttl)
        )
        await self._put_record(entry_record)
        return self._remember(key, entry_record)

    async def get_set(self, topic: bytes) -> list[ValidRecord]:
        """The live entries of the set ``topic``, one per publisher (validated).

        A holder sends as many entries as fit one message (7 to 13); the get
        reads the rest page by page (02-dht-rpc.md §4.2), up to
        ``RecordConfig.max_set_pages`` further answers per holder.
        """
        _check_topic(topic)
        event = await self._lookup(set_key(topic), "get")
        return list(event.records)

    async def get(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or None if there is none (or it was deleted).

        Immutable: only a value that hashes to ``key``.  Mutable: the highest
        valid sequence number among several holders (see :meth:`get_record`).
        """
        _check_key(key, "key")
        local = self.core.local_value(key, trio.current_time())
        if local is not None:
            return local
        record = await self.get_record(key)
        return None if record is None else record.value

    async def get_record(self, key: bytes) -> ValidRecord | None:
        """The record under ``key``, validated: its kind, ``seq``, value, owner, expiry.

        A mutable key is asked of several holders (``RecordConfig.get_quorum``);
        the highest valid version wins, and holders that answered an older one
        are sent the winner (entry correction, 07-records.md §7.3).  A deleted
        key gives its tombstone (``record.deleted``).  Invalid answers are
        dropped and counted, never returned.  For a set use :meth:`get_set`.
        """
        _check_key(key, "key")
        event = await self._lookup(key, "get")
        if event.record is not None:
            self._forget_if_superseded(key, event.record.seq)
        return event.record

    def watch(self, key: bytes, *, buffer: int | None = None) -> KeyWatch:
        """Updates of ``key``, pushed by the nodes that store it (08-watch.md).

        ``async with node.watch(key) as updates: async for update in updates``
        yields :class:`~qdht.dht.WatchUpdate` (``kind`` ``"update"``,
        ``"deleted"`` or ``"expired"``, the validated ``record``): first what the
        key holds now, then every change once, newest version last.  The node
        subscribes at ``WatchConfig.holders`` (8) of the closest holders, renews
        the subscriptions and moves them when the closest nodes change; every
        pushed record is validated here.  A
        consumer that falls ``buffer`` updates behind loses the oldest ones.
        """
        self._check_running()
        return self._watches.watch(key, buffer=buffer)

    def published(self) -> list[bytes]:
        """The keys of the records this node published and keeps republishing."""
        return self._published.keys()

    def unpublish(self, key: bytes) -> bool:
        """Stop republishing the record under ``key`` (it stays at its holders until it
        expires); whether this node was republishing it."""
        known = key in self._published
        if known:
            self._published.forget(key)
        return known

    def _check_value(self, value: object, limit: int | None = None) -> bytes:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise ConfigError(f"value must be bytes, got {type(value).__name__}")
        data = bytes(value)
        if limit is None:
            limit = min(
                self.config.record_limits.max_value_size,
                self.config.session.max_message_size - STORE_OVERHEAD,
            )
        if len(data) > limit:
            raise ConfigError(f"value is {len(data)} bytes; the largest value is {limit} bytes")
        return data

    def _unix_now(self) -> float:
        return trio.current_time() + self._unix_offset

    def _expiry(self, ttl: float | None) -> int:
        lifetime = _lifetime(self.config.record_ttl if ttl is None else ttl, self.config)
        return int(self._unix_now() + lifetime)

    def _forget_if_superseded(self, key: bytes, seq: int) -> bool:
        """Stop republishing this node's version of ``key`` if a valid version with a
        higher ``seq`` (``seq``) is known: republishing it would only be refused
        (``stale``) by every holder of the newer one until it expires (07 §10.2)."""
        published = self._published.get(key)
        if published is None or not isinstance(published.record, MutableRecord | Tombstone):
            return False
        if seq <= published.record.seq:
            return False
        self._published.forget(key)
        self._superseded += 1
        return True

    def _remember(self, key: bytes, record: AnyRecord) -> bytes:
        """Keep republishing ``record`` (durably, with a data_dir) until it expires."""
        due = self._unix_now() + self.config.republish_interval
        self._published.remember(key, record, due)
        self._upkeep_wake.set()
        return key

    async def _next_seq(self, key: bytes) -> int:
        seq = -1
        published = self._published.get(key)
        if published is not None and isinstance(published.record, MutableRecord | Tombstone):
            seq = published.record.seq
        current = await self.get_record(key)
        if current is not None:
            seq = max(seq, current.seq)
        return seq + 1

    async def _put_record(self, record: AnyRecord, *, cas: int | None = None) -> PutCompleted:
        event = await self._run(lambda now: self.core.start_put_record(record, now, cas=cas))
        assert type(event) is PutCompleted
        if event.stored_at:
            return event
        if not event.trace.responses:
            raise LookupFailedError("put: no node could be reached")
        refusals = set(event.errors)
        for reason in ("cas-mismatch", "stale"):
            if refusals == {reason}:
                raise RecordRejectedError(
                    reason, f"every holder refused ({_describe(event.errors)})"
                )
        raise RPCError(f"put: no node stored the record ({_describe(event.errors)})")

    def signed_contacts(self, n: int = 20, *, lifetime: int = DEFAULT_LIST_LIFETIME) -> bytes:
        """A contact list (06-bootstrap.md) of up to ``n`` good contacts, signed by this node.

        The node's own contact comes first (unless in client mode), then
        routing-table entries spread over the ID space: the most recently
        seen of each bucket in turn, farthest buckets first.  Hand the bytes
        out anywhere; joining nodes check them with :meth:`verify_contacts`
        or :func:`qdht.dht.verify_contact_list`.
        """
        self._check_running()
        if type(n) is not int or not 1 <= n <= MAX_LIST_CONTACTS:
            raise ConfigError(f"n must be an integer in 1..{MAX_LIST_CONTACTS}, got {n!r}")
        chosen: list[Contact] = [] if self.client_mode else [self.contact]
        chosen.extend(self.remembered_contacts(n - len(chosen)))
        if not chosen:
            raise NodeStateError("no contacts to vouch for: the routing table is empty")
        signed = sign_contact_list(self.identity, chosen, now=int(time.time()), lifetime=lifetime)
        return encode(signed)

    def verify_contacts(self, data: bytes, *, signer: bytes | None = None) -> list[Contact]:
        """The contacts of a signed contact list, checked now for this network's difficulty.

        ``signer`` pins the node ID that must have signed it.  Raises
        ``DecodeError`` or ``IdentityError``; pass the result to :meth:`bootstrap`.
        """
        return verify_contact_list(
            data, now=int(time.time()), difficulty=self.config.puzzle_difficulty, signer=signer
        )

    def events(self) -> EventSubscription:
        """Subscribe to node events (see :class:`EventSubscription`)."""
        self._check_running()
        if len(self._subscribers) >= self.config.max_event_subscribers:
            raise NodeStateError(
                f"{len(self._subscribers)} event subscribers already (max_event_subscribers)"
            )
        subscription = EventSubscription(self, self.config.event_queue_size)
        self._subscribers.add(subscription)
        return subscription

    def stats(self) -> dict[str, Any]:
        """Counters of the whole node.  Keys:

        * ``node_id`` (hex), ``client_mode``, ``routing_table_size``;
        * ``lookups``: ``started``, ``succeeded``, ``failed``, ``running``,
          ``success_rate`` (None before any finished), ``latency`` {``p50``,
          ``p90``, ``p99``} in seconds, ``hops`` {``mean``, ``p50``, ``max``},
          ``rpcs_per_lookup``, ``by_kind`` {find_node, get, put, bootstrap,
          refresh → started/succeeded/failed}; the totals count the user
          operations find_node, get and put, over the last
          ``RpcConfig.latency_samples`` for latency and hops;
        * ``rpcs_sent`` / ``rpcs_received``: DHT messages by type;
          ``errors_sent`` by error code name;
        * ``bytes_sent`` / ``bytes_received`` and ``datagrams_sent`` /
          ``datagrams_received``: on the wire, every layer included;
          ``dht_bytes_sent`` / ``dht_bytes_received``: DHT payloads only;
        * ``sessions``, ``handshakes_failed``, ``bootstrap`` {answered, refused,
          unreachable}, ``storage`` (the record store: ``records``,
          ``cached_records``, ``bytes``, per-publisher and per-source use,
          evictions, refusals), ``records`` (signature verdicts, entry
          corrections sent), ``watch`` (holder and watcher side),
          ``records_published`` / ``records_republished`` /
          ``records_superseded`` (this node's own records; the last: versions
          it stopped republishing because a newer one is known),
          ``replication`` (republish rounds, handoffs, path-cache stores, the
          paced STORE queue, 07-records.md §10),
          ``routing`` (table details, incl. ``outbound`` peers and
          ``random_walks``), ``reputation`` (scores, offences, bans),
          ``clusters`` (keys with suspiciously many IDs near them),
          ``events_dropped``;
        * ``services``: the names of the node's services; each service
          other than ``dht``, ``watch`` and ``replication`` (whose counters are
          the keys above) adds its own counters under its name;
        * ``drops``: everything dropped, by ``"<layer>.<reason>"`` with layer
          ``dht``, ``routing``, ``session``, ``transport``, ``node`` or a
          service's name; ``drops_total`` is their sum.
        """
        services = self.services.stats()
        core = services["dht"]
        session = self.endpoint.stats()
        transport = self.transport.stats()
        drops: dict[str, int] = {}
        for layer, table in (
            ("dht", core["drops"]),
            ("routing", core["routing"]["drops"]),
            ("session", session["drops"]),
            ("node", {**self._drops, **self._driver.drops}),
        ):
            for reason, count in table.items():
                drops[f"{layer}.{reason}"] = count
        for key, count in transport.items():
            if key.startswith("drop_"):
                drops[f"transport.{key[5:]}"] = count
        # Services beyond the DHT's three: their counters under their name.
        extra = {n: s for n, s in services.items() if n not in ("dht", "watch", "replication")}
        for name, counters in extra.items():
            for reason, count in counters.get("drops", {}).items():
                drops[f"{name}.{reason}"] = count
        return {
            "node_id": self.node_id.hex(),
            "client_mode": self.client_mode,
            "routing_table_size": core["routing_table_size"],
            "lookups": core["lookups"],
            "rpcs_sent": core["rpcs_sent"],
            "rpcs_received": core["rpcs_received"],
            "errors_sent": core["errors_sent"],
            "bytes_sent": transport.get("bytes_sent", 0),
            "bytes_received": transport.get("bytes_received", 0),
            "datagrams_sent": transport.get("datagrams_sent", 0),
            "datagrams_received": transport.get("datagrams_received", 0),
            "dht_bytes_sent": core["bytes_sent"],
            "dht_bytes_received": core["bytes_received"],
            "pending_requests": core["pending_requests"],
            "late_responses": core["late_responses"],
            "sessions": session.get("sessions", 0),
            "handshakes_failed": session.get("handshakes_failed", 0),
            "bootstrap": dict(self._bootstrap),
            "storage": core["storage"],
            "records": core["records"],
            "watch": services["watch"],
            "replication": services["replication"],
            "reputation": core["reputation"],
            "clusters": core["clusters"],
            "records_published": len(self._published),
            "records_republished": self._republished,
            "records_superseded": self._superseded,
            "routing": {k: v for k, v in core["routing"].items() if k != "drops"},
            "events_dropped": self._events_dropped,
            "services": sorted(services),
            **extra,
            "drops": drops,
            "drops_total": sum(drops.values()),
        }

    # ------------------------------------------------------------ operations

    def _check_running(self) -> None:
        if not self._running:
            raise NodeStateError("the node has stopped (its async with block was left)")

    async def _refresh(self, target: bytes) -> None:
        # With max_lookups running, skip it: the hourly refresh will do it.
        with contextlib.suppress(LookupFailedError):
            await self._lookup(target, "refresh")

    async def _lookup(self, target: bytes, kind: str) -> LookupCompleted:
        event = await self._run(lambda now: self.core.start_lookup(target, now, kind=kind))
        assert type(event) is LookupCompleted
        return event

    async def _run(self, start: Callable[[float], int]) -> DhtEvent:
        """Start work in the DHT core and wait for the event that ends it."""
        self._check_running()
        event = await self._operations.run(self, start)
        return event  # type: ignore[return-value]

    # ------------------------------------------------------------ driver

    def _drop(self, reason: str) -> None:
        self._drops[reason] = self._drops.get(reason, 0) + 1

    def _step(self, now: float) -> None:
        """Move messages and events between the session endpoint and the services
        until all are quiet (the :class:`~qdht.session.SessionDriver` calls this
        before every write)."""
        endpoint, services, reputation = self.endpoint, self.services, self.core.reputation
        busy = True
        while busy:
            busy = False
            while (event := endpoint.next_event()) is not None:
                busy = True
                if type(event) is MessageReceived:
                    services.deliver(
                        event.node_id, event.addr, event.payload, now, early=event.early
                    )
                    if reputation.banned(event.node_id, now):
                        # Its packets are dropped before decryption (and its
                        # address blocked) until the ban ends: a flood over its
                        # session costs a lookup per packet, not a batch a second.
                        endpoint.refuse(event.node_id, reputation.ban_ends(event.node_id))
                elif type(event) is HandshakeFailed:
                    services.peer_unreachable(event.node_id, now, event.reason)
            for node_id, addr, payload in services.outgoing():
                busy = True
                try:
                    endpoint.send_message(node_id, payload, now, addr=addr)
                except SessionError as exc:
                    self._drop("session-refused")
                    logger.debug("session refused a message to %s: %s", node_id.hex()[:16], exc)
                    services.peer_unreachable(node_id, now, "session-refused")
            if services.dispatch_events():
                busy = True
        services.wake_timers()
        if self.core.records.unsaved is not None:
            self._records_unsaved.set()

    def _dispatch(self, event: object) -> None:
        """A DHT event: wake the operation waiting for it, or tell the subscribers."""
        self._operations.resolve(event)
        if type(event) in (RequestCompleted, RequestFailed):
            return
        if type(event) is WatchUpdate:
            self._watches.dispatch(event)
            return
        for subscriber in self._subscribers:
            subscriber._offer(event)  # type: ignore[arg-type]

    async def flush(self) -> None:
        """Deliver what the services queued and send it (after any call into a core)."""
        await self._driver.flush()

    _flush = flush

    def receive_queued(self) -> bool:
        """Process the datagrams that already arrived, without waiting for the reader
        (a timer task does this before it declares timeouts after a stall)."""
        return self._driver.receive_queued()

    async def _upkeep(self) -> None:
        """Republish this node's own records when due (the ``replication`` service's task).

        Republishing sends the same record again (07-records.md §10.2): it
        restores replicas lost to churn and never extends a record's life
        (``exp`` is the publisher's choice; put again to extend it).  Records
        go in batches by keyspace region, one lookup per region
        (:meth:`~qdht.dht.DhtCore.republish_records`): when one is due, every
        record due within a tenth of ``republish_interval`` goes with it, so
        that the schedules of records published at different times fall into
        step.  A record that expired, or is no longer valid here, is forgotten.
        """
        cfg = self.config
        while True:
            due_unix = self._published.next_due()
            wake = math.inf if due_unix is None else due_unix - self._unix_offset
            self._upkeep_wake = trio.Event()
            with trio.move_on_at(wake):
                await self._upkeep_wake.wait()
            unix_now = self._unix_now()
            due_unix = self._published.next_due()
            if due_unix is None or due_unix > unix_now:
                continue
            await self._check_refused_as_stale()
            replication = self.core.replication
            if replication.own_waiting:
                # The last batch is still leaving (paced): the next one waits for
                # it, so that it is one batch again, one lookup per region.
                self._upkeep_wake = trio.Event()
                with trio.move_on_after(min(5.0, cfg.republish_interval)):
                    await self._upkeep_wake.wait()
                continue
            room = min(cfg.republish_batch, replication.own_room)
            due = self._published.due(unix_now + cfg.republish_interval / 10, room)
            self._republish([(row.key, row.record) for row in due], unix_now)
            await self._flush()

    async def _check_refused_as_stale(self) -> None:
        """Before republishing: a get of each own key a holder refused as ``stale``
        last time (at most ``STALE_CHECKS``), so that a version superseded
        elsewhere stops here (the get finds the newer one, see
        :meth:`_forget_if_superseded`); a refusal alone is no proof."""
        for key in self.core.refused_as_stale()[:STALE_CHECKS]:
            if key in self._published:
                with contextlib.suppress(QdhtError):
                    await self.get_record(key)

    def _republish(self, due: list[tuple[bytes, AnyRecord]], unix_now: float) -> None:
        """Hand ``due`` to the core's batched republish; reschedule or forget each."""
        published = self._published
        live: list[tuple[bytes, AnyRecord]] = []
        now = trio.current_time()
        for key, record in due:
            if record.expires <= unix_now:
                published.forget(key)
            elif isinstance(record, MutableRecord | Tombstone) and any(
                self._forget_if_superseded(key, held.seq)
                for held in self.core.local_records(key, now)
            ):
                pass  # a newer version reached this node (it holds the key): forgotten
            else:
                published.reschedule(key, unix_now + self.config.republish_interval)
                live.append((key, record))
        try:
            self._republished += self.core.republish_records([r for _k, r in live], now)
        except RecordRejectedError:  # one is no longer valid here: forget it, send the rest
            valid = []
            for key, record in live:
                try:
                    self.core.validator.validate(record, key, unix_now)
                except RecordRejectedError:
                    published.forget(key)
                else:
                    valid.append(record)
            self._republished += self.core.republish_records(valid, now)

    def _close_dht(self) -> None:
        """Save the routing table, close the record store (after the tasks stopped)."""
        self._save_routing()
        self.core.records.close()

    def _close_services(self) -> None:
        """Run every service's ``close``, in reverse order of registration."""
        for service in reversed(list(self.services)):
            if service.close is not None:
                service.close()

    def _stop(self) -> None:
        self._running = False
        self._watches.close()
        for subscriber in list(self._subscribers):
            subscriber._close()
        self._subscribers.clear()


# ------------------------------------------------------------------ service tasks


async def _save_routing_periodically(
    node: Node, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """The ``dht`` service's task: save the routing table every ``snapshot_interval``
    (with a ``data_dir``; without one it never wakes: an idle phone stays asleep)."""
    task_status.started()
    if node._data_dir is None:
        await trio.sleep_forever()
    while True:
        await trio.sleep(node.config.snapshot_interval)
        node._save_routing()


async def _save_records(
    node: Node, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """The ``dht`` service's store task: save the record store's changes off the loop.

    Changes journalled while one save runs go together into the next (group
    commit); STORE answers wait for their change (``DhtCore.records_saved``).
    The save runs in a worker thread, except under ``trio.testing.MockClock``
    (simulations, tests), where it runs inline: simulated time would race
    ahead while a thread works.  A failing save is retried every second.
    """
    store = node.core.records
    # trio.testing is imported only where it is used (tests, simulations): it
    # pulls in pytest, 10 MB a phone has no use for.
    testing = sys.modules.get("trio.testing")
    simulated = testing is not None and isinstance(trio.lowlevel.current_clock(), testing.MockClock)
    task_status.started()
    while True:
        await node._records_unsaved.wait()
        node._records_unsaved = trio.Event()
        try:
            if simulated:
                saved = store.save()
            else:
                saved = await trio.to_thread.run_sync(store.save)
        except StoreError as exc:
            node._drop("store-error")
            logger.warning("cannot save the record store: %s", exc)
            await trio.sleep(1.0)
            node._records_unsaved.set()
            continue
        node.core.records_saved(saved)
        await node.flush()


async def _republish_own_records(
    node: Node, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """The ``replication`` service's task: republish this node's own records when due."""
    task_status.started()
    await node._upkeep()


# ------------------------------------------------------------------ helpers


def _jitter(*parts: bytes | int) -> float:
    """A factor in [0.75, 1.25], fixed by ``parts``: no generator state per node
    (a ``random.Random`` costs 2.5 KB), and reproducible in simulations."""
    digest = hashlib.sha3_256(repr(parts).encode()).digest()
    return 0.75 + int.from_bytes(digest[:4], "big") / 0xFFFFFFFF / 2


def _check_key(value: object, name: str) -> None:
    if type(value) is not bytes or len(value) != KEY_SIZE:
        raise ConfigError(f"{name} must be {KEY_SIZE} bytes")


def _check_salt(salt: object) -> None:
    if type(salt) is not bytes or len(salt) > MAX_SALT_SIZE:
        raise ConfigError(f"salt must be bytes of at most {MAX_SALT_SIZE}")


def _check_topic(topic: object) -> None:
    if type(topic) is not bytes or not 1 <= len(topic) <= MAX_TOPIC_SIZE:
        raise ConfigError(f"topic must be 1..{MAX_TOPIC_SIZE} bytes")


def _lifetime(ttl: object, config: Config) -> float:
    limit = config.record_limits.max_ttl
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= limit:
        raise ConfigError(f"ttl must be a number of seconds in (0, {limit}], got {ttl!r}")
    return float(ttl)


def _check_seq(value: object, name: str) -> None:
    if value is None:
        return
    if type(value) is not int or not 0 <= value < 2**64:
        raise ConfigError(f"{name} must be an integer in 0..2^64-1 or None, got {value!r}")


def _describe(errors: dict[str, int]) -> str:
    return ", ".join(f"{reason}: {n}" for reason, n in sorted(errors.items())) or "no answer"


def _parse_contacts(items: Iterable[str | Contact]) -> list[Contact]:
    if isinstance(items, str | Contact):
        items = [items]
    out = []
    for item in items:
        if isinstance(item, Contact):
            out.append(item)
        elif isinstance(item, str):
            try:
                out.append(Contact.from_uri(item))
            except ContactError as exc:
                raise ConfigError(f"contacts: {exc}") from None
        else:
            raise ConfigError(f"contacts must be URIs or Contact objects, got {item!r}")
    return out


def _advertised(address: Address, advertise_host: str | None) -> Address:
    """The address to put in our contact for a local (listening) address.

    A wildcard bind (0.0.0.0, ::) is advertised as ``advertise_host`` if set,
    else as the source address the kernel would use towards the internet
    (no packet is sent), else as loopback.
    """
    ip = ipaddress.ip_address(address.host)
    if not ip.is_unspecified:
        return address
    if advertise_host is not None:
        return Address(address.transport, advertise_host, address.port)
    v6 = ip.version == 6
    host = "::1" if v6 else "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((_TEST_NET_V6 if v6 else _TEST_NET_V4, 9))
            host = probe.getsockname()[0]
    except OSError:
        pass
    return Address(address.transport, host, address.port)


@asynccontextmanager
async def _open_transports(config: Config) -> AsyncIterator[DatagramTransport]:
    async with AsyncExitStack() as stack:
        transports: list[DatagramTransport] = []
        for uri in config.listen:
            kind, host, port = parse_listen(uri)
            if kind == "udp":
                transports.append(await stack.enter_async_context(open_udp_transport(host, port)))
            else:
                from qdht.transport import open_websocket_transport  # only when listening on ws

                transports.append(
                    await stack.enter_async_context(open_websocket_transport(host, port))
                )
        if len(transports) == 1:
            yield transports[0]
        else:
            multi = MultiTransport(transports, receive_queue=config.receive_queue)
            async with multi:
                yield multi


@asynccontextmanager
async def open_node(
    config: Config | None = None,
    *,
    transport: DatagramTransport | None = None,
    services: Iterable[ServiceFactory] = (),
) -> AsyncIterator[Node]:
    """Run a node until the ``async with`` block ends.

    The node listens on ``config.listen`` (transports opened here are closed
    on exit), or on ``transport`` when one is given — for example
    ``MemoryNetwork().bind()`` in simulations; a given transport stays open
    (its owner closes it).  ``services`` are factories of further services
    (as ``config.services``; see :class:`~qdht.node.Service`), each started
    with its own task tree before the block begins.  With ``config.bootstrap`` set, the node joins
    through those contacts before the block starts (see :meth:`Node.bootstrap`;
    a failure to join is logged, not raised: check ``stats()["bootstrap"]``).
    """
    if config is None:
        config = Config()
    if not isinstance(config, Config):
        raise ConfigError(f"config must be a qdht.Config, got {type(config).__name__}")
    if transport is not None and not isinstance(transport, DatagramTransport):
        raise ConfigError(f"transport must be a DatagramTransport, got {type(transport).__name__}")
    if isinstance(config.identity, Identity):
        identity = config.identity
    else:
        identity = await trio.to_thread.run_sync(config.load_identity)
    keylog = None
    if os.environ.get(KEYLOG_ENV):  # QDHT_KEYLOGFILE (protocol-spec/09-keylog.md)
        from qdht.session import keylog_from_environ

        keylog = keylog_from_environ()
    async with AsyncExitStack() as stack:
        if transport is None:
            transport = await stack.enter_async_context(_open_transports(config))
        body_error: BaseException | None = None
        node = Node(config, identity, transport, keylog, services)
        stack.callback(node._close_services)
        forget_generated_sources()  # the layers' classes, imported just now
        async with trio.open_nursery() as nursery:
            tag = f"qdht node {node.node_id.hex()[:8]}"
            await nursery.start(node._driver.serve, name=f"{tag} session")
            for service in node.services:
                await nursery.start(run_service, node, service.name, name=f"{tag} {service.name}")
            try:
                # A restarted node also rejoins through the peers it remembers.
                contacts = [*config.bootstrap_contacts(), *node.remembered_contacts()]
                if contacts:
                    answered = await node.bootstrap(contacts)
                    if not answered:
                        logger.warning("no bootstrap contact answered")
                    elif len(node.core.records):
                        # Back from a restart with records: the network moved on
                        # while we were away, so replicate them now (07 §10.4).
                        node.core.republish_now(trio.current_time())
                        await node.flush()
                yield node
            except BaseException as exc:
                # Re-raised below, outside the nursery, so callers see it unwrapped.
                body_error = exc
            finally:
                node._stop()
                nursery.cancel_scope.cancel()
        if body_error is not None:
            raise body_error
