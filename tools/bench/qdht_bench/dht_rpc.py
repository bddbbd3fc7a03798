"""``qdht-bench dht-rpc``: CPU cost of the DHT core's RPC handling, per message.

Measures, in microseconds per message (median of several runs):

* encoding and decoding a 20-contact ``nodes`` answer through the general
  codec and through the hand-written fast path the core uses
  (``qdht.wire._dht_fast``);
* a FIND_NODE served end to end by :class:`qdht.dht.DhtCore` (decode,
  rate limiter, routing-table update, ``closest``, encode), from many
  requesters so the rate limiter never refuses;
* the requester's side: a NODES answer (20 contacts out of a 2000-node
  network) matched to its request and fed to a running lookup, which sends
  its next requests.

No sockets and no sessions: this is the DHT layer's own share of a lookup's
CPU, which bounds how many simulated nodes one process can run.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from qdht.dht import DhtCore, RpcConfig
from qdht.wire import Address, Contact, FindNode, Nodes, decode, encode, encode_nodes, parse_nodes
from qdht_bench._common import BenchResult, Target, median

DESCRIPTION = (
    "DHT core CPU per RPC: NODES codec (general vs fast), FIND_NODE served, answer handled"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=5_000, help="messages per run")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")


def _per_call_us(fn: Callable[[], object], count: int, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        samples.append((time.perf_counter() - start) / count * 1e6)
    return median(samples)


def _contacts(rng: random.Random, n: int) -> list[Contact]:
    return [
        Contact(rng.randbytes(32), (Address("udp", f"10.{i >> 8 & 255}.{i & 255}.1", 6881),))
        for i in range(n)
    ]


def run(args: argparse.Namespace) -> BenchResult:
    result = BenchResult("dht-rpc")
    rng = random.Random(1)
    count, runs = args.count, args.runs
    answer = Nodes(b"r" * 8, _contacts(rng, 20))
    data = encode(answer)
    result.add("nodes_bytes", len(data))
    general_runs = max(1, count // 10)
    result.add("nodes_encode_general_us", _per_call_us(lambda: encode(answer), general_runs, runs))
    result.add("nodes_decode_general_us", _per_call_us(lambda: decode(data), general_runs, runs))
    result.add("nodes_encode_fast_us", _per_call_us(lambda: encode_nodes(answer), count, runs))
    result.add(
        "nodes_decode_fast_us",
        _per_call_us(lambda: parse_nodes(data), count, runs),
        Target("<=", 100.0),
    )

    # Serving FIND_NODE: a core with a 200-contact table, requests from 1000 peers.
    server = DhtCore(rng.randbytes(32), now=0.0, rpc=RpcConfig(rate_limit=1e9, rate_burst=10**9))
    for contact in _contacts(rng, 200):
        server.routing.update_verified(contact, 0.0)
    requesters = _contacts(random.Random(2), 1000)
    requests = [encode(FindNode(rng.randbytes(8), rng.randbytes(32))) for _ in range(1000)]
    state = {"i": 0}

    def serve() -> None:
        i = state["i"] = (state["i"] + 1) % 1000
        peer = requesters[i]
        server.receive_message(peer.node_id, peer.address, requests[i], 0.0)
        server.messages_to_send()

    result.add("find_node_served_us", _per_call_us(serve, count, runs), Target("<=", 150.0))
    result.add("routing_table_size", len(server.routing))

    # The requester's side: a lookup gets 20 contacts per answer, drawn from a
    # 2000-node network (contacts repeat, as they do in a real one).
    pool = _contacts(rng, 2000)
    client = DhtCore(
        rng.randbytes(32), now=0.0, rpc=RpcConfig(max_pending=10**6, max_lookups=10**6)
    )
    seeds = _contacts(rng, 20)
    for contact in seeds:
        client.routing.update_verified(contact, 0.0)
    samples = []
    for _ in range(runs):
        handled = 0
        elapsed = 0.0
        while handled < count:
            client.start_lookup(rng.randbytes(32), 0.0)
            for dst, addr, payload in client.messages_to_send():
                rid = decode(payload).rid  # type: ignore[attr-defined]
                reply = encode_nodes(Nodes(rid, rng.sample(pool, 20)))
                start = time.perf_counter()
                client.receive_message(dst, addr, reply, 0.0)
                elapsed += time.perf_counter() - start
                handled += 1
            client.messages_to_send()
            while client.next_event() is not None:
                pass
        samples.append(elapsed / handled * 1e6)
    # Most of this is the lookup learning 20 candidates (qdht.dht.Lookup).
    result.add("nodes_answer_handled_us", median(samples))
    result.notes.append(
        "general codec runs use count/10 messages; fast-path and core runs use count"
    )
    return result
