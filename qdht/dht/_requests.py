"""Requests out: the core's table of outstanding requests and the answers to them.

A section of :class:`~qdht.dht.DhtCore` (``protocol-spec/02-dht-rpc.md`` §1,
§4.2): requests are matched with their responses by (peer, rid), timed out
by per-peer adaptive timeouts, and reported to the operation that sent them;
VALUE answers and set pages are validated and collected here.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Final

import attrs

from qdht.dht._corebase import (
    _RESPONSE_TYPES,
    _LookupOp,
    _Pending,
    _RequestOp,
    _usable_host,
    _WatchOp,
)
from qdht.dht._events import (
    RequestCompleted,
    RequestFailed,
)
from qdht.dht._records import (
    ValidRecord,
)
from qdht.dht._serving import _Serving
from qdht.errors import ConfigError, LookupFailedError, RecordRejectedError
from qdht.wire import (
    MAX_HAVE,
    RID_SIZE,
    Address,
    AnyRecord,
    Contact,
    DhtRequest,
    DhtResponse,
    ErrorCode,
    ErrorMessage,
    FindValue,
    ImmutableRecord,
    Nodes,
    Notify,
    SetEntry,
    Store,
    Value,
)

__all__: list[str] = []


class _Requests(_Serving):
    """The requesting side of the core: matching, timeouts, VALUE pages."""

    __slots__ = ()

    def _on_response(self, node_id: bytes, response: DhtResponse, now: float) -> None:
        rid = response.rid
        if rid is None:  # an error without rid answers nothing we can match
            self._drop("unsolicited-response")
            return
        pending = self._pending.get(rid)
        if pending is None:
            late = self._late.get(rid)
            if late is not None and late.contact.node_id == node_id:
                del self._late[rid]
                self.late_responses += 1
                self.reputation.answered_late(node_id, now)  # its timeout was our misjudgement
                if late.request is not Notify:  # a watcher is no routing-table candidate
                    self._routing_events(
                        self.routing.update_verified(late.contact, now, late.rtt(now)), now
                    )
                self._late_answer(late, response, now)
            else:
                self._drop("unsolicited-response")
            return
        if pending.contact.node_id != node_id:
            self._drop("wrong-peer")
            return
        if type(response) not in _RESPONSE_TYPES[pending.request]:
            self._drop("unexpected-response-type")
            return
        del self._pending[rid]
        if self._own_stores:
            self._own_answered(rid, response)
        self.received[response.TYPE] = self.received.get(response.TYPE, 0) + 1
        self.reputation.answered(node_id, now)
        rtt = pending.rtt(now)
        if pending.request is Notify:
            pass  # a watcher: maybe client mode, or behind an ephemeral port (08-watch.md)
        elif type(response) is ErrorMessage and response.code == ErrorCode.NOT_SERVING:
            # A read-only node: it answers nobody, so it has no place in the table.
            self._routing_events(self.routing.remove(node_id, now), now)
        else:
            self._routing_events(self.routing.update_verified(pending.contact, now, rtt), now)
        self._request_done(pending, response, now)

    def _own_answered(self, rid: bytes, response: DhtResponse) -> None:
        """A holder answered a republish STORE of this node's own record: note a
        ``stale`` refusal (a newer version may exist, 07 §10.2)."""
        key = self._own_stores.pop(rid, None)
        if key is not None and type(response) is ErrorMessage and response.code == ErrorCode.STALE:
            stale = self._stale_own
            stale[key] = None
            if len(stale) > self.rpc_config.max_pending:
                del stale[next(iter(stale))]

    def _late_answer(self, pending: _Pending, response: DhtResponse, now: float) -> None:
        """A response after its timeout: still news for a lookup that runs on."""
        op = self._ops.get(pending.op)
        if type(op) is not _LookupOp or op.stores_pending >= 0 or op.lookup_over:
            return
        if pending.contact.node_id in op.pages:
            return  # a page that timed out: the get went on without it
        if type(response) is Nodes:
            op.lookup.on_nodes(pending.contact.node_id, self._contacts(response), now)
            self._pump(op, now)
        elif type(response) is Value and op.kind == "get":
            self._on_value(op, pending.contact, response, now)
            self._pump(op, now)

    def _check_capacity(self) -> None:
        if self._lookups >= self.rpc_config.max_lookups:
            raise LookupFailedError(
                f"{self._lookups} lookups already running (RpcConfig.max_lookups)"
            )

    def _handle(self) -> int:
        handle = self._next_handle
        self._next_handle += 1
        return handle

    def _single(
        self,
        contact: Contact,
        make: Callable[[bytes], DhtRequest],
        now: float,
        *,
        timeout: float | None = None,
    ) -> int:
        if not isinstance(contact, Contact):
            raise ConfigError(f"contact must be a qdht.wire.Contact, got {type(contact).__name__}")
        if contact.node_id == self.local_id:
            raise ConfigError("contact is this node itself")
        handle = self._handle()
        self._ops[handle] = _RequestOp(handle)
        if not self._request(contact, make, handle, now, timeout=timeout):
            del self._ops[handle]
            self._event(RequestFailed(handle, contact.node_id, "unreachable"))
        return handle

    def _address_for(self, contact: Contact) -> Address | None:
        for address in contact.addresses:
            if address.transport in self.transports:
                return address
        return None

    def _request(
        self,
        contact: Contact,
        make: Callable[[bytes], DhtRequest],
        op: int,
        now: float,
        *,
        timeout: float | None = None,
    ) -> bool:
        """Send a request; False if it cannot go out (no address, too many pending)."""
        address = self._address_for(contact)
        if address is None:
            self._drop("no-usable-address")
            return False
        if len(self._pending) >= self.rpc_config.max_pending:
            self._drop("pending-full")
            return False
        while True:
            rid = self._rng(RID_SIZE)
            if rid not in self._pending:
                break
        request = make(rid)
        if address.transport == "ws" and self.ws_port is not None and not self.client_mode:
            request = attrs.evolve(request, ws=self.ws_port)
        connected = self.session_established
        timed = connected is None or connected(contact.node_id)
        if timeout is None:
            timeout = self.routing.timeout_for(contact.node_id)
            if not timed:
                timeout *= self.rpc_config.first_contact_factor
            if type(request) is Store or (type(request) is FindValue and request.have):
                timeout *= self.rpc_config.bulk_timeout_factor
            timeout = min(self.routing.config.max_timeout, timeout)
        deadline = now + timeout
        self._pending[rid] = _Pending(contact, type(request), op, now, deadline, timed)
        heapq.heappush(self._deadlines, (deadline, rid))
        if deadline < self._new_deadline:
            self._new_deadline = deadline
        self._send(contact.node_id, address, request)
        return True

    def _remember_late(self, rid: bytes, pending: _Pending) -> None:
        """Remember a request that timed out (at ``pending.deadline``, now), up
        to ``late_responses`` of them for ``late_window`` each; oldest first."""
        late = self._late
        late[rid] = pending
        cfg = self.rpc_config
        if len(late) > cfg.late_responses:
            del late[next(iter(late))]
        # Two at most per call: what comes in one at a time leaves as fast.
        since = pending.deadline - cfg.late_window
        for _ in range(2):
            oldest = next(iter(late))
            if late[oldest].deadline >= since:
                break
            del late[oldest]

    def _request_done(
        self,
        pending: _Pending,
        response: DhtResponse | None,
        now: float,
        *,
        reason: str = "error",
    ) -> None:
        """A request ended: ``response`` (possibly an ERROR), or None and ``reason``."""
        op = self._ops.get(pending.op)
        node_id = pending.contact.node_id
        if op is None:
            return  # internal (ping-before-evict): the routing table was told already
        if type(op) is _WatchOp:
            self._watch_request_done(op, pending, response, reason, now)
            return
        if type(op) is _RequestOp:
            del self._ops[op.handle]
            if response is None:
                self._event(RequestFailed(op.handle, node_id, reason))
            elif type(response) is ErrorMessage:
                self._event(RequestFailed(op.handle, node_id, "error", response.code))
            else:
                self._event(RequestCompleted(op.handle, node_id, now - pending.sent_at))
            return
        assert type(op) is _LookupOp
        if pending.request is Store:
            self._store_done(op, node_id, response, reason, now)
            return
        if node_id in op.paging:
            self._page_done(op, pending.contact, response, now)
            return
        if op.lookup_over:
            return  # a get waiting for its pages: the lookup has ended
        lookup = op.lookup
        if type(response) is Nodes:
            lookup.on_nodes(node_id, self._contacts(response), now)
        elif type(response) is Value and op.kind == "get":
            self._on_value(op, pending.contact, response, now)
        else:
            lookup.on_failure(node_id, now)
        if op.handle in self._ops:
            self._pump(op, now)

    def _on_value(self, op: _LookupOp, contact: Contact, response: Value, now: float) -> None:
        """A VALUE answer to a get: validate every record (07-records.md §6), keep the valid.

        An answer without one valid record is forged (or corrupt): it is
        counted, held against the sender, and the lookup goes on (02 §4.2).
        The first valid record tells the key's family: an immutable one ends
        the lookup; mutable records and set entries are collected until
        ``get_quorum`` holders answered or the lookup converged.
        """
        node_id = contact.node_id
        lookup = op.lookup
        offered: tuple[AnyRecord, ...] = (
            (response.record,) if response.record is not None else response.records
        )
        valid = self._valid_answers(offered, lookup.target, now)
        if not valid:
            self._drop("forged-value")
            self._offence(node_id, "forged-record", now)
            lookup.on_failure(node_id, now)
            return
        first = valid[0]
        if isinstance(first.record, ImmutableRecord):
            op.record = first
            op.contacts[node_id] = contact  # the holder (path caching skips it)
            lookup.on_value(node_id, first, now)
            return
        lookup.on_nodes(node_id, (), now)  # answered: a holder, not a source of contacts
        op.holders += 1
        op.contacts[node_id] = contact
        if isinstance(first.record, SetEntry):
            op.set_answers[node_id] = valid
            if response.more:
                op.partial.add(node_id)
                if op.pager == b"":
                    op.pager = node_id  # the first holder with more: read it in full
                if op.pager == node_id or op.pager is None:
                    self._page(op, contact, now)
                else:
                    op.page_queue.append(contact)
        else:
            op.answers.append((node_id, first))
        if op.holders >= self.record_config.get_quorum:
            self._lookup_done(op, now)

    def _valid_answers(
        self, records: Iterable[AnyRecord], key: bytes, now: float
    ) -> list[ValidRecord]:
        """The records of a VALUE answer that pass 07-records.md §6; the rest counted."""
        unix = self.unix_time(now)
        valid: list[ValidRecord] = []
        for record in records:
            try:
                valid.append(self.validator.validate(record, key, unix))
            except RecordRejectedError as exc:
                self._drop(f"get-{exc.reason}")
        return valid

    def _page(self, op: _LookupOp, contact: Contact, now: float) -> None:
        """Ask a set's holder whose answer said ``more`` for the next page (02 §4.2).

        The first such holder (``op.pager``) lists in ``have`` the owners it
        sent, so the get learns its whole set (which entry correction needs).
        Every other holder lists every owner any holder sent, so it sends
        only what nobody else did: the set crosses the network about once,
        not once per holder (a 32-entry set is 300 KB).
        """
        node_id = contact.node_id
        asked = op.pages.get(node_id, 0)
        if asked < self.record_config.max_set_pages:
            if node_id == op.pager:
                owners = {entry.owner for entry in op.set_answers[node_id]}
            else:
                op.union_paged.add(node_id)
                owners = {e.owner for entries in op.set_answers.values() for e in entries}
            have = tuple(sorted(owner for owner in owners if owner)[:MAX_HAVE])
            key, ro = op.lookup.target, self.client_mode

            def make(rid: bytes) -> DhtRequest:
                return FindValue(rid, key, have=have, ro=ro)

            if self._request(contact, make, op.handle, now):
                op.pages[node_id] = asked + 1
                op.paging.add(node_id)
                return
        if node_id == op.pager:
            self._pager_done(op, now)

    def _pager_done(self, op: _LookupOp, now: float) -> None:
        """The holder read in full is done: page the holders that waited for it."""
        op.pager = None
        queue, op.page_queue = op.page_queue, []
        for contact in queue:
            self._page(op, contact, now)

    def _page_done(
        self, op: _LookupOp, contact: Contact, response: DhtResponse | None, now: float
    ) -> None:
        """A page of a set arrived (or failed): keep its valid entries; maybe ask for more.

        ``nodes`` means the holder has nothing further.  Unless it was read
        in full with its own owners in ``have``, a holder stays ``partial``:
        it may hold entries it did not send, which limits the entry
        corrections it may be sent (07-records.md §7.3).
        """
        node_id = contact.node_id
        op.paging.discard(node_id)
        more = False
        complete = type(response) is Nodes  # nothing further
        if type(response) is Value:
            valid = self._valid_answers(response.records, op.lookup.target, now)
            if valid:
                op.set_answers[node_id].extend(valid)
                more = response.more
                complete = not more
            else:
                self._drop("forged-value")
                self._offence(node_id, "forged-record", now)
        if complete and node_id not in op.union_paged:
            op.partial.discard(node_id)
        if more:
            self._page(op, contact, now)
        elif node_id == op.pager:
            self._pager_done(op, now)
        if op.lookup_over and not op.paging:
            self._get_done(op, now)

    def _contacts(self, response: Nodes) -> list[Contact]:
        """The usable contacts of a NODES answer; the rest counted."""
        contacts = response.nodes
        k = self.lookup_config.k
        if len(contacts) > k:
            self._drop("nodes-oversized")
        out: list[Contact] = []
        seen: set[bytes] = set()
        local_id, transports = self.local_id, self.transports
        verdicts = _VERDICTS
        for contact in contacts:
            node_id = contact.node_id
            if node_id == local_id:
                continue  # ourselves: normal, not an offence
            if node_id in seen:
                self._drop("contact-duplicate")
                continue
            seen.add(node_id)
            cached = verdicts.get(node_id)
            if cached is not None and cached[0] is contact and cached[1] == transports:
                problem = cached[2]
            else:
                problem = _contact_problem(contact, transports)
            if problem:
                self._drop(problem)
                continue
            out.append(contact)  # already shared: parse_nodes interns
        return out


#: Node ID → (the contact last checked, the transports it was checked for, what is
#: wrong with it or ""): every answer of every lookup names 20 contacts, nearly
#: all seen before as the very same object (parse_nodes interns them).
_VERDICTS: dict[bytes, tuple[Contact, frozenset[str], str]] = {}
_MAX_VERDICTS: Final = 65_536


def _contact_problem(contact: Contact, transports: frozenset[str]) -> str:
    """Why a NODES answer's ``contact`` is unusable here ("" if it is usable), remembered."""
    for address in contact.addresses:
        if address.transport in transports:
            problem = "" if _usable_host(address.host) else "contact-bad-address"
            break
    else:
        problem = "contact-no-usable-address"
    if len(_VERDICTS) >= _MAX_VERDICTS:
        _VERDICTS.clear()
    _VERDICTS[contact.node_id] = (contact, transports, problem)
    return problem
