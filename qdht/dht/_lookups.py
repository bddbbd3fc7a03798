"""Operations: pings, lookups, gets and puts, from start to their final event.

A section of :class:`~qdht.dht.DhtCore` (``protocol-spec/02-dht-rpc.md`` §3,
``07-records.md`` §7): an operation starts with a handle, runs lookups with
alpha requests in flight, stores at the k closest, reads mutable records from a
quorum and corrects stale holders, and ends with one event carrying the handle.
"""

from __future__ import annotations

import functools

from qdht.dht._corebase import (
    LOOKUP_KINDS,
    STORE_ERROR_CODES,
    USER_KINDS,
    _check_record,
    _error_name,
    _LookupOp,
    logger,
)
from qdht.dht._events import (
    LookupCompleted,
    PutCompleted,
    ValueStored,
)
from qdht.dht._lookup import Lookup, LookupTrace
from qdht.dht._records import (
    ValidRecord,
    best_of,
    make_immutable,
    merge_set,
)
from qdht.dht._requests import _Requests
from qdht.dht._routing import (
    distance,
)
from qdht.errors import ConfigError, StoreError
from qdht.wire import (
    NODE_ID_SIZE,
    AnyRecord,
    Contact,
    DhtRequest,
    DhtResponse,
    ErrorCode,
    ErrorMessage,
    FindNode,
    FindValue,
    ImmutableRecord,
    Ping,
    SetEntry,
    Store,
    Stored,
)

__all__: list[str] = []


class _Lookups(_Requests):
    """The operations of the core: lookups, gets, puts."""

    __slots__ = ()

    def ping(self, contact: Contact, now: float, *, timeout: float | None = None) -> int:
        """PING ``contact`` (its node ID is pinned: only that node can answer).

        ``timeout`` overrides the adaptive per-peer timeout (bootstrap uses the
        whole handshake timeout, so a slow first handshake is not a failure).
        """
        make = lambda rid: Ping(rid, ro=self.client_mode)  # noqa: E731
        return self._single(contact, make, now, timeout=timeout)

    def store_at(
        self, contact: Contact, record: AnyRecord, now: float, *, cas: int | None = None
    ) -> int:
        """STORE ``record`` (under the key it derives) at ``contact``.

        :class:`RequestCompleted` reports ``stored``; :class:`RequestFailed`
        with ``reason="error"`` and the ``code`` a refusal (02-dht-rpc.md §4.3).
        Replication and entry correction never send ``cas`` (07-records.md §8).
        """
        _check_record(record)
        key = record.key()
        ro = self.client_mode
        return self._single(contact, lambda rid: Store(rid, key, record, cas=cas, ro=ro), now)

    def start_lookup(self, target: bytes, now: float, *, kind: str = "find_node") -> int:
        """Start an iterative lookup; :class:`LookupCompleted` reports the end.

        ``kind`` ``"get"`` runs FIND_VALUE for the key ``target`` and accepts
        only a value that hashes to it; ``"find_node"``, ``"bootstrap"`` and
        ``"refresh"`` run FIND_NODE (a ``"refresh"`` lookup, table maintenance,
        ends at ``LookupConfig.refresh_window``, not k).  Raises ``LookupFailedError`` when
        ``max_lookups`` lookups are already running.
        """
        if kind not in ("find_node", "get", "bootstrap", "refresh"):
            raise ConfigError(f"kind must be find_node, get, bootstrap or refresh, got {kind!r}")
        if type(target) is not bytes or len(target) != NODE_ID_SIZE:
            raise ConfigError(f"target must be {NODE_ID_SIZE} bytes")
        self._check_capacity()
        return self._start(target, kind, now)

    def start_put(self, value: bytes, now: float) -> int:
        """Store ``value`` as an immutable record on the k closest nodes to its key.

        The record expires ``RecordConfig.immutable_ttl`` seconds from now;
        otherwise this is :meth:`start_put_record`.
        """
        if not isinstance(value, bytes):
            raise ConfigError(f"value must be bytes, got {type(value).__name__}")
        limit = self.record_limits.max_value_size
        if len(value) > limit:
            raise ConfigError(f"value is {len(value)} bytes, more than {limit}")
        expires = int(self.unix_time(now)) + self.record_config.immutable_ttl
        return self.start_put_record(make_immutable(value, expires), now)

    def start_put_record(self, record: AnyRecord, now: float, *, cas: int | None = None) -> int:
        """Store ``record`` on the k closest nodes to its key (07-records.md §8).

        The record is validated first, as a holder would (07-records.md §6):
        an invalid one raises :class:`~qdht.errors.RecordRejectedError` naming
        the rule.  Then a FIND_NODE lookup for the key, and a STORE to each of
        the k closest nodes that answered (and to this node's own store when
        it is among them; for a new version of a key this node put before,
        also to the nodes that stored that put, ``RecordConfig.update_holders``),
        each carrying ``pk`` (so no holder answers
        ``owner-key-unknown``) and ``cas`` when given (the compare-and-swap
        precondition: the ``seq`` the holders should hold).
        :class:`PutCompleted` reports the node IDs that stored it and the
        refusals by reason (``stale``, ``cas-mismatch``, ``storage-full``,
        ``timeout``, ...).  Raises ``LookupFailedError`` when ``max_lookups``
        lookups are already running.
        """
        _check_record(record)
        if cas is not None and (type(cas) is not int or not 0 <= cas < 2**64):
            raise ConfigError(f"cas must be an unsigned 64-bit integer or None, got {cas!r}")
        valid = self.validator.validate(record, record.key(), self.unix_time(now))
        self._check_capacity()
        return self._start(valid.key, "put", now, record=valid, cas=cas)

    def local_records(self, key: bytes, now: float) -> list[ValidRecord]:
        """The live, valid records this node holds under ``key`` (a set: its entries)."""
        return self._servable(key, self.unix_time(now))

    def running_lookups(self) -> list[tuple[str, LookupTrace]]:
        """The lookups in flight, oldest first: their kind and trace so far."""
        return [(op.kind, op.lookup.trace) for op in self._ops.values() if type(op) is _LookupOp]

    def local_value(self, key: bytes, now: float) -> bytes | None:
        """The value of the *immutable* record this node holds under ``key`` (None if none).

        Only immutable records: a mutable one held here may be stale, so the
        node asks the network for it (a get).
        """
        for record in self._servable(key, self.unix_time(now)):
            if isinstance(record.record, ImmutableRecord):
                return record.record.value
        return None

    def peer_unreachable(self, node_id: bytes, now: float, reason: str) -> None:
        """The session layer could not reach ``node_id``: fail its requests now.

        ``reason`` is the handshake failure (``"timeout"``, ``"wrong-identity"``,
        ...).  A peer that turned out to have another identity leaves the
        routing table.
        """
        failed = [(rid, p) for rid, p in self._pending.items() if p.contact.node_id == node_id]
        for rid, pending in failed:
            del self._pending[rid]
            self._request_done(pending, None, now, reason=reason)
        if reason == "wrong-identity":
            self._drop("wrong-identity")
            self._routing_events(self.routing.remove(node_id, now), now)
        elif failed:
            self._routing_events(self.routing.on_request_failed(node_id, now), now)

    def _start(
        self,
        target: bytes,
        kind: str,
        now: float,
        *,
        record: ValidRecord | None = None,
        cas: int | None = None,
    ) -> int:
        handle = self._handle()
        if kind in USER_KINDS:
            # A client's refresh deferred while it was idle runs now, with this lookup.
            self._used_since_refresh = True
            if self._refresh_deferred:
                self._refresh_deferred = False
                self._new_deadline = min(self._new_deadline, now)
        cfg = self.lookup_config
        if kind == "put":
            cfg = cfg.for_put()
        elif kind == "refresh":
            cfg = cfg.for_refresh()  # table maintenance: a narrow window (02 §8)
        lookup = Lookup(
            target,
            self.routing.closest(target, cfg.k),
            now=now,
            config=cfg,
            find_value=kind == "get",
            exclude=(self.local_id,),
            priority=functools.partial(self._priority, now),
        )
        op = _LookupOp(handle, kind, lookup, record, now, cas)
        self._ops[handle] = op
        self._lookups += 1
        self._outcomes[3 * LOOKUP_KINDS.index(kind)] += 1
        self._pump(op, now)
        return handle

    def _pump(self, op: _LookupOp, now: float) -> None:
        """Send what the lookup wants sent; finish it when it is done."""
        lookup = op.lookup
        if op.stores_pending >= 0 or op.lookup_over or op.handle not in self._ops:
            return  # storing, or a get that ended early (quorum) or waits for pages
        target, kind = lookup.target, op.kind
        ro = self.client_mode

        def make(rid: bytes) -> DhtRequest:
            if kind == "get":
                return FindValue(rid, target, ro=ro)
            return FindNode(rid, target, ro=ro)

        while not lookup.done:
            batch = lookup.next_requests(now)
            if not batch:
                break
            for contact in batch:
                if not self._request(contact, make, op.handle, now):
                    lookup.on_failure(contact.node_id, now)
        if lookup.done and op.handle in self._ops:
            self._lookup_done(op, now)
            return
        # The lookup's slow-request timer can fall before every request
        # deadline (slow_after < timeout): a driver that sleeps until
        # new_deadline must wake for it too.
        slow = lookup.get_timer()
        if slow is not None and slow < self._new_deadline:
            self._new_deadline = slow

    def _lookup_done(self, op: _LookupOp, now: float) -> None:
        lookup = op.lookup
        self.clusters.observe(lookup, self.routing.estimated_size(), now)
        result = lookup.result
        if op.kind == "get":
            op.lookup_over = True
            if not op.paging:
                self._get_done(op, now)
            return
        if op.kind == "watch":
            self._watch_lookup_done(op, now)
            return
        if op.kind == "republish":
            self._finish(op, bool(result), now)
            self.replication.on_lookup_done(lookup.target, result, now)
            self.handle_replication_timer(now)
            return
        if op.kind != "put":
            succeeded = bool(result)
            self._finish(op, succeeded, now)
            self._event(
                LookupCompleted(
                    op.handle, op.kind, lookup.target, tuple(result), None, lookup.trace, succeeded
                )
            )
            return
        record, cas = op.record, op.cas
        assert record is not None
        key = lookup.target
        op.stores_pending = 0
        k = self.lookup_config.k
        # Among the k closest (and serving): keep a copy ourselves.  Only when
        # the lookup reached someone: with an empty result we know nothing of
        # the network, and a copy nobody else can find is no successful put.
        among_closest = bool(result) and (
            len(result) < k or distance(self.local_id, key) < distance(result[-1].node_id, key)
        )
        if among_closest and not self.client_mode:
            self._put_locally(op, record, now)
        ro = self.client_mode

        def make(rid: bytes) -> DhtRequest:
            # Always with pk (the validator attached it): no holder needs to
            # answer owner-key-unknown, so no second round trip (07 §4).
            return Store(rid, key, record.record, cas=cas, ro=ro)

        closest = result[:k]
        for contact in [*closest, *self._previous_holders(key, closest, now)]:
            if self._request(contact, make, op.handle, now):
                op.stores_pending += 1
                op.contacts[contact.node_id] = contact
            else:
                op.errors["unreachable"] = op.errors.get("unreachable", 0) + 1
        if op.stores_pending == 0:
            self._put_done(op, now)

    def _previous_holders(self, key: bytes, closest: list[Contact], now: float) -> list[Contact]:
        """The nodes that stored this node's last put of ``key`` and are not among
        ``closest`` (nor banned): a new version goes to them too (07-records.md §10.2).

        A lookup can be led astray (nodes that answer FIND_NODE only with each
        other): then the new version reaches none of the honest holders of the
        old one, which go on serving it, and no getter can tell that a newer
        version exists.
        """
        memory = self._put_holders
        previous = memory.get(key) if memory else None
        if not previous:
            return []
        sent = {contact.node_id for contact in closest}
        banned = self.reputation.banned
        return [c for c in previous if c.node_id not in sent and not banned(c.node_id, now)]

    def _remember_holders(self, op: _LookupOp) -> None:
        """Keep the contacts that stored a put of a versioned record (not an
        immutable one), up to 2k nearest the key, for the next put of its key."""
        record = op.record
        limit = self.record_config.update_holders
        if record is None or not limit or isinstance(record.record, ImmutableRecord):
            return
        key = op.lookup.target
        contacts = op.contacts
        held = sorted(
            (contacts[node_id] for node_id in op.stored_at if node_id in contacts),
            key=lambda c: distance(c.node_id, key),
        )
        if not held:
            return  # stored nowhere: the previous holders still hold the previous version
        memory = self._put_holders
        if memory is None:
            memory = self._put_holders = {}
        memory.pop(key, None)
        memory[key] = tuple(held[: 2 * self.lookup_config.k])
        while len(memory) > limit:
            del memory[next(iter(memory))]

    def _store_done(
        self,
        op: _LookupOp,
        node_id: bytes,
        response: DhtResponse | None,
        reason: str,
        now: float,
    ) -> None:
        if type(response) is Stored:
            op.stored_at.append(node_id)
        else:
            if type(response) is ErrorMessage:
                reason = _error_name(response.code)
            op.errors[reason] = op.errors.get(reason, 0) + 1
        op.stores_pending -= 1
        if op.stores_pending == 0:
            self._put_done(op, now)

    def _put_locally(self, op: _LookupOp, record: ValidRecord, now: float) -> None:
        """Our own copy of a put (we are among the k closest): the holder's rules apply."""
        try:
            decision = self.records.put(
                record, source="local", cached=False, now=self.unix_time(now), cas=op.cas
            )
        except StoreError as exc:
            logger.warning("record store failed on a local put: %s", exc)
            op.errors["internal"] = op.errors.get("internal", 0) + 1
            return
        if decision.reason is not None:
            name = _error_name(STORE_ERROR_CODES.get(decision.reason, ErrorCode.INTERNAL))
            op.errors[name] = op.errors.get(name, 0) + 1
            return
        op.stored_at.append(self.local_id)
        if decision.accepted:
            self._schedule_sweep(now)
            self._watch_changed(record, now)
            self._event(ValueStored(record.key, len(record.value or b""), self.local_id, record))

    def _get_done(self, op: _LookupOp, now: float) -> None:
        """A get ended: pick the winner (07-records.md §7.3), correct stale holders, report."""
        lookup = op.lookup
        key = lookup.target
        unix = self.unix_time(now)
        record = op.record  # an immutable record, if one was found
        records: tuple[ValidRecord, ...] = ()
        if record is None:
            # What we hold ourselves joins the answers: it may be the only copy
            # the lookup could reach, or the newest (then it corrects the others).
            local = self._servable(key, unix)
            local_set = bool(local) and isinstance(local[0].record, SetEntry)
            budget = [self.record_config.max_corrections]
            if op.answers or (local and not local_set):
                mine = [(self.local_id, r) for r in local if not isinstance(r.record, SetEntry)]
                best = best_of([*op.answers, *mine], unix)
                record = best.winner
                if record is not None:
                    for holder in best.stale:
                        if holder != self.local_id:
                            # Missing one update happens; replaying old ones is an offence.
                            self._offence(holder, "stale-record", now)
                        self._correct(op, holder, record, now, budget)
            elif op.set_answers or local_set:
                answers = list(op.set_answers.items())
                if local_set:
                    answers.append((self.local_id, local))
                merged = merge_set(answers, unix)
                records = merged.entries
                returned = {holder: {e.owner for e in entries} for holder, entries in answers}
                for holder, missing in merged.corrections.items():
                    for entry in missing:
                        # A partial holder may hold an entry it did not send:
                        # it is sent only newer versions of entries it
                        # returned (07-records.md §7.3).
                        if holder not in op.partial or entry.owner in returned[holder]:
                            self._correct(op, holder, entry, now, budget)
        value = None
        if record is not None and not isinstance(record.record, SetEntry):
            value = record.value  # None for a tombstone: the key was deleted
        succeeded = record is not None or bool(records)
        if record is not None and not self.client_mode:
            self._path_cache(op, record, now)
        self._finish(op, succeeded, now)
        self._event(
            LookupCompleted(
                op.handle,
                "get",
                key,
                tuple(lookup.result),
                value,
                lookup.trace,
                succeeded,
                record=record,
                records=records,
            )
        )

    def _correct(
        self, op: _LookupOp, holder: bytes, record: ValidRecord, now: float, budget: list[int]
    ) -> None:
        """Entry correction: STORE the winning ``record`` (without cas) at a stale holder."""
        if holder == self.local_id:
            try:  # cached=True keeps a stored entry stored (a promotion needs a stored put)
                decision = self.records.put(
                    record, source="local", cached=True, now=self.unix_time(now), cas=None
                )
            except StoreError as exc:
                logger.warning("record store failed on a correction: %s", exc)
                return
            if decision.accepted:
                self._watch_changed(record, now)  # our watchers missed it too (08-watch.md)
            return
        contact = op.contacts.get(holder)
        if contact is None or budget[0] <= 0:
            return
        budget[0] -= 1
        ro = self.client_mode
        key = record.key
        # Op 0: fire and forget; the answer reaches only the routing table.
        if self._request(contact, lambda rid: Store(rid, key, record.record, ro=ro), 0, now):
            self.corrections_sent += 1

    def _put_done(self, op: _LookupOp, now: float) -> None:
        self._remember_holders(op)
        self._finish(op, bool(op.stored_at), now)
        self._event(
            PutCompleted(
                op.handle, op.lookup.target, tuple(op.stored_at), dict(op.errors), op.lookup.trace
            )
        )

    def _finish(self, op: _LookupOp, succeeded: bool, now: float) -> None:
        del self._ops[op.handle]
        self._lookups -= 1
        self._outcomes[3 * LOOKUP_KINDS.index(op.kind) + (1 if succeeded else 2)] += 1
        if op.kind in USER_KINDS:
            trace = op.lookup.trace
            self.last_trace = trace
            sample = (now - op.started, min(trace.hops, 65535), min(trace.rpcs, 65535))
            if len(self._latency) < self.rpc_config.latency_samples:
                self._latency.append(sample[0])
                self._hops.append(sample[1])
                self._rpcs.append(sample[2])
            else:
                i = self._sample_at
                self._latency[i], self._hops[i], self._rpcs[i] = sample
                self._sample_at = (i + 1) % self.rpc_config.latency_samples
