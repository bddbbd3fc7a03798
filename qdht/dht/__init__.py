"""The DHT layer: routing table, lookups, RPC core, value store (sans-IO cores).

``RoutingTable`` and ``Lookup`` never send anything and never read a clock;
the node composes them with RPCs over authenticated sessions.
"""

from qdht.dht._bootstrap import (
    DEFAULT_LIST_LIFETIME,
    MAX_LIST_LIFETIME,
    sign_contact_list,
    verify_contact_list,
)
from qdht.dht._config import LookupConfig, RoutingConfig
from qdht.dht._core import DhtCore, RpcConfig, intern_contact
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
)
from qdht.dht._lookup import Lookup, LookupTrace, PathTrace
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
from qdht.dht._storage import StorageConfig, ValueStore

__all__ = [
    "DEFAULT_LIST_LIFETIME",
    "ID_BITS",
    "MAX_LIST_LIFETIME",
    "DhtCore",
    "DhtEvent",
    "Lookup",
    "LookupCompleted",
    "LookupConfig",
    "LookupTrace",
    "NodeDiscovered",
    "NodeEvent",
    "PathTrace",
    "PeerAdded",
    "PeerRemoved",
    "PeerReplaced",
    "PingNeeded",
    "PutCompleted",
    "RequestCompleted",
    "RequestFailed",
    "RoutingConfig",
    "RoutingEvent",
    "RoutingTable",
    "RoutingTableChanged",
    "RpcConfig",
    "StorageConfig",
    "ValueStore",
    "ValueStored",
    "bucket_index",
    "distance",
    "intern_contact",
    "sign_contact_list",
    "verify_contact_list",
]
