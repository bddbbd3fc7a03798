"""Training through the mixnet (14-training.md §9.5): updates and SecAgg messages reach
the coordinator only through exits' hand-offs, signed by the device they name.

Every network runs on ``qdht.testing.MemoryNetwork`` under the autojump clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

from qdht import Config, Node, open_node
from qdht.errors import ConfigError
from qdht.identity import Identity, ResolveConfig
from qdht.mixnet import MixnetConfig
from qdht.models import ModelsConfig
from qdht.models.training import RoundParams, TrainingLayerConfig, round_id, split_iid
from qdht.testing import MemoryNetwork, MixNetwork, open_mix_network
from qdht.wire import (
    FL_SIGNED_CONTEXT,
    DeviceSigned,
    RoundUpdate,
    SecAggSubmitted,
    SecAggUnlinked,
    decode,
    encode,
    peek_type,
    signed_message_bytes,
)

from .test_service import (
    TASK,
    TRAINER,
    digits,
    initial_model,
    secagg_with_a_dropout,
    start_rounds,
)

#: A payload that carries a signed update of the digits model in one packet.
MIXNET = MixnetConfig(
    user_payload_size=8192,
    lambda_payload=2.0,
    lambda_loop=0.1,
    lambda_drop=0.1,
    lambda_mix_loop=0.1,
    lambda_dummy_lookup=0.0,
    directory_interval=20.0,
)


@asynccontextmanager
async def mix_training(
    devices: int, seed: int
) -> AsyncIterator[tuple[MixNetwork, MemoryNetwork, list[str | None]]]:
    """Five mixes; client 0 coordinates, the other clients are devices and joined;
    with the types of the session messages the coordinator's training service gets."""
    net = MemoryNetwork(seed=seed)
    extra = {
        "models": ModelsConfig(),
        "resolve": ResolveConfig(),
        "training": TrainingLayerConfig(mixnet=True),
    }
    async with open_mix_network(
        5, devices + 1, seed=seed, network=net, mixnet=MIXNET, clients_config=extra
    ) as mn:
        assert await mn.publish_directory() == len(mn.nodes)
        await join(mn.clients[0], mn.clients[1:])
        yield mn, net, session_types(mn.clients[0])


async def join(coordinator: Node, devices: list[Node]) -> None:
    data = digits()
    parts = split_iid(len(data.y_train), len(devices), np.random.default_rng(0))
    for i, (node, part) in enumerate(zip(devices, parts, strict=True)):
        await node.training.join(
            coordinator.contact,
            coordinator.identity.mldsa.public_key_bytes(),
            TASK,
            TRAINER,
            data.x_train[part],
            data.y_train[part],
            rng=np.random.default_rng(i),
        )


def session_types(node: Node) -> list[str | None]:
    """Record the type of every session message the training service gets."""
    core = node.services.get("training").core
    seen: list[str | None] = []
    receive = core.receive_message

    def spy(node_id: bytes, addr: Any, payload: bytes, now: float, *, early: bool = False) -> None:
        seen.append(peek_type(payload))
        receive(node_id, addr, payload, now, early=early)

    core.receive_message = spy  # type: ignore[method-assign]
    return seen


def anonymous_types(node: Node) -> list[str]:
    """Record what the training service gets from anonymous senders: each payload's
    type, and a signed one's inner type after a slash."""
    core = node.training.core
    seen: list[str] = []
    receive = core.receive_anonymous

    def spy(payload: bytes, now: float) -> bool:
        kind = str(peek_type(payload))
        if kind == DeviceSigned.TYPE:
            signed = decode(payload, expect=(DeviceSigned,))
            assert isinstance(signed, DeviceSigned)
            kind += f"/{peek_type(signed.message)}"
        seen.append(kind)
        accepted: bool = receive(payload, now)
        return accepted

    core.receive_anonymous = spy  # type: ignore[method-assign]
    return seen


def total(mn: MixNetwork, counter: str) -> int:
    return sum(n.stats()["mixnet"].get(counter, 0) for n in mn.nodes)


async def test_a_round_whose_updates_arrive_only_through_exits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with mix_training(4, seed=41) as (mn, _, seen):
        coordinator, devices = mn.clients[0], mn.clients[1:]
        rogue = devices[-1]
        results: list[Any] = []
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                params = RoundParams(duration=60.0, epochs=2)
                results.append(
                    await coordinator.training.coordinate(TASK, initial_model(), params, rounds=2)
                )

            nursery.start_soon(run)
            while (round_core := coordinator.training.core.coordinator) is None or (  # noqa: ASYNC110
                announce := round_core.announcement
            ) is None:
                await trio.sleep(0.1)
            # A device forges an update in another device's name: refused, counted.
            rid = round_id(coordinator.node_id, TASK, announce.round)
            zeros = np.zeros(announce.size, dtype="<f4").tobytes()
            victim = devices[0].node_id
            forged = encode(RoundUpdate(rid, victim, 10, announce.size, "none", zeros))
            sig = rogue.identity.mldsa.sign(signed_message_bytes(victim, forged), FL_SIGNED_CONTEXT)
            refused = encode(DeviceSigned(victim, forged, sig))
            assert not await rogue.anonymous.forward(coordinator.node_id, refused)
            # An unsigned update is not taken from an anonymous sender at all.
            assert not await rogue.anonymous.forward(coordinator.node_id, forged)
        (run_,) = results
        assert [r.participants for r in run_.results] == [4, 4]
        stats = coordinator.stats()["training"]
        assert stats["updates_accepted"] == 8
        assert stats["received_anonymously"] == 8
        assert stats["drops"]["bad-device-signature"] == 1
        assert coordinator.stats()["mixnet"]["drops"]["not-anonymous"] == 1
        # The coordinator's sessions never carried an update: only hand-offs did.
        assert "round_update" not in seen
        assert "device_signed" not in seen
        assert coordinator.stats()["mixnet"]["handoffs_accepted"] == 8
        assert total(mn, "handoffs_sent") == 10
        for device in devices:
            assert device.stats()["training"]["sent_anonymously"] == 2
        data = digits()
        assert TRAINER.accuracy(run_.model, data.x_test, data.y_test) > 0.7


async def test_a_secagg_round_through_the_mixnet_survives_a_dropout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with mix_training(6, seed=42) as (mn, net, seen):
        coordinator, devices = mn.clients[0], mn.clients[1:]
        anonymous = anonymous_types(coordinator)
        params = RoundParams(duration=120.0, epochs=2, secagg=True, min_participants=3)
        run_ = await secagg_with_a_dropout(coordinator, devices[0], params, net, settle=10.0)
        (result,) = run_.results
        assert not result.abandoned
        assert result.participants == 5
        stats = coordinator.stats()["training"]
        assert stats.get("updates_accepted", 0) == 0
        assert stats["received_anonymously"] >= 5 * 4  # keys, shares, claim, reveal
        assert all(t not in seen for t in ("secagg_keys", "secagg_masked", "device_signed"))
        # The masked inputs came unsigned and without index; who took part came
        # from signed claims; no masked input was ever tied to a node (§9.5).
        assert anonymous.count("secagg_unlinked") == stats["unlinked_received"] == 5
        assert anonymous.count("device_signed/secagg_submitted") == 5
        assert not any(t.endswith("secagg_masked") for t in anonymous)
        round_core = coordinator.training.core.coordinator
        assert round_core is not None
        assert round_core.secagg is not None
        agg = round_core.secagg
        assert agg.masked == {}
        assert agg.unlinked_count == len(agg.claimed) == 5
        for device in devices[1:]:
            assert device.stats()["training"]["unlinked_sent"] == 1
        # A claim in another device's name, signed by the wrong key: refused.
        rogue, victim = devices[-1], devices[1]
        index = agg.setup.ids.index(victim.node_id) + 1
        claim = encode(SecAggSubmitted(agg.setup.round_id, index))
        forged = rogue.identity.mldsa.sign(
            signed_message_bytes(victim.node_id, claim), FL_SIGNED_CONTEXT
        )
        signed = encode(DeviceSigned(victim.node_id, claim, forged))
        assert not await rogue.anonymous.forward(coordinator.node_id, signed)
        assert coordinator.stats()["training"]["drops"]["bad-device-signature"] == 1
        # Signed by the rogue as itself, but claiming the victim's index: refused too.
        own = rogue.identity.mldsa.sign(
            signed_message_bytes(rogue.node_id, claim), FL_SIGNED_CONTEXT
        )
        signed = encode(DeviceSigned(rogue.node_id, claim, own))
        assert not await rogue.anonymous.forward(coordinator.node_id, signed)
        assert coordinator.stats()["training"]["drops"]["not-the-sender"] == 1
        data = digits()
        assert TRAINER.accuracy(run_.model, data.x_test, data.y_test) > 0.5


async def test_an_injected_unlinked_vector_abandons_the_secagg_round(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with mix_training(4, seed=43) as (mn, _, _):
        coordinator, devices = mn.clients[0], mn.clients[1:]
        params = RoundParams(duration=120.0, epochs=2, secagg=True, min_participants=3)
        results: list[Any] = []
        async with trio.open_nursery() as nursery:
            start_rounds(nursery, coordinator, params, results)
            while (round_core := coordinator.training.core.coordinator) is None or (  # noqa: ASYNC110
                round_core.secagg is None or round_core.secagg.stage != "masked"
            ):
                await trio.sleep(0.5)
            # Anyone can hand the coordinator one more masked vector: it is taken ...
            agg = round_core.secagg
            extra = encode(SecAggUnlinked(agg.setup.round_id, bytes(4 * agg.setup.size)))
            assert await devices[0].anonymous.forward(coordinator.node_id, extra)
        (run_,) = results
        (result,) = run_.results
        # ... it came first and filled the cohort's last slot, so one genuine vector was
        # dropped (and its device told, undelivered): the counts match, but that
        # device's masks stay in the sum, out of range. The round is abandoned, counted.
        assert result.abandoned
        assert result.reason == "secagg-bad-sum"
        assert np.array_equal(run_.model, initial_model())
        stats = coordinator.stats()["training"]
        assert stats["coordinator"]["abandoned_reasons"] == {"secagg-bad-sum": 1}
        assert stats["drops"]["secagg-unlinked-excess"] == 1
        assert stats["unlinked_received"] == len(agg.claimed) == 4
        assert (
            sum(d.stats()["training"]["drops"].get("anonymous-undelivered", 0) for d in devices)
            == 1
        )


async def test_training_through_the_mixnet_needs_the_mixnet() -> None:
    net = MemoryNetwork(seed=43)
    config = Config(
        identity=Identity.generate(0),
        puzzle_difficulty=0,
        training=TrainingLayerConfig(mixnet=True),
    )
    async with net.open_transport() as transport:
        with pytest.raises(ConfigError, match="needs the mixnet layer"):
            async with open_node(config, transport=transport):
                pass
    assert not TrainingLayerConfig().mixnet  # off by default (§9.5)
