"""Watching keys on the wire: WATCH and NOTIFY, both sides (``protocol-spec/08-watch.md``).

A section of :class:`~qdht.dht.DhtCore`; the subscription state itself lives in
:mod:`qdht.dht._watch` (:class:`WatchRegistry` for the holder,
:class:`WatchSubscriptions` for the watcher).  The node runs this section as
the ``watch`` service (:mod:`qdht.dht._services`).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from qdht.dht._corebase import _LookupOp, _Pending, _WatchOp
from qdht.dht._lookups import _Lookups
from qdht.dht._records import (
    ValidRecord,
)
from qdht.dht._watch import (
    catch_up,
)
from qdht.errors import ConfigError
from qdht.wire import (
    NODE_ID_SIZE,
    Address,
    AnyRecord,
    Contact,
    ErrorCode,
    Notified,
    Notify,
    Watch,
    Watching,
)

__all__: list[str] = []


class _WatchRpc(_Lookups):
    """Watching keys (08-watch.md) as a section of the core."""

    __slots__ = ()

    def start_watch(self, key: bytes, now: float) -> None:
        """Watch ``key``: :class:`~qdht.dht.WatchUpdate` events report its changes.

        Reference-counted: every call needs one :meth:`stop_watch`.  The core
        looks up the ``WatchConfig.holders`` closest nodes, subscribes there,
        renews, follows the closest set, validates and deduplicates what the
        holders push, and reports expiry on its own clock (08-watch.md §3.3,
        §4.2).  What this node itself holds under the key is reported at once.
        Raises ``NodeStateError`` beyond ``WatchConfig.max_watched_keys`` keys.
        """
        if type(key) is not bytes or len(key) != NODE_ID_SIZE:
            raise ConfigError(f"key must be {NODE_ID_SIZE} bytes")
        if not self.watching.add(key, now):
            return
        for record in self._servable(key, self.unix_time(now)):
            for update in self.watching.local_record(key, record):
                self._event(update)
        self._watch_rounds(now)

    def stop_watch(self, key: bytes, now: float) -> None:
        """Release one :meth:`start_watch` of ``key``; the last one unwatches the holders."""
        for contact in self.watching.remove(key):
            self._watch_request(contact, key, 0, None, "unwatch", now)

    def _watch_rounds(self, now: float) -> None:
        """Start the lookups of the watch rounds that are due (08-watch.md §3.3)."""
        for key in self.watching.rounds_due(now):
            if self._lookups >= self.rpc_config.max_lookups:
                self.watching.round_failed(key, now)
            else:
                self._start(key, "watch", now)

    def _watch_lookup_done(self, op: _LookupOp, now: float) -> None:
        result = op.lookup.result
        self._finish(op, bool(result), now)
        key = op.lookup.target
        plan = self.watching.round(key, result, now)
        for contact in plan.unwatch:
            self._watch_request(contact, key, 0, None, "unwatch", now)
        ttl = self.watching.config.ttl
        for contact, since in plan.watch:
            self._watch_request(contact, key, ttl, since, "watch", now)

    def _watch_request(
        self, contact: Contact, key: bytes, ttl: int, since: int | None, kind: str, now: float
    ) -> None:
        handle = self._handle()
        self._ops[handle] = _WatchOp(handle, key, kind)
        ro = self.client_mode

        def make(rid: bytes) -> Any:  # a Watch: DhtRequest does not list it
            return Watch(rid, key, ttl, since=since, ro=ro)

        if not self._request(contact, make, handle, now):
            del self._ops[handle]
            if kind == "watch":
                self.watching.watch_failed(key, contact.node_id, now)

    def _watch_request_done(
        self, op: _WatchOp, pending: _Pending, response: object, reason: str, now: float
    ) -> None:
        """A WATCH or NOTIFY this node sent ended (``response`` None: ``reason``)."""
        del self._ops[op.handle]
        node_id = pending.contact.node_id
        if op.kind == "notify":
            if type(response) is Notified:
                self.watches.notify_answered(op.key, node_id, stop=response.stop)
            elif self.watches.notify_failed(op.key, node_id):
                self._drop("watch-dead-watcher")
        elif op.kind == "watch":
            if type(response) is Watching:
                self.watching.watch_answered(op.key, node_id, response.ttl, now)
            else:
                self._drop(f"watch-refused-{reason if response is None else 'error'}")
                self.watching.watch_failed(op.key, node_id, now, refused=response is not None)

    def _on_watch_message(
        self, node_id: bytes, addr: Hashable, message: Watch | Notify, now: float, early: bool
    ) -> None:
        """WATCH (we hold) or NOTIFY (we watch): 08-watch.md §3.1, §4.2."""
        self.received[message.TYPE] = self.received.get(message.TYPE, 0) + 1
        if early:
            # pqIK early data can be replayed: subscriptions and pushes need a session.
            self._drop(f"early-{message.TYPE}")
            return
        if not self._allow(node_id, addr, message.rid, now):
            return
        if type(message) is Notify:
            self._on_notify(node_id, addr, message, now)
            return
        assert type(message) is Watch
        if self.client_mode:
            self._error(node_id, addr, message.rid, ErrorCode.NOT_SERVING, "client mode")
            return
        if not message.ro:
            self._saw_requester(node_id, addr, message.ws, now)
        self._on_watch(node_id, addr, message, now)

    def _on_watch(self, node_id: bytes, addr: Hashable, request: Watch, now: float) -> None:
        key = request.key
        answer: Any
        if request.ttl == 0:
            self.watches.unsubscribe(key, node_id)
            answer = Watching(request.rid, 0)
            self._reply(node_id, addr, answer)
            return
        taken = self.watches.subscribe(key, node_id, addr, request.ttl, now)
        if isinstance(taken, str):
            self._drop(f"watch-{taken}")
            self._error(node_id, addr, request.rid, ErrorCode.STORAGE_FULL, f"watch: {taken}")
            return
        answer = Watching(request.rid, taken.ttl)
        self._reply(node_id, addr, answer)
        held = self._servable(key, self.unix_time(now))
        self.watches.track_expiry(key, held)
        for record in catch_up(held, request.since, renewal=not taken.new):
            self._notify(node_id, addr, key, record.record, now)

    def _notify(
        self, node_id: bytes, addr: Hashable, key: bytes, record: AnyRecord | None, now: float
    ) -> None:
        """Push one NOTIFY to a watcher, at the address its WATCH came from."""
        if type(addr) is not Address:
            self._drop("notify-no-address")
            return
        handle = self._handle()
        self._ops[handle] = _WatchOp(handle, key, "notify")

        def make(rid: bytes) -> Any:  # a Notify: DhtRequest does not list it
            return Notify(rid, key, record)

        self.watches.notifying(1)
        if not self._request(Contact(node_id, (addr,)), make, handle, now):
            del self._ops[handle]
            self.watches.notify_failed(key, node_id)

    def _on_notify(self, node_id: bytes, addr: Hashable, request: Notify, now: float) -> None:
        unix = self.unix_time(now)
        validator = self.validator

        def validate(record: AnyRecord, key: bytes) -> ValidRecord:
            return validator.validate(record, key, unix)

        result = self.watching.on_notify(node_id, request.key, request.record, now, validate)
        answer: Any
        if result.answer == "invalid":
            self._drop(f"watch-notify-{result.reason}")
            if result.reason in ("bad-signature", "owner-mismatch", "key-mismatch"):
                self._offence(node_id, "forged-record", now)
            self._error(node_id, addr, request.rid, ErrorCode.INVALID_VALUE, f"{result.reason}")
            if result.unwatch is not None:
                self._watch_request(result.unwatch, request.key, 0, None, "unwatch", now)
            self._watch_rounds(now)
            return
        if result.answer == "stop":
            self._drop("watch-notify-not-watching")
        answer = Notified(request.rid, stop=result.answer == "stop")
        self._reply(node_id, addr, answer)
        for update in result.updates:
            self._event(update)

    def _watch_changed(self, record: ValidRecord, now: float) -> None:
        """This node accepted ``record`` (a STORE, our own put): tell who watches its key."""
        key = record.key
        for update in self.watching.local_record(key, record):
            self._event(update)
        if not self.watches.is_watched(key):
            return
        self.watches.track_expiry(key, self._servable(key, self.unix_time(now)))
        for watcher, addr in self.watches.watchers(key, now):
            self._notify(watcher, addr, key, record.record, now)

    def handle_watch_timer(self, now: float) -> None:
        """Holder: end subscriptions, say "expired"; watcher: local expiry, rounds."""
        watches = self.watches
        for key in watches.expiries_due(now):
            held = self._servable(key, self.unix_time(now))
            if held:
                watches.track_expiry(key, held)  # replaced meanwhile: a later expiry
                continue
            for watcher, addr in watches.watchers(key, now):
                self._notify(watcher, addr, key, None, now)
        watches.expire(now)
        for update in self.watching.handle_timer(now):
            self._event(update)
        self._watch_rounds(now)
