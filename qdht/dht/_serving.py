"""Requests in: how the DHT core serves PING, FIND_NODE, FIND_VALUE and STORE.

A section of :class:`~qdht.dht.DhtCore` (``protocol-spec/02-dht-rpc.md`` §2-§5,
``07-records.md`` §6-§7): rate limits per peer, per address and in total,
the STORE flood bound, answers with the closest contacts or the records held,
error answers.  Every request is answered or refused here; nothing raises.
"""

from __future__ import annotations

from collections.abc import Hashable

import attrs

from qdht.dht._corebase import (
    _RESPONSE_NAMES,
    _SET_ANSWER_BUDGET,
    STORE_ERROR_CODES,
    _CoreBase,
    _source_key,
    logger,
)
from qdht.dht._events import (
    ValueStored,
)
from qdht.dht._records import (
    ValidRecord,
)
from qdht.dht._recordstore import encoded_size
from qdht.errors import DecodeError, RecordRejectedError, StoreError
from qdht.wire import (
    MAX_NODES,
    MAX_VALUE_RECORDS,
    Address,
    Contact,
    DhtRequest,
    DhtResponse,
    ErrorCode,
    ErrorMessage,
    FindNode,
    FindValue,
    ImmutableRecord,
    Nodes,
    Ping,
    Pong,
    SetEntry,
    Store,
    Stored,
    Value,
    contact_at,
    encode,
    encode_nodes,
)

__all__: list[str] = []


class _Serving(_CoreBase):
    """The serving side of the core (02-dht-rpc.md §2-§5)."""

    __slots__ = ()

    def _on_bad_message(
        self,
        node_id: bytes,
        addr: Hashable,
        rid: bytes | None,
        type_name: object,
        exc: DecodeError,
        now: float,
    ) -> None:
        logger.debug("bad DHT message from %s: %s", node_id.hex()[:16], exc)
        self._offence(node_id, "invalid-message", now)
        if type_name in _RESPONSE_NAMES:
            # Never answer a response with an error (02 §5): drop it, and let the
            # request it claims to answer fail now rather than time out.
            self._drop("bad-response")
            if rid is not None:
                pending = self._pending.get(rid)
                if pending is not None and pending.contact.node_id == node_id:
                    del self._pending[rid]
                    self._request_done(pending, None, now, reason="bad-response")
            return
        if not self._allow(node_id, addr, rid, now):
            return
        if exc.reason in ("unknown-type", "unexpected-type"):
            self._drop("unknown-request")
            self._error(node_id, addr, rid, ErrorCode.UNKNOWN_REQUEST, "unknown request type")
        else:
            self._drop("bad-request")
            self._error(node_id, addr, rid, ErrorCode.BAD_REQUEST, f"{exc.reason} at {exc.path}")

    def _on_request(
        self, node_id: bytes, addr: Hashable, request: DhtRequest, now: float, early: bool
    ) -> None:
        self.received[request.TYPE] = self.received.get(request.TYPE, 0) + 1
        rid = request.rid
        if not self._allow(node_id, addr, rid, now):
            return
        if self.client_mode:
            self._error(node_id, addr, rid, ErrorCode.NOT_SERVING, "client mode")
            return
        if not early and not request.ro:
            self._saw_requester(node_id, addr, request.ws, now)
        if type(request) is FindNode:
            self._reply(node_id, addr, Nodes(rid, self._closest(request.target, node_id)))
        elif type(request) is FindValue:
            answer = self._value_answer(rid, request.key, now, have=request.have)
            if answer is not None:
                self._reply(node_id, addr, answer)
            else:
                self._reply(node_id, addr, Nodes(rid, self._closest(request.key, node_id)))
        elif type(request) is Ping:
            self._reply(node_id, addr, Pong(rid))
        elif type(request) is Store:
            self._on_store(node_id, addr, request, now)

    def _store_allowed(self, node_id: bytes, addr: Hashable, rid: bytes | None, now: float) -> bool:
        """The STORE flood bound per source address (07-records.md §6.3), checked
        before the record is decoded or verified; the excess is refused like
        any over-rate request (one ``rate-limited`` answer a second, then silence)."""
        if self.client_mode:
            return True
        if not self._flood.allow(_source_key(addr), now):
            self._drop("store-flood")
            self._offence(node_id, "flood", now)
        elif not self._flood_global.allow(None, now):
            self._drop("store-flood-global")  # nobody's fault in particular
        else:
            return True
        self.received["store"] = self.received.get("store", 0) + 1
        if self._error_answers.allow(node_id, now):
            self._error(node_id, addr, rid, ErrorCode.RATE_LIMITED, "flood: too many stores")
        return False

    def _on_store(self, node_id: bytes, addr: Hashable, request: Store, now: float) -> None:
        """STORE (02-dht-rpc.md §4.3): validate, merge, answer; a refusal changes nothing."""
        unix = self.unix_time(now)
        cached = request.cache is not None
        try:
            valid = self.validator.validate(request.record, request.key, unix)
            if cached:
                valid = self._cache_copy(valid, request.cache, unix)
            decision = self.records.put(
                valid,
                source=_source_key(addr),
                cached=cached,
                now=unix,
                cas=request.cas,
                # gone after its cache lifetime, signed or not (07-records.md §10.6)
                cache_until=None if request.cache is None else int(unix) + request.cache,
            )
        except RecordRejectedError as exc:
            self._refuse_store(node_id, addr, request.rid, exc.reason, now)
            return
        except StoreError as exc:
            self._drop("store-error")
            logger.warning("record store failed on a STORE: %s", exc)
            self._error(node_id, addr, request.rid, ErrorCode.INTERNAL, "storage error")
            return
        if decision.reason is not None:
            self._refuse_store(node_id, addr, request.rid, decision.reason, now)
            return
        ticket = self.records.unsaved
        if ticket is None:
            self._reply(node_id, addr, Stored(request.rid))
        else:
            # "stored" promises durability (07-records.md §8): answer once the
            # store has saved this change (the driver calls records_saved).
            self._held_answers.append((ticket, node_id, addr, Stored(request.rid)))
        if not cached:
            self.replication.on_store_received(valid.key, now)
        if decision.accepted:
            self._schedule_sweep(now)
            self._watch_changed(valid, now)
            self._event(ValueStored(valid.key, len(valid.value or b""), node_id, valid))

    def records_saved(self, ticket: int) -> None:
        """The record store saved every change up to ``ticket``: send the answers
        that waited for it (a durable store's :meth:`~SqliteRecordStore.save`)."""
        held = self._held_answers
        done = 0
        while done < len(held) and held[done][0] <= ticket:
            _, node_id, addr, answer = held[done]
            self._send(node_id, addr, answer)
            done += 1
        del held[:done]

    def _refuse_store(
        self, node_id: bytes, addr: Hashable, rid: bytes, reason: str, now: float
    ) -> None:
        self._drop(f"store-{reason}")
        if reason in ("bad-signature", "owner-mismatch", "key-mismatch"):
            self._offence(node_id, "forged-record", now)
        code = STORE_ERROR_CODES.get(reason, ErrorCode.INTERNAL)
        self._error(node_id, addr, rid, code, reason)

    def _servable(self, key: bytes, unix: float) -> list[ValidRecord]:
        """What we hold under ``key`` that still passes 07-records.md §6.2 at ``unix``.

        Every record is validated again before it is served (the verdict cache
        makes a held signed record cost a hash): expired or corrupted storage
        is never served.  Failures are counted as ``serve-<reason>``.
        """
        try:
            held = self.records.get(key, now=unix)
        except StoreError as exc:
            self._drop("store-error")
            logger.warning("record store failed on a read: %s", exc)
            return []
        out: list[ValidRecord] = []
        for record in held:
            try:
                out.append(self.validator.validate(record.record, key, unix))
            except RecordRejectedError as exc:
                self._drop(f"serve-{exc.reason}")
        return out

    def _value_answer(
        self, rid: bytes, key: bytes, now: float, *, have: tuple[bytes, ...] = ()
    ) -> Value | None:
        """The VALUE answer for ``key`` (02-dht-rpc.md §4.2), None when nothing is held.

        For a set: the entries of owners not in ``have`` (a getter paging
        through the set), as many as fit, with ``more`` if any were left out.
        """
        held = self._servable(key, self.unix_time(now))
        if not held:
            return None
        if not isinstance(held[0].record, SetEntry):
            return Value(rid, held[0].record)
        if have:
            skip = set(have)
            held = [entry for entry in held if entry.owner not in skip]
            if not held:
                return None  # nothing further: answered with nodes (02 §4.2)
        # As many entries as fit, latest expiry first, ties by owner (02 §4.2).
        held.sort(key=lambda entry: (-entry.expires, entry.owner or b""))
        chosen: list[SetEntry] = []
        budget = _SET_ANSWER_BUDGET
        for entry in held:
            size = encoded_size(entry)
            if size > budget or len(chosen) == MAX_VALUE_RECORDS:
                break
            assert isinstance(entry.record, SetEntry)
            chosen.append(entry.record)
            budget -= size
        return Value(rid, records=chosen, more=len(chosen) < len(held))

    def _closest(self, target: bytes, requester: bytes) -> list[Contact]:
        n = min(self.routing.config.k, MAX_NODES)
        return self.routing.closest(target, n, exclude=(requester,))

    def _saw_requester(
        self, node_id: bytes, addr: Hashable, ws_port: int | None, now: float
    ) -> None:
        """A serving peer asked us something: it is alive, and maybe new to the table.

        A UDP requester answers at the address it sent from; a WebSocket
        requester connects from an ephemeral port, so it is added only if it
        named the port it listens on (``ws``, 02-dht-rpc.md §1.3).
        """
        contact: Contact | None = None
        if type(addr) is Address and addr.transport in self.transports:
            if addr.transport == "udp":
                contact = contact_at(node_id, addr)
            elif addr.transport == "ws" and ws_port is not None:
                contact = contact_at(node_id, Address("ws", addr.host, ws_port))
        if contact is not None:
            self._routing_events(self.routing.update_verified(contact, now, inbound=True), now)
        elif node_id in self.routing:
            self.routing.on_response(node_id, now)

    def _allow(self, node_id: bytes, addr: Hashable, rid: bytes | None, now: float) -> bool:
        """The token buckets per peer, per source address and global; over a
        limit the request is refused (counted as ``rate-limited``,
        ``rate-limited-address`` or ``rate-limited-global``).

        The first refusal in a second is answered ``rate-limited`` (so an honest
        peer learns to back off); the rest of a flood is dropped silently, so
        refusing costs less than answering.
        """
        if not self._requests.allow(node_id, now):
            self._drop("rate-limited")
            self._offence(node_id, "flood", now)
        elif not self._requests_by_address.allow(_source_key(addr), now):
            self._drop("rate-limited-address")
        elif not self._requests_global.allow(None, now):
            self._drop("rate-limited-global")  # nobody's fault in particular
        else:
            return True
        if self._error_answers.allow(node_id, now):
            self._error(node_id, addr, rid, ErrorCode.RATE_LIMITED, "slow down")
        return False

    def _reply(self, node_id: bytes, addr: Hashable, message: DhtResponse) -> None:
        self._send(node_id, addr, message)

    def _error(
        self, node_id: bytes, addr: Hashable, rid: bytes | None, code: ErrorCode, text: str
    ) -> None:
        name = code.name.lower().replace("_", "-")
        self.errors_sent[name] = self.errors_sent.get(name, 0) + 1
        self._send(node_id, addr, ErrorMessage(code, text[:128], rid))

    def _send(self, node_id: bytes, addr: Hashable, message: DhtRequest | DhtResponse) -> None:
        self.sent[message.TYPE] = self.sent.get(message.TYPE, 0) + 1
        if self._objects is not None:  # a simulator's core: no encoding (pass_objects)
            self._objects.append((node_id, addr, message))
            return
        payload = encode_nodes(message) if type(message) is Nodes else encode(message)
        self.bytes_sent += len(payload)
        self._out.append((node_id, addr, payload))

    def _cache_copy(self, valid: ValidRecord, lifetime: int | None, unix: float) -> ValidRecord:
        """The copy a path-cache STORE keeps: an immutable record's (unsigned) ``exp``
        cut to the lifetime asked for, so that the copy served says when it goes; a
        signed record as is (its ``exp`` is signed), the store drops it at the end of
        the lifetime all the same (§10.6)."""
        record = valid.record
        if lifetime is None or not isinstance(record, ImmutableRecord):
            return valid
        expires = min(record.expires, int(unix) + lifetime)
        if expires == record.expires:
            return valid
        return ValidRecord(attrs.evolve(record, expires=expires), valid.key, valid.digest)
