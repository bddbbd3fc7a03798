"""Events of the DHT core (:class:`~qdht.dht.DhtCore`), h11-style.

The first four are public: ``node.events()`` delivers them to applications.
The others tell the node driver how the requests it started ended.
"""

from __future__ import annotations

import attrs

from qdht.dht._lookup import LookupTrace
from qdht.dht._records import ValidRecord
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
    "WatchUpdate",
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
    k closest nodes that answered, nearest first; ``trace`` has hops, RPCs,
    timeouts and duration.

    For a ``get`` (07-records.md §7.3): ``record`` is the winning valid record
    of an immutable or mutable key (a tombstone when the owner deleted it:
    ``record.deleted``), ``records`` the merged live entries of a set (one
    per publisher, ordered by owner), and ``value`` the winner's value for
    an immutable or mutable record (None for a tombstone, a set or nothing
    found).  ``succeeded`` is: a record or set entries found for ``get``, at
    least one contact otherwise.
    """

    handle: int
    kind: str
    target: bytes
    contacts: tuple[Contact, ...]
    value: bytes | None = attrs.field(repr=lambda v: "None" if v is None else f"<{len(v)} bytes>")
    trace: LookupTrace = attrs.field(repr=False)
    succeeded: bool
    record: ValidRecord | None = attrs.field(default=None, repr=False)
    records: tuple[ValidRecord, ...] = attrs.field(default=(), repr=False)


@attrs.frozen
class ValueStored:
    """A record was stored (new or replacing an older one): by this node for
    peer ``source``, or (``source`` is our own ID) as the local copy of our own
    ``put``.  ``size`` is the length of its value (0 for a tombstone);
    ``record`` the record itself."""

    key: bytes
    size: int
    source: bytes
    record: ValidRecord | None = attrs.field(default=None, repr=False, eq=False)


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


@attrs.frozen
class WatchUpdate:
    """A key this node watches changed (``protocol-spec/08-watch.md``).

    ``kind`` is ``"update"`` (a newer record: a mutable version ranking
    above every one reported before, an immutable record, or a set entry),
    ``"deleted"`` (``record`` is the owner's tombstone) or ``"expired"``
    (``record``, the last one reported, reached its ``exp`` on this node's
    clock).  ``record`` has been validated by this node: signature, key
    binding and expiry.
    """

    key: bytes
    kind: str
    record: ValidRecord

    @property
    def value(self) -> bytes | None:
        """The record's value (None for a tombstone)."""
        return getattr(self.record.record, "value", None)


NodeEvent = NodeDiscovered | RoutingTableChanged | LookupCompleted | ValueStored | PutCompleted
DhtEvent = NodeEvent | RequestCompleted | RequestFailed | WatchUpdate
