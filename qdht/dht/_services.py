"""The DHT as three node services: requests and lookups, watching, replication.

A node (``qdht.node``) runs every sub-protocol as a service: a sans-IO core,
the wire message types it owns, its own timer task (HACKING "Services").  The
DHT's three parts share one :class:`~qdht.dht.DhtCore` — one table of
outstanding requests matched by rid, one routing table, one record store —
so each part here is a view of that core with its own message types, timer
and statistics:

* :class:`RpcPart` (``"dht"``): PING, FIND_NODE, FIND_VALUE, STORE and their
  answers (02-dht-rpc.md), lookups, bucket refresh, record expiry; it is
  also the node's default service, answering message types nobody owns with
  UNKNOWN_REQUEST (02-dht-rpc.md §5);
* :class:`WatchPart` (``"watch"``): WATCH, NOTIFY and their answers
  (08-watch.md), subscription expiry, watch rounds;
* :class:`ReplicationPart` (``"replication"``): handoff, republish rounds and
  paced STOREs (07-records.md §10); it owns no message type (it speaks STORE
  through the shared request table).

Messages and events come out of the shared core; the node drains each core
once per step, whichever part produced them.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Final

from qdht.dht._core import DhtCore
from qdht.dht._corebase import _REQUESTS, _RESPONSES, _WATCH_TYPES, Outgoing

__all__ = ["RPC_TYPES", "WATCH_TYPES", "ReplicationPart", "RpcPart", "WatchPart"]

#: The message types of 02-dht-rpc.md.
RPC_TYPES: Final = frozenset(cls.TYPE for cls in (*_REQUESTS, *_RESPONSES))
#: The message types of 08-watch.md.
WATCH_TYPES: Final = frozenset(cls.TYPE for cls in _WATCH_TYPES)


class _Part:
    """What every part does the same way: input and output through the shared core."""

    __slots__ = ("core",)

    def __init__(self, core: DhtCore) -> None:
        self.core = core

    def receive_message(
        self, node_id: bytes, addr: Hashable, payload: bytes, now: float, *, early: bool = False
    ) -> None:
        self.core.receive_message(node_id, addr, payload, now, early=early)

    def messages_to_send(self) -> list[Outgoing]:
        return self.core.messages_to_send()

    def next_event(self) -> object | None:
        return self.core.next_event()

    def peer_unreachable(self, node_id: bytes, now: float, reason: str) -> None:
        """Nothing per part: :class:`RpcPart` fails the peer's requests for all three."""


class RpcPart(_Part):
    """Requests, answers and lookups (02-dht-rpc.md): the ``"dht"`` service."""

    __slots__ = ()

    @property
    def new_deadline(self) -> float:
        return self.core.new_deadline

    def get_timer(self) -> float | None:
        return self.core.rpc_timer()

    def handle_timer(self, now: float) -> None:
        self.core.handle_rpc_timer(now)

    def peer_unreachable(self, node_id: bytes, now: float, reason: str) -> None:
        self.core.peer_unreachable(node_id, now, reason)

    def stats(self) -> dict[str, Any]:
        stats = self.core.stats()
        del stats["watch"], stats["replication"]
        return stats


class WatchPart(_Part):
    """Watching keys (08-watch.md): the ``"watch"`` service."""

    __slots__ = ()

    @property
    def new_deadline(self) -> float:
        # Cheap: two heap peeks and the (bounded) watched keys.
        timer = self.core.watch_timer()
        return float("inf") if timer is None else timer

    def get_timer(self) -> float | None:
        return self.core.watch_timer()

    def handle_timer(self, now: float) -> None:
        self.core.handle_watch_timer(now)

    def stats(self) -> dict[str, Any]:
        return {"holder": self.core.watches.stats(), "watcher": self.core.watching.stats()}


class ReplicationPart(_Part):
    """Replication of held records (07-records.md §10): the ``"replication"`` service."""

    __slots__ = ()

    @property
    def new_deadline(self) -> float:
        timer = self.core.replication_timer()
        return float("inf") if timer is None else timer

    def get_timer(self) -> float | None:
        return self.core.replication_timer()

    def handle_timer(self, now: float) -> None:
        self.core.handle_replication_timer(now)

    def stats(self) -> dict[str, Any]:
        return self.core.replication.stats()
