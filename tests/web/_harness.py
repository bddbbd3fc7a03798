"""A small network with one node serving its page on loopback, and a raw HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from qdht import Config, Node, open_node
from qdht.node import QuietCore, Service, ServiceContext
from qdht.testing import build_network
from qdht.web import WEB_SERVICE, WebConfig, WebFace, web_service

DIFFICULTY = 0


class TrainingStats(QuietCore):
    """Stands in for the training layer's service (``node.training`` is not built yet):
    a coordinator's figures under the name ``training``, moving a round at a time."""

    def __init__(self) -> None:
        self.round = 0

    def drop(self, reason: str) -> None:
        raise AssertionError(reason)

    def stats(self) -> dict[str, Any]:
        self.round += 1
        return {
            "role": "coordinator",
            "round": self.round,
            "participants": 12,
            "accuracy": min(0.95, 0.5 + 0.05 * self.round),
            "epsilon": 0.4 * self.round,
            "drops": {},
        }


def training_stats(context: ServiceContext) -> Service:
    return Service("training", TrainingStats())


@asynccontextmanager
async def page_node(
    peers: int = 6,
    web: WebConfig | None = None,
    *,
    seed: int = 19,
    layers: dict[str, Any] | None = None,
    training: bool = False,
) -> AsyncIterator[tuple[Node, WebFace]]:
    """``peers`` nodes on an in-memory network (real clock) and one more, bootstrapped,
    serving its page on 127.0.0.1 (an ephemeral port unless ``web`` says otherwise).
    ``layers`` are ``Config`` fields turning layers on (``mixnet=MixnetConfig()``...);
    ``training`` adds the stand-in training service."""
    web = web if web is not None else WebConfig(port=0, update_interval=0.2)
    async with build_network(
        peers, seed=seed, difficulty=DIFFICULTY, access_latency=(0.0, 0.001)
    ) as sim:
        config = attrs.evolve(Config(puzzle_difficulty=DIFFICULTY, k=4), **(layers or {}))
        services = [web_service(web), *([training_stats] if training else [])]
        async with (
            sim.network.open_transport() as transport,
            open_node(config, transport=transport, services=services) as node,
        ):
            await node.bootstrap([sim.nodes[0].contact])
            face = node.services.get(WEB_SERVICE).face
            assert isinstance(face, WebFace)
            yield node, face


async def http(
    port: int, request: bytes, *, limit: int = 1 << 20
) -> tuple[int, dict[str, str], bytes]:
    """Send raw ``request`` bytes; (status, headers, body) of the answer (connection closed)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    data = b""
    async with stream:
        try:
            await stream.send_all(request)
            with trio.fail_after(10):
                while len(data) < limit:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    data += chunk
        except trio.BrokenResourceError:
            pass  # the server closed first (a request it refused to read)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def get(path: str, *, host: str = "127.0.0.1", extra: str = "") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n").encode(
        "latin-1"
    )


def ws_upgrade(path: str, *, extra: str = "") -> bytes:
    """A WebSocket opening handshake (RFC 6455 §4.1) as raw bytes."""
    return get(
        path,
        extra="Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" + extra,
    ).replace(b"Connection: close\r\n", b"")
