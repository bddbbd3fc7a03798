"""The DHT core's state and what every section of it shares.

:class:`~qdht.dht.DhtCore` is one class split by section over several
modules, each a class in one chain: :class:`_CoreBase` (here: state,
output, bookkeeping) ← :class:`~qdht.dht._serving._Serving` (requests in)
← :class:`~qdht.dht._requests._Requests` (requests out, answers) ←
:class:`~qdht.dht._lookups._Lookups` (operations) ←
:class:`~qdht.dht._watch_rpc._WatchRpc` (watching) ← ``DhtCore`` (input,
timers, replication, routing events, statistics).  A section that calls
into a later one goes through the hooks declared at the end of
:class:`_CoreBase`; each names the module that implements it.
"""

from __future__ import annotations

import array
import functools
import ipaddress
import logging
import math
import os
from collections.abc import Callable, Collection, Hashable, Iterable
from typing import Final

from qdht.dht._config import LookupConfig, RecordConfig, ReputationConfig, RoutingConfig, RpcConfig
from qdht.dht._events import (
    DhtEvent,
)
from qdht.dht._lookup import ClusterDetector, Lookup, LookupTrace
from qdht.dht._records import (
    DEFAULT_RECORD_LIMITS,
    OwnerKeyResolver,
    RecordLimits,
    RecordValidator,
    ValidRecord,
    flood_guard,
)
from qdht.dht._recordstore import MemoryRecordStore, RecordStore
from qdht.dht._replication import ReplicationConfig, Replicator
from qdht.dht._reputation import Reputation
from qdht.dht._routing import (
    RoutingEvent,
    RoutingTable,
)
from qdht.dht._watch import WatchLimits, WatchRegistry
from qdht.dht._watcher import WatchConfig, WatchSubscriptions
from qdht.errors import ConfigError, StoreError
from qdht.ratelimit import TokenBuckets
from qdht.wire import (
    DEFAULT_LIMITS,
    NODE_ID_SIZE,
    RECORD_TYPES,
    RESPONSE_TYPES,
    WATCH_RESPONSE_TYPES,
    Address,
    AnyRecord,
    Contact,
    DhtRequest,
    DhtResponse,
    ErrorCode,
    ErrorMessage,
    FindNode,
    FindValue,
    Nodes,
    Notified,
    Notify,
    Ping,
    Pong,
    Store,
    Stored,
    Value,
    Watch,
    Watching,
)

__all__ = ["LOOKUP_KINDS", "STORE_ERROR_CODES", "USER_KINDS", "Outgoing"]


logger = logging.getLogger(__name__)


#: What the core asks the driver to deliver: (peer node ID, address, payload).
Outgoing = tuple[bytes, Hashable, bytes]


_REQUESTS: Final = (Ping, FindNode, FindValue, Store)


_RESPONSES: Final = (Pong, Nodes, Value, Stored, ErrorMessage)


# Watching keys (08-watch.md): two more requests and their responses.
_WATCH_TYPES: Final = (Watch, Notify, Watching, Notified)


_DHT_TYPES: Final = _REQUESTS + _RESPONSES + _WATCH_TYPES


_RESPONSE_NAMES: Final = frozenset(cls.TYPE for cls in (*_RESPONSES, Watching, Notified))


_RESPONSE_TYPES: Final[dict[type, tuple[type, ...]]] = {
    **RESPONSE_TYPES,
    **WATCH_RESPONSE_TYPES,
}


#: Events buffered in the core before the oldest are dropped (the driver drains
#: them after every call, so this only bounds a driver that stopped reading).
_MAX_EVENTS: Final = 4096


def _usable_address(address: Address) -> bool:
    """An address a contact may name: a unicast host, not 0.0.0.0 or multicast."""
    return _usable_host(address.host)


@functools.lru_cache(maxsize=4096)
def _usable_host(host: str) -> bool:
    # Cached: contacts repeat, and parsing an IP literal costs microseconds.
    ip = ipaddress.ip_address(host)
    return not (ip.is_unspecified or ip.is_multicast or ip == _BROADCAST)


_BROADCAST: Final = ipaddress.IPv4Address("255.255.255.255")


#: The ``error`` code a refused STORE is answered with, by refusal reason
#: (02-dht-rpc.md §4.3).
STORE_ERROR_CODES: Final[dict[str, ErrorCode]] = {
    "flood": ErrorCode.RATE_LIMITED,
    "too-large": ErrorCode.TOO_LARGE,
    "key-mismatch": ErrorCode.INVALID_VALUE,
    "expired": ErrorCode.INVALID_VALUE,
    "expiry-too-far": ErrorCode.INVALID_VALUE,
    "owner-mismatch": ErrorCode.INVALID_VALUE,
    "bad-signature": ErrorCode.INVALID_VALUE,
    "kind-mismatch": ErrorCode.INVALID_VALUE,
    "owner-key-unknown": ErrorCode.OWNER_KEY_UNKNOWN,
    "seq-regression": ErrorCode.STALE,
    "seq-conflict": ErrorCode.STALE,
    "write-once": ErrorCode.STALE,
    "cas-mismatch": ErrorCode.CAS_MISMATCH,
    "set-full": ErrorCode.STORAGE_FULL,
    "quota-total": ErrorCode.STORAGE_FULL,
    "quota-publisher": ErrorCode.STORAGE_FULL,
    "quota-source": ErrorCode.STORAGE_FULL,
    "quota-cache": ErrorCode.STORAGE_FULL,
}


#: What a ``value`` answer may spend on set entries: max_bytes less the map's
#: own fields (type, rid, the records key and array header: under 40 bytes).
_SET_ANSWER_BUDGET: Final = DEFAULT_LIMITS.max_bytes - 64


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name.lower().replace("_", "-")
    except ValueError:
        return "internal"  # an unassigned code counts as internal (02 §5)


def _source_key(addr: Hashable) -> Hashable:
    """Whom the STORE flood bound and the per-source quota count a STORE against.

    The source IP address (07-records.md §6.3): node IDs cost only a puzzle,
    ports nothing.  Loopback sources are told apart by port as well, so that
    many nodes on one host (tests, benchmarks, a local network) are not one
    source.
    """
    if type(addr) is Address:
        if _is_loopback(addr.host):
            return f"{addr.host}:{addr.port}"
        return addr.host
    return addr


@functools.lru_cache(maxsize=4096)
def _is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


def _number(name: str, value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        raise ConfigError(f"{name} must be a number, got {value!r}")
    return float(value)


def _check_record(record: object) -> None:
    if not isinstance(record, RECORD_TYPES):
        raise ConfigError(f"record must be a record object, got {type(record).__name__}")


def _replica_store(key: bytes, record: AnyRecord, ro: bool, rid: bytes) -> DhtRequest:
    """A replication STORE (07-records.md §10.1): never with ``cas``."""
    return Store(rid, key, record, ro=ro)


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


class _WatchOp:
    """A WATCH (``kind`` "watch" or "unwatch") or NOTIFY ("notify") this node sent."""

    __slots__ = ("handle", "key", "kind")

    def __init__(self, handle: int, key: bytes, kind: str) -> None:
        self.handle = handle
        self.key = key
        self.kind = kind


class _LookupOp:
    __slots__ = (
        "answers",
        "cas",
        "contacts",
        "errors",
        "handle",
        "holders",
        "kind",
        "lookup",
        "lookup_over",
        "page_queue",
        "pager",
        "pages",
        "paging",
        "partial",
        "record",
        "set_answers",
        "started",
        "stored_at",
        "stores_pending",
        "union_paged",
    )

    def __init__(
        self,
        handle: int,
        kind: str,
        lookup: Lookup,
        record: ValidRecord | None,
        started: float,
        cas: int | None = None,
    ) -> None:
        self.handle = handle
        self.started = started
        self.kind = kind
        self.lookup = lookup
        #: put: the record to store; get: the immutable record found.
        self.record = record
        self.cas = cas
        self.stores_pending = -1  # -1: still looking up; then STOREs outstanding
        self.stored_at: list[bytes] = []
        self.errors: dict[str, int] = {}
        # get of a mutable key: (holder, its valid record), in order of arrival.
        self.answers: list[tuple[bytes, ValidRecord]] = []
        # get of a set: each holder's valid entries, over all its pages ...
        self.set_answers: dict[bytes, list[ValidRecord]] = {}
        # ... the holders that may hold entries they did not send (07 §7.3) ...
        self.partial: set[bytes] = set()
        # ... pages asked of each holder, and the holders with a page outstanding.
        self.pages: dict[bytes, int] = {}
        self.paging: set[bytes] = set()
        # Paging (02-dht-rpc.md §4.2): the first holder that said more is read
        # in full (``pager``: b"" before, None once done); holders that said
        # more meanwhile wait in ``page_queue``, and are then asked only for
        # entries of owners nobody sent (``union_paged``).
        self.pager: bytes | None = b""
        self.page_queue: list[Contact] = []
        self.union_paged: set[bytes] = set()
        # get: the lookup has ended; the get waits for its pages (``paging``).
        self.lookup_over = False
        # Remote holders that answered with at least one valid record.
        self.holders = 0
        # The contacts of the holders that answered (for entry corrections).
        self.contacts: dict[bytes, Contact] = {}


#: Lookup kinds whose outcome counts in ``stats()["lookups"]`` (user operations).
USER_KINDS: Final = ("find_node", "get", "put")


LOOKUP_KINDS: Final = (*USER_KINDS, "bootstrap", "refresh", "watch", "republish")


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class _CoreBase:
    """The state of :class:`~qdht.dht.DhtCore` and the helpers every section uses."""

    # Slotted: thousands of cores share one simulation process.
    __slots__ = (
        "_deadlines",
        "_error_answers",
        "_events",
        "_flood",
        "_flood_global",
        "_held_answers",
        "_hops",
        "_late",
        "_latency",
        "_lookups",
        "_new_deadline",
        "_next_handle",
        "_objects",
        "_ops",
        "_out",
        "_outcomes",
        "_own_stores",
        "_pending",
        "_put_holders",
        "_refresh_deferred",
        "_requests",
        "_requests_by_address",
        "_requests_global",
        "_rng",
        "_rpcs",
        "_sample_at",
        "_stale_own",
        "_sweep_at",
        "_used_since_refresh",
        "bytes_received",
        "bytes_sent",
        "client_mode",
        "clusters",
        "corrections_sent",
        "drops",
        "errors_sent",
        "last_trace",
        "late_responses",
        "local_id",
        "lookup_config",
        "received",
        "record_config",
        "record_limits",
        "records",
        "replication",
        "reputation",
        "routing",
        "rpc_config",
        "sent",
        "session_established",
        "transports",
        "unix_offset",
        "validator",
        "watches",
        "watching",
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
        records: RecordStore | None = None,
        record_limits: RecordLimits | None = None,
        record_config: RecordConfig | None = None,
        unix_offset: float = 0.0,
        resolve_owner: OwnerKeyResolver | None = None,
        client_mode: bool = False,
        transports: Collection[str] = ("udp", "ws"),
        ws_port: int | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        reputation: ReputationConfig | None = None,
        watch_config: WatchConfig | None = None,
        watch_limits: WatchLimits | None = None,
        replication: ReplicationConfig | None = None,
    ) -> None:
        if type(local_id) is not bytes or len(local_id) != NODE_ID_SIZE:
            raise ConfigError(f"local_id must be {NODE_ID_SIZE} bytes")
        self.local_id = local_id
        self.routing = RoutingTable(local_id, now=now, config=routing, rng=rng)
        self.lookup_config = lookup if lookup is not None else LookupConfig()
        if self.lookup_config.k != self.routing.config.k:
            raise ConfigError(
                f"lookup.k ({self.lookup_config.k}) and routing.k ({self.routing.config.k}) "
                "differ: a node has one k (qdht.Config(k=...))"
            )
        # Defences (issue 6): peers' reputation, ID clustering near lookup targets.
        self.reputation = Reputation(reputation)
        self.routing.score = self.reputation.score
        self.routing.any_below = self.reputation.any_below
        self.clusters = ClusterDetector(self.lookup_config)
        self.rpc_config = rpc if rpc is not None else RpcConfig()
        limits = record_limits if record_limits is not None else DEFAULT_RECORD_LIMITS
        if not isinstance(limits, RecordLimits):
            raise ConfigError(f"record_limits must be a RecordLimits, got {type(limits).__name__}")
        self.record_limits = limits
        self.record_config = rcfg = record_config if record_config is not None else RecordConfig()
        if not isinstance(rcfg, RecordConfig):
            raise ConfigError(f"record_config must be a RecordConfig, got {type(rcfg).__name__}")
        #: Unix time = ``now + unix_offset`` (record expiry times are Unix seconds).
        self.unix_offset = _number("unix_offset", unix_offset)
        #: The records this node holds (07-records.md §7).
        self.records: RecordStore = (
            records if records is not None else MemoryRecordStore(record_limits=limits)
        )
        #: Validates every record stored, served and received (one verdict cache).
        self.validator = RecordValidator(
            limits, cache_size=rcfg.verdict_cache, resolve_owner=resolve_owner
        )
        self._flood: TokenBuckets[Hashable] = flood_guard(
            rate=rcfg.store_rate, burst=rcfg.store_burst, max_sources=rcfg.store_sources
        )
        self._flood_global: TokenBuckets[None] = flood_guard(
            rate=rcfg.store_rate_global, burst=rcfg.store_burst_global, max_sources=1
        )
        #: When expired records are next deleted (None: nothing held).  A store
        #: loaded from disk holds records from the start.
        self._sweep_at: float | None = self._next_sweep(now) if len(self.records) else None
        #: Holder side of watching (08-watch.md): who watches which key here.
        self.watches = WatchRegistry(watch_limits, unix_offset=self.unix_offset)
        #: Watcher side: the keys this node watches, and where.
        self.watching = WatchSubscriptions(watch_config, unix_offset=self.unix_offset)
        self.corrections_sent = 0
        #: Handoff, republish rounds and path caching (07-records.md §10).
        self.replication = Replicator(
            local_id,
            routing=self.routing,
            store=self.records,
            k=self.lookup_config.k,
            now=now,
            config=replication,
            rng=rng,
        )
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
        self._ops: dict[int, _RequestOp | _LookupOp | _WatchOp] = {}
        self._lookups = 0
        # Client mode: bucket refresh waits while the app makes no lookups
        # (an idle phone sends nothing); the next lookup brings it back.
        self._used_since_refresh = False
        self._refresh_deferred = False
        self._next_handle = 1
        self._out: list[Outgoing] = []
        #: Messages as objects, not encoded (None: encode, the usual; pass_objects).
        self._objects: list[tuple[bytes, Hashable, DhtRequest | DhtResponse]] | None = None
        #: STORED answers waiting for the record store to save their change:
        #: (ticket, peer, address, answer), in ticket order.
        self._held_answers: list[tuple[int, bytes, Hashable, DhtResponse]] = []
        self._events: list[DhtEvent] = []
        cfg = self.rpc_config
        self._requests: TokenBuckets[bytes] = TokenBuckets(
            rate=cfg.rate_limit, burst=cfg.rate_burst, max_keys=cfg.rate_limit_peers
        )
        self._requests_by_address: TokenBuckets[Hashable] = TokenBuckets(
            rate=cfg.rate_limit_per_address,
            burst=cfg.rate_burst_per_address,
            max_keys=cfg.rate_limit_peers,
        )
        self._requests_global: TokenBuckets[None] = TokenBuckets(
            rate=cfg.rate_limit_global, burst=cfg.rate_burst_global, max_keys=1
        )
        # A refused peer is told so at most once a second; the rest is dropped.
        self._error_answers: TokenBuckets[bytes] = TokenBuckets(
            rate=1.0, burst=1, max_keys=cfg.rate_limit_peers
        )
        self._new_deadline = float("inf")
        # Republish STOREs of this node's own records: rid -> key; and the keys
        # a holder refused as stale (07 §10.2), both bounded by max_pending.
        self._own_stores: dict[bytes, bytes] = {}
        self._stale_own: dict[bytes, None] = {}
        # Key -> the contacts that stored this node's last put of it (a new
        # version goes there too, 07 §10.2); None until the first such put.
        self._put_holders: dict[bytes, tuple[Contact, ...]] | None = None
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

    def messages_to_send(self) -> list[Outgoing]:
        """Every message ready to go, oldest first: ``(node_id, address, payload)``."""
        out = self._out
        self._out = []
        return out

    def pass_objects(self) -> None:
        """From now on, hand messages out as their attrs objects, unencoded
        (:meth:`objects_to_send`), instead of payloads (:meth:`messages_to_send`).

        For a simulator of many cores in one process, whose receivers take them
        with :meth:`~qdht.dht.DhtCore.receive_object`: it measures the DHT, not
        the CBOR codec, which has its own benchmarks.  A node never does this.
        """
        if self._objects is None:
            self._objects = []

    def objects_to_send(self) -> list[tuple[bytes, Hashable, DhtRequest | DhtResponse]]:
        """Every message ready to go as ``(node_id, address, message)``, oldest
        first (with :meth:`pass_objects` on; empty otherwise)."""
        out = self._objects
        if not out:
            return []
        self._objects = []
        return out

    def next_event(self) -> DhtEvent | None:
        """The oldest unreported event, or None."""
        return self._events.pop(0) if self._events else None

    @property
    def new_deadline(self) -> float:
        """The earliest deadline created since the last :meth:`get_timer` (inf: none)."""
        return self._new_deadline

    def _sweep(self, now: float) -> None:
        """Delete expired records; sweep again later while any are held."""
        try:
            self.records.delete_expired(self.unix_time(now))
        except StoreError as exc:
            self._drop("store-error")
            logger.warning("record store: cannot delete expired records: %s", exc)
        self._sweep_at = self._next_sweep(now) if len(self.records) else None

    def _next_sweep(self, now: float) -> float | None:
        """When the earliest held entry expires (by the store's lower bound), but
        not sooner than ``expire_interval`` from ``now`` (expiries batch).

        Not a poll every ``expire_interval``: a holder whose records live for
        days would wake every minute for nothing (measured: 2,000 holders of
        records in a simulation swept 120,000 times an hour, deleting nothing,
        a seventh of the CPU; a phone woken every minute).  An expired entry
        is never served in between: every answer is re-validated.
        """
        due = self.records.next_expiry() - self.unix_offset
        if due == math.inf:
            return None
        return max(now + self.record_config.expire_interval, due)

    def _schedule_sweep(self, now: float) -> None:
        """An entry was added: sweep by its expiry if that comes before the next sweep."""
        at = self._next_sweep(now)
        if at is not None and (self._sweep_at is None or at < self._sweep_at):
            self._sweep_at = at
            if at < self._new_deadline:
                self._new_deadline = at

    def unix_time(self, now: float) -> float:
        """The Unix time at the core's ``now``: ``now + unix_offset``."""
        return now + self.unix_offset

    def _drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def _offence(self, node_id: bytes, kind: str, now: float) -> None:
        """Hold ``kind`` against ``node_id``; a peer that is now banned leaves the table."""
        if self.reputation.offence(node_id, kind, now):
            self._routing_events(self.routing.remove(node_id, now), now)

    def _priority(self, now: float, node_id: bytes) -> float | None:
        """A lookup's view of a peer: None if banned, else its reputation score."""
        return self.reputation.priority(node_id, now)

    def _event(self, event: DhtEvent) -> None:
        if len(self._events) >= _MAX_EVENTS:
            del self._events[0]
            self._drop("event-overflow")
        self._events.append(event)

    # ------------------------------------------------------------ hooks of later sections

    def _get_done(self, op: _LookupOp, now: float) -> None:
        raise NotImplementedError  # lookups: _lookups.py

    def _lookup_done(self, op: _LookupOp, now: float) -> None:
        raise NotImplementedError  # lookups: _lookups.py

    def _path_cache(self, op: _LookupOp, record: ValidRecord, now: float) -> None:
        raise NotImplementedError  # core: _core.py

    def _pump(self, op: _LookupOp, now: float) -> None:
        raise NotImplementedError  # lookups: _lookups.py

    def _request_done(
        self,
        pending: _Pending,
        response: DhtResponse | None,
        now: float,
        *,
        reason: str = "error",
    ) -> None:
        raise NotImplementedError  # requests: _requests.py

    def _routing_events(self, events: Iterable[RoutingEvent], now: float) -> None:
        raise NotImplementedError  # core: _core.py

    def _store_done(
        self,
        op: _LookupOp,
        node_id: bytes,
        response: DhtResponse | None,
        reason: str,
        now: float,
    ) -> None:
        raise NotImplementedError  # lookups: _lookups.py

    def _watch_changed(self, record: ValidRecord, now: float) -> None:
        raise NotImplementedError  # watch: _watch_rpc.py

    def _watch_lookup_done(self, op: _LookupOp, now: float) -> None:
        raise NotImplementedError  # watch: _watch_rpc.py

    def _watch_request_done(
        self, op: _WatchOp, pending: _Pending, response: object, reason: str, now: float
    ) -> None:
        raise NotImplementedError  # watch: _watch_rpc.py

    def handle_replication_timer(self, now: float) -> None:
        raise NotImplementedError  # core: _core.py
