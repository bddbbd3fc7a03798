"""Events of the DHT core (:class:`~qdht.dht.DhtCore`), h11-style.

The first four are public: ``node.events()`` delivers them to applications.
The others tell the node driver how the requests it started ended.
"""

from __future__ import annotations

import attrs

from qdht.dht._lookup import LookupTrace
from qdht.wire import Contact

__all__ = [
    "DhtEvent",
    "LookupCompleted",
    "NodeDiscovered",
    "NodeEvent",
    "PutCompleted",
    "RequestCompleted",
    "RequestFailed",
    "RoutingTableChanged",
    "ValueStored",
]


@attrs.frozen
class NodeDiscovered:
    """A verified peer entered the routing table for the first time."""

    contact: Contact


@attrs.frozen
class RoutingTableChanged:
    """The routing table changed: ``added`` and/or ``removed`` (a replacement has both).

    ``size`` is the table's size after the change.
    """

    added: Contact | None
    removed: Contact | None
    size: int


@attrs.frozen
class LookupCompleted:
    """An iterative lookup ended.

    ``kind`` is ``"find_node"``, ``"get"`` (FIND_VALUE), ``"put"`` (the lookup
    before the STOREs), ``"bootstrap"`` or ``"refresh"``.  ``contacts`` are the
    k closest nodes that answered, nearest first; ``value`` is the verified
    value a ``get`` found (None otherwise); ``trace`` has hops, RPCs,
    timeouts and duration.  ``succeeded`` is: a value found for ``get``,
    at least one contact otherwise.
    """

    handle: int
    kind: str
    target: bytes
    contacts: tuple[Contact, ...]
    value: bytes | None = attrs.field(repr=lambda v: "None" if v is None else f"<{len(v)} bytes>")
    trace: LookupTrace = attrs.field(repr=False)
    succeeded: bool


@attrs.frozen
class ValueStored:
    """A value was stored: by this node for peer ``source``, or (``source`` is
    our own ID) as the local copy of our own ``put``."""

    key: bytes
    size: int
    source: bytes


@attrs.frozen
class PutCompleted:
    """A ``put`` ended: ``stored_at`` lists the node IDs that answered STORED
    (our own ID included if we keep a copy), ``errors`` the refusals by reason."""

    handle: int
    key: bytes
    stored_at: tuple[bytes, ...]
    errors: dict[str, int]
    trace: LookupTrace = attrs.field(repr=False)

    @property
    def succeeded(self) -> bool:
        return bool(self.stored_at)


@attrs.frozen
class RequestCompleted:
    """A single request started with ``ping``/``store_at`` got its response."""

    handle: int
    node_id: bytes
    rtt: float


@attrs.frozen
class RequestFailed:
    """A single request failed: ``reason`` is ``"timeout"``, ``"error"`` (``code``
    set), or the session layer's handshake failure reason (``"wrong-identity"``, ...)."""

    handle: int
    node_id: bytes
    reason: str
    code: int | None = None


NodeEvent = NodeDiscovered | RoutingTableChanged | LookupCompleted | ValueStored | PutCompleted
DhtEvent = NodeEvent | RequestCompleted | RequestFailed
