"""The web page as a node service: its sans-IO core, its face and its task tree.

``open_node(config, services=[web_service(WebConfig(...))])`` adds it; the
page is then served until the node stops (HACKING "Services").  The core
owns no message type and keeps no timer: it holds what the page shows
beyond the node's own state (the time series, the finished lookups) and the
counters of the server (connections, drops by reason).  Two tasks: the
HTTP server (hypercorn's Trio worker) and the sampler, which takes one
sample of ``node.stats()`` every ``update_interval`` and renders the update
every live page receives.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, deque
from typing import TYPE_CHECKING, Any, Final

import trio

from qdht.dht import LookupCompleted, PutCompleted
from qdht.node import QuietCore, Service, ServiceContext, ServiceFactory
from qdht.web._config import WebConfig
from qdht.web._history import History
from qdht.web._metrics import prometheus_text
from qdht.web._snapshot import (
    layer_state,
    layer_views,
    lookup_json,
    records_json,
    routing_json,
)

if TYPE_CHECKING:
    from qdht.node import Node

__all__ = ["WEB_SERVICE", "WebCore", "WebFace", "web_service"]

logger = logging.getLogger(__name__)

#: The service's name: ``node.services.get(WEB_SERVICE).face``, ``stats()["web"]``.
WEB_SERVICE: Final = "web"


class WebCore(QuietCore):
    """The sans-IO part of the page: time series, finished lookups, server counters."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.history = History(config.history)
        self.recent: deque[dict[str, Any]] = deque(maxlen=config.recent_lookups)
        self.connections = 0
        self.websockets = 0
        self._counts: Counter[str] = Counter()
        self._drops: Counter[str] = Counter()

    # -- the server's bookkeeping (called by the ASGI guard)

    def open_connection(self, websocket: bool) -> str | None:
        """Admit one request or WebSocket; the drop reason if it is over a limit."""
        if self.connections >= self.config.max_connections:
            return "too-many-connections"
        if websocket and self.websockets >= self.config.max_websockets:
            return "too-many-websockets"
        self.connections += 1
        self.websockets += websocket
        self._counts["websockets" if websocket else "requests"] += 1
        return None

    def close_connection(self, websocket: bool) -> None:
        self.connections -= 1
        self.websockets -= websocket

    def drop(self, reason: str) -> None:
        self._drops[reason] += 1

    def lookup_finished(self, event: object, now: float) -> None:
        """Keep a finished lookup (a ``LookupCompleted`` or ``PutCompleted``) for the page."""
        if type(event) is LookupCompleted:
            self.recent.appendleft(
                lookup_json(event.kind, event.trace, succeeded=event.succeeded, at=now)
            )
        elif type(event) is PutCompleted:
            self.recent.appendleft(
                lookup_json("put", event.trace, succeeded=event.succeeded, at=now)
            )

    # -- ServiceCore: the page speaks no protocol of its own

    def stats(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "websockets": self.websockets,
            **self._counts,
            "drops": dict(self._drops),
        }


class WebFace:
    """The page of one node: where it is served, and the data it shows.

    ``url`` is the address to open (with ``?token=...`` when a token is
    required), set once the server listens; ``state()`` is what ``/api/state``
    answers; ``metrics()`` what ``/metrics`` answers.
    """

    def __init__(self, config: WebConfig, core: WebCore) -> None:
        self.config = config
        self.core = core
        #: The token the page requires, or None (loopback without a token).
        self.token = config.effective_token()
        self.url: str | None = None
        self.port: int | None = None
        self.node: Node | None = None
        #: The latest update for live pages (JSON text) and the event set when
        #: the next one replaces it: every page shares one rendering.
        self.latest = "{}"
        self.updated = trio.Event()
        self._started = 0.0

    def _bind(self, node: Node, binds: list[str]) -> None:
        self.node = node
        self._started = trio.current_time()
        base = binds[0] if binds else f"http://{self.config.host}:{self.config.port}"
        self.port = int(base.rsplit(":", 1)[1])
        # A wildcard bind is reached on loopback from here (and by its IP elsewhere).
        base = base.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:")
        self.url = base + "/" + (f"?token={self.token}" if self.token else "")

    def _node(self) -> Node:
        if self.node is None:
            raise RuntimeError("the web page is not serving yet")
        return self.node

    def state(self, *, full_history: bool = True) -> dict[str, Any]:
        """Everything the page shows (the JSON of ``/api/state``)."""
        node = self._node()
        now = trio.current_time()
        stats = node.stats()
        samples = list(self.core.history.samples)
        counters = {
            key: stats[key]
            for key in (
                "bytes_sent",
                "bytes_received",
                "datagrams_sent",
                "datagrams_received",
                "rpcs_sent",
                "rpcs_received",
                "errors_sent",
                "sessions",
                "handshakes_failed",
                "drops",
                "drops_total",
                "events_dropped",
            )
        }
        lookups = {k: v for k, v in stats["lookups"].items() if k != "by_kind"}
        return {
            "node": {
                "id": node.node_id.hex(),
                "client_mode": node.client_mode,
                "contact": node.contact_uri,
                "uptime": round(now - self._started, 1),
                "services": stats["services"],
            },
            "routing": routing_json(node, now),
            "lookups": {
                **lookups,
                "by_kind": stats["lookups"].get("by_kind", {}),
                "in_flight": [lookup_json(k, t) for k, t in node.core.running_lookups()],
                "recent": list(self.core.recent),
            },
            "counters": counters,
            "history": samples if full_history else samples[-1:],
            "records": records_json(node, now, self.config.max_records_shown),
            "layers": layer_state(stats, stats["services"]),
            "views": layer_views(stats, stats["services"]),
            "web": self.core.stats(),
        }

    def metrics(self) -> str:
        """Prometheus text of the node's counters (``/metrics``)."""
        stats = self._node().stats()
        layers = [n for n in stats["services"] if n not in ("dht", "watch", "replication")]
        return prometheus_text(stats, layers, layer_views(stats, stats["services"]))

    def _publish(self) -> None:
        """Render the update every live page gets next, and wake them."""
        self.latest = json.dumps(self.state(full_history=False), separators=(",", ":"))
        self.updated.set()
        self.updated = trio.Event()


async def _serve_page(
    node: Node, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """The HTTP server (hypercorn's Trio worker) until the node stops."""
    from hypercorn.trio import serve

    from qdht.web._app import hypercorn_config, make_app

    face: WebFace = node.services.get(WEB_SERVICE).face  # type: ignore[assignment]
    app = make_app(face)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, app, hypercorn_config(face.config))
        face._bind(node, binds)
        face._publish()
        logger.info("web page at %s", face.url)
        task_status.started()


async def _sample(
    node: Node, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Sample the counters every ``update_interval`` and keep the finished lookups."""
    face: WebFace = node.services.get(WEB_SERVICE).face  # type: ignore[assignment]
    core = face.core
    async with node.events() as events, trio.open_nursery() as nursery:

        async def keep_lookups() -> None:
            async for event in events:
                core.lookup_finished(event, trio.current_time())

        nursery.start_soon(keep_lookups)
        task_status.started()
        while True:
            core.history.sample(node.stats(), trio.current_time())
            if face.node is not None and core.websockets:
                face._publish()  # rendered only while a page is open
            await trio.sleep(face.config.update_interval)


def web_service(config: WebConfig | None = None) -> ServiceFactory:
    """The factory of a node's web page: pass it in ``open_node(services=[...])``."""
    web_config = config if config is not None else WebConfig()

    def factory(context: ServiceContext) -> Service:
        core = WebCore(web_config)
        return Service(
            WEB_SERVICE, core, tasks=(_sample, _serve_page), face=WebFace(web_config, core)
        )

    return factory
