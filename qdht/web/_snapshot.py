"""What the page shows, as JSON-ready data built from a node's public state.

Nothing here exposes a key or a record's contents: peers appear by node ID
(public, as in every contact), records by key (a hash) and size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from qdht.dht import LookupTrace, QueriedPeer, ValidRecord
from qdht.wire import Tombstone

if TYPE_CHECKING:
    from qdht.node import Node

__all__ = ["layer_state", "lookup_json", "records_json", "routing_json"]

#: The services every node runs; their counters are the node's own.
_CORE_SERVICES = frozenset({"dht", "watch", "replication", "web"})


def _shared_bits(a: bytes, b: bytes) -> int:
    """Leading bits ``a`` and ``b`` share: 256 for equal IDs (the XOR metric's closeness)."""
    distance = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return 8 * len(a) - distance.bit_length()


def _queried_json(peer: QueriedPeer, target: bytes) -> dict[str, Any]:
    return {
        "id": peer.node_id.hex(),
        "hop": peer.hop,
        "path": peer.path,
        "outcome": peer.outcome,
        "shared_bits": _shared_bits(peer.node_id, target),
    }


def lookup_json(
    kind: str, trace: LookupTrace, *, succeeded: bool | None = None, at: float | None = None
) -> dict[str, Any]:
    """One lookup, running (``succeeded`` None) or finished, with its hops in the keyspace."""
    return {
        "kind": kind,
        "target": trace.target.hex(),
        "done": trace.done,
        "succeeded": succeeded,
        "found_value": trace.found_value,
        "hops": trace.hops,
        "rpcs": trace.rpcs,
        "responses": trace.responses,
        "timeouts": trace.timeouts,
        "duration": round(trace.duration, 4),
        "at": None if at is None else round(at, 3),
        "queried": [_queried_json(p, trace.target) for p in trace.queried],
    }


def routing_json(node: Node, now: float) -> dict[str, Any]:
    """The routing table as buckets by distance, each peer with its RTT and reputation."""
    routing, reputation = node.core.routing, node.core.reputation
    buckets = []
    for index in range(routing.bucket_count):
        peers = []
        for contact in routing.bucket_contacts(index):
            rtt = routing.rtt(contact.node_id)
            peers.append(
                {
                    "id": contact.node_id.hex(),
                    "shared_bits": _shared_bits(contact.node_id, node.node_id),
                    "rtt_ms": None if rtt is None else round(rtt * 1000, 2),
                    "reputation": round(reputation.score(contact.node_id, now), 3),
                    "address": str(contact.address),
                }
            )
        buckets.append(
            {
                "index": index,
                "peers": peers,
                "replacements": len(routing.replacement_contacts(index)),
            }
        )
    return {"size": len(routing), "buckets": buckets}


def _record_json(record: ValidRecord) -> dict[str, Any]:
    return {
        "key": record.key.hex(),
        "kind": record.kind,
        "size": 0 if isinstance(record.record, Tombstone) else len(record.record.value),
        "seq": record.seq,
        "expires": record.expires,
    }


def records_json(node: Node, now: float, limit: int) -> dict[str, Any]:
    """Stored records (counted; the first ``limit`` keys listed) and published keys."""
    store = node.core.records
    shown: list[dict[str, Any]] = []
    for key in store.keys_for_republish(limit=limit, include_cached=True):
        shown.extend(_record_json(record) for record in store.get(key))
    storage = store.stats()
    return {
        "count": len(store),
        "bytes": storage.get("bytes", 0),
        "shown": shown[:limit],
        "published": [key.hex() for key in node.published()[:limit]],
    }


def _numbers(obj: Any) -> Any:
    """Only the numbers (and the dicts holding them) of a service's counters."""
    if isinstance(obj, dict):
        kept = {str(k): _numbers(v) for k, v in obj.items()}
        return {k: v for k, v in kept.items() if v is not None}
    if isinstance(obj, int | float) and not isinstance(obj, bool):
        return obj
    return None


def layer_state(stats: dict[str, Any], services: Iterable[str]) -> dict[str, Any]:
    """The counters of the layers beyond the DHT (mixnet, messaging, training...)."""
    return {name: _numbers(stats.get(name, {})) for name in services if name not in _CORE_SERVICES}
