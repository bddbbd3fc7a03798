"""The DHT layer: routing table, lookups, RPC core, records and their store (sans-IO cores).

``RoutingTable`` and ``Lookup`` never send anything and never read a clock;
the node composes them with RPCs over authenticated sessions.
"""

from typing import TYPE_CHECKING

from qdht._lazy import lazy_exports
from qdht.dht._bootstrap import (
    DEFAULT_LIST_LIFETIME,
    MAX_LIST_LIFETIME,
    sign_contact_list,
    verify_contact_list,
)
from qdht.dht._config import LookupConfig, RecordConfig, ReputationConfig, RoutingConfig, RpcConfig
from qdht.dht._core import DhtCore
from qdht.dht._corebase import LOOKUP_KINDS, STORE_ERROR_CODES, USER_KINDS, Outgoing
from qdht.dht._events import (
    DhtEvent,
    LookupCompleted,
    NodeDiscovered,
    NodeEvent,
    PutCompleted,
    RequestCompleted,
    RequestFailed,
    RoutingTableChanged,
    ValueStored,
    WatchUpdate,
)
from qdht.dht._lookup import ClusterDetector, Lookup, LookupTrace, PathTrace, QueriedPeer
from qdht.dht._records import (
    DEFAULT_RECORD_LIMITS,
    REJECT_REASONS,
    WRITE_ONCE_PREFIX,
    BestOf,
    Decision,
    Outcome,
    OwnerKeyResolver,
    RecordLimits,
    RecordValidator,
    SetMerge,
    ValidRecord,
    accept,
    accept_set_entry,
    best_of,
    flood_guard,
    make_immutable,
    merge_set,
    sign_mutable,
    sign_set_entry,
    sign_tombstone,
    validate_record,
    write_once,
)
from qdht.dht._recordstore import (
    DEFAULT_STORE_LIMITS,
    QUOTA_REASONS,
    MemoryRecordStore,
    RecordStore,
    StoreLimits,
    encoded_size,
    source_label,
)
from qdht.dht._replication import (
    RegionLookup,
    ReplicationConfig,
    Replicator,
    cache_lifetime,
    region_of,
)
from qdht.dht._reputation import OFFENCES, Reputation
from qdht.dht._routing import (
    ID_BITS,
    PeerAdded,
    PeerRemoved,
    PeerReplaced,
    PingNeeded,
    RoutingEvent,
    RoutingTable,
    bucket_index,
    distance,
)
from qdht.dht._rtt import rtt_sample, timeout_from
from qdht.dht._services import RPC_TYPES, WATCH_TYPES, ReplicationPart, RpcPart, WatchPart
from qdht.dht._watch import Subscribed, WatchLimits, WatchRegistry, catch_up, record_slot
from qdht.dht._watcher import (
    MAX_EXCLUDED,
    NotifyResult,
    RoundPlan,
    WatchConfig,
    WatchSubscriptions,
)

# The SQLite store (and sqlite3) is imported on first use: only a node with a
# data directory needs it (issue 19, a phone's memory).
if TYPE_CHECKING:
    from qdht.dht._sqlitestore import MIGRATIONS, SCHEMA_VERSION, SqliteRecordStore
else:
    __getattr__ = lazy_exports(
        globals(),
        dict.fromkeys(
            ["MIGRATIONS", "SCHEMA_VERSION", "SqliteRecordStore"], "qdht.dht._sqlitestore"
        ),
    )

__all__ = [
    "DEFAULT_LIST_LIFETIME",
    "DEFAULT_RECORD_LIMITS",
    "DEFAULT_STORE_LIMITS",
    "ID_BITS",
    "LOOKUP_KINDS",
    "MAX_EXCLUDED",
    "MAX_LIST_LIFETIME",
    "MIGRATIONS",
    "OFFENCES",
    "QUOTA_REASONS",
    "REJECT_REASONS",
    "RPC_TYPES",
    "SCHEMA_VERSION",
    "STORE_ERROR_CODES",
    "USER_KINDS",
    "WATCH_TYPES",
    "WRITE_ONCE_PREFIX",
    "BestOf",
    "ClusterDetector",
    "Decision",
    "DhtCore",
    "DhtEvent",
    "Lookup",
    "LookupCompleted",
    "LookupConfig",
    "LookupTrace",
    "MemoryRecordStore",
    "NodeDiscovered",
    "NodeEvent",
    "NotifyResult",
    "Outcome",
    "Outgoing",
    "OwnerKeyResolver",
    "PathTrace",
    "PeerAdded",
    "PeerRemoved",
    "PeerReplaced",
    "PingNeeded",
    "PutCompleted",
    "QueriedPeer",
    "RecordConfig",
    "RecordLimits",
    "RecordStore",
    "RecordValidator",
    "RegionLookup",
    "ReplicationConfig",
    "ReplicationPart",
    "Replicator",
    "Reputation",
    "ReputationConfig",
    "RequestCompleted",
    "RequestFailed",
    "RoundPlan",
    "RoutingConfig",
    "RoutingEvent",
    "RoutingTable",
    "RoutingTableChanged",
    "RpcConfig",
    "RpcPart",
    "SetMerge",
    "SqliteRecordStore",
    "StoreLimits",
    "Subscribed",
    "ValidRecord",
    "ValueStored",
    "WatchConfig",
    "WatchLimits",
    "WatchPart",
    "WatchRegistry",
    "WatchSubscriptions",
    "WatchUpdate",
    "accept",
    "accept_set_entry",
    "best_of",
    "bucket_index",
    "cache_lifetime",
    "catch_up",
    "distance",
    "encoded_size",
    "flood_guard",
    "make_immutable",
    "merge_set",
    "record_slot",
    "region_of",
    "rtt_sample",
    "sign_contact_list",
    "sign_mutable",
    "sign_set_entry",
    "sign_tombstone",
    "source_label",
    "timeout_from",
    "validate_record",
    "verify_contact_list",
    "write_once",
]
