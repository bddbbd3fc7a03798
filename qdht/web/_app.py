"""The ASGI application of the page (starlette routes behind a guard) and its server config.

Routes: ``/`` (the page), ``/static/*`` (its script and style, shipped in
the package: no CDN), ``/api/state`` (JSON), ``/metrics`` (Prometheus text)
and ``/ws`` (a WebSocket that pushes one update per ``update_interval``).

The guard admits a connection only when (1) fewer than ``max_connections``
are open (and ``max_websockets`` WebSockets), else 503; (2) the token
matches, when one is required (query ``token=``, ``Authorization: Bearer``
or the cookie the page sets), else 401 with nothing else; (3) without a
token (loopback), the ``Host`` names a loopback address, and a WebSocket's
``Origin`` is the page itself: other web sites the browser visits cannot
read the page (DNS rebinding, cross-site WebSockets), else 403.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
from http.cookies import SimpleCookie
from importlib import resources
from typing import Final
from urllib.parse import parse_qs, urlsplit

import trio
from hypercorn.config import Config as HypercornConfig
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from qdht.web._config import WebConfig, is_loopback
from qdht.web._metrics import CONTENT_TYPE
from qdht.web._service import WebFace

__all__ = ["COOKIE", "MAX_WS_MESSAGE", "hypercorn_config", "make_app", "push_updates"]

logger = logging.getLogger(__name__)

COOKIE: Final = "qdht_token"
#: Largest message a page may send on its WebSocket (it sends none).
MAX_WS_MESSAGE: Final = 1024
_HEADERS: Final = (
    (b"content-security-policy", b"default-src 'self'; connect-src 'self'; img-src 'self' data:"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


def hypercorn_config(config: WebConfig) -> HypercornConfig:
    """Hypercorn's settings: the bind address and the bounds of every connection."""
    hc = HypercornConfig()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hc.bind = [f"{host}:{config.port}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("qdht.web.server")
    hc.include_server_header = False
    hc.keep_alive_timeout = 5.0
    hc.read_timeout = 10
    hc.h11_max_incomplete_size = config.max_request_size
    hc.h2_max_inbound_frame_size = config.max_request_size
    hc.websocket_max_message_size = MAX_WS_MESSAGE
    hc.max_app_queue_size = 4
    hc.backlog = config.max_connections
    hc.graceful_timeout = 0.5
    return hc


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _presented_token(scope: Scope) -> tuple[str | None, bool]:
    """The token a request carries, and whether it came in the query string."""
    query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
    if query.get("token"):
        return query["token"][0], True
    auth = _header(scope, b"authorization")
    if auth is not None and auth.startswith("Bearer "):
        return auth[7:], False
    cookie = _header(scope, b"cookie")
    if cookie is not None:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie)
        except Exception:  # malformed cookie header: no token
            return None, False
        if COOKIE in jar:
            return jar[COOKIE].value, False
    return None, False


def _hostname(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return urlsplit(f"//{value}").hostname
    except ValueError:
        return None


class _Guard:
    """Connection limit, token, Host and Origin checks in front of the routes."""

    def __init__(self, app: ASGIApp, face: WebFace) -> None:
        self.app = app
        self.face = face

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        core = self.face.core
        websocket = scope["type"] == "websocket"
        refused = core.open_connection(websocket)
        if refused is not None:
            core.drop(refused)
            await _refuse(scope, receive, send, 503, b"503 Service Unavailable: too many clients\n")
            return
        try:
            status, set_cookie = self._check(scope)
            if status is not None:
                await _refuse(scope, receive, send, status, _REASONS[status])
                return

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers", ())) + list(_HEADERS)
                    if set_cookie is not None:
                        headers.append((b"set-cookie", set_cookie))
                    message = {**message, "headers": headers}
                await send(message)

            await self.app(scope, receive, send_with_headers)
        finally:
            core.close_connection(websocket)

    def _check(self, scope: Scope) -> tuple[int | None, bytes | None]:
        """(refusal status or None, the cookie to set)."""
        core, token = self.face.core, self.face.token
        if token is not None:
            presented, in_query = _presented_token(scope)
            if presented is None or not hmac.compare_digest(
                presented.encode("utf-8", "replace"), token.encode()
            ):
                core.drop("unauthorized")
                return 401, None
            cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/".encode()
            return None, cookie if in_query and scope["type"] == "http" else None
        host = _hostname(_header(scope, b"host"))
        if host is None or not is_loopback(host):
            core.drop("bad-host")
            return 403, None
        origin = _header(scope, b"origin")
        if scope["type"] == "websocket" and origin is not None:
            origin_host = urlsplit(origin).netloc
            if origin_host != _header(scope, b"host"):
                core.drop("bad-origin")
                return 403, None
        return None, None


_REASONS: Final = {
    401: b"401 Unauthorized\n",
    403: b"403 Forbidden\n",
}


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, body: bytes) -> None:
    """Answer ``status`` with ``body`` and nothing else (a WebSocket: before its handshake)."""
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


#: The page's files (read once; served from memory, nothing else under /static).
_ASSETS: Final = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


def _assets() -> dict[str, bytes]:
    folder = resources.files("qdht.web") / "static"
    return {name: (folder / name).read_bytes() for name in _ASSETS}


def make_app(face: WebFace) -> ASGIApp:
    """The page's ASGI application for ``face``."""
    assets = _assets()

    async def index(request: Request) -> Response:
        return Response(assets["index.html"], media_type=_ASSETS["index.html"])

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets or name == "index.html":
            return PlainTextResponse("404 Not Found\n", status_code=404)
        return Response(assets[name], media_type=_ASSETS[name])

    async def state(request: Request) -> Response:
        return JSONResponse(face.state())

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(face.metrics(), media_type=CONTENT_TYPE)

    async def live(websocket: WebSocket) -> None:
        await websocket.accept()
        async with trio.open_nursery() as nursery:

            async def ignore_input() -> None:
                # The page sends nothing; reading notices a close and keeps
                # hypercorn's bounded queue drained.
                try:
                    while True:
                        message = await websocket.receive()
                        if message["type"] == "websocket.disconnect":
                            break
                finally:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(ignore_input)
            with contextlib.suppress(WebSocketDisconnect):
                await push_updates(websocket, face)
            nursery.cancel_scope.cancel()

    routes = [
        Route("/", index),
        Route("/api/state", state),
        Route("/metrics", metrics),
        WebSocketRoute("/ws", live),
        Route("/static/{name}", asset),
    ]
    return _Guard(Starlette(routes=routes), face)


async def push_updates(websocket: WebSocket, face: WebFace) -> None:
    """Send the whole state, then every update; close a client too slow to take one."""
    text = json.dumps(face.state(), separators=(",", ":"))
    while True:
        with trio.move_on_after(face.config.send_timeout) as scope:
            await websocket.send_text(text)
        if scope.cancelled_caught:
            # Leaving ends the connection: hypercorn closes it.
            face.core.drop("slow-client")
            return
        await face.updated.wait()
        text = face.latest
