"""qdht: a post-quantum secure Kademlia DHT for private peer-to-peer applications, on Trio.

``async with qdht.open_node(qdht.Config(...)) as node:`` runs a node; see
:class:`qdht.Node` for what it offers and :class:`qdht.Config` for its settings.
"""

from qdht import errors
from qdht._lazy import forget_generated_sources as _forget_generated_sources
from qdht.config import Config
from qdht.dht import (
    LookupCompleted,
    LookupTrace,
    NodeDiscovered,
    PutCompleted,
    RoutingTableChanged,
    ValidRecord,
    ValueStored,
    WatchUpdate,
)
from qdht.node import EventSubscription, Node, open_node
from qdht.wire import Address, Contact

__version__ = "0.1.0.dev0"

# attrs' copies of the generated methods' source: nothing a node reads (issue 19).
_forget_generated_sources()

__all__ = [
    "Address",
    "Config",
    "Contact",
    "EventSubscription",
    "LookupCompleted",
    "LookupTrace",
    "Node",
    "NodeDiscovered",
    "PutCompleted",
    "RoutingTableChanged",
    "ValidRecord",
    "ValueStored",
    "WatchUpdate",
    "__version__",
    "errors",
    "open_node",
]
