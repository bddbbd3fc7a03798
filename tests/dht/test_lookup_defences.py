"""Lookups under attack: truly disjoint paths, reputation order, banned peers,
ID clustering detection."""

from __future__ import annotations

import random

from qdht.dht import ClusterDetector, Lookup, LookupConfig, distance
from qdht.wire import Contact

from .sim import contact_for, unique_ip


def near(target: bytes, bits: int, rng: random.Random) -> bytes:
    """A random ID within XOR distance 2**bits of ``target``."""
    value = int.from_bytes(target, "big") ^ rng.getrandbits(bits)
    return value.to_bytes(32, "big")


def test_paths_stay_disjoint_when_adversaries_announce_every_node() -> None:
    """S/Kademlia: each node is queried by at most one path, even when a liar on one
    path hands out the nodes the other paths are about to query."""
    rng = random.Random(40)
    target = rng.randbytes(32)
    honest = [contact_for(rng.randbytes(32), unique_ip(i)) for i in range(300)]
    liars = {c.node_id for c in honest[:60]}
    initial = sorted(honest[:60:3] + honest[200:210], key=lambda c: distance(c.node_id, target))
    config = LookupConfig(disjoint_paths=4, alpha=2)
    lookup = Lookup(target, initial, now=0.0, config=config)
    queried: dict[bytes, int] = {}
    now = 0.0
    while not lookup.done:
        batch = lookup.next_requests(now)
        if not batch:
            break
        for contact in batch:
            node_id = contact.node_id
            path = lookup.path_of(node_id)
            assert path is not None
            assert node_id not in queried
            queried[node_id] = path
            now += 0.01
            if node_id in liars:
                # Everything, shuffled: including what other paths own.
                answer = rng.sample(honest, 20)
            else:
                answer = sorted(honest, key=lambda c: distance(c.node_id, target))[:20]
            lookup.on_nodes(node_id, answer, now)
    assert lookup.done
    assert set(queried.values()) == {0, 1, 2, 3}
    # The owner never changes, so no node was asked twice by different paths.
    assert all(lookup.path_of(n) == p for n, p in queried.items())


def test_banned_peers_are_never_queried() -> None:
    rng = random.Random(41)
    target = rng.randbytes(32)
    contacts = sorted(
        (contact_for(rng.randbytes(32), unique_ip(i)) for i in range(10)),
        key=lambda c: distance(c.node_id, target),
    )
    banned = {contacts[0].node_id, contacts[4].node_id}
    lookup = Lookup(
        target,
        contacts,
        now=0.0,
        config=LookupConfig(alpha=10),
        priority=lambda node_id: None if node_id in banned else 0.0,
    )
    asked = {c.node_id for c in lookup.next_requests(0.0)}
    assert asked == {c.node_id for c in contacts} - banned
    # A banned peer named in an answer is skipped too.
    lookup.on_nodes(contacts[1].node_id, [contacts[0]], 0.1)
    assert lookup.trace.drops["banned"] == 3


def test_low_scores_are_asked_last_within_a_distance_class() -> None:
    target = bytes(32)
    # Four contacts in one distance class (bit length 200), one far away.
    same_class = [contact_for((1 << 199 | i).to_bytes(32, "big"), unique_ip(i)) for i in range(4)]
    far = contact_for((1 << 250).to_bytes(32, "big"), unique_ip(9))
    scores = {same_class[0].node_id: -30.0, same_class[1].node_id: 5.0}
    lookup = Lookup(
        target,
        [*same_class, far],
        now=0.0,
        config=LookupConfig(alpha=1),
        priority=lambda node_id: scores.get(node_id, 0.0),
    )
    order: list[Contact] = []
    now = 0.0
    while (batch := lookup.next_requests(now)) and not lookup.done:
        order.extend(batch)
        now += 1.0
        lookup.on_nodes(batch[0].node_id, [], now)
    # Distance still wins across classes; within the class the better score goes first.
    assert order == [same_class[1], same_class[2], same_class[3], same_class[0], far]


def test_cluster_detector_flags_sybils_near_a_key_but_not_honest_density() -> None:
    rng = random.Random(42)
    network_size = 2000.0
    detector = ClusterDetector(LookupConfig())
    radius = detector.radius(network_size)
    # Honest density: 2000 uniform IDs, a lookup that learned of all of them.
    honest = [contact_for(rng.randbytes(32), unique_ip(i)) for i in range(2000)]
    for _ in range(20):
        target = rng.randbytes(32)
        lookup = Lookup(target, honest, now=0.0)  # keeps the 200 nearest
        assert not detector.observe(lookup, network_size, 1.0)
    # 25 IDs minted right next to one key (an eclipse attempt).
    key = rng.randbytes(32)
    sybils = [
        contact_for(near(key, radius.bit_length() - 2, rng), unique_ip(3000 + i)) for i in range(25)
    ]
    lookup = Lookup(key, [*honest[:50], *sybils], now=0.0)
    assert lookup.seen_within(radius) >= 25
    assert detector.observe(lookup, network_size, 2.0)
    stats = detector.stats()
    assert stats["checked"] == 21
    assert stats["suspicious"] == 1
    assert stats["recent"][0]["key"] == key.hex()
    assert stats["recent"][0]["seen"] >= 25


def past_liars(config: LookupConfig, seed: int = 43) -> tuple[bytes, list[bytes]]:
    """A lookup from 20 liars that answer with each other and one honest node
    that knows the holder (closer than every liar): (the holder, the result)."""
    rng = random.Random(seed)
    target = rng.randbytes(32)
    liars = [contact_for(near(target, 200, rng), unique_ip(i)) for i in range(20)]
    honest = contact_for(near(target, 230, rng), unique_ip(100))
    holder = contact_for(near(target, 190, rng), unique_ip(101))
    lookup = Lookup(target, [*liars, honest], now=0.0, config=config)
    now = 0.0
    while not lookup.done and (batch := lookup.next_requests(now)):
        for contact in batch:
            now += 0.01
            answer = [holder] if contact == honest else liars
            lookup.on_nodes(contact.node_id, answer, now)
    return holder.node_id, [c.node_id for c in lookup.result]


def test_a_wider_window_reaches_past_liars_that_answer_with_each_other() -> None:
    holder, result = past_liars(LookupConfig())
    assert holder not in result
    holder, result = past_liars(LookupConfig(window=40))
    assert holder in result


def test_a_put_lookup_hears_from_2k_candidates_over_all_its_paths() -> None:
    plain = LookupConfig()
    assert plain.for_put().window == 40
    holder, result = past_liars(plain.for_put(), seed=44)
    assert holder in result
    assert len(result) == 20  # it still stores at the k closest
    holder, result = past_liars(plain, seed=44)
    assert holder not in result
    for d in (2, 4):  # d paths of k already cover 2k
        assert LookupConfig(disjoint_paths=d).for_put() == LookupConfig(disjoint_paths=d)
    assert LookupConfig(put_window=90, disjoint_paths=3).for_put().window == 30
    assert LookupConfig(put_window=30).for_put().window == 30
    assert LookupConfig(window=50).for_put().window == 50
    assert LookupConfig(put_window=500).for_put().window == 200  # max_candidates
