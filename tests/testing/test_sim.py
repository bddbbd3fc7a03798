"""The simulation builders of qdht.testing: full-stack networks, core-level networks, churn."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from qdht.dht import DhtCore, LookupConfig, RoutingConfig
from qdht.errors import ConfigError
from qdht.testing import ChurnEvent, ChurnSchedule, CoreNetwork, SimCore, SimNetwork, build_network

#: Full-stack nodes in the bootstrap test: real PQ handshakes cost ~3 ms of CPU
#: each and every node makes a few dozen; measured here 100 nodes take 15-20 s,
#: 120 nodes 23-31 s and 200 nodes 52 s, so 100 keeps this file under a minute.
FULL_STACK_NODES = 100
#: Core-level nodes for the convergence test (no sessions: ~10 s for 1,000 here).
CORE_NODES = 1000


# -- churn schedules ---------------------------------------------------------------


def test_poisson_schedule_is_reproducible_and_in_time_order() -> None:
    a = ChurnSchedule.poisson(0.5, 100.0, seed=3)
    b = ChurnSchedule.poisson(0.5, 100.0, seed=3)
    c = ChurnSchedule.poisson(0.5, 100.0, seed=4)
    assert a == b
    assert a != c
    times = [e.at for e in a]
    assert times == sorted(times)
    assert all(0 <= t < 100.0 for t in times)
    # About rate * duration of each kind (Poisson: loose bounds).
    assert 25 <= a.leaves <= 80
    assert 25 <= a.joins <= 80
    assert a.duration == times[-1]


def test_explicit_schedule_sorts_and_counts() -> None:
    schedule = ChurnSchedule.explicit([(5.0, "join", 2), (1.0, "leave"), (3.0, "leave", 3)])
    assert [e.at for e in schedule] == [1.0, 3.0, 5.0]
    assert schedule.leaves == 4
    assert schedule.joins == 2
    assert ChurnSchedule.kill_fraction(0.3, 100, at=2.0).events == (ChurnEvent(2.0, "leave", 30),)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ChurnEvent(-1.0, "leave"), "at must be"),
        (lambda: ChurnEvent(1.0, "explode"), "action must be"),  # type: ignore[arg-type]
        (lambda: ChurnEvent(1.0, "join", 0), "count must be"),
        (lambda: ChurnSchedule.poisson(-1.0, 10.0, seed=1), "rate must be"),
        (lambda: ChurnSchedule.kill_fraction(1.5, 10), "fraction must be"),
    ],
)
def test_bad_schedules_are_refused(build: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()  # type: ignore[operator]


# -- core level ----------------------------------------------------------------------


def test_core_network_finds_the_true_closest_nodes() -> None:
    net = CoreNetwork(seed=11)
    net.build(CORE_NODES)
    assert all(node.joined for node in net.nodes)
    rng = random.Random(5)
    lookups = [net.start_lookup(rng.choice(net.nodes), rng.randbytes(32)) for _ in range(50)]
    puts = [net.start_put(rng.choice(net.nodes), rng.randbytes(40)) for _ in range(20)]
    net.wait(lookups + puts)
    assert all(op.succeeded for op in puts)
    exact = 0
    for op in lookups:
        truth = net.true_closest(op.target, 20, exclude=op.node)
        found = [c.node_id for c in op.contacts]
        assert found[0] == truth[0]
        assert len(set(found) & set(truth)) >= 18
        exact += found == truth
    assert exact >= 45  # converged to exactly the true k closest, in order
    gets = [net.start_lookup(rng.choice(net.nodes), op.target, kind="get") for op in puts]
    net.wait(gets)
    assert all(op.succeeded and op.value is not None for op in gets)


def test_core_network_reports_a_core_that_cannot_make_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A core whose timer stays due after handling it would spin forever in
    # simulated time (and busy-loop a real node): the loop raises instead.
    net = CoreNetwork(seed=13)
    net.build(5)
    stuck = net.nodes[2]
    real = DhtCore.get_timer
    monkeypatch.setattr(
        DhtCore, "get_timer", lambda core: net.now if core is stuck.core else real(core)
    )
    net.start_lookup(stuck, bytes(32))
    with pytest.raises(RuntimeError, match=r"node 2's core .* cannot make progress"):
        net.run_until(net.now + 60.0)
    assert stuck.spins > 1000


def test_core_network_survives_killing_30_percent() -> None:
    net = CoreNetwork(seed=12)
    net.build(250)
    rng = random.Random(6)
    values = [rng.randbytes(40) for _ in range(20)]
    puts = [net.start_put(rng.choice(net.nodes), v) for v in values]
    net.wait(puts)
    dead = net.kill_random(75)
    assert len(net.alive) == 175
    gets = [net.start_lookup(rng.choice(net.alive), op.target, kind="get") for op in puts]
    finds = [net.start_lookup(rng.choice(net.alive), rng.randbytes(32)) for _ in range(20)]
    net.wait(gets + finds)
    assert [op.value for op in gets] == values
    dead_ids = {node.node_id for node in dead}
    for op in finds:
        assert op.contacts[0].node_id == net.true_closest(op.target, 1, exclude=op.node)[0]
        assert not dead_ids & {c.node_id for c in op.contacts}
    assert sum(op.trace.timeouts for op in finds if op.trace is not None) > 0


def test_a_forgetting_network_drops_its_dead_and_hands_them_over_first() -> None:
    handed: list[tuple[bytes, bool, int]] = []

    def keep(node: SimCore) -> None:
        handed.append((node.node_id, node.alive, node.core.stats()["routing"]["size"]))

    net = CoreNetwork(seed=14, forget_dead=keep)
    net.build(80)
    victims = net.kill_random(20)
    assert [h[0] for h in handed] == [v.node_id for v in victims]
    assert all(not alive and size > 0 for _, alive, size in handed)  # whole, once dead
    assert len(net.nodes) == 60
    assert net.stats()["nodes"] == 80
    assert all(net.node(v.node_id) is None for v in victims)
    before = net.stats()["to_dead"]
    # Lookups from the living still end, their requests to the dead going nowhere.
    finds = [net.start_lookup(node, node.node_id) for node in net.alive[:10]]
    net.wait(finds)
    assert all(op.contacts for op in finds)
    assert net.stats()["to_dead"] > before
    new = net.add_node(bootstrap=[net.alive[0]])
    assert new.index == 80  # indexes are never reused


def _core_churn_run(seed: int) -> tuple[list[bytes], list[bytes], dict[str, int]]:
    net = CoreNetwork(seed=seed)
    net.build(60)
    left, joined = net.run_churn(ChurnSchedule.poisson(0.5, 20.0, seed=seed))
    return [n.node_id for n in left], [n.node_id for n in joined], net.stats()


def test_core_churn_is_deterministic() -> None:
    first = _core_churn_run(21)
    assert first == _core_churn_run(21)
    assert first[0]
    assert first[1]
    assert first != _core_churn_run(22)


def test_core_network_with_loss_still_finds_values() -> None:
    net = CoreNetwork(seed=13, loss=0.1)
    net.build(150)
    joined = [node for node in net.nodes if node.joined]
    # A join fails only when every try lost its messages (about 1 in 1,000).
    assert len(joined) >= 140
    rng = random.Random(7)
    puts = [net.start_put(rng.choice(joined), rng.randbytes(30)) for _ in range(10)]
    net.wait(puts)
    gets = [net.start_lookup(rng.choice(joined), op.target, kind="get") for op in puts]
    net.wait(gets)
    assert net.stats()["lost"] > 0
    assert all(op.succeeded for op in gets)


def _objects_run(pass_objects: bool) -> tuple[list[bytes | None], dict[str, int]]:
    net = CoreNetwork(seed=17, loss=0.05, pass_objects=pass_objects)
    net.build(80)
    rng = random.Random(8)
    puts = [net.start_put(rng.choice(net.alive), rng.randbytes(30)) for _ in range(8)]
    net.wait(puts)
    net.run_churn(ChurnSchedule.poisson(0.5, 20.0, seed=3))
    gets = [net.start_lookup(rng.choice(net.alive), op.target, kind="get") for op in puts]
    net.wait(gets)
    return [op.value for op in gets], net.stats()


def test_passing_objects_runs_the_same_network_as_encoding() -> None:
    # The simulator's shortcut (no CBOR per hop) changes no decision of any core:
    # the same seed gives the same messages, losses and results.
    encoded_values, encoded = _objects_run(False)
    object_values, objects = _objects_run(True)
    assert object_values == encoded_values
    assert all(value is not None for value in object_values)
    sizes = ("bytes_delivered",)
    assert {k: v for k, v in objects.items() if k not in sizes} == {
        k: v for k, v in encoded.items() if k not in sizes
    }
    # Sizes are taken once per message shape: close to the encoded total.
    assert abs(objects["bytes_delivered"] - encoded["bytes_delivered"]) < (
        0.02 * encoded["bytes_delivered"]
    )


def test_core_network_refuses_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="loss"):
        CoreNetwork(seed=1, loss=1.0)
    with pytest.raises(ConfigError, match="access_latency"):
        CoreNetwork(seed=1, access_latency=(0.5, 0.1))
    net = CoreNetwork(seed=1)
    net.build(3)
    with pytest.raises(ConfigError, match="count"):
        net.kill_random(4)


# -- full stack ------------------------------------------------------------------------


async def test_full_stack_network_bootstraps_and_every_get_succeeds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rng = random.Random(8)
    async with build_network(FULL_STACK_NODES, seed=8) as sim:
        nodes = sim.nodes
        assert len(nodes) == FULL_STACK_NODES
        assert all(len(node.core.routing) >= 10 for node in nodes)
        values = [rng.randbytes(48) for _ in range(20)]
        keys = [await rng.choice(nodes).put(v) for v in values]
        for key, value in zip(keys, values, strict=True):
            assert await rng.choice(nodes).get(key) == value


async def _full_stack_churn(seed: int) -> tuple[list[bytes], list[bytes], list[bytes | None]]:
    rng = random.Random(seed)
    async with build_network(30, seed=seed) as sim:
        values = [rng.randbytes(32) for _ in range(5)]
        keys = [await sim.nodes[i].put(v) for i, v in enumerate(values)]
        schedule = ChurnSchedule.explicit([(1.0, "leave", 4), (5.0, "join", 3), (9.0, "leave", 2)])
        left, joined = await sim.run_churn(schedule)
        assert len(sim) == 30 - 4 + 3 - 2
        assert set(left).isdisjoint(n.node_id for n in sim.nodes)
        got = [await sim.nodes[-1].get(k) for k in keys]
        assert got == values
        return left, joined, [sim.nodes[0].node_id]


async def test_full_stack_churn_is_deterministic(autojump_clock: trio.testing.MockClock) -> None:
    first = await _full_stack_churn(31)
    second = await _full_stack_churn(31)
    assert first == second
    assert len(first[0]) == 6
    assert len(first[1]) == 3


async def test_killed_node_goes_silent(autojump_clock: trio.testing.MockClock) -> None:
    async with build_network(10, seed=41) as sim:
        victim = sim.nodes[3]
        await sim.kill(victim)
        assert victim not in sim.nodes
        assert sim.stopped == [victim.node_id]
        assert sim.network.transport_at(victim.contact.address) is None
        # The survivors still find each other; the victim is gone from results.
        found = await sim.nodes[0].find_node(victim.node_id)
        assert victim.node_id not in [c.node_id for c in found]


async def test_faults_apply_to_every_node(autojump_clock: trio.testing.MockClock) -> None:
    async with build_network(12, seed=51, faults={"loss": 0.05}) as sim:
        assert isinstance(sim, SimNetwork)
        key = await sim.nodes[0].put(b"lossy but fine")
        assert await sim.nodes[-1].get(key) == b"lossy but fine"
        lost = sum(n.transport.stats().get("fault_lost", 0) for n in sim.nodes)
        assert lost > 0


def test_join_refresh_runs_refresh_lookups_after_joining() -> None:
    plain = CoreNetwork(seed=14)
    plain.build(40)
    refreshing = CoreNetwork(seed=14, join_refresh=2)
    refreshing.build(40)

    def refreshes(net: CoreNetwork) -> int:
        return sum(n.core.stats()["lookups"]["by_kind"]["refresh"]["started"] for n in net.nodes)

    assert refreshes(plain) == 0
    assert refreshes(refreshing) > 0
    assert sum(len(n.core.routing) for n in refreshing.nodes) >= sum(
        len(n.core.routing) for n in plain.nodes
    )


def test_new_deadline_covers_a_lookups_slow_timer() -> None:
    # Drivers (Node, like CoreNetwork's loop) sleep until get_timer() and wake
    # early only when new_deadline falls before it.  With requests timing out
    # after 4 s but "slow" after 0.3 s, a new lookup's earliest timer is its
    # slow timer, not any request deadline, and new_deadline must say so.
    options = {
        "lookup": LookupConfig(slow_after=0.3),
        "routing": RoutingConfig(initial_timeout=4.0, min_timeout=4.0, max_timeout=5.0),
    }
    net = CoreNetwork(seed=15, core_options=options)
    net.build(30)
    core = net.nodes[5].core
    before = core.get_timer()
    assert before is not None
    assert before > net.now + 0.3
    core.start_lookup(bytes(32), net.now)
    woken_by = core.new_deadline
    timer = core.get_timer()
    assert timer is not None
    assert timer == pytest.approx(net.now + 0.3)
    assert woken_by <= timer


def test_new_deadline_never_hides_an_earlier_timer_in_a_churning_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The Node's wake rule, checked on every core of a churning network with
    # records, replication and slow requests: whenever handling input made a
    # core's timer earlier, new_deadline (read just before get_timer) said so.
    seen: dict[int, float] = {}
    real_get_timer = DhtCore.get_timer

    def get_timer(core: DhtCore) -> float | None:
        seen[id(core)] = core.new_deadline
        return real_get_timer(core)

    monkeypatch.setattr(DhtCore, "get_timer", get_timer)
    hidden: list[tuple[int, float]] = []
    real_flush = CoreNetwork._flush

    def flush(net: CoreNetwork, node: SimCore) -> None:
        before = node.timer_at
        real_flush(net, node)
        after = node.timer_at
        earlier = before is not None and after is not None and after < before
        if earlier and after is not None and seen[id(node.core)] > after:
            hidden.append((node.index, after))

    monkeypatch.setattr(CoreNetwork, "_flush", flush)
    options = {
        "lookup": LookupConfig(slow_after=0.3),
        "routing": RoutingConfig(initial_timeout=4.0, min_timeout=2.0, max_timeout=5.0),
        "unix_offset": 1_800_000_000.0,
    }
    net = CoreNetwork(seed=16, core_options=options)
    net.build(60)
    rng = random.Random(16)
    puts = [net.start_put(rng.choice(net.alive), rng.randbytes(40)) for _ in range(20)]
    net.wait(puts)
    schedule = ChurnSchedule.explicit([(t * 60.0, "leave") for t in range(1, 20)])
    net.run_churn(schedule)
    net.run_churn(ChurnSchedule.explicit([(t * 60.0, "join") for t in range(1, 20)]))
    gets = [net.start_lookup(rng.choice(net.alive), op.target, kind="get") for op in puts]
    net.wait(gets)
    assert all(op.succeeded for op in gets)
    assert net.stats()["delivered"] > 5_000
    assert hidden == []
