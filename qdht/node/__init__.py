"""The node: the public ``Node`` API and the services it runs (HACKING "Services").

``async with qdht.open_node(config) as node:`` runs a node; every
sub-protocol it speaks is a :class:`Service` (a sans-IO
:class:`ServiceCore` plus the wire message types it owns) with its own task
tree in the node's nursery.
"""

from typing import TYPE_CHECKING

from qdht._lazy import lazy_exports
from qdht.node._builtin import builtin_services
from qdht.node._node import EventSubscription, Node, open_node
from qdht.node._persist import (
    RECORDS_FILE,
    ROUTING_FILE,
    atomic_write,
    load_snapshot,
    save_snapshot,
)
from qdht.node._published import PUBLISHED_FILE, SCHEMA_VERSION, Published, PublishedRecords
from qdht.node._service import (
    Operations,
    Outgoing,
    QuietCore,
    Service,
    ServiceContext,
    ServiceCore,
    ServiceFactory,
    ServiceTable,
    ServiceTask,
)
from qdht.node._watching import DEFAULT_WATCH_BUFFER, MAX_LOCAL_WATCHES, KeyWatch, WatchHub

# The identity resolution service (``Config.resolve``): imported on first use.
if TYPE_CHECKING:
    from qdht.node._resolver import ResolverFace, resolver_service
else:
    __getattr__ = lazy_exports(
        globals(), dict.fromkeys(["ResolverFace", "resolver_service"], "qdht.node._resolver")
    )

__all__ = [
    "DEFAULT_WATCH_BUFFER",
    "MAX_LOCAL_WATCHES",
    "PUBLISHED_FILE",
    "RECORDS_FILE",
    "ROUTING_FILE",
    "SCHEMA_VERSION",
    "EventSubscription",
    "KeyWatch",
    "Node",
    "Operations",
    "Outgoing",
    "Published",
    "PublishedRecords",
    "QuietCore",
    "ResolverFace",
    "Service",
    "ServiceContext",
    "ServiceCore",
    "ServiceFactory",
    "ServiceTable",
    "ServiceTask",
    "WatchHub",
    "atomic_write",
    "builtin_services",
    "load_snapshot",
    "open_node",
    "resolver_service",
    "save_snapshot",
]
