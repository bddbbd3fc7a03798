"""The replication planner (qdht.dht._replication) on its own: sans-IO, no network."""

from __future__ import annotations

import random

import pytest

from qdht.dht import (
    MemoryRecordStore,
    ReplicationConfig,
    Replicator,
    RoutingTable,
    ValidRecord,
    cache_lifetime,
    distance,
    make_immutable,
    region_of,
    validate_record,
)
from qdht.errors import ConfigError
from qdht.wire import Address, Contact, immutable_key

UNIX = 1_750_000_000
K = 20


def _contact(node_id: bytes, port: int) -> Contact:
    return Contact(node_id, (Address("udp", "127.0.0.1", port),))


def _record(value: bytes, *, ttl: int = 86400) -> ValidRecord:
    record = make_immutable(value, UNIX + ttl)
    return validate_record(record, immutable_key(value), UNIX)


class World:
    """N random node IDs; one of them is "us", with a routing table that knows them all."""

    def __init__(self, n: int, *, seed: int = 1, config: ReplicationConfig | None = None) -> None:
        rng = random.Random(seed)
        self.ids = [rng.randbytes(32) for _ in range(n)]
        self.local = self.ids[0]
        self.routing = RoutingTable(self.local, now=0.0)
        for i, node_id in enumerate(self.ids[1:], start=1):
            self.routing.update_verified(_contact(node_id, 1000 + i), 0.0)
        self.store = MemoryRecordStore()
        self.rep = Replicator(
            self.local,
            routing=self.routing,
            store=self.store,
            k=K,
            now=0.0,
            config=config,
            rng=rng.randbytes,
        )

    def hold(self, record: ValidRecord) -> None:
        decision = self.store.put(record, source="test", cached=False, now=UNIX)
        assert decision.accepted

    def true_closest(self, key: bytes, n: int = K) -> list[bytes]:
        return sorted(self.ids, key=lambda x: distance(x, key))[:n]

    def near_key(self, rng: random.Random) -> bytes:
        """A key for which we are among the k closest (so we would hold it)."""
        while True:
            value = rng.randbytes(16)
            key = immutable_key(value)
            if self.local in self.true_closest(key):
                return value


def test_region_holds_exactly_the_keys_sharing_the_prefix() -> None:
    rng = random.Random(3)
    key = rng.randbytes(32)
    low, high, mid = region_of(key, 10)
    assert low <= key < (high or b"\xff" * 33)
    assert low <= mid < (high or b"\xff" * 33)
    assert int.from_bytes(low, "big") >> 246 == int.from_bytes(key, "big") >> 246
    assert high is not None
    assert int.from_bytes(high, "big") - int.from_bytes(low, "big") == 1 << 246
    assert region_of(key, 0) == (bytes(32), None, b"\x80" + bytes(31))
    with pytest.raises(ConfigError, match="bits"):
        region_of(key, 257)


def test_handoff_sends_a_newcomer_the_records_it_now_should_hold() -> None:
    world = World(60, seed=5)
    rng = random.Random(7)
    # Keys we hold and for which the newcomer will rank among the k closest.
    newcomer_id = world.local[:8] + rng.randbytes(24)  # a neighbour of ours
    wanted: list[bytes] = []
    for _ in range(400):
        value = rng.randbytes(16)
        key = immutable_key(value)
        closest = sorted([*world.ids, newcomer_id], key=lambda x: distance(x, key))[:K]
        if world.local in closest[:3] and newcomer_id in closest:
            world.hold(_record(value))
            wanted.append(key)
        if len(wanted) == 3:
            break
    assert wanted, "the seed must give keys near both"
    newcomer = _contact(newcomer_id, 9999)
    world.routing.update_verified(newcomer, 1.0)
    world.rep.on_peer_added(newcomer, 1.0)
    sent = world.rep.stores_due(1.0)
    assert sorted(key for contact, key in sent if contact == newcomer) == sorted(wanted)
    assert world.rep.stats()["handoff_stores"] == len(wanted)
    # Re-added soon after (a flapping peer): nothing is sent again.
    world.rep.on_peer_added(newcomer, 2.0)
    assert world.rep.stores_due(2.0) == []


def test_handoff_skips_a_newcomer_farther_than_the_k_closest() -> None:
    world = World(200, seed=6)
    rng = random.Random(8)
    value = world.near_key(rng)
    world.hold(_record(value))
    key = immutable_key(value)
    kth = world.true_closest(key)[-1]
    # A newcomer far from the key: flip the key's top bit.
    far = bytes([key[0] ^ 0x80]) + key[1:]
    assert distance(far, key) > distance(kth, key)
    world.rep.on_peer_added(_contact(far, 9999), 1.0)
    assert world.rep.stores_due(1.0) == []


def test_stores_to_one_destination_are_paced_after_a_burst() -> None:
    config = ReplicationConfig(store_rate=2.0, store_burst=3, republish_interval=10_000.0)
    world = World(5, seed=9, config=config)
    dest = _contact(world.ids[1], 1001)
    for i in range(8):
        assert world.rep._enqueue(dest, bytes([i]) * 32, None, 0.0)
    assert len(world.rep.stores_due(0.0)) == 3  # the burst
    assert world.rep.stores_due(0.2) == []
    assert len(world.rep.stores_due(0.5)) == 1  # then 2 per second
    assert len(world.rep.stores_due(1.5)) == 2
    timer = world.rep.get_timer()
    assert timer is not None
    assert 1.5 < timer <= 2.0
    assert len(world.rep.stores_due(100.0)) == 2
    assert world.rep.queued == 0


def test_the_store_queue_is_bounded() -> None:
    config = ReplicationConfig(max_queued_stores=4, max_queued_per_peer=3)
    world = World(5, seed=10, config=config)
    a, b = _contact(world.ids[1], 1001), _contact(world.ids[2], 1002)
    results = [world.rep._enqueue(a, bytes([i]) * 32, None, 0.0) for i in range(4)]
    results += [world.rep._enqueue(b, bytes([i]) * 32, None, 0.0) for i in range(2)]
    assert results == [True, True, True, False, True, False]
    assert world.rep.stats()["drops"] == {"peer-queue-full": 1, "queue-full": 1}


def _run_round(world: World, now: float) -> tuple[int, list[tuple[Contact, bytes]]]:
    """Start a round at ``now`` and answer every region lookup with the true k closest."""
    contacts = {node_id: _contact(node_id, 1000 + i) for i, node_id in enumerate(world.ids)}
    lookups = 0
    while True:
        batch = world.rep.lookups_to_start(now)
        if not batch:
            break
        for lookup in batch:
            lookups += 1
            found = [
                contacts[x] for x in world.true_closest(lookup.target, K + 1) if x != world.local
            ][:K]
            world.rep.on_lookup_done(lookup.target, found, now)
    sent: list[tuple[Contact, bytes]] = []
    while world.rep.queued:
        timer = world.rep.get_timer()
        assert timer is not None
        now = max(now, timer)
        sent += world.rep.stores_due(now)
    return lookups, sent


def test_a_round_sends_every_key_to_its_k_closest_with_few_lookups() -> None:
    world = World(400, seed=11)
    rng = random.Random(12)
    keys = []
    for _ in range(40):
        value = world.near_key(rng)
        world.hold(_record(value))
        keys.append(immutable_key(value))
    start = world.rep.next_round_at
    assert 0.0 <= start <= 3600.0
    assert world.rep.lookups_to_start(start - 1.0) == []
    lookups, sent = _run_round(world, start)
    assert 1 <= lookups < len(keys) / 3  # batched by region, not one lookup per key
    by_key: dict[bytes, set[bytes]] = {}
    for contact, key in sent:
        by_key.setdefault(key, set()).add(contact.node_id)
    for key in keys:
        # The lookup finds the k closest to the region's midpoint, the routing
        # table fills in those nearer to the key: exactly the key's k closest.
        assert by_key[key] == set(world.true_closest(key)) - {world.local}
    stats = world.rep.stats()
    assert stats["rounds"] == 1
    assert stats["round_lookups"] == lookups
    assert stats["round_stores"] == len(sent)
    assert stats["last_rounds"][0]["keys"] == len(keys)
    assert world.rep.next_round_at > start + 3000.0


def test_a_round_skips_keys_stored_at_us_during_the_interval() -> None:
    world = World(100, seed=13)
    rng = random.Random(14)
    fresh, stale = world.near_key(rng), world.near_key(rng)
    for value in (fresh, stale):
        world.hold(_record(value))
    start = world.rep.next_round_at
    world.rep.on_store_received(immutable_key(fresh), start - 60.0)
    _lookups, sent = _run_round(world, start)
    assert {key for _, key in sent} == {immutable_key(stale)}
    assert world.rep.stats()["round_skipped"] == 1
    # The next round, an interval later, republishes both: nobody stored them meanwhile.
    second = world.rep.next_round_at
    _lookups, sent = _run_round(world, second)
    assert {key for _, key in sent} == {immutable_key(fresh), immutable_key(stale)}


def test_a_round_with_nothing_stored_costs_nothing() -> None:
    world = World(50, seed=15)
    lookups, sent = _run_round(world, world.rep.next_round_at)
    assert (lookups, sent) == (0, [])
    assert world.rep.stats()["rounds"] == 1


def test_cache_lifetime_halves_per_bit_of_distance() -> None:
    key = bytes(32)
    nearest = bytes(31) + b"\x01"  # distance 1: bit length 1
    near = bytes(31) + b"\x02"  # bit length 2: one step
    far = bytes(31) + b"\x80"  # bit length 8: seven steps
    assert cache_lifetime(nearest, nearest, key, base=3600, minimum=60) == 3600
    assert cache_lifetime(near, nearest, key, base=3600, minimum=60) == 1800
    assert cache_lifetime(far, nearest, key, base=3600, minimum=10) == 3600 / 128
    assert cache_lifetime(far, nearest, key, base=3600, minimum=60) is None
    # A non-holder closer than the holder gets the full lifetime.
    assert cache_lifetime(nearest, far, key, base=3600, minimum=60) == 3600


def test_cache_target_is_the_closest_answering_non_holder() -> None:
    world = World(10, seed=16)
    key = bytes(32)
    holder = _contact(bytes(31) + b"\x01", 1)
    near = _contact(bytes(31) + b"\x02", 2)
    far = _contact(bytes(31) + b"\x04", 3)
    target = world.rep.cache_target(key, [far, holder, near], [holder.node_id])
    assert target == (near, 1800.0)
    assert world.rep.cache_target(key, [holder], [holder.node_id]) is None
    assert world.rep.cache_target(key, [near], []) is None


def test_a_former_holder_hands_the_key_over_and_then_pauses_it() -> None:
    world = World(300, seed=17)
    rng = random.Random(18)
    while True:  # a key whose k closest do not include us
        value = rng.randbytes(16)
        if world.local not in world.true_closest(immutable_key(value)):
            break
    world.hold(_record(value))
    key = immutable_key(value)
    _lookups, sent = _run_round(world, world.rep.next_round_at)
    got = {contact.node_id for contact, k in sent if k == key}
    # It goes to the nearest few of the k closest (outside_stores), not to all
    # k: they republish it to the others.  Far from us our table is thin, but
    # the region lookup finds the key's true nearest.
    few = world.rep.config.outside_stores
    assert few < K
    assert got == set(world.true_closest(key)[:few])
    # The next rounds leave it to the k closest (outside_pause, 6 h).
    _lookups, sent = _run_round(world, world.rep.next_round_at)
    assert sent == []
    assert world.rep.stats()["round_skipped"] == 1


def _outside_near_us(world: World, rng: random.Random) -> bytes:
    """A value whose key lies in our neighbourhood (within the default
    outside_reach · k nodes of us) but has k nodes nearer to it than we are."""
    reach = ReplicationConfig().outside_reach * K * 2**256 / world.routing.rough_size()
    while True:
        value = rng.randbytes(16)
        key = immutable_key(value)
        if distance(world.local, key) <= reach and world.local not in world.true_closest(key):
            return value


@pytest.mark.parametrize("reach", [4.0, 0.0])
def test_a_holder_its_table_shows_outside_needs_no_lookup(reach: float) -> None:
    # Our table knows our neighbourhood: when it already holds k answering
    # peers nearer to a key near us than we are, a lookup cannot bring us back
    # among the k closest; the round stores at the nearest few it knows and
    # pauses the key, as after a lookup (07 §10.4).  outside_reach 0: the
    # region lookup decides, as for every key.
    world = World(300, seed=17, config=ReplicationConfig(outside_reach=reach))
    value = _outside_near_us(world, random.Random(19))
    world.hold(_record(value))
    key = immutable_key(value)
    known = [contact.node_id for contact in world.routing.closest(key, K)]
    lookups, sent = _run_round(world, world.rep.next_round_at)
    few = world.rep.config.outside_stores
    got = {contact.node_id for contact, k in sent if k == key}
    # At the nearest few: those the lookup found, or, without one, those our
    # table knows, all among the key's true k closest.
    assert len(got) == few
    assert got <= set(world.true_closest(key))
    assert got == set(known[:few] if reach else world.true_closest(key)[:few])
    assert lookups == (0 if reach else 1)
    stats = world.rep.stats()
    assert stats["round_outside"] == (1 if reach else 0)
    assert stats["round_lookups"] == lookups
    _lookups, sent = _run_round(world, world.rep.next_round_at)
    assert sent == []  # paused (outside_pause), either way
