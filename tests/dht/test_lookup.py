"""The iterative lookup: alpha in flight, termination, failures, disjoint paths, traces."""

from __future__ import annotations

import random
import statistics

import pytest

from qdht.dht import Lookup, LookupConfig, distance
from qdht.errors import ConfigError
from qdht.wire import Contact

from .sim import OracleNetwork, contact_for, unique_ip


@pytest.fixture(scope="module")
def network() -> OracleNetwork:
    return OracleNetwork(1000, seed=20)


def ordered(target: bytes, count: int, seed: int) -> list[Contact]:
    """``count`` contacts sorted by distance to ``target``."""
    rng = random.Random(seed)
    contacts = [contact_for(rng.randbytes(32), unique_ip(i)) for i in range(count)]
    return sorted(contacts, key=lambda c: distance(c.node_id, target))


def test_converges_to_true_k_closest_in_1000_nodes(network: OracleNetwork) -> None:
    rng = random.Random(21)
    hops = []
    for _ in range(30):
        start = rng.choice(network.ids)
        target = rng.randbytes(32)
        run = network.run_lookup(start, target)
        lookup = run.lookup
        assert lookup.done
        expected = network.true_closest(target, 20, exclude={start})
        assert [c.node_id for c in lookup.result] == expected
        hops.append(lookup.trace.hops)
    assert statistics.median(hops) <= 4


def test_alpha_in_flight_is_never_exceeded(network: OracleNetwork) -> None:
    rng = random.Random(22)
    for alpha in (1, 3, 5):
        config = LookupConfig(alpha=alpha, slow_after=None)
        run = network.run_lookup(rng.choice(network.ids), rng.randbytes(32), config=config)
        assert run.max_in_flight == alpha
        assert run.lookup.trace.rpcs == len(run.requested)


def test_slow_requests_allow_bounded_extra_requests() -> None:
    target = bytes(32)
    initial = ordered(target, 10, seed=23)
    config = LookupConfig(alpha=1, slow_after=1.0, max_slow_extra=1)
    lookup = Lookup(target, initial, now=0.0, config=config)
    assert lookup.next_requests(0.0) == [initial[0]]
    assert lookup.next_requests(0.5) == []
    assert lookup.get_timer() == 1.0
    assert lookup.next_requests(1.0) == [initial[1]]
    # Both slow now, but only max_slow_extra requests go beyond alpha.
    assert lookup.next_requests(5.0) == []
    lookup.on_failure(initial[0].node_id, 5.0)
    assert lookup.next_requests(5.0) == [initial[2]]


def test_terminates_when_k_closest_answered() -> None:
    target = bytes(32)
    initial = ordered(target, 6, seed=24)
    lookup = Lookup(target, initial, now=0.0, config=LookupConfig(k=3, alpha=1))
    asked = []
    now = 0.0
    while not lookup.done:
        requests = lookup.next_requests(now)
        assert len(requests) == 1
        asked.append(requests[0])
        now += 1.0
        lookup.on_nodes(requests[0].node_id, [], now)
    # The three closest answered: the farther three were never asked.
    assert asked == initial[:3]
    assert lookup.result == initial[:3]
    assert lookup.next_requests(now) == []


def test_failed_nodes_are_skipped_and_closer_discoveries_asked() -> None:
    target = bytes(32)
    initial = ordered(target, 6, seed=25)
    closer = contact_for(bytes(31) + b"\x01", "192.0.2.9")
    lookup = Lookup(target, initial, now=0.0, config=LookupConfig(k=3, alpha=3))
    first = lookup.next_requests(0.0)
    assert first == initial[:3]
    lookup.on_failure(initial[0].node_id, 1.0)
    assert lookup.next_requests(1.0) == [initial[3]]
    lookup.on_nodes(initial[1].node_id, [closer], 1.5)
    assert lookup.next_requests(1.5) == [closer]
    for contact in (initial[2], initial[3], closer):
        lookup.on_nodes(contact.node_id, [], 2.0)
    assert lookup.done
    assert lookup.result == [closer, initial[1], initial[2]]
    trace = lookup.trace
    assert (trace.rpcs, trace.responses, trace.timeouts) == (5, 4, 1)
    assert trace.hops == 2
    assert trace.closest_hops == 2
    assert trace.duration == 2.0
    assert trace.done
    # Every node queried, in hop order, with how it ended: what draws the path.
    assert [(p.node_id, p.hop, p.outcome) for p in trace.queried] == [
        (initial[0].node_id, 1, "failed"),
        (initial[1].node_id, 1, "answered"),
        (initial[2].node_id, 1, "answered"),
        (initial[3].node_id, 1, "answered"),
        (closer.node_id, 2, "answered"),
    ]


def test_lookups_survive_30_percent_dead_nodes() -> None:
    network = OracleNetwork(1000, seed=26)
    network.kill(0.3)
    rng = random.Random(27)
    alive = [x for x in network.ids if x not in network.dead]
    successes = 0
    timeouts = 0
    for _ in range(40):
        start = rng.choice(alive)
        target = rng.randbytes(32)
        lookup = network.run_lookup(start, target).lookup
        assert lookup.done
        expected = network.true_closest(target, 20, exclude={start})
        successes += [c.node_id for c in lookup.result[:1]] == expected[:1]
        timeouts += lookup.trace.timeouts
        assert not {c.node_id for c in lookup.result} & network.dead
    assert successes == 40
    assert timeouts > 0


def test_disjoint_paths_never_share_a_queried_node(network: OracleNetwork) -> None:
    rng = random.Random(28)
    config = LookupConfig(disjoint_paths=3)
    for _ in range(10):
        start = rng.choice(network.ids)
        target = rng.randbytes(32)
        run = network.run_lookup(start, target, config=config)
        lookup = run.lookup
        assert len(run.requested) == len(set(run.requested))
        paths = {lookup.path_of(node_id) for node_id in run.requested}
        assert paths == {0, 1, 2}
        trace = lookup.trace
        assert len(trace.paths) == 3
        assert all(p.responses > 0 for p in trace.paths)
        assert sum(p.rpcs for p in trace.paths) == trace.rpcs == len(run.requested)
        expected = network.true_closest(target, 20, exclude={start})
        assert lookup.result[0].node_id == expected[0]


def test_disjoint_paths_split_initial_contacts() -> None:
    target = bytes(32)
    initial = ordered(target, 6, seed=29)
    lookup = Lookup(target, initial, now=0.0, config=LookupConfig(alpha=1, disjoint_paths=2))
    first = lookup.next_requests(0.0)
    assert first == initial[:2]
    assert [lookup.path_of(c.node_id) for c in initial] == [0, 1, 0, 1, 0, 1]
    # A node path 0 learned about stays path 0's, even when path 1 hears of it too.
    shared = contact_for(bytes(31) + b"\x07", "192.0.2.7")
    lookup.on_nodes(initial[0].node_id, [shared], 1.0)
    lookup.on_nodes(initial[1].node_id, [shared], 1.0)
    assert lookup.path_of(shared.node_id) == 0
    assert lookup.next_requests(1.0) == [shared, initial[3]]


def test_find_value_ends_on_value(network: OracleNetwork) -> None:
    rng = random.Random(30)
    target = rng.randbytes(32)
    holders = set(network.true_closest(target, 3))
    start = next(x for x in network.ids if x not in holders)
    lookup = network.run_lookup(start, target, find_value_at=holders).lookup
    assert lookup.done
    assert lookup.value == b"value"
    trace = lookup.trace
    assert trace.find_value
    assert trace.found_value
    assert trace.hops >= 1


def test_remote_junk_is_dropped_and_counted() -> None:
    target = bytes(32)
    initial = ordered(target, 30, seed=31)
    stranger = bytes(range(32))
    lookup = Lookup(target, initial[:2], now=0.0, config=LookupConfig(k=2, alpha=1))
    asked = lookup.next_requests(0.0)
    lookup.on_nodes(stranger, initial, 0.1)
    lookup.on_value(asked[0].node_id, b"v", 0.2)
    lookup.on_failure(stranger, 0.3)
    lookup.on_nodes(asked[0].node_id, [*initial, "junk"], 0.4)
    drops = lookup.trace.drops
    assert drops["unsolicited-response"] == 1
    assert drops["unexpected-value"] == 1
    assert drops["unsolicited-failure"] == 1
    assert drops["too-many-contacts"] == 1
    assert lookup.value is None


def test_late_answer_after_timeout_still_counts() -> None:
    target = bytes(32)
    initial = ordered(target, 2, seed=32)
    lookup = Lookup(target, initial, now=0.0, config=LookupConfig(k=2))
    lookup.next_requests(0.0)
    lookup.on_failure(initial[0].node_id, 1.0)
    lookup.on_nodes(initial[1].node_id, [], 1.0)
    assert lookup.done
    assert lookup.result == [initial[1]]


def test_empty_start_is_done_with_no_result() -> None:
    lookup = Lookup(bytes(32), [], now=0.0)
    assert lookup.done
    assert lookup.result == []
    assert lookup.next_requests(0.0) == []


def test_local_node_is_never_queried() -> None:
    target = bytes(32)
    initial = ordered(target, 3, seed=33)
    me = initial[0].node_id
    lookup = Lookup(target, initial, now=0.0, exclude={me})
    assert me not in {c.node_id for c in lookup.next_requests(0.0)}


def test_misuse_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="target"):
        Lookup(b"short", [], now=0.0)
    with pytest.raises(ConfigError, match="alpha"):
        LookupConfig(alpha=0)
    with pytest.raises(ConfigError, match="initial"):
        Lookup(bytes(32), ["x"], now=0.0)  # type: ignore[list-item]
