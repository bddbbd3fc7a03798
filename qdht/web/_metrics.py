"""``node.stats()`` as Prometheus text exposition format 0.0.4 (``/metrics``)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["CONTENT_TYPE", "prometheus_text"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

#: (metric, type, help, stats key) of the node's scalar counters and gauges.
_SCALARS: Final = (
    ("qdht_bytes_sent_total", "counter", "Bytes sent on the wire, every layer.", "bytes_sent"),
    ("qdht_bytes_received_total", "counter", "Bytes received on the wire.", "bytes_received"),
    ("qdht_datagrams_sent_total", "counter", "Datagrams sent.", "datagrams_sent"),
    ("qdht_datagrams_received_total", "counter", "Datagrams received.", "datagrams_received"),
    ("qdht_dht_bytes_sent_total", "counter", "DHT payload bytes sent.", "dht_bytes_sent"),
    (
        "qdht_dht_bytes_received_total",
        "counter",
        "DHT payload bytes received.",
        "dht_bytes_received",
    ),
    ("qdht_routing_table_size", "gauge", "Peers in the routing table.", "routing_table_size"),
    ("qdht_sessions", "gauge", "Established sessions.", "sessions"),
    ("qdht_handshakes_failed_total", "counter", "Handshakes that failed.", "handshakes_failed"),
    ("qdht_pending_requests", "gauge", "DHT requests awaiting an answer.", "pending_requests"),
    ("qdht_records_published", "gauge", "Records this node publishes.", "records_published"),
    ("qdht_events_dropped_total", "counter", "Events lost by slow subscribers.", "events_dropped"),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value) if type(value) is float else str(value)


def _family(
    name: str, kind: str, help_text: str, rows: Iterable[tuple[dict[str, str], float]]
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in rows:
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        lines.append(
            f"{name}{{{label_text}}} {_number(value)}" if label_text else f"{name} {_number(value)}"
        )
    return lines


def _numeric_leaves(obj: Any, prefix: str = "") -> Iterable[tuple[str, float]]:
    """(dotted path, number) of every int/float leaf of nested dicts (bools skipped)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _numeric_leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        yield prefix, obj


def prometheus_text(
    stats: dict[str, Any], layers: Iterable[str] = (), views: dict[str, Any] | None = None
) -> str:
    """The metrics of ``stats`` (a ``node.stats()``); ``layers`` are the services
    whose own counters (numbers only) are exported as ``qdht_service_value``;
    ``views`` are the page's layer panels (``layer_views``), exported as
    ``qdht_<layer>_<figure>`` gauges with their drops by reason."""
    lines: list[str] = []
    for name, kind, help_text, key in _SCALARS:
        value = stats.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            lines += _family(name, kind, help_text, [({}, value)])
    for name, key, label, help_text in (
        ("qdht_rpcs_sent_total", "rpcs_sent", "type", "DHT messages sent, by type."),
        ("qdht_rpcs_received_total", "rpcs_received", "type", "DHT messages received, by type."),
        ("qdht_errors_sent_total", "errors_sent", "code", "DHT errors sent, by code."),
        ("qdht_drops_total", "drops", "reason", "Input dropped, by layer.reason."),
    ):
        table = stats.get(key, {})
        lines += _family(
            name, "counter", help_text, [({label: str(k)}, v) for k, v in sorted(table.items())]
        )
    lookups = stats.get("lookups", {})
    by_kind = lookups.get("by_kind", {})
    lines += _family(
        "qdht_lookups_total",
        "counter",
        "Lookups by kind and outcome.",
        [
            ({"kind": kind, "outcome": outcome}, count)
            for kind, counts in sorted(by_kind.items())
            for outcome, count in sorted(counts.items())
        ],
    )
    latency = lookups.get("latency") or {}
    lines += _family(
        "qdht_lookup_latency_seconds",
        "gauge",
        "Lookup latency quantiles over the recent samples.",
        [
            ({"quantile": f"0.{q[1:]}"}, v)
            for q, v in sorted(latency.items())
            if isinstance(v, int | float)
        ],
    )
    storage = stats.get("storage", {})
    lines += _family(
        "qdht_storage",
        "gauge",
        "The record store: records, bytes and counters.",
        [({"name": k}, v) for k, v in _numeric_leaves(storage) if "." not in k],
    )
    lines += _family(
        "qdht_service_value",
        "gauge",
        "Numeric counters of the node's further services.",
        [
            ({"service": layer, "name": path}, value)
            for layer in layers
            for path, value in _numeric_leaves(stats.get(layer, {}))
        ],
    )
    for layer, view in sorted((views or {}).items()):
        lines += _view_families(layer, view)
    return "\n".join(lines) + "\n"


def _view_families(layer: str, view: dict[str, Any]) -> list[str]:
    """One gauge per figure of a layer's panel, its state strings as an info metric."""
    lines: list[str] = []
    states = {}
    for figure, value in sorted(view.items()):
        if figure == "drops":
            continue
        if isinstance(value, str):
            states[figure] = value
        elif isinstance(value, int | float):  # bools too: 0/1 gauges (an alarm, a role)
            number = float(value) if isinstance(value, bool) else value
            lines += _family(
                f"qdht_{layer}_{figure}", "gauge", f"The {layer} panel's {figure}.", [({}, number)]
            )
    lines += _family(
        f"qdht_{layer}_info",
        "gauge",
        f"The {layer} layer's states as labels (always 1).",
        [(states, 1)],
    )
    return lines
