"""The routing table: XOR metric, buckets, liveness, limits, refresh, RTT, snapshots."""

from __future__ import annotations

import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdht.dht import (
    ID_BITS,
    PeerAdded,
    PeerRemoved,
    PeerReplaced,
    PingNeeded,
    RoutingConfig,
    RoutingTable,
    _routing,
    bucket_index,
    distance,
)
from qdht.errors import ConfigError, DecodeError
from qdht.wire import dumps_canonical, loads_canonical

from .sim import contact_for, id_with_prefix, unique_ip

ZERO = bytes(32)


def check_layout(table: RoutingTable) -> None:
    """Every contact sits in the bucket its shared prefix length names."""
    last = table.bucket_count - 1
    for index in range(table.bucket_count):
        for contact in table.bucket_contacts(index):
            cpl = bucket_index(table.local_id, contact.node_id)
            assert cpl == index if index < last else cpl >= last
            assert len(table.bucket_contacts(index)) <= table.config.k


def far_table(
    rng: random.Random, count: int, *, now: float = 0.0, config: RoutingConfig | None = None
) -> tuple[RoutingTable, list[bytes]]:
    """A table whose bucket 0 (IDs with the top bit set) is full after 20 inserts."""
    table = RoutingTable(ZERO, now=now, config=config)
    ids = [id_with_prefix(ZERO, 0, rng) for _ in range(count)]
    for i, node_id in enumerate(ids):
        table.update_verified(contact_for(node_id, unique_ip(i)), now)
    return table, ids


def test_distance_is_xor_and_bucket_index_is_shared_prefix() -> None:
    a = bytes([0b1010_0000]) + bytes(31)
    b = bytes([0b1000_0000]) + bytes(31)
    assert distance(a, b) == 0b0010_0000 << 248
    assert distance(a, b) == distance(b, a)
    assert distance(a, a) == 0
    assert bucket_index(a, b) == 2
    assert bucket_index(a, a) == ID_BITS
    assert bucket_index(ZERO, b"\xff" * 32) == 0


def test_local_bucket_splits_and_contacts_land_by_prefix() -> None:
    rng = random.Random(1)
    table = RoutingTable(ZERO, now=0.0)
    events = []
    for i in range(300):
        node_id = id_with_prefix(ZERO, rng.randrange(0, 12), rng)
        events += table.update_verified(contact_for(node_id, unique_ip(i)), 0.0)
    check_layout(table)
    assert table.bucket_count > 5
    assert table.stats()["splits"] == table.bucket_count - 1
    assert len(table) == sum(1 for e in events if isinstance(e, PeerAdded))
    assert len(table) == sum(len(table.bucket_contacts(i)) for i in range(table.bucket_count))


def test_self_is_never_added() -> None:
    table = RoutingTable(ZERO, now=0.0)
    assert table.update_verified(contact_for(ZERO), 0.0) == []
    assert len(table) == 0
    assert table.stats()["drops"] == {"self": 1}


def test_full_bucket_caches_replacement_and_asks_to_ping_stale_head() -> None:
    rng = random.Random(2)
    table, _ids = far_table(rng, 20)
    assert len(table.bucket_contacts(0)) == 20
    newcomer = contact_for(id_with_prefix(ZERO, 0, rng), "192.0.2.1")
    # The head answered recently: no ping, the newcomer just waits.
    assert table.update_verified(newcomer, 10.0) == []
    assert table.replacement_contacts(0) == [newcomer]
    # Once the head is stale a newcomer triggers one ping of it, not a ping storm.
    other = contact_for(id_with_prefix(ZERO, 0, rng), "192.0.2.2")
    assert table.update_verified(other, 1000.0) == [PingNeeded(table.bucket_contacts(0)[0])]
    third = contact_for(id_with_prefix(ZERO, 0, rng), "198.51.100.3")
    assert table.update_verified(third, 1001.0) == []
    assert newcomer.node_id not in table
    assert len(table) == 20


def test_answered_ping_keeps_the_entry() -> None:
    rng = random.Random(3)
    table, _ids = far_table(rng, 20)
    head = table.bucket_contacts(0)[0]
    newcomer = contact_for(id_with_prefix(ZERO, 0, rng), "192.0.2.1")
    assert table.update_verified(newcomer, 1000.0) == [PingNeeded(head)]
    table.on_response(head.node_id, 1000.5, rtt=0.05)
    assert table.bucket_contacts(0)[-1] == head
    assert head.node_id in table
    assert newcomer.node_id not in table


def test_misses_are_tolerated_then_replaced_from_cache() -> None:
    rng = random.Random(4)
    table, _ids = far_table(rng, 20)
    head = table.bucket_contacts(0)[0]
    newcomer = contact_for(id_with_prefix(ZERO, 0, rng), "192.0.2.1")
    table.update_verified(newcomer, 1000.0)
    # One miss is not enough: a single lost packet must not evict a peer.
    assert table.on_request_failed(head.node_id, 1001.0) == []
    assert head.node_id in table
    assert table.on_request_failed(head.node_id, 1002.0) == [PeerReplaced(head, newcomer)]
    assert head.node_id not in table
    assert newcomer.node_id in table
    assert table.replacement_contacts(0) == []
    check_layout(table)


def test_without_replacement_evicts_only_after_max_failures() -> None:
    rng = random.Random(5)
    table, _ids = far_table(rng, 5)
    victim = table.bucket_contacts(0)[0]
    for i in range(4):
        assert table.on_request_failed(victim.node_id, float(i)) == []
        assert victim.node_id in table
    assert table.on_request_failed(victim.node_id, 5.0) == [PeerRemoved(victim, "failures")]
    assert len(table) == 4


def test_answer_resets_miss_count() -> None:
    rng = random.Random(6)
    table, ids = far_table(rng, 5)
    for _ in range(10):
        for _ in range(4):
            table.on_request_failed(ids[0], 1.0)
        table.on_response(ids[0], 2.0)
    assert ids[0] in table


def test_fresh_peer_takes_the_place_of_a_failing_entry() -> None:
    rng = random.Random(7)
    table, ids = far_table(rng, 20)
    table.on_request_failed(ids[3], 1.0)
    table.on_request_failed(ids[3], 2.0)
    newcomer = contact_for(id_with_prefix(ZERO, 0, rng), "192.0.2.1")
    events = table.update_verified(newcomer, 3.0)
    assert events == [PeerReplaced(contact_for(ids[3], unique_ip(3)), newcomer)]


def test_table_holds_exactly_the_verified_peers() -> None:
    rng = random.Random(8)
    table = RoutingTable(ZERO, now=0.0)
    verified = set()
    for i in range(200):
        node_id = rng.randbytes(32)
        # Responses, failures and removals of unknown peers never add anything.
        table.on_response(node_id, 0.0, rtt=0.1)
        table.on_request_failed(node_id, 0.0)
        table.remove(node_id, 0.0)
        if i % 2:
            table.update_verified(contact_for(node_id, unique_ip(i)), 0.0)
            verified.add(node_id)
    assert {c.node_id for c in table} <= verified
    stats = table.stats()
    overflow = stats["drops"].get("replacement-overflow", 0)
    assert len(table) + stats["replacements"] + overflow == len(verified)


def test_remove_promotes_replacement() -> None:
    rng = random.Random(9)
    table, ids = far_table(rng, 21)
    waiting = table.replacement_contacts(0)[0]
    events = table.remove(ids[0], 1.0)
    assert events == [PeerReplaced(contact_for(ids[0], unique_ip(0)), waiting)]
    assert table.remove(ids[1], 1.0) == [PeerRemoved(contact_for(ids[1], unique_ip(1)), "removed")]


def test_ipv4_slash24_limit_per_bucket() -> None:
    rng = random.Random(10)
    table = RoutingTable(ZERO, now=0.0)
    same = [contact_for(id_with_prefix(ZERO, 0, rng), f"203.0.113.{i}") for i in (1, 2, 3)]
    results = [table.update_verified(c, 0.0) for c in same]
    assert results[:2] == [[PeerAdded(same[0])], [PeerAdded(same[1])]]
    assert results[2] == []
    assert table.stats()["drops"] == {"prefix-limit-bucket": 1}
    other = contact_for(id_with_prefix(ZERO, 0, rng), "203.0.114.1")
    assert table.update_verified(other, 0.0) == [PeerAdded(other)]


def test_ipv6_slash48_limit_per_bucket() -> None:
    rng = random.Random(11)
    table = RoutingTable(ZERO, now=0.0)
    hosts = ["2001:db8:1::1", "2001:db8:1:ffff::2", "2001:db8:1:1234::3"]
    for host in hosts[:2]:
        assert table.update_verified(contact_for(id_with_prefix(ZERO, 0, rng), host), 0.0)
    assert table.update_verified(contact_for(id_with_prefix(ZERO, 0, rng), hosts[2]), 0.0) == []
    fresh = contact_for(id_with_prefix(ZERO, 0, rng), "2001:db8:2::1")
    assert table.update_verified(fresh, 0.0) == [PeerAdded(fresh)]


def test_prefix_limit_per_table() -> None:
    rng = random.Random(12)
    config = RoutingConfig(max_per_prefix_bucket=2, max_per_prefix_table=4)
    table = RoutingTable(ZERO, now=0.0, config=config)
    # 21 deep contacts split the table down to bucket 8.
    for i in range(21):
        table.update_verified(contact_for(id_with_prefix(ZERO, 8, rng), unique_ip(i)), 0.0)
    assert table.bucket_count >= 9
    same = [
        contact_for(id_with_prefix(ZERO, cpl, rng), f"198.51.100.{cpl + 1}") for cpl in range(5)
    ]
    added = [bool(table.update_verified(c, 0.0)) for c in same]
    assert added == [True, True, True, True, False]
    assert table.stats()["drops"]["prefix-limit-table"] == 1
    # Freeing a slot lets the prefix in again.
    table.remove(same[0].node_id, 1.0)
    assert table.update_verified(same[4], 1.0) == [PeerAdded(same[4])]


def test_prefix_counting_is_exact_despite_hash_collisions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One counter slot: every prefix collides, so only exact scans can decide.
    monkeypatch.setattr(_routing, "PREFIX_SLOTS", 1)
    rng = random.Random(35)
    config = RoutingConfig(max_per_prefix_bucket=2, max_per_prefix_table=3)
    table = RoutingTable(ZERO, now=0.0, config=config)
    for i in range(60):
        table.update_verified(contact_for(id_with_prefix(ZERO, i % 6, rng), unique_ip(i)), 0.0)
    assert "prefix-limit-table" not in table.stats()["drops"]
    assert "prefix-limit-bucket" not in table.stats()["drops"]
    same = [contact_for(id_with_prefix(ZERO, 8, rng), f"198.51.100.{i}") for i in range(1, 5)]
    added = [bool(table.update_verified(c, 0.0)) for c in same]
    assert added == [True, True, False, False]


def test_loopback_is_exempt_by_default_but_limitable() -> None:
    rng = random.Random(13)
    ids = [id_with_prefix(ZERO, 0, rng) for _ in range(5)]
    table = RoutingTable(ZERO, now=0.0)
    for port, node_id in enumerate(ids, start=7000):
        table.update_verified(contact_for(node_id, "127.0.0.1", port), 0.0)
    assert len(table) == 5
    strict = RoutingTable(ZERO, now=0.0, config=RoutingConfig(exempt_loopback=False))
    for port, node_id in enumerate(ids, start=7000):
        strict.update_verified(contact_for(node_id, "127.0.0.1", port), 0.0)
    assert len(strict) == 2


def test_moved_peer_keeps_entry_with_new_address() -> None:
    rng = random.Random(14)
    table, ids = far_table(rng, 3)
    moved = contact_for(ids[0], "192.0.2.77")
    assert table.update_verified(moved, 1.0) == []
    assert moved in list(table)


def test_refresh_targets_land_in_their_idle_buckets() -> None:
    rng = random.Random(15)
    config = RoutingConfig(random_walk_interval=None)
    table = RoutingTable(ZERO, now=0.0, config=config, rng=random.Random(99).randbytes)
    for i in range(200):
        node_id = id_with_prefix(ZERO, rng.randrange(0, 10), rng)
        table.update_verified(contact_for(node_id, unique_ip(i)), 0.0)
    assert table.buckets_needing_refresh(3599.0) == []
    assert table.next_refresh_time() == 3600.0
    targets = table.buckets_needing_refresh(3600.0)
    assert len(targets) == table.bucket_count
    last = table.bucket_count - 1
    for index, target in enumerate(targets):
        cpl = bucket_index(ZERO, target)
        assert cpl == index if index < last else cpl >= last
    # Each idle bucket is handed out once per interval.
    assert table.buckets_needing_refresh(3601.0) == []
    # A bucket whose peers answer is not idle.
    peer = table.bucket_contacts(0)[0]
    table.on_response(peer.node_id, 7000.0)
    again = table.buckets_needing_refresh(7200.0)
    assert len(again) == table.bucket_count - 1
    assert all(bucket_index(ZERO, t) != 0 for t in again)


def test_refresh_is_due_exactly_when_next_refresh_time_says() -> None:
    # 671.82… + 3600.0 rounds up: (now - last_active) is just under the interval
    # although now == last_active + interval.  The table once judged idleness
    # by the difference and its timer by the sum, so at this instant the timer
    # was due and refreshed nothing, forever: a simulated node spun in place
    # and a real one would busy-loop until its clock moved on.
    start = 671.8212205620061
    config = RoutingConfig(random_walk_interval=None)
    table = RoutingTable(ZERO, now=start, config=config, rng=random.Random(98).randbytes)
    due = table.next_refresh_time()
    assert due == start + 3600.0
    assert due - start < 3600.0
    assert len(table.buckets_needing_refresh(due)) == 1
    assert table.next_refresh_time() == due + 3600.0


def test_timeouts_adapt_to_rtt_and_clamp() -> None:
    rng = random.Random(16)
    table, ids = far_table(rng, 3)
    config = table.config
    unknown = rng.randbytes(32)
    assert table.timeout_for(unknown) == config.initial_timeout
    assert table.timeout_for(ids[0]) == config.initial_timeout
    table.on_response(ids[0], 1.0, rtt=0.3)
    # First sample: SRTT = 0.3, RTTVAR = 0.15 → 0.3 + 4·0.15.
    assert table.timeout_for(ids[0]) == pytest.approx(0.9)
    for _ in range(50):
        table.on_response(ids[0], 1.0, rtt=0.05)
    assert table.timeout_for(ids[0]) == config.min_timeout
    for _ in range(50):
        table.on_response(ids[1], 1.0, rtt=0.4)
    steady = table.timeout_for(ids[1])
    assert 0.4 < steady < 0.5
    table.on_request_failed(ids[1], 2.0)
    assert table.timeout_for(ids[1]) == pytest.approx(2 * steady)
    table.update_verified(contact_for(ids[2], unique_ip(2)), 3.0, rtt=30.0)
    assert table.timeout_for(ids[2]) == config.max_timeout


def test_unmeasured_peers_get_the_network_rtt_timeout() -> None:
    rng = random.Random(34)
    table = RoutingTable(ZERO, now=0.0)
    stranger = rng.randbytes(32)
    assert table.timeout_for(stranger) == table.config.initial_timeout
    # Answers from peers outside the table (a lookup's contacts) teach the table too.
    for _ in range(50):
        table.on_response(rng.randbytes(32), 1.0, rtt=0.5)
    assert 0.5 < table.timeout_for(stranger) < 0.6
    assert stranger not in table
    with pytest.raises(ConfigError, match="rtt"):
        table.on_response(stranger, 1.0, rtt=-1.0)


def test_snapshot_round_trips_through_cbor() -> None:
    rng = random.Random(17)
    table = RoutingTable(ZERO, now=100.0)
    for i in range(150):
        node_id = id_with_prefix(ZERO, rng.randrange(0, 8), rng)
        table.update_verified(contact_for(node_id, unique_ip(i)), 100.0 + i, rtt=0.1 * (i % 7 + 1))
    data = loads_canonical(dumps_canonical(table.to_snapshot(400.0)))
    restored = RoutingTable.from_snapshot(data, now=5.0)
    assert restored.local_id == table.local_id
    assert restored.bucket_count == table.bucket_count
    for index in range(table.bucket_count):
        assert restored.bucket_contacts(index) == table.bucket_contacts(index)
        assert restored.replacement_contacts(index) == table.replacement_contacts(index)
    some = table.bucket_contacts(0)[0].node_id
    # RTT state survives; restored entries count one miss until they answer again.
    assert restored.timeout_for(some) == pytest.approx(2 * table.timeout_for(some), rel=1e-3)
    assert restored.stats()["questionable"] == len(restored)
    restored.on_response(some, 6.0)
    assert restored.closest(some, 1) == [table.bucket_contacts(0)[0]]
    # Under a new identity the same contacts are re-bucketed around the new ID.
    new_id = b"\xff" * 32
    moved = RoutingTable.from_snapshot(data, now=5.0, local_id=new_id)
    assert moved.local_id == new_id
    assert len(moved) > 0
    assert {c.node_id for c in moved} <= {c.node_id for c in table} | {
        c.node_id for i in range(table.bucket_count) for c in table.replacement_contacts(i)
    }
    check_layout(moved)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.pop("entries"), "missing-field"),
        (lambda d: d.update(version=2), "field-value"),
        (lambda d: d.update(extra=1), "unknown-field"),
        (lambda d: d["entries"][0].update(age_ms=-1), "field-type"),
        (lambda d: d["entries"][0]["contact"].update(id=b"short"), "field-size"),
    ],
)
def test_malformed_snapshot_raises_decode_error(mutate: object, reason: str) -> None:
    rng = random.Random(18)
    table, _ids = far_table(rng, 3)
    data = table.to_snapshot(1.0)
    assert callable(mutate)
    mutate(data)
    with pytest.raises(DecodeError) as info:
        RoutingTable.from_snapshot(data, now=0.0)
    assert info.value.reason == reason


def mixed_table(local: bytes, rng: random.Random, count: int) -> RoutingTable:
    """A table fed ``count`` peers: uniform IDs mixed with IDs near the local one,
    so that it splits deep."""
    table = RoutingTable(local, now=0.0)
    for i in range(count):
        node_id = rng.randbytes(32) if i % 2 else id_with_prefix(local, rng.randrange(256), rng)
        table.update_verified(contact_for(node_id, unique_ip(i)), 0.0)
    return table


@given(
    local=st.binary(min_size=32, max_size=32),
    seed=st.integers(0, 2**32),
    count=st.integers(0, 300),
    target=st.binary(min_size=32, max_size=32),
    n=st.integers(1, 45),
    excluded=st.integers(0, 5),
)
def test_closest_equals_brute_force(
    local: bytes, seed: int, count: int, target: bytes, n: int, excluded: int
) -> None:
    rng = random.Random(seed)
    table = mixed_table(local, rng, count)
    check_layout(table)
    members = sorted(table, key=lambda c: distance(c.node_id, target))
    exclude = {c.node_id for c in rng.sample(members, min(excluded, len(members)))}
    expected = [c for c in members if c.node_id not in exclude][:n]
    assert table.closest(target, n, exclude=exclude) == expected


@given(
    local=st.binary(min_size=32, max_size=32),
    seed=st.integers(0, 2**32),
    count=st.integers(0, 200),
    target=st.binary(min_size=32, max_size=32),
    limit=st.integers(1, 30),
)
def test_count_closer_equals_brute_force(
    local: bytes, seed: int, count: int, target: bytes, limit: int
) -> None:
    # The handoff's shortcut (07-records.md §10.3): how many answering entries
    # are nearer to a key than this node, without sorting the table.
    rng = random.Random(seed)
    table = mixed_table(local, rng, count)
    members = list(table)
    missed = {c.node_id for c in rng.sample(members, len(members) // 4)}
    for node_id in missed:
        table.on_request_failed(node_id, 1.0)  # one miss: kept, but not counted
    assert {c.node_id for c in table} == {c.node_id for c in members}
    exclude = rng.choice(members).node_id if members else None
    own = distance(local, target)
    expected = sum(
        1
        for c in members
        if distance(c.node_id, target) < own and c.node_id != exclude and c.node_id not in missed
    )
    assert table.count_closer(target, limit, exclude=exclude) == min(expected, limit)


def test_closest_prefers_answering_contacts() -> None:
    rng = random.Random(19)
    table, ids = far_table(rng, 10)
    target = ids[0]
    table.on_request_failed(ids[0], 1.0)
    nearest = table.closest(target, 10)
    assert nearest[-1].node_id == ids[0]
    assert len(table.closest(target, 3)) == 3
    assert ids[0] not in {c.node_id for c in table.closest(target, 3)}


def test_misuse_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="local_id"):
        RoutingTable(b"short", now=0.0)
    table = RoutingTable(ZERO, now=0.0)
    with pytest.raises(ConfigError, match="target"):
        table.closest(b"x")
    with pytest.raises(ConfigError, match="contact"):
        table.update_verified("qdht+udp://1.2.3.4:1/00", 0.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_failures"):
        RoutingConfig(max_failures=0)
    with pytest.raises(ConfigError, match="initial_timeout"):
        RoutingConfig(initial_timeout=10.0)
    with pytest.raises(ConfigError, match="index"):
        table.random_id_in_bucket(1)


def test_a_pickled_table_keeps_its_prefix_counts_in_another_process(tmp_path: Path) -> None:
    """Prefix slots come from the per-process seeded ``hash``: unpickled under
    another PYTHONHASHSEED the counts must follow their prefixes."""
    rng = random.Random(36)
    config = RoutingConfig(max_per_prefix_bucket=2, max_per_prefix_table=3)
    table = RoutingTable(ZERO, now=0.0, config=config)
    same = [
        contact_for(id_with_prefix(ZERO, cpl, rng), f"198.51.100.{cpl + 1}") for cpl in range(3)
    ]
    for i in range(40):
        table.update_verified(contact_for(id_with_prefix(ZERO, i % 6, rng), unique_ip(i)), 0.0)
    for contact in same:
        assert table.update_verified(contact, 0.0) == [PeerAdded(contact)]
    path = tmp_path / "table.pickle"
    path.write_bytes(pickle.dumps(table))
    script = f"""
import pickle, sys
from qdht.dht import PeerAdded
sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
from dht.sim import contact_for, id_with_prefix
import random
table = pickle.loads(open({str(path)!r}, "rb").read())
rng = random.Random(37)
extra = contact_for(id_with_prefix(bytes(32), 9, rng), "198.51.100.99")
assert not table.update_verified(extra, 1.0), "a fourth entry from one /24"
for entry in {[c.node_id for c in same]!r}:
    table.remove(entry, 1.0)  # an undercounted slot would go below zero here
assert table.update_verified(extra, 1.0) == [PeerAdded(extra)]
print("ok")
"""
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
        )
        assert done.stdout.strip() == "ok", done.stderr


def test_estimated_size_follows_every_change_of_the_table() -> None:
    # estimated_size() is cached between changes: after each add, miss, answer,
    # replacement and removal it equals the estimate computed afresh.
    rng = random.Random(9)
    local = rng.randbytes(32)
    table = RoutingTable(local, now=0.0, config=RoutingConfig(k=4, replace_after_failures=2))
    k = table.config.k

    def fresh() -> float:
        m = min(k, len(table))
        if m == 0:
            return 1.0
        far = distance(local, table.closest(local, m)[-1].node_id)
        return max(m + 1.0, m * float(1 << ID_BITS) / (far + 1))

    ids: list[bytes] = []
    for step in range(400):
        now = float(step)
        action = rng.random()
        if action < 0.5 or not ids:
            node_id = id_with_prefix(local, rng.choice([0, 1, 2, 8, 12, 16]), rng)
            ids.append(node_id)
            table.update_verified(contact_for(node_id, unique_ip(step)), now)
        elif action < 0.75:
            table.on_request_failed(rng.choice(ids), now)
        elif action < 0.9:
            table.on_response(rng.choice(ids), now)
        else:
            table.remove(rng.choice(ids), now)
        assert table.estimated_size() == fresh()
        # Membership (an index by node ID) agrees with the buckets' contents.
        assert {c.node_id for c in table} == {i for i in ids if i in table}


def test_next_refresh_time_follows_every_change_of_the_table() -> None:
    # next_refresh_time() caches the idlest bucket's time until a bucket that
    # holds it is touched: after adds, answers, splits and refreshes it equals
    # the minimum taken afresh over every bucket.
    rng = random.Random(11)
    local = rng.randbytes(32)
    config = RoutingConfig(k=4, refresh_interval=50.0, random_walk_interval=None)
    table = RoutingTable(local, now=0.0, config=config, rng=rng.randbytes)

    def fresh() -> float:
        idle = min(b.last_active for b in table._buckets)
        return idle + config.refresh_interval

    ids: list[bytes] = []
    refreshed = 0
    for step in range(600):
        now = float(step)
        action = rng.random()
        if action < 0.5 or not ids:
            node_id = id_with_prefix(local, rng.choice([0, 1, 2, 3, 5, 8]), rng)
            ids.append(node_id)
            table.update_verified(contact_for(node_id, unique_ip(step)), now)
        elif action < 0.8:
            table.on_response(rng.choice(ids), now)
        else:
            refreshed += len(table.buckets_needing_refresh(now))
        assert table.next_refresh_time() == fresh()
    assert table.bucket_count > 3
    assert refreshed > 0
