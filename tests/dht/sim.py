"""A seeded in-memory "oracle network" for routing-table and lookup tests.

No transport and no sessions: every node is a :class:`RoutingTable`, and a
FIND_NODE answer is computed directly from the queried node's table.  Requests
get a random latency; requests to dead nodes fail after a timeout.  Candidate
for ``qdht.testing`` once the node exists.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Collection

import attrs

from qdht.dht import Lookup, LookupConfig, RoutingConfig, RoutingTable
from qdht.wire import Address, Contact


def contact_for(node_id: bytes, ip: str = "10.0.0.1", port: int = 6881) -> Contact:
    return Contact(node_id, (Address("udp", ip, port),))


def unique_ip(i: int) -> str:
    """A distinct IPv4 /24 for each i < 2**16."""
    return f"10.{(i >> 8) & 255}.{i & 255}.1"


def id_with_prefix(local: bytes, shared_bits: int, rng: random.Random) -> bytes:
    """A random ID sharing exactly ``shared_bits`` leading bits with ``local``."""
    assert 0 <= shared_bits < 256
    loc = int.from_bytes(local, "big")
    r = rng.getrandbits(256)
    bit = 1 << (255 - shared_bits)
    high = ~((bit << 1) - 1) & ((1 << 256) - 1)
    value = (loc & high) | (~loc & bit) | (r & (bit - 1))
    return value.to_bytes(32, "big")


@attrs.define
class LookupRun:
    lookup: Lookup
    max_in_flight: int
    requested: list[bytes]


class OracleNetwork:
    """``n`` nodes with seeded random IDs, each with a plausible routing table.

    Each table holds the node's ``close`` nearest nodes plus ``sample`` random
    others, inserted in random order through ``update_verified`` (so bucket
    limits and splitting shape it as in a real network).
    """

    def __init__(
        self,
        n: int,
        *,
        seed: int,
        close: int = 40,
        sample: int = 120,
        config: RoutingConfig | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.ids = [self.rng.randbytes(32) for _ in range(n)]
        self.contacts = {
            node_id: contact_for(node_id, unique_ip(i)) for i, node_id in enumerate(self.ids)
        }
        self.ints = [int.from_bytes(x, "big") for x in self.ids]
        self.tables: dict[bytes, RoutingTable] = {}
        for i, node_id in enumerate(self.ids):
            me = self.ints[i]
            order = sorted(range(n), key=lambda j: self.ints[j] ^ me)[1 : close + 1]
            others = self.rng.sample(range(n), min(sample, n))
            chosen = list(dict.fromkeys(order + others))
            self.rng.shuffle(chosen)
            table = RoutingTable(node_id, now=0.0, config=config, rng=self.rng.randbytes)
            for j in chosen:
                if j != i:
                    table.update_verified(self.contacts[self.ids[j]], 0.0)
            self.tables[node_id] = table
        self.dead: set[bytes] = set()

    def kill(self, fraction: float) -> None:
        count = int(len(self.ids) * fraction)
        self.dead = set(self.rng.sample(self.ids, count))

    def true_closest(
        self, target: bytes, k: int, *, exclude: Collection[bytes] = ()
    ) -> list[bytes]:
        t = int.from_bytes(target, "big")
        alive = [x for x in self.ids if x not in self.dead and x not in exclude]
        return sorted(alive, key=lambda x: int.from_bytes(x, "big") ^ t)[:k]

    def run_lookup(
        self,
        start: bytes,
        target: bytes,
        *,
        config: LookupConfig | None = None,
        timeout: float = 1.0,
        find_value_at: Collection[bytes] = (),
    ) -> LookupRun:
        """Drive one lookup from ``start`` to completion in simulated time."""
        cfg = config if config is not None else LookupConfig()
        table = self.tables[start]
        now = 0.0
        lookup = Lookup(
            target,
            table.closest(target, cfg.k),
            now=now,
            config=cfg,
            find_value=bool(find_value_at),
            exclude={start},
        )
        events: list[tuple[float, int, bytes, bool]] = []
        seq = 0
        max_in_flight = 0
        requested: list[bytes] = []

        def send(now: float) -> None:
            nonlocal seq, max_in_flight
            for contact in lookup.next_requests(now):
                node_id = contact.node_id
                requested.append(node_id)
                ok = node_id not in self.dead
                delay = self.rng.uniform(0.01, 0.3) if ok else timeout
                heapq.heappush(events, (now + delay, seq, node_id, ok))
                seq += 1
            max_in_flight = max(max_in_flight, len(lookup.in_flight))

        send(now)
        while not lookup.done:
            timer = lookup.get_timer()
            if events and (timer is None or events[0][0] <= timer):
                now, _, node_id, ok = heapq.heappop(events)
                if not ok:
                    lookup.on_failure(node_id, now)
                elif node_id in find_value_at:
                    lookup.on_value(node_id, b"value", now)
                else:
                    lookup.on_nodes(node_id, self.tables[node_id].closest(target, cfg.k), now)
            elif timer is not None:
                now = max(now, timer)
            else:
                break
            send(now)
        return LookupRun(lookup, max_in_flight, requested)
