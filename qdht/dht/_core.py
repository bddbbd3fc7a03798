"""The DHT protocol core: RPC dispatch, request matching, lookups, sans-IO.

Implements ``protocol-spec/02-dht-rpc.md`` on top of the routing table and
the lookup state machine.  Bytes and time go in, bytes and events come out
(the aioquic shape, DESIGN §3):

* :meth:`DhtCore.receive_message` takes one encoded DHT message from a peer
  whose node ID the session layer verified;
* :meth:`DhtCore.messages_to_send` returns ``(node_id, address, payload)``
  triples for the session layer to deliver;
* :meth:`DhtCore.ping`, :meth:`DhtCore.store_at`, :meth:`DhtCore.start_lookup`,
  :meth:`DhtCore.start_put_record` and :meth:`DhtCore.start_put` start work and
  return a handle; how it ended is reported by :meth:`DhtCore.next_event`
  (:class:`~qdht.dht.RequestCompleted`, :class:`~qdht.dht.LookupCompleted`, ...);
* :meth:`DhtCore.get_timer` / :meth:`DhtCore.handle_timer` drive timeouts,
  slow-request handling, bucket refresh and record expiry;
* :meth:`DhtCore.peer_unreachable` is how the driver reports that the session
  layer could not reach a peer (handshake timeout, wrong identity).

Records (``protocol-spec/07-records.md``, ``02-dht-rpc.md`` §4) live in a
:class:`~qdht.dht.RecordStore`.  Record expiry times are Unix seconds while
``now`` is the driver's monotonic clock: the core converts with
``unix = now + unix_offset`` (the Trio driver passes
``time.time() - trio.current_time()``), so the core never reads a clock and,
under a mock clock, records expire in mock time.

Remote input never raises: it is dropped and counted in
``stats()["drops"]`` under a reason.  Requests are matched by the pair (peer,
rid); a response from another peer, of a type the request does not allow, or
to no outstanding request, is dropped.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Hashable, Iterable
from typing import Any

from qdht.dht._corebase import (
    _DHT_TYPES,
    _REQUESTS,
    LOOKUP_KINDS,
    USER_KINDS,
    _check_record,
    _LookupOp,
    _percentile,
    _replica_store,
    logger,
)
from qdht.dht._events import (
    NodeDiscovered,
    RoutingTableChanged,
)
from qdht.dht._records import (
    ValidRecord,
)
from qdht.dht._routing import (
    PeerAdded,
    PeerRemoved,
    PeerReplaced,
    PingNeeded,
    RoutingEvent,
)
from qdht.dht._watch_rpc import _WatchRpc
from qdht.errors import DecodeError, StoreError
from qdht.wire import (
    MAX_CACHE_LIFETIME,
    RID_SIZE,
    AnyRecord,
    Contact,
    DhtRequest,
    Nodes,
    Notify,
    Ping,
    Store,
    Watch,
    decode_object,
    loads_canonical,
    parse_nodes,
)

__all__ = ["DhtCore"]


class DhtCore(_WatchRpc):
    """One node's DHT protocol state: routing table, record store, requests, lookups.

    ``local_id`` is this node's (verified) ID.  ``transports`` are the address
    kinds the driver can reach (contacts without such an address are not
    queried).  ``client_mode`` makes the node read-only: its requests carry
    ``ro`` and it answers every request with ``error`` ``not-serving``.
    ``ws_port`` is the WebSocket port this node listens on, if any.
    ``rng(n)`` supplies random bytes (request IDs, refresh targets).

    ``records`` is where records are kept (a :class:`MemoryRecordStore` with
    ``record_limits`` by default; the core never closes it), ``record_limits``
    what a record may be (07-records.md §6.1), ``record_config`` the record
    policy (:class:`RecordConfig`), ``unix_offset`` the Unix time at ``now``
    = 0 (module docstring) and ``resolve_owner`` looks up an owner's public key
    from certificates the node verified (07-records.md §4), if it has any.
    """

    __slots__ = ()

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next run (None: nothing scheduled).

        The minimum of the three parts' timers, which a node runs as three
        services (:mod:`qdht.dht._services`): requests and lookups
        (:meth:`rpc_timer`), watching (:meth:`watch_timer`) and replication
        (:meth:`replication_timer`).
        """
        # A driver asks after every message it hands over: no lists, no min().
        when = self.rpc_timer()
        other = self.watch_timer()
        if other is not None and (when is None or other < when):
            when = other
        other = self.replication_timer()
        if other is not None and (when is None or other < when):
            when = other
        return when

    def handle_timer(self, now: float) -> None:
        """Everything due: :meth:`handle_rpc_timer`, :meth:`handle_watch_timer`,
        :meth:`handle_replication_timer`."""
        self.handle_rpc_timer(now)
        self.handle_watch_timer(now)
        self.handle_replication_timer(now)

    def rpc_timer(self) -> float | None:
        """When requests time out, slow lookups move on, buckets refresh, records expire."""
        self._new_deadline = float("inf")
        when = None if self._refresh_deferred else self.routing.next_refresh_time()
        deadlines = self._deadlines
        pending_of = self._pending
        while deadlines:
            deadline, rid = deadlines[0]
            pending = pending_of.get(rid)
            if pending is not None and pending.deadline == deadline:
                if when is None or deadline < when:
                    when = deadline
                break
            heapq.heappop(deadlines)  # answered already: stale
        for op in self._ops.values():
            if type(op) is _LookupOp and op.stores_pending < 0:
                timer = op.lookup.get_timer()
                if timer is not None and (when is None or timer < when):
                    when = timer
        sweep = self._sweep_at
        if sweep is not None and (when is None or sweep < when):
            when = sweep
        return when

    def watch_timer(self) -> float | None:
        """When a subscription (holder side) or a watch round (watcher side) is due."""
        when = self.watches.get_timer()
        other = self.watching.get_timer()
        if other is not None and (when is None or other < when):
            when = other
        return when

    def replication_timer(self) -> float | None:
        """When the replicator's next round or paced STORE is due (None in client mode)."""
        return None if self.client_mode else self.replication.get_timer()

    def handle_rpc_timer(self, now: float) -> None:
        """Time out requests, move slow lookups on, refresh idle buckets, expire records."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, rid = heapq.heappop(deadlines)
            pending = self._pending.get(rid)
            if pending is None or pending.deadline != deadline:
                continue
            del self._pending[rid]
            self._remember_late(rid, pending)
            self._offence(pending.contact.node_id, "timeout", now)
            self._routing_events(self.routing.on_request_failed(pending.contact.node_id, now), now)
            self._request_done(pending, None, now, reason="timeout")
        for op in list(self._ops.values()):
            if type(op) is _LookupOp and op.stores_pending < 0:
                timer = op.lookup.get_timer()
                if timer is not None and timer <= now:
                    self._pump(op, now)
        if not self._refresh_deferred and now >= self.routing.next_refresh_time():
            if self.client_mode and not self._used_since_refresh:
                # An idle client refreshes nothing: its table serves only its own
                # lookups, so the refresh waits for the next one (a phone asleep
                # in a pocket sends nothing).
                self._refresh_deferred = True
            else:
                self._refresh_buckets(now)
        if self._sweep_at is not None and now >= self._sweep_at:
            self._sweep(now)

    def _refresh_buckets(self, now: float) -> None:
        """Look up a random ID in every bucket idle for ``refresh_interval`` (Kademlia §2.3),
        and a random target when the random walk is due (narrow lookups, 02 §8)."""
        self._used_since_refresh = False
        targets = self.routing.buckets_needing_refresh(now)
        if len(self.routing):
            budget = self.rpc_config.max_refresh_lookups
            for target in targets[:budget]:
                if self._lookups >= self.rpc_config.max_lookups:
                    break
                self._start(target, "refresh", now)

    def receive_message(
        self, node_id: bytes, addr: Hashable, payload: bytes, now: float, *, early: bool = False
    ) -> None:
        """Process one DHT message from the verified peer ``node_id`` at ``addr``.

        ``early`` marks pqIK early data: its sender is not authenticated yet,
        so it is answered but never enters the routing table, and a response
        in it is dropped.
        """
        self.bytes_received += len(payload)
        try:
            self._receive(node_id, addr, payload, now, early)
        except Exception:  # a bug here must not let a remote message kill the node
            self._drop("internal-error")
            logger.exception("internal error on a DHT message from %s", node_id.hex()[:16])

    def _receive(
        self, node_id: bytes, addr: Hashable, payload: bytes, now: float, early: bool
    ) -> None:
        if self.reputation.banned(node_id, now):
            self.reputation.dropped()
            self._drop("banned")
            return
        nodes = parse_nodes(payload)  # the hot path; None for anything else
        if nodes is not None:
            if early:
                self._drop("early-response")
            else:
                self._on_response(node_id, nodes, now)
            return
        try:
            obj = loads_canonical(payload)
        except DecodeError as exc:
            self._drop("malformed")
            self._offence(node_id, "invalid-message", now)
            logger.debug("malformed DHT message from %s: %s", node_id.hex()[:16], exc)
            return
        rid: bytes | None = None
        type_name: object = None
        if type(obj) is dict:
            raw = obj.get("rid")
            rid = raw if type(raw) is bytes and len(raw) == RID_SIZE else None
            raw_type = obj.get("type")
            # Only a text type names a message; anything else (a map, a list:
            # unhashable) is just a bad request (found by qdht-bench fuzz).
            type_name = raw_type if type(raw_type) is str else None
            if type_name == "store" and not self._store_allowed(node_id, addr, rid, now):
                return
        try:
            message = decode_object(obj, expect=_DHT_TYPES)
        except DecodeError as exc:
            self._on_bad_message(node_id, addr, rid, type_name, exc, now)
            return
        self._dispatch(node_id, addr, message, now, early)

    def receive_object(self, node_id: bytes, addr: Hashable, message: Any, now: float) -> None:
        """Process one DHT message that arrives as its attrs object, not encoded.

        For a simulator whose cores send with :meth:`pass_objects` on: the
        message is exactly what an honest peer's core built, so there is
        nothing to decode or check for well-formedness; everything after
        decoding (the ban list, the STORE flood bound, dispatch, the handlers)
        is what :meth:`receive_message` runs.  ``bytes_received`` is not
        counted (the simulator counts sizes itself).
        """
        try:
            if self.reputation.banned(node_id, now):
                self.reputation.dropped()
                self._drop("banned")
                return
            if type(message) is Store and not self._store_allowed(node_id, addr, message.rid, now):
                return
            self._dispatch(node_id, addr, message, now, False)
        except Exception:  # as in receive_message
            self._drop("internal-error")
            logger.exception("internal error on a DHT message from %s", node_id.hex()[:16])

    def _dispatch(
        self, node_id: bytes, addr: Hashable, message: Any, now: float, early: bool
    ) -> None:
        if type(message) is Nodes:
            if early:
                self._drop("early-response")
            else:
                self._on_response(node_id, message, now)
        elif type(message) is Watch or type(message) is Notify:
            self._on_watch_message(node_id, addr, message, now, early)
        elif isinstance(message, _REQUESTS):
            self._on_request(node_id, addr, message, now, early)
        elif early:
            self._drop("early-response")
        else:
            self._on_response(node_id, message, now)

    def republish_now(self, now: float) -> None:
        """Republish every stored record now (07-records.md §10.4), not waiting for
        the next round: for a node back from a restart or a suspension."""
        if not self.client_mode:
            self.replication.start_round(now)
            self.handle_replication_timer(now)

    def republish_records(self, records: Iterable[AnyRecord], now: float) -> int:
        """Store a publisher's own ``records`` again (07-records.md §10.2), in batches:
        one FIND_NODE lookup per keyspace region (§10.4), then each record to
        the k closest nodes to its key, paced like replication STOREs, without
        ``cas``.  Fire and forget: a holder's refusal (``stale``) changes
        nothing.  Each record is validated first (an invalid one raises
        :class:`~qdht.errors.RecordRejectedError`); returns how many were taken
        (the replicator's queue is bounded, ``stats()["replication"]``)."""
        unix = self.unix_time(now)
        valid = []
        for record in records:
            _check_record(record)
            valid.append(self.validator.validate(record, record.key(), unix))
        taken = self.replication.publish(valid, now)
        self.handle_replication_timer(now)
        return taken

    def _handoff(self, contact: Contact, now: float) -> None:
        """A peer entered the table: hand it the records it should now hold (§10.3)."""
        if self.client_mode:
            return
        self.replication.on_peer_added(contact, now)
        self._replication_stores(now)

    def handle_replication_timer(self, now: float) -> None:
        """Start the republish round's region lookups (§10.4) and send paced STOREs
        (in client mode only those of this node's own records: it holds none)."""
        if self.client_mode and not self.replication.own_waiting:
            return
        replication = self.replication
        for region in replication.lookups_to_start(now):
            if self._lookups >= self.rpc_config.max_lookups:
                replication.on_lookup_failed(region.target, now)
                continue
            self._start(region.target, "republish", now)
        self._replication_stores(now)

    def _replication_stores(self, now: float) -> None:
        """STORE what the replicator's queue releases: the records held *now*, no cas."""
        ro = self.client_mode
        unix = self.unix_time(now)
        replication = self.replication
        for contact, key in replication.stores_due(now):
            own = replication.own_record(key)  # a publisher's own record goes as published
            for held in (own,) if own is not None else self._servable(key, unix):
                store = _replica_store if own is None else self._own_store
                make = functools.partial(store, key, held.record, ro)
                # Op 0: fire and forget; a refusal (stale, full) changes nothing here.
                self._request(contact, make, 0, now)

    def _own_store(self, key: bytes, record: AnyRecord, ro: bool, rid: bytes) -> DhtRequest:
        """A republish STORE of this node's own record, whose answer is watched:
        a ``stale`` refusal means a newer version may exist (07 §10.2)."""
        own = self._own_stores
        own[rid] = key
        if len(own) > self.rpc_config.max_pending:
            del own[next(iter(own))]  # its request timed out long ago
        return _replica_store(key, record, ro, rid)

    def refused_as_stale(self) -> list[bytes]:
        """Keys of this node's own records that a holder refused as ``stale`` when
        they were republished, since the last call: a newer version of each may
        exist, which a get can confirm (signed by the same key, 07 §10.2)."""
        keys = list(self._stale_own)
        self._stale_own.clear()
        return keys

    def _path_cache(self, op: _LookupOp, record: ValidRecord, now: float) -> None:
        """After a get: a cached copy at the closest non-holder on the path (§10.6)."""
        lookup = op.lookup
        target = self.replication.cache_target(lookup.target, lookup.result, op.contacts)
        if target is None:
            return
        contact, lifetime = target
        seconds = max(1, min(MAX_CACHE_LIFETIME, int(lifetime)))
        key, ro = lookup.target, self.client_mode
        self._request(
            contact, lambda rid: Store(rid, key, record.record, cache=seconds, ro=ro), 0, now
        )

    def _routing_events(self, events: Iterable[RoutingEvent], now: float) -> None:
        routing = self.routing
        for event in events:
            if type(event) is PeerAdded:
                self._event(NodeDiscovered(event.contact))
                self._event(RoutingTableChanged(event.contact, None, len(routing)))
                self._handoff(event.contact, now)
            elif type(event) is PeerRemoved:
                self._event(RoutingTableChanged(None, event.contact, len(routing)))
                self.replication.forget_peer(event.contact.node_id)
            elif type(event) is PeerReplaced:
                self._event(NodeDiscovered(event.added))
                self._event(RoutingTableChanged(event.added, event.removed, len(routing)))
                self.replication.forget_peer(event.removed.node_id)
                self._handoff(event.added, now)
            elif type(event) is PingNeeded:
                # Ping-before-evict: op 0 is no operation; the outcome reaches the
                # routing table through the generic response/timeout handling.
                self._request(event.contact, lambda rid: Ping(rid, ro=self.client_mode), 0, now)

    def _storage_stats(self) -> dict[str, Any]:
        try:
            return self.records.stats()
        except StoreError:  # a closed store: the node is shutting down
            return {}

    def stats(self) -> dict[str, Any]:
        """Counters of the DHT layer (see ``Node.stats`` for the meaning of each key)."""
        latency = sorted(self._latency)
        hops = sorted(self._hops)
        outcomes = {kind: self._outcomes[3 * i : 3 * i + 3] for i, kind in enumerate(LOOKUP_KINDS)}
        user = [outcomes[kind] for kind in USER_KINDS]
        started = sum(o[0] for o in user)
        succeeded = sum(o[1] for o in user)
        failed = sum(o[2] for o in user)
        done = succeeded + failed
        return {
            "routing_table_size": len(self.routing),
            "routing": self.routing.stats(),
            "reputation": self.reputation.stats(),
            "clusters": self.clusters.stats(),
            "storage": self._storage_stats(),
            "records": {
                "validation": self.validator.stats(),
                "corrections_sent": self.corrections_sent,
            },
            "lookups": {
                "started": started,
                "succeeded": succeeded,
                "failed": failed,
                "running": self._lookups,
                "success_rate": succeeded / done if done else None,
                "latency": {
                    "p50": _percentile(latency, 0.5),
                    "p90": _percentile(latency, 0.9),
                    "p99": _percentile(latency, 0.99),
                },
                "hops": {
                    "mean": sum(hops) / len(hops) if hops else None,
                    "p50": _percentile([float(h) for h in hops], 0.5),
                    "max": hops[-1] if hops else None,
                },
                "rpcs_per_lookup": sum(self._rpcs) / len(self._rpcs) if self._rpcs else None,
                "by_kind": {
                    kind: {"started": o[0], "succeeded": o[1], "failed": o[2]}
                    for kind, o in outcomes.items()
                },
            },
            "rpcs_sent": dict(self.sent),
            "rpcs_received": dict(self.received),
            "errors_sent": dict(self.errors_sent),
            "pending_requests": len(self._pending),
            "late_responses": self.late_responses,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "watch": {"holder": self.watches.stats(), "watcher": self.watching.stats()},
            "replication": self.replication.stats(),
            "drops": dict(self.drops),
        }
