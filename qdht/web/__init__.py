"""A live web page for a node: peers, lookups, counters, records, layers (issue 19).

``open_node(config, services=[web_service(WebConfig(port=8080))])`` serves
the page on loopback; ``node.services.get("web").face.url`` is its address.
The page (``/``), its JSON (``/api/state``), Prometheus metrics
(``/metrics``) and live updates (``/ws``) run on hypercorn's Trio worker
with starlette routes; its assets ship in the package.  Install the
``web`` extra.
"""

from qdht.web._app import COOKIE, MAX_WS_MESSAGE, hypercorn_config, make_app, push_updates
from qdht.web._config import WebConfig, is_loopback, parse_web_address
from qdht.web._history import History
from qdht.web._metrics import CONTENT_TYPE, prometheus_text
from qdht.web._service import WEB_SERVICE, WebCore, WebFace, web_service
from qdht.web._snapshot import layer_state, layer_views, lookup_json, records_json, routing_json

__all__ = [
    "CONTENT_TYPE",
    "COOKIE",
    "MAX_WS_MESSAGE",
    "WEB_SERVICE",
    "History",
    "WebConfig",
    "WebCore",
    "WebFace",
    "hypercorn_config",
    "is_loopback",
    "layer_state",
    "layer_views",
    "lookup_json",
    "make_app",
    "parse_web_address",
    "prometheus_text",
    "push_updates",
    "records_json",
    "routing_json",
    "web_service",
]
