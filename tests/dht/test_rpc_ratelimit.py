"""RPC and STORE rate limits of the DHT core per source address and global, each on its own."""

from __future__ import annotations

import random
from typing import Any

from qdht.dht import DhtCore, RecordConfig, RpcConfig
from qdht.wire import (
    Address,
    ErrorCode,
    ErrorMessage,
    ImmutableRecord,
    Ping,
    Pong,
    Store,
    Stored,
    decode,
    encode,
)

RID = b"R" * 8
#: Records of these tests expire a day after the core's Unix time 0.
EXP = 86_400
#: Per-peer buckets large enough never to interfere with the limit under test.
ROOMY: dict[str, Any] = {"rate_limit": 1e6, "rate_burst": 1_000_000}


def node_id(n: int) -> bytes:
    return random.Random(n).randbytes(32)


def core(**options: object) -> DhtCore:
    return DhtCore(node_id(0), now=0.0, rng=random.Random(0).randbytes, **options)  # type: ignore[arg-type]


def answers(
    target: DhtCore, sender: int, addr: Address, payload: bytes, now: float
) -> list[object]:
    target.receive_message(node_id(sender), addr, payload, now)
    return [decode(p) for dst, _, p in target.messages_to_send() if dst == node_id(sender)]


def pings(target: DhtCore, senders: list[tuple[int, Address]], now: float = 0.0) -> int:
    """Read-only PINGs from each (node, address); how many were answered with PONG."""
    ping = encode(Ping(RID, ro=True))
    return sum(
        isinstance(m, Pong) for n, addr in senders for m in answers(target, n, addr, ping, now)
    )


def test_per_address_limit_counts_every_node_id_behind_one_address() -> None:
    target = core(rpc=RpcConfig(rate_limit_per_address=1.0, rate_burst_per_address=5, **ROOMY))
    flooder = Address("udp", "192.0.2.9", 6881)
    # Thirty node IDs (cheap Sybils) from one address share its five tokens.
    assert pings(target, [(n, flooder) for n in range(1, 31)]) == 5
    assert target.stats()["drops"]["rate-limited-address"] == 25
    # Another address, and the same address a second later, are served.
    assert pings(target, [(99, Address("udp", "192.0.2.10", 6881))]) == 1
    assert pings(target, [(1, flooder)], now=1.0) == 1


def test_per_address_limit_answers_rate_limited_once_then_stays_silent() -> None:
    target = core(rpc=RpcConfig(rate_limit_per_address=1.0, rate_burst_per_address=1, **ROOMY))
    addr = Address("udp", "192.0.2.9", 6881)
    ping = encode(Ping(RID, ro=True))
    replies = [m for _ in range(10) for m in answers(target, 1, addr, ping, 0.0)]
    assert sum(isinstance(m, Pong) for m in replies) == 1
    errors = [m.code for m in replies if isinstance(m, ErrorMessage)]
    assert errors == [ErrorCode.RATE_LIMITED]


def test_loopback_sources_are_told_apart_by_port() -> None:
    target = core(rpc=RpcConfig(rate_limit_per_address=1.0, rate_burst_per_address=1, **ROOMY))
    local = [(n, Address("udp", "127.0.0.1", 7000 + n)) for n in range(1, 6)]
    assert pings(target, local) == 5


def test_global_limit_caps_requests_from_everyone() -> None:
    target = core(rpc=RpcConfig(rate_limit_global=2.0, rate_burst_global=3, **ROOMY))
    senders = [(n, Address("udp", f"198.51.100.{n}", 6881)) for n in range(1, 11)]
    assert pings(target, senders) == 3
    assert target.stats()["drops"]["rate-limited-global"] == 7
    assert pings(target, senders, now=1.0) == 2  # refilled at 2 per second


def test_global_store_limit_refuses_stores_from_many_addresses() -> None:
    target = core(record_config=RecordConfig(store_rate_global=1.0, store_burst_global=2))
    stored = 0
    for n in range(1, 7):
        record = ImmutableRecord(b"value %d" % n, EXP)
        payload = encode(Store.of(RID, record))
        addr = Address("udp", f"203.0.113.{n}", 6881)
        stored += sum(isinstance(m, Stored) for m in answers(target, n, addr, payload, 0.0))
    assert stored == 2
    assert target.stats()["drops"]["store-flood-global"] == 4
