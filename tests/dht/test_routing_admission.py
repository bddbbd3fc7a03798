"""Routing-table admission defences: puzzle, prefix diversity, outbound first,
low-reputation eviction, random walks and the network-size estimate."""

from __future__ import annotations

import random

from qdht.dht import (
    LookupConfig,
    PeerAdded,
    PeerReplaced,
    PingNeeded,
    RoutingConfig,
    RoutingTable,
)
from qdht.identity import puzzle_ok
from qdht.testing import CoreNetwork
from qdht.wire import dumps_canonical, loads_canonical

from .sim import contact_for, id_with_prefix, unique_ip

ZERO = bytes(32)


def ids_with_puzzle(
    rng: random.Random, difficulty: int, count: int, *, solved: bool
) -> list[bytes]:
    out: list[bytes] = []
    while len(out) < count:
        node_id = rng.randbytes(32)
        if puzzle_ok(node_id, difficulty) == solved:
            out.append(node_id)
    return out


def test_ids_that_do_not_solve_the_puzzle_never_enter() -> None:
    rng = random.Random(1)
    table = RoutingTable(ZERO, now=0.0, config=RoutingConfig(puzzle_difficulty=6))
    good = ids_with_puzzle(rng, 6, 5, solved=True)
    bad = ids_with_puzzle(rng, 6, 7, solved=False)
    for i, node_id in enumerate(good + bad):
        table.update_verified(contact_for(node_id, unique_ip(i)), 0.0)
    assert {c.node_id for c in table} == set(good)
    assert table.stats()["drops"]["bad-puzzle"] == len(bad)


def test_puzzle_is_checked_when_restoring_a_snapshot() -> None:
    rng = random.Random(2)
    ids = ids_with_puzzle(rng, 5, 3, solved=True) + ids_with_puzzle(rng, 5, 4, solved=False)
    plain = RoutingTable(ZERO, now=0.0)
    for i, node_id in enumerate(ids):
        plain.update_verified(contact_for(node_id, unique_ip(i)), 0.0)
    assert len(plain) == 7
    data = loads_canonical(dumps_canonical(plain.to_snapshot(10.0)))
    strict = RoutingTable.from_snapshot(data, now=0.0, config=RoutingConfig(puzzle_difficulty=5))
    assert len(strict) == 3
    assert strict.stats()["drops"]["bad-puzzle"] == 4


def test_prefix_limits_hold_for_inbound_and_outbound_peers() -> None:
    rng = random.Random(3)
    config = RoutingConfig(outbound_first=0, max_per_prefix_bucket=2, max_per_prefix_table=3)
    table = RoutingTable(ZERO, now=0.0, config=config)
    for i in range(32):  # buckets 0, 1, 2 and the local one (>= 3 shared bits)
        table.update_verified(contact_for(id_with_prefix(ZERO, 1 + i // 8, rng), unique_ip(i)), 0.0)
    assert table.bucket_count == 4
    # Five peers of one /24 in bucket 0 and three of it elsewhere: 2 per bucket, 3 in all.
    for n in range(5):
        node_id = id_with_prefix(ZERO, 0, rng)
        table.update_verified(contact_for(node_id, f"192.0.2.{n + 1}"), 0.0, inbound=n % 2 == 0)
    for n in range(3):
        node_id = id_with_prefix(ZERO, 1 + n, rng)
        table.update_verified(contact_for(node_id, f"192.0.2.{n + 50}"), 0.0)
    in_prefix = [c for c in table if c.address.host.startswith("192.0.2.")]
    assert len(in_prefix) == 3
    assert len(table.bucket_contacts(0)) == 2
    drops = table.stats()["drops"]
    assert drops["prefix-limit-bucket"] == 3
    assert drops["prefix-limit-table"] == 2


def test_unsolicited_requesters_wait_until_the_table_has_outbound_peers() -> None:
    rng = random.Random(4)
    table = RoutingTable(
        ZERO,
        now=0.0,
        config=RoutingConfig(outbound_first=3, inbound_check_burst=2, inbound_check_interval=10.0),
    )
    strangers = [contact_for(rng.randbytes(32), unique_ip(i)) for i in range(3)]
    events = [table.update_verified(c, 0.0, inbound=True) for c in strangers]
    # Not added; the first two are asked to prove themselves, the third waits for a token.
    assert len(table) == 0
    assert events == [[PingNeeded(strangers[0])], [PingNeeded(strangers[1])], []]
    assert table.stats()["drops"]["inbound-before-outbound"] == 3
    # A stranger that answers our PING is an outbound peer now.
    assert table.update_verified(strangers[0], 0.5) == [PeerAdded(strangers[0])]
    assert table.outbound_count == 1
    # After the interval, one more check is allowed.
    assert table.update_verified(strangers[2], 10.0, inbound=True) == [PingNeeded(strangers[2])]
    # Peers learned from our own lookups fill the table; then inbound peers are admitted.
    for i in range(2):
        table.update_verified(contact_for(rng.randbytes(32), unique_ip(100 + i)), 11.0)
    assert table.outbound_count == 3
    late = contact_for(rng.randbytes(32), unique_ip(200))
    assert table.update_verified(late, 12.0, inbound=True) == [PeerAdded(late)]
    assert table.outbound_count == 3  # it has not answered us yet


def test_an_inbound_entry_becomes_outbound_when_it_answers() -> None:
    rng = random.Random(5)
    table = RoutingTable(ZERO, now=0.0, config=RoutingConfig(outbound_first=0))
    peer = contact_for(rng.randbytes(32), unique_ip(1))
    table.update_verified(peer, 0.0, inbound=True)
    assert len(table) == 1
    assert table.outbound_count == 0
    table.update_verified(peer, 1.0, inbound=True)
    assert table.outbound_count == 0
    table.on_response(peer.node_id, 2.0, 0.05)
    assert table.outbound_count == 1
    table.remove(peer.node_id, 3.0)
    assert table.outbound_count == 0


def test_low_reputation_entries_are_replaced_first() -> None:
    rng = random.Random(6)
    table = RoutingTable(ZERO, now=0.0, config=RoutingConfig(outbound_first=0))
    ids = [id_with_prefix(ZERO, 0, rng) for _ in range(20)]
    for i, node_id in enumerate(ids):
        table.update_verified(contact_for(node_id, unique_ip(i)), 0.0)
    scores = {ids[7]: -50.0, ids[3]: -12.0, ids[11]: -5.0}
    table.score = lambda node_id, now: scores.get(node_id, 0.0)
    newcomer = contact_for(id_with_prefix(ZERO, 0, rng), unique_ip(50))
    events = table.update_verified(newcomer, 1.0)
    assert events == [PeerReplaced(contact_for(ids[7], unique_ip(7)), newcomer)]
    second = contact_for(id_with_prefix(ZERO, 0, rng), unique_ip(51))
    assert table.update_verified(second, 1.0) == [
        PeerReplaced(contact_for(ids[3], unique_ip(3)), second)
    ]
    # -5 is above evict_below_score (-10): the next newcomer only waits as a replacement.
    third = contact_for(id_with_prefix(ZERO, 0, rng), unique_ip(52))
    assert table.update_verified(third, 1.0) == []
    assert ids[11] in table
    assert third.node_id not in table
    assert table.stats()["low-score-replaced"] == 2


def test_random_walks_run_at_the_configured_interval() -> None:
    config = RoutingConfig(random_walk_interval=300.0, refresh_interval=3600.0)
    table = RoutingTable(ZERO, now=0.0, config=config, rng=random.Random(7).randbytes)
    table.update_verified(contact_for(b"\x80" + bytes(31)), 0.0)
    assert table.next_refresh_time() == 300.0
    assert table.buckets_needing_refresh(299.0) == []
    walk = table.buckets_needing_refresh(300.0)
    assert len(walk) == 1
    assert table.next_refresh_time() == 600.0
    second = table.buckets_needing_refresh(600.0)
    assert len(second) == 1
    assert second != walk
    assert table.stats()["random_walks"] == 2
    off = RoutingTable(ZERO, now=0.0, config=RoutingConfig(random_walk_interval=None))
    assert off.next_refresh_time() == 3600.0


def test_network_size_estimate_tracks_the_neighbourhood() -> None:
    rng = random.Random(8)
    for n in (500, 5000):
        ids = [rng.randbytes(32) for _ in range(n)]
        me = ids[0]
        table = RoutingTable(me, now=0.0, config=RoutingConfig(outbound_first=0))
        mine = int.from_bytes(me, "big")
        for i, node_id in enumerate(
            sorted(ids[1:], key=lambda x: int.from_bytes(x, "big") ^ mine)[:200]
        ):
            table.update_verified(contact_for(node_id, unique_ip(i)), 0.0)
        estimate = table.estimated_size()
        assert n / 3 < estimate < n * 3
    assert RoutingTable(ZERO, now=0.0).estimated_size() == 1.0


def test_the_rough_size_is_the_estimate_as_last_computed() -> None:
    rng = random.Random(9)
    table = RoutingTable(ZERO, now=0.0, config=RoutingConfig(outbound_first=0))
    for i in range(60):
        table.update_verified(contact_for(rng.randbytes(32), unique_ip(i)), 0.0)
    first = table.rough_size()  # nothing computed yet: computed now
    assert first == table.estimated_size()
    # A newcomer next to us moves the estimate; the rough size stays as it was
    # until someone asks for the estimate again.
    table.update_verified(contact_for(b"\x00" * 31 + b"\x01", unique_ip(99)), 1.0)
    assert table.rough_size() == first
    moved = table.estimated_size()
    assert moved != first
    assert table.rough_size() == moved


def test_outbound_first_never_asks_for_more_than_k_outbound_peers() -> None:
    # A k = 2 table with the default outbound_first (20): in a small network it
    # could never hold 20 outbound peers, and requesters would stay out for good.
    rng = random.Random(6)
    table = RoutingTable(ZERO, now=0.0, config=RoutingConfig(k=2))
    for i in range(2):
        table.update_verified(contact_for(rng.randbytes(32), unique_ip(i)), 0.0)
    assert table.outbound_count == 2
    requester = contact_for(rng.randbytes(32), unique_ip(50))
    assert table.update_verified(requester, 1.0, inbound=True) in (
        [PeerAdded(requester)],
        [],  # its bucket was full: it waits in the replacement cache
    )
    assert "inbound-before-outbound" not in table.stats()["drops"]


def test_the_random_walk_ends_at_its_own_narrow_window() -> None:
    """A walk's lookup stops once ``refresh_window`` closest answered (02 §8):
    in the same network, an hour of nothing but walks costs a narrow walk far
    fewer messages than a k-wide one, with every node walking once in both."""
    delivered = {}
    for window in (20, 3):
        net = CoreNetwork(
            seed=5,
            core_options={
                "routing": RoutingConfig(random_walk_interval=600.0),
                "lookup": LookupConfig(refresh_window=window),
            },
        )
        net.build(150)
        start = net.now
        before = net.stats()["delivered"]
        net.run_until(start + 600.0)
        assert sum(n.core.routing.stats()["random_walks"] for n in net.alive) == 150
        delivered[window] = net.stats()["delivered"] - before
    assert delivered[3] < 0.7 * delivered[20]
