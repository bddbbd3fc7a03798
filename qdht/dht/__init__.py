"""The DHT layer: routing table, lookups (sans-IO cores).

``RoutingTable`` and ``Lookup`` never send anything and never read a clock;
the node composes them with RPCs over authenticated sessions.
"""

from qdht.dht._config import LookupConfig, RoutingConfig
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

__all__ = [
    "ID_BITS",
    "Lookup",
    "LookupConfig",
    "LookupTrace",
    "PathTrace",
    "PeerAdded",
    "PeerRemoved",
    "PeerReplaced",
    "PingNeeded",
    "RoutingConfig",
    "RoutingEvent",
    "RoutingTable",
    "bucket_index",
    "distance",
]
