"""Counters as time series: what the page's charts draw (sans-IO, ``now`` passed in)."""

from __future__ import annotations

from collections import deque
from typing import Any

from qdht.web._snapshot import layer_views

__all__ = ["History"]

#: Totals of ``node.stats()`` sampled into rates, by series name.
_TOTALS = {
    "bytes_out": ("bytes_sent",),
    "bytes_in": ("bytes_received",),
    "datagrams_out": ("datagrams_sent",),
    "datagrams_in": ("datagrams_received",),
}


#: Cumulative figures of the layer panels sampled into rates: series → (layer, figure).
_LAYER_TOTALS = {
    "mix_mixed": ("mixnet", "mixed"),
    "mix_dropped": ("mixnet", "dropped"),
    "mix_loops_sent": ("mixnet", "loops_sent"),
    "mix_loops_returned": ("mixnet", "loops_returned"),
    "msg_polls": ("messaging", "polls"),
    "msg_writes": ("messaging", "writes"),
}
#: Levels of the layer panels sampled as they are.
_LAYER_GAUGES = {
    "mix_queued": ("mixnet", "queued"),
    "msg_outbox": ("messaging", "outbox"),
    "train_round": ("training", "round"),
    "train_accuracy": ("training", "accuracy"),
    "train_epsilon": ("training", "epsilon"),
}


def _total(stats: dict[str, Any], key: str) -> float:
    value = stats.get(key, 0)
    if isinstance(value, dict):
        return float(sum(v for v in value.values() if isinstance(v, int | float)))
    return float(value) if isinstance(value, int | float) else 0.0


class History:
    """The last ``size`` samples of the node's rates and gauges.

    Each :meth:`sample` turns the growth of the cumulative counters since the
    previous one into per-second rates: bytes and datagrams each way, RPCs
    each way, drops in all and by reason (only reasons that grew), and the
    layer panels' figures (mixnet packets and loops, messaging polls and
    writes as rates; queues, training round, accuracy and ε as levels).  The deque
    bounds memory: ``size`` samples, each a few dozen numbers.
    """

    def __init__(self, size: int) -> None:
        self.samples: deque[dict[str, Any]] = deque(maxlen=size)
        self._last: dict[str, float] | None = None
        self._last_drops: dict[str, int] = {}
        self._last_at = 0.0

    def sample(self, stats: dict[str, Any], now: float) -> dict[str, Any]:
        """Add one sample from ``node.stats()`` taken at ``now``; return it."""
        current = {name: sum(_total(stats, k) for k in keys) for name, keys in _TOTALS.items()}
        current["rpcs_out"] = _total(stats, "rpcs_sent")
        current["rpcs_in"] = _total(stats, "rpcs_received")
        current["drops"] = float(stats.get("drops_total", 0))
        views = layer_views(stats, stats.get("services", ()))
        for name, (layer, figure) in _LAYER_TOTALS.items():
            if layer in views:
                current[name] = float(views[layer][figure])
        drops = {k: v for k, v in stats.get("drops", {}).items() if isinstance(v, int)}
        sample: dict[str, Any] = {
            "t": round(now, 3),
            "peers": stats.get("routing_table_size", 0),
            "sessions": stats.get("sessions", 0),
            "lookups_running": stats.get("lookups", {}).get("running", 0),
        }
        for name, (layer, figure) in _LAYER_GAUGES.items():
            if layer in views:
                sample[name] = views[layer][figure]
        elapsed = now - self._last_at
        if self._last is not None and elapsed > 0:
            for name, value in current.items():
                sample[name] = max(0.0, (value - self._last.get(name, value)) / elapsed)
            sample["drops_by_reason"] = {
                reason: (count - self._last_drops.get(reason, 0)) / elapsed
                for reason, count in drops.items()
                if count > self._last_drops.get(reason, 0)
            }
        else:
            sample.update(dict.fromkeys(current, 0.0))
            sample["drops_by_reason"] = {}
        self._last, self._last_drops, self._last_at = current, drops, now
        self.samples.append(sample)
        return sample
