"""The page over real loopback HTTP: its routes, the token, the limits, bad input.

Nodes run on the in-memory network with the real clock (the server is a
real hypercorn on 127.0.0.1); nothing waits on a wall-clock sleep to check
an outcome, only for the server's own update ticks.
"""

from __future__ import annotations

import json

import trio
from trio_websocket import open_websocket

from qdht.web import WebConfig

from ._harness import get, http, page_node, ws_upgrade

TOKEN = "t0ken-for-the-tests-0123456789"


async def test_the_state_shows_peers_lookups_and_counters_without_secrets() -> None:
    async with page_node() as (node, face):
        assert face.url is not None
        assert face.url.startswith("http://127.0.0.1:")
        await node.find_node(node.node_id)
        key = await node.put(b"a value that must never appear on the page")
        status, headers, body = await http(face.port or 0, get("/api/state"))
        assert status == 200
        assert headers["content-type"] == "application/json"
        state = json.loads(body)
        peers = [p for b in state["routing"]["buckets"] for p in b["peers"]]
        assert len(peers) == state["routing"]["size"] >= 4
        assert all(p["reputation"] is not None for p in peers)
        assert any(p["rtt_ms"] is not None for p in peers)
        recent = state["lookups"]["recent"]
        assert any(r["kind"] == "find_node" and r["queried"] for r in recent)
        put = next(r for r in recent if r["kind"] == "put")
        assert put["succeeded"] is True
        assert key.hex() in state["records"]["published"]
        assert state["counters"]["bytes_sent"] > 0
        # Keys and record contents stay off the page: only hashes and sizes.
        assert b"never appear" not in body
        assert node.identity.mldsa_public_hash.hex() not in body.decode()


async def test_metrics_are_prometheus_text() -> None:
    async with page_node() as (node, face):
        await node.find_node(node.node_id)
        status, headers, body = await http(face.port or 0, get("/metrics"))
        assert status == 200
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        text = body.decode()
        assert "# TYPE qdht_bytes_sent_total counter" in text
        size = next(
            line for line in text.splitlines() if line.startswith("qdht_routing_table_size ")
        )
        assert float(size.split()[1]) == node.stats()["routing_table_size"]
        assert 'qdht_lookups_total{kind="find_node",outcome="succeeded"}' in text


async def test_the_page_and_its_assets_are_served_from_the_package() -> None:
    async with page_node() as (_, face):
        status, headers, body = await http(face.port or 0, get("/"))
        assert status == 200
        assert b'<script src="static/app.js"' in body
        assert "default-src 'self'" in headers["content-security-policy"]
        for asset in ("/static/app.js", "/static/style.css"):
            status, _, body = await http(face.port or 0, get(asset))
            assert status == 200
            assert body
        assert b"http" not in (await http(face.port or 0, get("/static/app.js")))[2].split(b"//")[0]


async def test_the_websocket_pushes_the_state_then_updates() -> None:
    async with (
        page_node() as (node, face),
        open_websocket("127.0.0.1", face.port or 0, "/ws", use_ssl=False) as ws,
    ):
        first = json.loads(await ws.get_message())
        assert first["node"]["id"] == node.node_id.hex()
        await node.find_node(bytes(32))
        with trio.fail_after(10):
            while True:
                update = json.loads(await ws.get_message())
                if any(r["target"] == bytes(32).hex() for r in update["lookups"]["recent"]):
                    break
        assert len(update["history"]) == 1  # updates carry the newest sample only


async def test_a_token_is_required_when_set_and_a_wrong_one_gets_401_only() -> None:
    web = WebConfig(port=0, token=TOKEN, update_interval=0.2)
    async with page_node(web=web) as (_, face):
        port = face.port or 0
        assert face.url is not None
        assert face.url.endswith(f"/?token={TOKEN}")
        for request in (
            get("/api/state"),
            get("/api/state?token=wrong"),
            get("/metrics", extra="Authorization: Bearer nope\r\n"),
            get("/", extra="Cookie: qdht_token=nope; =;;\r\n"),
        ):
            status, _, body = await http(port, request)
            assert (status, body) == (401, b"401 Unauthorized\n")
        status, headers, _ = await http(port, get(f"/?token={TOKEN}"))
        assert status == 200
        assert "HttpOnly" in headers["set-cookie"]
        status, _, _ = await http(port, get("/api/state", extra=f"Cookie: qdht_token={TOKEN}\r\n"))
        assert status == 200
        status, _, _ = await http(port, get("/metrics", extra=f"Authorization: Bearer {TOKEN}\r\n"))
        assert status == 200
        status, _, body = await http(port, ws_upgrade("/ws"))
        assert (status, body) == (401, b"401 Unauthorized\n")
        async with open_websocket("127.0.0.1", port, f"/ws?token={TOKEN}", use_ssl=False) as ws:
            assert json.loads(await ws.get_message())["node"]
        assert face.core.stats()["drops"]["unauthorized"] == 5


def test_off_loopback_a_token_is_generated() -> None:
    assert WebConfig(host="0.0.0.0").effective_token() is not None
    assert WebConfig(host="::").effective_token() is not None
    assert WebConfig(host="127.0.0.1").effective_token() is None
    assert WebConfig(host="::1", token=TOKEN).effective_token() == TOKEN


async def test_other_sites_cannot_read_a_loopback_page() -> None:
    async with page_node() as (_, face):
        port = face.port or 0
        status, _, _ = await http(port, get("/api/state", host="evil.example"))
        assert status == 403
        status, _, _ = await http(port, ws_upgrade("/ws", extra="Origin: http://evil.example\r\n"))
        assert status == 403
        assert face.core.stats()["drops"] == {"bad-host": 1, "bad-origin": 1}


async def test_connections_beyond_the_limit_get_503_and_the_page_lives_on() -> None:
    web = WebConfig(port=0, max_connections=3, max_websockets=2, update_interval=0.2)
    async with page_node(web=web) as (_, face):
        port = face.port or 0
        async with (
            open_websocket("127.0.0.1", port, "/ws", use_ssl=False) as a,
            open_websocket("127.0.0.1", port, "/ws", use_ssl=False) as b,
        ):
            await a.get_message()
            await b.get_message()
            status, _, _ = await http(port, ws_upgrade("/ws"))
            assert status == 503
            assert (await http(port, get("/api/state")))[0] == 200
        assert face.core.stats()["drops"]["too-many-websockets"] == 1
        assert (await http(port, get("/metrics")))[0] == 200


async def test_malformed_requests_are_refused_and_the_server_keeps_serving() -> None:
    async with page_node() as (_, face):
        port = face.port or 0
        for junk in (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64) + b"\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 400_000 + b"\r\n\r\n",
            b"POST /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Length: 5\r\n\r\nhello",
            get("/nothing-here"),
            get("/static/../_config.py"),
        ):
            status, _, body = await http(port, junk)
            assert status in (0, 400, 404, 405, 413, 426, 431), (junk[:40], status)
            assert b"Traceback" not in body
        assert (await http(port, get("/api/state")))[0] == 200
