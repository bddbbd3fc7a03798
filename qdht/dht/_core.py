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

import array
import functools
import heapq
import ipaddress
import logging
import os
from collections.abc import Callable, Collection, Hashable, Iterable
from typing import Any, Final

import attrs

from qdht import validators
from qdht.dht._config import LookupConfig, ReputationConfig, RoutingConfig
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
from qdht.dht._lookup import ClusterDetector, Lookup, LookupTrace
from qdht.dht._records import (
    DEFAULT_RECORD_LIMITS,
    OwnerKeyResolver,
    RecordLimits,
    RecordValidator,
    ValidRecord,
    best_of,
    flood_guard,
    make_immutable,
    merge_set,
)
from qdht.dht._recordstore import MemoryRecordStore, RecordStore, encoded_size
from qdht.dht._replication import ReplicationConfig, Replicator
from qdht.dht._reputation import Reputation
from qdht.dht._routing import (
    PeerAdded,
    PeerRemoved,
    PeerReplaced,
    PingNeeded,
    RoutingEvent,
    RoutingTable,
    distance,
)
from qdht.dht._watch import (
    WatchConfig,
    WatchLimits,
    WatchRegistry,
    WatchSubscriptions,
    catch_up,
)
from qdht.errors import ConfigError, DecodeError, LookupFailedError, RecordRejectedError, StoreError
from qdht.ratelimit import TokenBuckets
from qdht.wire import (
    DEFAULT_LIMITS,
    MAX_CACHE_LIFETIME,
    MAX_HAVE,
    MAX_NODES,
    MAX_VALUE_RECORDS,
    NODE_ID_SIZE,
    RECORD_TYPES,
    RESPONSE_TYPES,
    RID_SIZE,
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
    ImmutableRecord,
    Nodes,
    Notified,
    Notify,
    Ping,
    Pong,
    SetEntry,
    Store,
    Stored,
    Value,
    Watch,
    Watching,
    decode_object,
    encode,
    encode_nodes,
    intern_contact,
    loads_canonical,
    parse_nodes,
)

__all__ = [
    "STORE_ERROR_CODES",
    "DhtCore",
    "Outgoing",
    "RecordConfig",
    "RpcConfig",
    "intern_contact",
]

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


@attrs.frozen
class RpcConfig:
    """Limits of RPC handling in :class:`DhtCore` (every one bounds memory or work)."""

    #: Requests this node keeps outstanding at once; more fail at once ("pending-full").
    max_pending: int = attrs.field(default=4096, validator=validators.positive)
    #: Lookups (find_node, get, put, refresh) running at once.
    max_lookups: int = attrs.field(default=256, validator=validators.positive)
    #: Requests per second accepted from one peer (token bucket rate) ...
    rate_limit: float = attrs.field(default=50.0, validator=validators.positive)
    #: ... and the bucket's size: the burst a peer may send at once.
    rate_burst: int = attrs.field(default=200, validator=validators.positive)
    #: Peers whose token buckets are remembered (least recently seen forgotten).
    rate_limit_peers: int = attrs.field(default=4096, validator=validators.positive)
    #: Requests per second accepted from one source IP address, whatever node
    #: IDs it uses (several nodes behind one NAT share it) ...
    rate_limit_per_address: float = attrs.field(default=200.0, validator=validators.positive)
    #: ... and that bucket's burst.
    rate_burst_per_address: int = attrs.field(default=400, validator=validators.positive)
    #: Requests per second accepted from everyone together: a cap on the CPU that
    #: serving others may take, reached only by many identities at once ...
    rate_limit_global: float = attrs.field(default=2000.0, validator=validators.positive)
    #: ... and its burst.
    rate_burst_global: int = attrs.field(default=4000, validator=validators.positive)
    #: Timed-out requests remembered so that a late answer still counts as a sign
    #: of life (the routing table and the lookup use it).
    late_responses: int = attrs.field(default=1024, validator=validators.positive)
    #: Bucket-refresh lookups started per timer tick (the rest wait an interval).
    max_refresh_lookups: int = attrs.field(default=4, validator=validators.positive)
    #: A request to a peer without a session yet waits this many times the
    #: peer's usual timeout (at most ``RoutingConfig.max_timeout``): the
    #: handshake's two round trips (~7 KB in fragments) come first.  Scaled,
    #: not fixed, so that a dead contact costs a lookup little on a fast network.
    first_contact_factor: float = attrs.field(default=3.0, validator=validators.positive)
    #: A bulk request waits this many times the peer's usual timeout (at most
    #: ``RoutingConfig.max_timeout``): a STORE carries up to 72 KB in dozens of
    #: fragments, and the holder verifies an ML-DSA signature before it
    #: answers; a page of a set (FIND_VALUE with ``have``) is answered with up
    #: to 72 KB.  The RTT samples come mostly from small requests.
    bulk_timeout_factor: float = attrs.field(default=3.0, validator=validators.positive)
    #: User lookups (duration, hops, RPCs) kept for the percentiles of ``stats()``
    #: (12 bytes each, allocated as lookups complete).
    latency_samples: int = attrs.field(default=512, validator=validators.positive)


@attrs.frozen
class RecordConfig:
    """How :class:`DhtCore` stores, serves, gets and puts records (07-records.md)."""

    #: A get of a mutable key or a set stops once this many holders answered with
    #: valid records (or when the lookup converged on the k closest that
    #: answered, if fewer hold it).  Any one holder with the newest version is
    #: enough for it to win (07-records.md §7.3); more holders cost RPCs and
    #: find more stale holders to correct.  5 suits a phone.
    get_quorum: int = attrs.field(default=5, validator=validators.positive_int)
    #: Lifetime of an immutable record made by :meth:`DhtCore.start_put` (24 h).
    immutable_ttl: int = attrs.field(default=86_400, validator=validators.positive_int)
    #: STOREs accepted per second from one source address (07-records.md §6.3) ...
    store_rate: float = attrs.field(default=10.0, validator=validators.positive)
    #: ... in bursts of at most this many ...
    store_burst: int = attrs.field(default=50, validator=validators.positive_int)
    #: ... for at most this many source addresses remembered.
    store_sources: int = attrs.field(default=10_000, validator=validators.positive_int)
    #: STOREs accepted per second from all sources together (each may cost an
    #: ML-DSA verification, ~0.2 ms, and a write) ...
    store_rate_global: float = attrs.field(default=500.0, validator=validators.positive)
    #: ... in bursts of at most this many.
    store_burst_global: int = attrs.field(default=1000, validator=validators.positive_int)
    #: Signature verdicts remembered (07-records.md §6.2), shared by STORE,
    #: FIND_VALUE answers and gets.
    verdict_cache: int = attrs.field(default=4096, validator=validators.positive_int)
    #: Seconds between sweeps that delete expired records from the store (an
    #: expired record is never served in between: every answer is re-validated).
    expire_interval: float = attrs.field(default=60.0, validator=validators.positive)
    #: Entry-correction STOREs one get may send (07-records.md §7.3).
    max_corrections: int = attrs.field(default=32, validator=validators.positive_int)
    #: Further pages a get asks of one holder of a set whose answer said
    #: ``more`` (02-dht-rpc.md §4.2); 0 reads one answer per holder.  4 reads
    #: the default 32-entry set even when only 7 entries fit an answer.
    max_set_pages: int = attrs.field(default=4, validator=validators.non_negative_int)


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


class DhtCore:
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

    # Slotted: thousands of cores share one simulation process.
    __slots__ = (
        "_deadlines",
        "_error_answers",
        "_events",
        "_flood",
        "_flood_global",
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
        "_requests_by_address",
        "_requests_global",
        "_rng",
        "_rpcs",
        "_sample_at",
        "_sweep_at",
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
        self._sweep_at: float | None = None
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
        self._next_handle = 1
        self._out: list[Outgoing] = []
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
        """When :meth:`handle_timer` must next run (None: nothing scheduled).

        The minimum of the three parts' timers, which a node runs as three
        services (:mod:`qdht.dht._services`): requests and lookups
        (:meth:`rpc_timer`), watching (:meth:`watch_timer`) and replication
        (:meth:`replication_timer`).
        """
        when = [
            t
            for t in (self.rpc_timer(), self.watch_timer(), self.replication_timer())
            if t is not None
        ]
        return min(when) if when else None

    def handle_timer(self, now: float) -> None:
        """Everything due: :meth:`handle_rpc_timer`, :meth:`handle_watch_timer`,
        :meth:`handle_replication_timer`."""
        self.handle_rpc_timer(now)
        self.handle_watch_timer(now)
        self.handle_replication_timer(now)

    def rpc_timer(self) -> float | None:
        """When requests time out, slow lookups move on, buckets refresh, records expire."""
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
        if self._sweep_at is not None:
            when.append(self._sweep_at)
        return min(when)

    def watch_timer(self) -> float | None:
        """When a subscription (holder side) or a watch round (watcher side) is due."""
        when = [t for t in (self.watches.get_timer(), self.watching.get_timer()) if t is not None]
        return min(when) if when else None

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
        if now >= self.routing.next_refresh_time():
            targets = self.routing.buckets_needing_refresh(now)
            if len(self.routing):
                budget = self.rpc_config.max_refresh_lookups
                for target in targets[:budget]:
                    if self._lookups >= self.rpc_config.max_lookups:
                        break
                    self._start(target, "refresh", now)
        if self._sweep_at is not None and now >= self._sweep_at:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Delete expired records; sweep again later while any are held."""
        try:
            self.records.delete_expired(self.unix_time(now))
        except StoreError as exc:
            self._drop("store-error")
            logger.warning("record store: cannot delete expired records: %s", exc)
        self._sweep_at = now + self.record_config.expire_interval if len(self.records) else None

    def _schedule_sweep(self, now: float) -> None:
        if self._sweep_at is None:
            self._sweep_at = now + self.record_config.expire_interval
            if self._sweep_at < self._new_deadline:
                self._new_deadline = self._sweep_at

    def unix_time(self, now: float) -> float:
        """The Unix time at the core's ``now``: ``now + unix_offset``."""
        return now + self.unix_offset

    # ------------------------------------------------------------ starting work

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
        it is among them), each carrying ``pk`` (so no holder answers
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
        if type(message) is Watch or type(message) is Notify:
            self._on_watch_message(node_id, addr, message, now, early)
        elif isinstance(message, _REQUESTS):
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
                valid, source=_source_key(addr), cached=cached, now=unix, cas=request.cas
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
        self._reply(node_id, addr, Stored(request.rid))
        if not cached:
            self.replication.on_store_received(valid.key, now)
        if decision.accepted:
            self._schedule_sweep(now)
            self._watch_changed(valid, now)
            self._event(ValueStored(valid.key, len(valid.value or b""), node_id, valid))

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
                contact = Contact(node_id, (addr,))
            elif addr.transport == "ws" and ws_port is not None:
                contact = Contact(node_id, (Address("ws", addr.host, ws_port),))
        if contact is not None:
            contact = intern_contact(contact)
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
        cfg = self.lookup_config
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

        for contact in result[:k]:
            if self._request(contact, make, op.handle, now):
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

    # ------------------------------------------------------------ watching (08-watch.md)

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

    # ------------------------------------------------------------ replication (07-records.md §10)

    def republish_now(self, now: float) -> None:
        """Republish every stored record now (07-records.md §10.4), not waiting for
        the next round: for a node back from a restart or a suspension."""
        if not self.client_mode:
            self.replication.start_round(now)
            self.handle_replication_timer(now)

    def _handoff(self, contact: Contact, now: float) -> None:
        """A peer entered the table: hand it the records it should now hold (§10.3)."""
        if self.client_mode:
            return
        self.replication.on_peer_added(contact, now)
        self._replication_stores(now)

    def handle_replication_timer(self, now: float) -> None:
        """Start the republish round's region lookups (§10.4) and send paced STOREs."""
        if self.client_mode:
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
        for contact, key in self.replication.stores_due(now):
            for held in self._servable(key, unix):
                make = functools.partial(_replica_store, key, held.record, ro)
                # Op 0: fire and forget; a refusal (stale, full) changes nothing here.
                self._request(contact, make, 0, now)

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

    def _cache_copy(self, valid: ValidRecord, lifetime: int | None, unix: float) -> ValidRecord:
        """The copy a path-cache STORE keeps: an immutable record's (unsigned) ``exp``
        cut to the lifetime asked for; a signed record as is (§10.6)."""
        record = valid.record
        if lifetime is None or not isinstance(record, ImmutableRecord):
            return valid
        expires = min(record.expires, int(unix) + lifetime)
        if expires == record.expires:
            return valid
        return ValidRecord(attrs.evolve(record, expires=expires), valid.key, valid.digest)

    # ------------------------------------------------------------ routing table

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

    # ------------------------------------------------------------ bookkeeping

    def _drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def _offence(self, node_id: bytes, kind: str, now: float) -> None:
        """Hold ``kind`` against ``node_id``; a peer that is now banned leaves the table."""
        if self.reputation.offence(node_id, kind, now):
            self._routing_events(self.routing.remove(node_id, now), now)

    def _priority(self, now: float, node_id: bytes) -> float | None:
        """A lookup's view of a peer: None if banned, else its reputation score."""
        reputation = self.reputation
        if reputation.banned(node_id, now):
            return None
        return reputation.score(node_id, now)

    def _event(self, event: DhtEvent) -> None:
        if len(self._events) >= _MAX_EVENTS:
            del self._events[0]
            self._drop("event-overflow")
        self._events.append(event)

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
