"""The DHT protocol core: RPC dispatch, request matching, lookups, sans-IO.

Implements ``protocol-spec/02-dht-rpc.md`` on top of the routing table and
the lookup state machine.  Bytes and time go in, bytes and events come out
(the aioquic shape, DESIGN §3):

* :meth:`DhtCore.receive_message` takes one encoded DHT message from a peer
  whose node ID the session layer verified;
* :meth:`DhtCore.messages_to_send` returns ``(node_id, address, payload)``
  triples for the session layer to deliver;
* :meth:`DhtCore.ping`, :meth:`DhtCore.store_at`, :meth:`DhtCore.start_lookup`
  and :meth:`DhtCore.start_put` start work and return a handle; how it ended
  is reported by :meth:`DhtCore.next_event`
  (:class:`~qdht.dht.RequestCompleted`, :class:`~qdht.dht.LookupCompleted`, ...);
* :meth:`DhtCore.get_timer` / :meth:`DhtCore.handle_timer` drive timeouts,
  slow-request handling, bucket refresh and value expiry;
* :meth:`DhtCore.peer_unreachable` is how the driver reports that the session
  layer could not reach a peer (handshake timeout, wrong identity).

Remote input never raises: it is dropped and counted in
``stats()["drops"]`` under a reason.  Requests are matched by the pair (peer,
rid); a response from another peer, of a type the request does not allow, or
to no outstanding request, is dropped.
"""

from __future__ import annotations

import array
import functools
import heapq
import ipaddress
import logging
import os
from collections.abc import Callable, Collection, Hashable, Iterable
from typing import Any, Final

import attrs

from qdht.dht._config import LookupConfig, RoutingConfig
from qdht.dht._events import (
    DhtEvent,
    LookupCompleted,
    NodeDiscovered,
    PutCompleted,
    RequestCompleted,
    RequestFailed,
    RoutingTableChanged,
    ValueStored,
)
from qdht.dht._lookup import Lookup, LookupTrace
from qdht.dht._ratelimit import TokenBuckets
from qdht.dht._routing import (
    PeerAdded,
    PeerRemoved,
    PeerReplaced,
    PingNeeded,
    RoutingEvent,
    RoutingTable,
    distance,
)
from qdht.dht._storage import (
    FULL,
    INVALID,
    REFRESHED,
    SOURCE_FULL,
    STORED,
    TOO_LARGE,
    StorageConfig,
    ValueStore,
)
from qdht.errors import ConfigError, DecodeError, LookupFailedError
from qdht.wire import (
    NODE_ID_SIZE,
    RID_SIZE,
    Address,
    Contact,
    ErrorCode,
    ErrorMessage,
    FindNode,
    FindValue,
    Nodes,
    Ping,
    Pong,
    Store,
    Stored,
    Value,
    decode_object,
    encode,
    immutable_key,
    loads_canonical,
)
from qdht.wire._dht import MAX_NODES, RESPONSE_TYPES, DhtRequest, DhtResponse
from qdht.wire._dht_fast import encode_nodes, intern_contact, parse_nodes

__all__ = ["DhtCore", "Outgoing", "RpcConfig", "intern_contact"]

logger = logging.getLogger(__name__)

#: What the core asks the driver to deliver: (peer node ID, address, payload).
Outgoing = tuple[bytes, Hashable, bytes]

_REQUESTS: Final = (Ping, FindNode, FindValue, Store)
_RESPONSES: Final = (Pong, Nodes, Value, Stored, ErrorMessage)
_DHT_TYPES: Final = _REQUESTS + _RESPONSES
_RESPONSE_NAMES: Final = frozenset(cls.TYPE for cls in _RESPONSES)
#: Events buffered in the core before the oldest are dropped (the driver drains
#: them after every call, so this only bounds a driver that stopped reading).
_MAX_EVENTS: Final = 4096


# ------------------------------------------------------------------ contacts


def _usable_address(address: Address) -> bool:
    """An address a contact may name: a unicast host, not 0.0.0.0 or multicast."""
    return _usable_host(address.host)


@functools.lru_cache(maxsize=4096)
def _usable_host(host: str) -> bool:
    # Cached: contacts repeat, and parsing an IP literal costs microseconds.
    ip = ipaddress.ip_address(host)
    return not (ip.is_unspecified or ip.is_multicast or ip == _BROADCAST)


_BROADCAST: Final = ipaddress.IPv4Address("255.255.255.255")


# ------------------------------------------------------------------ configuration


def _positive(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"{attribute.name} must be a positive number, got {value!r}")


@attrs.frozen
class RpcConfig:
    """Limits of RPC handling in :class:`DhtCore` (every one bounds memory or work)."""

    #: Requests this node keeps outstanding at once; more fail at once ("pending-full").
    max_pending: int = attrs.field(default=4096, validator=_positive)
    #: Lookups (find_node, get, put, refresh) running at once.
    max_lookups: int = attrs.field(default=256, validator=_positive)
    #: Requests per second accepted from one peer (token bucket rate) ...
    rate_limit: float = attrs.field(default=50.0, validator=_positive)
    #: ... and the bucket's size: the burst a peer may send at once.
    rate_burst: int = attrs.field(default=200, validator=_positive)
    #: Peers whose token buckets are remembered (least recently seen forgotten).
    rate_limit_peers: int = attrs.field(default=4096, validator=_positive)
    #: Timed-out requests remembered so that a late answer still counts as a sign
    #: of life (the routing table and the lookup use it).
    late_responses: int = attrs.field(default=1024, validator=_positive)
    #: Bucket-refresh lookups started per timer tick (the rest wait an interval).
    max_refresh_lookups: int = attrs.field(default=4, validator=_positive)
    #: A request to a peer without a session yet waits this many times the
    #: peer's usual timeout (at most ``RoutingConfig.max_timeout``): the
    #: handshake's two round trips (~7 KB in fragments) come first.  Scaled,
    #: not fixed, so that a dead contact costs a lookup little on a fast network.
    first_contact_factor: float = attrs.field(default=3.0, validator=_positive)
    #: User lookups (duration, hops, RPCs) kept for the percentiles of ``stats()``
    #: (12 bytes each, allocated as lookups complete).
    latency_samples: int = attrs.field(default=512, validator=_positive)


# ------------------------------------------------------------------ state


class _Pending:
    """An outstanding request.  ``timed`` is false when the request had to wait
    for a handshake: its round trip is no RTT sample (Karn's rule in spirit)."""

    __slots__ = ("contact", "deadline", "op", "request", "sent_at", "timed")

    def __init__(
        self,
        contact: Contact,
        request: type,
        op: int,
        sent_at: float,
        deadline: float,
        timed: bool,
    ) -> None:
        self.contact = contact
        self.request = request
        self.op = op
        self.sent_at = sent_at
        self.deadline = deadline
        self.timed = timed

    def rtt(self, now: float) -> float | None:
        return now - self.sent_at if self.timed else None


class _RequestOp:
    __slots__ = ("handle",)

    def __init__(self, handle: int) -> None:
        self.handle = handle


class _LookupOp:
    __slots__ = (
        "errors",
        "handle",
        "kind",
        "lookup",
        "started",
        "stored_at",
        "stores_pending",
        "value",
    )

    def __init__(
        self, handle: int, kind: str, lookup: Lookup, value: bytes | None, started: float
    ) -> None:
        self.handle = handle
        self.started = started
        self.kind = kind
        self.lookup = lookup
        self.value = value
        self.stores_pending = -1  # -1: still looking up; then STOREs outstanding
        self.stored_at: list[bytes] = []
        self.errors: dict[str, int] = {}


#: Lookup kinds whose outcome counts in ``stats()["lookups"]`` (user operations).
USER_KINDS: Final = ("find_node", "get", "put")
LOOKUP_KINDS: Final = (*USER_KINDS, "bootstrap", "refresh")


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class DhtCore:
    """One node's DHT protocol state: routing table, value store, requests, lookups.

    ``local_id`` is this node's (verified) ID.  ``transports`` are the address
    kinds the driver can reach (contacts without such an address are not
    queried).  ``client_mode`` makes the node read-only: its requests carry
    ``ro`` and it answers every request with ``error`` ``not-serving``.
    ``ws_port`` is the WebSocket port this node listens on, if any.
    ``rng(n)`` supplies random bytes (request IDs, refresh targets).
    """

    # Slotted: thousands of cores share one simulation process.
    __slots__ = (
        "_deadlines",
        "_error_answers",
        "_events",
        "_hops",
        "_late",
        "_latency",
        "_lookups",
        "_new_deadline",
        "_next_handle",
        "_ops",
        "_out",
        "_outcomes",
        "_pending",
        "_requests",
        "_rng",
        "_rpcs",
        "_sample_at",
        "bytes_received",
        "bytes_sent",
        "client_mode",
        "drops",
        "errors_sent",
        "last_trace",
        "late_responses",
        "local_id",
        "lookup_config",
        "received",
        "routing",
        "rpc_config",
        "sent",
        "session_established",
        "store",
        "transports",
        "ws_port",
    )

    def __init__(
        self,
        local_id: bytes,
        *,
        now: float,
        routing: RoutingConfig | None = None,
        lookup: LookupConfig | None = None,
        rpc: RpcConfig | None = None,
        storage: StorageConfig | None = None,
        client_mode: bool = False,
        transports: Collection[str] = ("udp", "ws"),
        ws_port: int | None = None,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if type(local_id) is not bytes or len(local_id) != NODE_ID_SIZE:
            raise ConfigError(f"local_id must be {NODE_ID_SIZE} bytes")
        self.local_id = local_id
        self.routing = RoutingTable(local_id, now=now, config=routing, rng=rng)
        self.lookup_config = lookup if lookup is not None else LookupConfig()
        self.rpc_config = rpc if rpc is not None else RpcConfig()
        self.store = ValueStore(storage)
        self.client_mode = client_mode
        self.transports = frozenset(transports)
        #: The WebSocket port this node accepts connections on, announced in
        #: requests sent over WebSocket (02-dht-rpc.md §1.3).
        self.ws_port = ws_port
        self._rng = rng
        self._pending: dict[bytes, _Pending] = {}
        self._deadlines: list[tuple[float, bytes]] = []
        # Plain dicts (insertion-ordered) rather than OrderedDict/deque: an idle
        # core must stay small, thousands of them share one simulation process.
        self._late: dict[bytes, _Pending] = {}
        self._ops: dict[int, _RequestOp | _LookupOp] = {}
        self._lookups = 0
        self._next_handle = 1
        self._out: list[Outgoing] = []
        self._events: list[DhtEvent] = []
        cfg = self.rpc_config
        self._requests: TokenBuckets[bytes] = TokenBuckets(
            rate=cfg.rate_limit, burst=cfg.rate_burst, max_keys=cfg.rate_limit_peers
        )
        # A refused peer is told so at most once a second; the rest is dropped.
        self._error_answers: TokenBuckets[bytes] = TokenBuckets(
            rate=1.0, burst=1, max_keys=cfg.rate_limit_peers
        )
        self._new_deadline = float("inf")
        self.drops: dict[str, int] = {}
        self.sent: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.errors_sent: dict[str, int] = {}
        self.bytes_sent = 0
        self.bytes_received = 0
        self.late_responses = 0
        # started, succeeded, failed per kind of LOOKUP_KINDS, flat
        self._outcomes = [0] * (3 * len(LOOKUP_KINDS))
        # Ring buffers of the last latency_samples user lookups, allocated on
        # first use: duration (s), hops, RPCs.
        self._latency = array.array("d")
        self._hops = array.array("H")
        self._rpcs = array.array("H")
        self._sample_at = 0
        #: The trace of the most recently completed user lookup (find_node, get, put).
        self.last_trace: LookupTrace | None = None
        #: Set by the driver: whether a session with a node ID is established.
        #: Requests to a peer without one get ``RpcConfig.first_contact_factor``
        #: times the usual timeout.  None: every peer counts as connected.
        self.session_established: Callable[[bytes], bool] | None = None

    # ------------------------------------------------------------ output

    def messages_to_send(self) -> list[Outgoing]:
        """Every message ready to go, oldest first: ``(node_id, address, payload)``."""
        out = self._out
        self._out = []
        return out

    def next_event(self) -> DhtEvent | None:
        """The oldest unreported event, or None."""
        return self._events.pop(0) if self._events else None

    @property
    def new_deadline(self) -> float:
        """The earliest deadline created since the last :meth:`get_timer` (inf: none)."""
        return self._new_deadline

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next run (None: nothing scheduled)."""
        self._new_deadline = float("inf")
        when: list[float] = []
        deadlines = self._deadlines
        while deadlines:
            deadline, rid = deadlines[0]
            pending = self._pending.get(rid)
            if pending is not None and pending.deadline == deadline:
                when.append(deadline)
                break
            heapq.heappop(deadlines)  # answered already: stale
        for op in self._ops.values():
            if type(op) is _LookupOp and op.stores_pending < 0:
                timer = op.lookup.get_timer()
                if timer is not None:
                    when.append(timer)
        when.append(self.routing.next_refresh_time())
        expiry = self.store.next_expiry()
        if expiry is not None:
            when.append(expiry)
        return min(when)

    def handle_timer(self, now: float) -> None:
        """Time out requests, move slow lookups on, refresh idle buckets, expire values."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, rid = heapq.heappop(deadlines)
            pending = self._pending.get(rid)
            if pending is None or pending.deadline != deadline:
                continue
            del self._pending[rid]
            self._remember_late(rid, pending)
            self._routing_events(self.routing.on_request_failed(pending.contact.node_id, now), now)
            self._request_done(pending, None, now, reason="timeout")
        for op in list(self._ops.values()):
            if type(op) is _LookupOp and op.stores_pending < 0:
                timer = op.lookup.get_timer()
                if timer is not None and timer <= now:
                    self._pump(op, now)
        if now >= self.routing.next_refresh_time():
            targets = self.routing.buckets_needing_refresh(now)
            if len(self.routing):
                budget = self.rpc_config.max_refresh_lookups
                for target in targets[:budget]:
                    if self._lookups >= self.rpc_config.max_lookups:
                        break
                    self._start(target, "refresh", now)
        self.store.expire(now)

    # ------------------------------------------------------------ starting work

    def ping(self, contact: Contact, now: float, *, timeout: float | None = None) -> int:
        """PING ``contact`` (its node ID is pinned: only that node can answer).

        ``timeout`` overrides the adaptive per-peer timeout (bootstrap uses the
        whole handshake timeout, so a slow first handshake is not a failure).
        """
        make = lambda rid: Ping(rid, ro=self.client_mode)  # noqa: E731
        return self._single(contact, make, now, timeout=timeout)

    def store_at(self, contact: Contact, value: bytes, now: float) -> int:
        """STORE the immutable ``value`` at ``contact``."""
        key = immutable_key(value)
        return self._single(contact, lambda rid: Store(rid, key, value, ro=self.client_mode), now)

    def start_lookup(self, target: bytes, now: float, *, kind: str = "find_node") -> int:
        """Start an iterative lookup; :class:`LookupCompleted` reports the end.

        ``kind`` ``"get"`` runs FIND_VALUE for the key ``target`` and accepts
        only a value that hashes to it; ``"find_node"``, ``"bootstrap"`` and
        ``"refresh"`` run FIND_NODE.  Raises ``LookupFailedError`` when
        ``max_lookups`` lookups are already running.
        """
        if kind not in ("find_node", "get", "bootstrap", "refresh"):
            raise ConfigError(f"kind must be find_node, get, bootstrap or refresh, got {kind!r}")
        if type(target) is not bytes or len(target) != NODE_ID_SIZE:
            raise ConfigError(f"target must be {NODE_ID_SIZE} bytes")
        self._check_capacity()
        return self._start(target, kind, now)

    def start_put(self, value: bytes, now: float) -> int:
        """Store the immutable ``value`` on the k closest nodes to its key.

        A FIND_NODE lookup for the key, then STORE to each node it found;
        :class:`PutCompleted` reports where the value was stored.
        """
        if not isinstance(value, bytes):
            raise ConfigError(f"value must be bytes, got {type(value).__name__}")
        if len(value) > self.store.config.max_value_size:
            raise ConfigError(
                f"value is {len(value)} bytes, more than {self.store.config.max_value_size}"
            )
        self._check_capacity()
        return self._start(immutable_key(value), "put", now, value=value)

    def local_value(self, key: bytes, now: float) -> bytes | None:
        """The value this node itself holds under ``key`` (None if none)."""
        return self.store.get(key, now)

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

    # ------------------------------------------------------------ input

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
            logger.debug("malformed DHT message from %s: %s", node_id.hex()[:16], exc)
            return
        rid: bytes | None = None
        type_name: object = None
        if type(obj) is dict:
            raw = obj.get("rid")
            rid = raw if type(raw) is bytes and len(raw) == RID_SIZE else None
            type_name = obj.get("type")
        try:
            message = decode_object(obj, expect=_DHT_TYPES)
        except DecodeError as exc:
            self._on_bad_message(node_id, addr, rid, type_name, exc, now)
            return
        if isinstance(message, _REQUESTS):
            self._on_request(node_id, addr, message, now, early)
        elif early:
            self._drop("early-response")
        else:
            self._on_response(node_id, message, now)  # type: ignore[arg-type]

    # ------------------------------------------------------------ requests in

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
            value = self.store.get(request.key, now)
            if value is not None:
                self._reply(node_id, addr, Value(rid, value))
            else:
                self._reply(node_id, addr, Nodes(rid, self._closest(request.key, node_id)))
        elif type(request) is Ping:
            self._reply(node_id, addr, Pong(rid))
        elif type(request) is Store:
            self._on_store(node_id, addr, request, now)

    def _on_store(self, node_id: bytes, addr: Hashable, request: Store, now: float) -> None:
        result = self.store.put(request.key, request.value, node_id, now)
        if result in (STORED, REFRESHED):
            self._reply(node_id, addr, Stored(request.rid))
            if result == STORED:
                self._event(ValueStored(request.key, len(request.value), node_id))
            return
        self._drop(f"store-{result}")
        code, text = {
            INVALID: (ErrorCode.INVALID_VALUE, "key does not match value"),
            TOO_LARGE: (ErrorCode.TOO_LARGE, "value too large"),
            FULL: (ErrorCode.STORAGE_FULL, "storage full"),
            SOURCE_FULL: (ErrorCode.STORAGE_FULL, "per-peer storage quota reached"),
        }[result]
        self._error(node_id, addr, request.rid, code, text)

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
                contact = Contact(node_id, (addr,))
            elif addr.transport == "ws" and ws_port is not None:
                contact = Contact(node_id, (Address("ws", addr.host, ws_port),))
        if contact is not None:
            contact = intern_contact(contact)
            self._routing_events(self.routing.update_verified(contact, now), now)
        elif node_id in self.routing:
            self.routing.on_response(node_id, now)

    def _allow(self, node_id: bytes, addr: Hashable, rid: bytes | None, now: float) -> bool:
        """The per-peer token bucket; over the limit the request is refused.

        The first refusal in a second is answered ``rate-limited`` (so an honest
        peer learns to back off); the rest of a flood is dropped silently, so
        refusing costs less than answering.
        """
        if self._requests.allow(node_id, now):
            return True
        self._drop("rate-limited")
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
        payload = encode_nodes(message) if type(message) is Nodes else encode(message)
        self.sent[message.TYPE] = self.sent.get(message.TYPE, 0) + 1
        self.bytes_sent += len(payload)
        self._out.append((node_id, addr, payload))

    # ------------------------------------------------------------ responses in

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
        if type(response) not in RESPONSE_TYPES[pending.request]:
            self._drop("unexpected-response-type")
            return
        del self._pending[rid]
        self.received[response.TYPE] = self.received.get(response.TYPE, 0) + 1
        rtt = pending.rtt(now)
        if type(response) is ErrorMessage and response.code == ErrorCode.NOT_SERVING:
            # A read-only node: it answers nobody, so it has no place in the table.
            self._routing_events(self.routing.remove(node_id, now), now)
        else:
            self._routing_events(self.routing.update_verified(pending.contact, now, rtt), now)
        self._request_done(pending, response, now)

    def _late_answer(self, pending: _Pending, response: DhtResponse, now: float) -> None:
        """A response after its timeout: still news for a lookup that runs on."""
        op = self._ops.get(pending.op)
        if type(op) is not _LookupOp or op.stores_pending >= 0:
            return
        if type(response) is Nodes:
            op.lookup.on_nodes(pending.contact.node_id, self._contacts(response), now)
            self._pump(op, now)
        elif type(response) is Value and immutable_key(response.value) == op.lookup.target:
            op.lookup.on_value(pending.contact.node_id, response.value, now)
            self._pump(op, now)

    # ------------------------------------------------------------ request bookkeeping

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
                first = timeout * self.rpc_config.first_contact_factor
                timeout = min(self.routing.config.max_timeout, first)
        deadline = now + timeout
        self._pending[rid] = _Pending(contact, type(request), op, now, deadline, timed)
        heapq.heappush(self._deadlines, (deadline, rid))
        if deadline < self._new_deadline:
            self._new_deadline = deadline
        self._send(contact.node_id, address, request)
        return True

    def _remember_late(self, rid: bytes, pending: _Pending) -> None:
        late = self._late
        late[rid] = pending
        if len(late) > self.rpc_config.late_responses:
            del late[next(iter(late))]

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
        lookup = op.lookup
        if type(response) is Nodes:
            lookup.on_nodes(node_id, self._contacts(response), now)
        elif type(response) is Value:
            if lookup.find_value and immutable_key(response.value) == lookup.target:
                lookup.on_value(node_id, response.value, now)
            else:
                # A value that does not hash to the key is forged (or corrupt):
                # count it against the sender and keep looking (02 §4.2).
                self._drop("forged-value")
                lookup.on_failure(node_id, now)
        else:
            lookup.on_failure(node_id, now)
        self._pump(op, now)

    def _contacts(self, response: Nodes) -> list[Contact]:
        """The usable contacts of a NODES answer; the rest counted."""
        contacts = response.nodes
        k = self.lookup_config.k
        if len(contacts) > k:
            self._drop("nodes-oversized")
        out: list[Contact] = []
        seen: set[bytes] = set()
        for contact in contacts:
            node_id = contact.node_id
            if node_id == self.local_id:
                continue  # ourselves: normal, not an offence
            if node_id in seen:
                self._drop("contact-duplicate")
                continue
            seen.add(node_id)
            address = self._address_for(contact)
            if address is None:
                self._drop("contact-no-usable-address")
                continue
            if not _usable_address(address):
                self._drop("contact-bad-address")
                continue
            out.append(contact)  # already shared: parse_nodes interns
        return out

    # ------------------------------------------------------------ lookups

    def _start(self, target: bytes, kind: str, now: float, *, value: bytes | None = None) -> int:
        handle = self._handle()
        cfg = self.lookup_config
        lookup = Lookup(
            target,
            self.routing.closest(target, cfg.k),
            now=now,
            config=cfg,
            find_value=kind == "get",
            exclude=(self.local_id,),
        )
        op = _LookupOp(handle, kind, lookup, value, now)
        self._ops[handle] = op
        self._lookups += 1
        self._outcomes[3 * LOOKUP_KINDS.index(kind)] += 1
        self._pump(op, now)
        return handle

    def _pump(self, op: _LookupOp, now: float) -> None:
        """Send what the lookup wants sent; finish it when it is done."""
        lookup = op.lookup
        if op.stores_pending >= 0:
            return
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

    def _lookup_done(self, op: _LookupOp, now: float) -> None:
        lookup = op.lookup
        result = lookup.result
        if op.kind != "put":
            value = lookup.value if op.kind == "get" else None
            succeeded = value is not None if op.kind == "get" else bool(result)
            self._finish(op, succeeded, now)
            self._event(
                LookupCompleted(
                    op.handle, op.kind, lookup.target, tuple(result), value, lookup.trace, succeeded
                )
            )
            return
        assert op.value is not None
        key, value = lookup.target, op.value
        op.stores_pending = 0
        k = self.lookup_config.k
        # Among the k closest (and serving): keep a copy ourselves.  Only when
        # the lookup reached someone: with an empty result we know nothing of
        # the network, and a copy nobody else can find is no successful put.
        among_closest = bool(result) and (
            len(result) < k or distance(self.local_id, key) < distance(result[-1].node_id, key)
        )
        if (
            among_closest
            and not self.client_mode
            and self.store.put(key, value, self.local_id, now) in (STORED, REFRESHED)
        ):
            op.stored_at.append(self.local_id)
            self._event(ValueStored(key, len(value), self.local_id))
        ro = self.client_mode
        for contact in result[:k]:
            if self._request(contact, lambda rid: Store(rid, key, value, ro=ro), op.handle, now):
                op.stores_pending += 1
            else:
                op.errors["unreachable"] = op.errors.get("unreachable", 0) + 1
        if op.stores_pending == 0:
            self._put_done(op, now)

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
                code = response.error_code
                reason = code.name.lower().replace("_", "-") if code else "internal"
            op.errors[reason] = op.errors.get(reason, 0) + 1
        op.stores_pending -= 1
        if op.stores_pending == 0:
            self._put_done(op, now)

    def _put_done(self, op: _LookupOp, now: float) -> None:
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

    # ------------------------------------------------------------ routing table

    def _routing_events(self, events: Iterable[RoutingEvent], now: float) -> None:
        routing = self.routing
        for event in events:
            if type(event) is PeerAdded:
                self._event(NodeDiscovered(event.contact))
                self._event(RoutingTableChanged(event.contact, None, len(routing)))
            elif type(event) is PeerRemoved:
                self._event(RoutingTableChanged(None, event.contact, len(routing)))
            elif type(event) is PeerReplaced:
                self._event(NodeDiscovered(event.added))
                self._event(RoutingTableChanged(event.added, event.removed, len(routing)))
            elif type(event) is PingNeeded:
                # Ping-before-evict: op 0 is no operation; the outcome reaches the
                # routing table through the generic response/timeout handling.
                self._request(event.contact, lambda rid: Ping(rid, ro=self.client_mode), 0, now)

    # ------------------------------------------------------------ bookkeeping

    def _drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def _event(self, event: DhtEvent) -> None:
        if len(self._events) >= _MAX_EVENTS:
            del self._events[0]
            self._drop("event-overflow")
        self._events.append(event)

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
            "storage": self.store.stats(),
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
            "drops": dict(self.drops),
        }
