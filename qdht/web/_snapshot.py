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

__all__ = ["layer_state", "layer_views", "lookup_json", "records_json", "routing_json"]

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


def _number(obj: Any, *keys: str) -> float | None:
    """The first of ``keys`` that ``obj`` holds as a number (a layer may name it either way)."""
    for key in keys:
        value = obj.get(key) if isinstance(obj, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    return None


def _drops(obj: dict[str, Any]) -> dict[str, int]:
    drops = obj.get("drops", {})
    return {str(k): v for k, v in drops.items() if isinstance(v, int)} if drops else {}


def _mixnet_view(mix: dict[str, Any]) -> dict[str, Any]:
    client = mix.get("client", {}) if isinstance(mix.get("client"), dict) else {}
    role = mix.get("role", {}) if isinstance(mix.get("role"), dict) else {}
    epochs = [e for e in mix.get("directory_epochs", []) if isinstance(e, int)]
    return {
        "mix": bool(mix.get("mix")),
        "epoch": _number(mix, "epoch"),
        "directory_epoch": _number(client, "directory_epoch") or max(epochs, default=None),
        "directory_mixes": _number(client, "directory_mixes") or 0,
        "mixed": _number(mix, "mixed") or 0,
        "queued": _number(mix, "queued") or 0,
        "queued_at_mix": _number(role, "queued") or 0,
        "queued_here": _number(client, "queued") or 0,
        "delivered": _number(role, "delivered") or 0,
        "loops_sent": _number(mix, "loops_sent") or 0,
        "loops_returned": _number(mix, "loops_returned") or 0,
        "loops_lost": _number(client, "loops_lost") or 0,
        "loop_alarm": bool(mix.get("loop_alarm")),
        "replays": _number(mix, "replays") or 0,
        "dropped": sum(_drops(mix).values()),
        "drops": _drops(mix),
    }


def _messaging_view(msg: dict[str, Any]) -> dict[str, Any]:
    # Counts and states only: never a contact's name, a key or a message.
    delivery = msg.get("delivery")
    return {
        "contacts": _number(msg, "contacts") or 0,
        "sessions": _number(msg, "sessions") or 0,
        "outbox": _number(msg, "outbox_queued", "outbox") or 0,
        "waiting": _number(msg, "waiting") or 0,
        "delivery": delivery if isinstance(delivery, str) else None,
        "writes": _number(msg, "writes") or 0,
        "cover_writes": _number(msg, "cover_writes") or 0,
        "polls": sum(_number(msg, k) or 0 for k in _POLLS),
        "one_time_prekeys": _number(msg, "one_time_prekeys") or 0,
        "slots_held": _number(msg, "slots_held") or 0,
        "dropped": sum(_drops(msg).values()),
        "drops": _drops(msg),
    }


def _training_view(train: dict[str, Any]) -> dict[str, Any]:
    role = train.get("role")
    epsilon = _number(train, "epsilon", "epsilon_spent")
    return {
        "role": role if isinstance(role, str) else None,
        "round": _number(train, "round", "rounds", "last_round"),
        "participants": _number(train, "participants", "cohort", "updates"),
        "accuracy": _number(train, "accuracy"),
        "epsilon": epsilon,
        "abandoned": _number(train, "abandoned"),
        "dropped": sum(_drops(train).values()),
        "drops": _drops(train),
    }


#: Reads of the mailbox and slots that make up a messaging client's polling.
_POLLS = ("slot_reads", "intro_reads", "mailbox_ops")
#: The layers with a panel of their own on the page, and how each is read.
_VIEWS = {"mixnet": _mixnet_view, "messaging": _messaging_view, "training": _training_view}


def layer_views(stats: dict[str, Any], services: Iterable[str]) -> dict[str, Any]:
    """The mixnet, messaging and training panels, from whatever their ``stats()`` report."""
    return {
        name: view(stats[name])
        for name, view in _VIEWS.items()
        if name in services and isinstance(stats.get(name), dict)
    }
