"""The ``training`` service between nodes of an in-memory network (node.training)."""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

from qdht import Config, Node, open_node
from qdht.crypto.hashes import sha3_256
from qdht.errors import ConfigError, NodeStateError
from qdht.identity import Identity
from qdht.models import ModelsConfig
from qdht.models.training import (
    Dataset,
    PrivacyBudget,
    RoundCoordinator,
    RoundParams,
    SoftmaxRegression,
    TrainingLayerConfig,
    enrol_topic,
    is_sampled,
    load_digits_split,
    round_id,
    split_iid,
)
from qdht.testing import MemoryNetwork
from qdht.wire import Enrolment, RoundUpdate, encode

DIFFICULTY = 4
TASK = sha3_256(b"test task")
TRAINER = SoftmaxRegression(64, 10)


@functools.cache
def identity(n: int) -> Identity:
    return Identity.generate(DIFFICULTY)


@functools.cache
def digits() -> Dataset:
    return load_digits_split(0)


@asynccontextmanager
async def network(
    count: int, tmp_path: Path, net: MemoryNetwork | None = None
) -> AsyncIterator[list[Node]]:
    """Node 0 (the coordinator) and ``count - 1`` devices, joined."""
    net = MemoryNetwork(seed=1) if net is None else net
    async with AsyncExitStack() as stack:
        nodes: list[Node] = []
        for n in range(count):
            transport = await stack.enter_async_context(net.open_transport())
            config = Config(
                identity=identity(n),
                puzzle_difficulty=DIFFICULTY,
                data_dir=str(tmp_path / f"node{n}"),
                models=ModelsConfig(trusted=(identity(0).mldsa.public_key_bytes(),)),
                training=TrainingLayerConfig(),
            )
            node = await stack.enter_async_context(open_node(config, transport=transport))
            if nodes:
                assert await node.bootstrap([nodes[0].contact])
            nodes.append(node)
        for node in nodes:
            await node.bootstrap([nodes[-1].contact])
        yield nodes


async def join_all(coordinator: Node, devices: list[Node], key: bytes | None = None) -> None:
    data = digits()
    parts = split_iid(len(data.y_train), len(devices), np.random.default_rng(0))
    for i, (node, part) in enumerate(zip(devices, parts, strict=True)):
        await node.training.join(
            coordinator.contact,
            key or coordinator.identity.mldsa.public_key_bytes(),
            TASK,
            TRAINER,
            data.x_train[part],
            data.y_train[part],
            rng=np.random.default_rng(i),
        )


def initial_model() -> Any:
    return TRAINER.init_params(np.random.default_rng(0))


def start_rounds(
    nursery: trio.Nursery, coordinator: Node, params: RoundParams, results: list[Any]
) -> None:
    """Coordinate one round from the initial model in ``nursery``; its run goes to ``results``."""

    async def run() -> None:
        results.append(
            await coordinator.training.coordinate(TASK, initial_model(), params, rounds=1)
        )

    nursery.start_soon(run)


async def secagg_with_a_dropout(
    coordinator: Node, leaver: Node, params: RoundParams, net: MemoryNetwork, settle: float = 0.0
) -> Any:
    """One SecAgg round in which ``leaver`` sends its keys (stage 1), waits ``settle``
    seconds (its keys are on their way), then goes silent for good."""
    results: list[Any] = []
    async with trio.open_nursery() as nursery:
        start_rounds(nursery, coordinator, params, results)
        while leaver.stats()["training"].get("secagg_sent", 0) < 1:  # noqa: ASYNC110
            await trio.sleep(0.5)
        await trio.sleep(settle)
        net.partition([leaver.contact.addresses[0]])
    (run_,) = results
    return run_


async def test_rounds_run_end_to_end_between_nodes(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with network(5, tmp_path) as nodes:
        coordinator, devices = nodes[0], nodes[1:]
        await join_all(coordinator, devices)
        # The devices enrolled in the DHT: the coordinator finds them there.
        found = await coordinator.training.enrolled(TASK)
        assert {c.node_id for c in found} == {d.node_id for d in devices}
        data = digits()
        before = TRAINER.accuracy(initial_model(), data.x_test, data.y_test)
        run = await coordinator.training.coordinate(
            TASK, initial_model(), RoundParams(duration=30.0, epochs=2), rounds=3
        )
        assert run.stopped == ""
        assert [r.participants for r in run.results] == [4, 4, 4]
        assert not any(r.abandoned for r in run.results)
        after = TRAINER.accuracy(run.model, data.x_test, data.y_test)
        assert after > max(0.8, before + 0.3)
        stats = coordinator.stats()["training"]
        assert stats["updates_accepted"] == 12
        assert stats["rounds"] == 3
        for device in devices:
            assert device.stats()["training"]["updates_sent"] == 3
        # Every round's model (and the final one) went through the model store.
        owner = coordinator.identity.mldsa_public_hash
        name = "fl-" + TASK.hex()[:32]
        assert await devices[0].models.versions(owner, name) == [0, 1, 2, 3]


async def test_secagg_round_survives_a_device_dropping_out(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    net = MemoryNetwork(seed=2)
    async with network(7, tmp_path, net) as nodes:
        coordinator, devices = nodes[0], nodes[1:]
        await join_all(coordinator, devices)
        params = RoundParams(duration=40.0, epochs=2, secagg=True, min_participants=3)
        run_ = await secagg_with_a_dropout(coordinator, devices[0], params, net)
        (result,) = run_.results
        assert not result.abandoned
        assert result.participants == 5  # the sum of the five that stayed
        stats = coordinator.stats()["training"]
        # The coordinator never saw an update in the clear: only masked SecAgg inputs.
        assert stats.get("updates_accepted", 0) == 0
        assert stats["rounds"] == 1
        data = digits()
        assert TRAINER.accuracy(run_.model, data.x_test, data.y_test) > 0.5
        for device in devices[1:]:
            assert device.stats()["training"]["secagg_sent"] >= 3  # keys, shares, masked, reveal


async def test_bad_updates_are_refused_and_counted(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with network(4, tmp_path) as nodes:
        coordinator, devices, rogue = nodes[0], nodes[1:3], nodes[3]
        await join_all(coordinator, devices)
        results: list[Any] = []
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                results.append(
                    await coordinator.training.coordinate(
                        TASK, initial_model(), RoundParams(duration=30.0), rounds=1
                    )
                )

            nursery.start_soon(run)
            while (round_core := coordinator.training.core.coordinator) is None or (  # noqa: ASYNC110
                announce := round_core.announcement
            ) is None:
                await trio.sleep(0.1)
            rid = round_id(coordinator.node_id, TASK, announce.round)
            size = announce.size
            nan = np.full(size, np.nan, dtype="<f4").tobytes()
            zeros = np.zeros(size, dtype="<f4").tobytes()
            me = rogue.node_id
            for update in (
                RoundUpdate(rid, me, 10, size - 1, "none", zeros[:-4]),
                RoundUpdate(rid, me, 10, size, "none", nan),
                RoundUpdate(sha3_256(b"another round"), me, 10, size, "none", zeros),
                RoundUpdate(rid, devices[0].node_id, 10, size, "none", zeros),
            ):
                rogue.training.core.submit_update(announce, encode(update))
            await rogue.flush()
        (result,) = results[0].results
        assert result.participants == 2  # the two devices; none of the rogue's updates
        drops = coordinator.stats()["drops"]
        for reason in ("wrong-shape", "non-finite", "wrong-round", "not-the-sender"):
            assert drops[f"training.{reason}"] == 1, reason


async def test_an_announcement_with_a_bad_signature_is_refused(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with network(3, tmp_path) as nodes:
        coordinator, device, forger = nodes
        await join_all(coordinator, [device])
        # The forger announces rounds in the coordinator's name, signed with its own key.
        forged = RoundCoordinator(
            signing_key=forger.identity.mldsa,
            node_id=coordinator.node_id,
            task=TASK,
            model=initial_model(),
            params=RoundParams(),
            population=1,
        )
        core = forger.training.core
        core.coordinator = forged
        core.enrol([(device.node_id, device.contact.addresses[0])])
        core.start_round(trio.current_time())
        await forger.flush()
        await trio.sleep(1.0)
        stats = device.stats()["training"]
        assert stats["drops"]["bad-signature"] == 1
        assert device.stats()["drops"]["training.bad-signature"] == 1
        assert stats.get("rounds_joined", 0) == 0


async def test_the_privacy_budget_stops_the_rounds(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    probe = PrivacyBudget(1e9)
    two = [probe.spend(1.0, 1.0) for _ in range(3)]
    budget = PrivacyBudget((two[1] + two[2]) / 2)  # pays for two rounds, not three
    async with network(4, tmp_path) as nodes:
        coordinator, devices = nodes[0], nodes[1:]
        await join_all(coordinator, devices)
        params = RoundParams(duration=20.0, clip=1.0, noise=1.0, min_participants=2)
        run = await coordinator.training.coordinate(
            TASK, initial_model(), params, rounds=5, budget=budget
        )
        assert run.stopped == "budget"
        assert len(run.results) == 2
        assert run.results[-1].epsilon == pytest.approx(two[1])
        assert coordinator.stats()["training"]["budget_stops"] == 1
        assert coordinator.stats()["training"]["announced"] == 2
        for device in devices:  # no third round ever reached a device
            assert device.stats()["training"]["rounds_joined"] == 2
        # Two rounds' models and the final one: the refused round published nothing.
        owner = coordinator.identity.mldsa_public_hash
        assert await devices[0].models.versions(owner, "fl-" + TASK.hex()[:32]) == [0, 1, 2]


async def test_gossip_among_dht_neighbours_learns(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with network(5, tmp_path) as nodes:
        data = digits()
        parts = split_iid(len(data.y_train), len(nodes), np.random.default_rng(0))
        for i, (node, part) in enumerate(zip(nodes, parts, strict=True)):
            node.training.start_gossip(
                TASK,
                TRAINER,
                data.x_train[part],
                data.y_train[part],
                period=5.0,
                rng=np.random.default_rng(i),
            )
        await trio.sleep(120.0)
        for node in nodes:
            stats = node.stats()["training"]
            assert stats["gossip_sent"] >= 20
            assert stats["gossip_merged"] >= 5
            assert TRAINER.accuracy(node.training.gossip_model, data.x_test, data.y_test) > 0.8


async def test_misuse_is_reported(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    async with network(2, tmp_path) as nodes:
        coordinator, device = nodes
        with pytest.raises(ConfigError, match="no devices"):
            await coordinator.training.coordinate(TASK, initial_model(), RoundParams(), rounds=1)
        with pytest.raises(ConfigError, match="task"):
            await coordinator.training.coordinate(
                b"short", initial_model(), RoundParams(), rounds=1
            )
        with pytest.raises(NodeStateError, match="not gossiping"):
            _ = device.training.gossip_model
        await join_all(coordinator, [device])
        with pytest.raises(NodeStateError, match="already"):
            await join_all(coordinator, [device])
    plain = Config(identity=identity(0), puzzle_difficulty=DIFFICULTY)
    async with open_node(plain, transport=MemoryNetwork().bind()) as node:
        with pytest.raises(NodeStateError, match="training layer is off"):
            _ = node.training
    with pytest.raises(ConfigError, match="TrainingLayerConfig"):
        Config(training=ModelsConfig())  # type: ignore[arg-type]


async def test_a_node_can_enrol_itself_and_nobody_else(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with network(5, tmp_path) as nodes:
        coordinator, device, forger, junk, victim = nodes
        await join_all(coordinator, [device])
        topic = enrol_topic(coordinator.node_id, TASK)
        # Everything in the victim's enrolment is public: its contact, the hash of
        # its X-Wing key, its nonce.  Signed by the forger, it names a third party.
        xwing = sha3_256(victim.identity.xwing.public_key_bytes())
        third_party = Enrolment(victim.contact, xwing, victim.identity.nonce)
        await forger.put_set_entry(topic, encode(third_party))
        await junk.put_set_entry(topic, junk.contact_uri.encode())  # the old format
        entries = await coordinator.get_set(topic)
        assert len(entries) == 3  # all three are in the set ...
        found = await coordinator.training.enrolled(TASK)
        assert [c.node_id for c in found] == [device.node_id]  # ... one is a device
        drops = coordinator.training.core.drops
        assert drops["enrolment-not-own"] == 1
        assert drops["bad-enrolment"] == 1


async def test_a_device_renews_its_enrolment(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with network(2, tmp_path) as nodes:
        coordinator, device = nodes
        await join_all(coordinator, [device])
        ttl = TrainingLayerConfig().enrol_ttl
        await trio.sleep(3 * ttl + 1)  # long past the first entry's lifetime
        found = await coordinator.training.enrolled(TASK)
        assert [c.node_id for c in found] == [device.node_id]


async def test_a_round_below_the_minimum_is_abandoned_and_changes_nothing(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with network(3, tmp_path) as nodes:
        coordinator, devices = nodes[0], nodes[1:]
        await join_all(coordinator, devices)
        params = RoundParams(duration=20.0, clip=1.0, noise=1.0, min_participants=3)
        budget = PrivacyBudget(100.0)
        run = await coordinator.training.coordinate(
            TASK, initial_model(), params, rounds=1, budget=budget
        )
        (result,) = run.results
        assert result.abandoned
        assert result.reason == "too-few-participants"
        assert result.participants == 2
        assert np.array_equal(run.model, initial_model())
        assert budget.spent == 0  # nothing was released, nothing spent
        assert coordinator.stats()["training"]["rounds_abandoned"] == 1


def test_a_plain_import_loads_neither_numpy_nor_torch() -> None:
    code = (
        "import sys, qdht, qdht.cli, qdht.node\n"
        "qdht.Config()\n"
        "heavy = {'numpy', 'torch', 'sklearn'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


async def test_only_the_devices_the_round_samples_take_part(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with network(7, tmp_path) as nodes:
        coordinator, devices = nodes[0], nodes[1:]
        await join_all(coordinator, devices)
        params = RoundParams(duration=20.0, q=0.5, epochs=1)
        run = await coordinator.training.coordinate(TASK, initial_model(), params, rounds=2)
        for number, result in enumerate(run.results):
            rid = round_id(coordinator.node_id, TASK, number)
            sampled = [is_sampled(rid, d.node_id, params.q32) for d in devices]
            assert result.participants == sum(sampled)
        for device in devices:
            joined = sum(
                is_sampled(round_id(coordinator.node_id, TASK, n), device.node_id, params.q32)
                for n in range(2)
            )
            assert device.stats()["training"].get("updates_sent", 0) == joined
