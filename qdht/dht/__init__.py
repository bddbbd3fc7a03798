"""The DHT layer: routing table, lookups, RPC core, records and their store (sans-IO cores).

``RoutingTable`` and ``Lookup`` never send anything and never read a clock;
the node composes them with RPCs over authenticated sessions.
"""

from qdht.dht._bootstrap import (
    DEFAULT_LIST_LIFETIME,
    MAX_LIST_LIFETIME,
    sign_contact_list,
    verify_contact_list,
)
from qdht.dht._config import LookupConfig, ReputationConfig, RoutingConfig
from qdht.dht._core import STORE_ERROR_CODES, DhtCore, RecordConfig, RpcConfig, intern_contact
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
from qdht.dht._lookup import ClusterDetector, Lookup, LookupTrace, PathTrace
from qdht.dht._records import (
    DEFAULT_RECORD_LIMITS,
    RecordLimits,
    RecordValidator,
    ValidRecord,
    best_of,
    make_immutable,
    merge_set,
    sign_mutable,
    sign_set_entry,
    sign_tombstone,
)
from qdht.dht._recordstore import (
    DEFAULT_STORE_LIMITS,
    MemoryRecordStore,
    RecordStore,
    SqliteRecordStore,
    StoreLimits,
)
from qdht.dht._reputation import Reputation
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
from qdht.dht._watch import WatchConfig, WatchLimits

__all__ = [
    "DEFAULT_LIST_LIFETIME",
    "DEFAULT_RECORD_LIMITS",
    "DEFAULT_STORE_LIMITS",
    "ID_BITS",
    "MAX_LIST_LIFETIME",
    "STORE_ERROR_CODES",
    "ClusterDetector",
    "DhtCore",
    "DhtEvent",
    "Lookup",
    "LookupCompleted",
    "LookupConfig",
    "LookupTrace",
    "MemoryRecordStore",
    "NodeDiscovered",
    "NodeEvent",
    "PathTrace",
    "PeerAdded",
    "PeerRemoved",
    "PeerReplaced",
    "PingNeeded",
    "PutCompleted",
    "RecordConfig",
    "RecordLimits",
    "RecordStore",
    "RecordValidator",
    "Reputation",
    "ReputationConfig",
    "RequestCompleted",
    "RequestFailed",
    "RoutingConfig",
    "RoutingEvent",
    "RoutingTable",
    "RoutingTableChanged",
    "RpcConfig",
    "SqliteRecordStore",
    "StoreLimits",
    "ValidRecord",
    "ValueStored",
    "WatchConfig",
    "WatchLimits",
    "WatchUpdate",
    "best_of",
    "bucket_index",
    "distance",
    "intern_contact",
    "make_immutable",
    "merge_set",
    "sign_contact_list",
    "sign_mutable",
    "sign_set_entry",
    "sign_tombstone",
    "verify_contact_list",
]
