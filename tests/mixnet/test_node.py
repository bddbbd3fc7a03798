"""The mixnet in running nodes: the ``mixnet`` service, directories in the DHT,
anonymous gets and puts, epoch rotation, the threshold and the n-1 alarm.

Every network runs on ``qdht.testing.MemoryNetwork`` under the autojump clock.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from qdht import Config, open_node
from qdht.dht import make_immutable
from qdht.errors import ConfigError, NodeStateError
from qdht.identity import Identity
from qdht.mixnet import ExitRequest, MixnetConfig
from qdht.testing import MemoryNetwork, MixNetwork, open_mix_network
from qdht.wire import AnonAnswer, immutable_key

#: Light traffic keeps the tests quick; a larger payload carries signed records.
LIGHT = MixnetConfig(
    user_payload_size=8192,
    lambda_payload=1.0,
    lambda_loop=0.1,
    lambda_drop=0.1,
    lambda_mix_loop=0.1,
    lambda_dummy_lookup=0.0,
    directory_interval=20.0,
)


def mixnet_stats(node: Any) -> dict[str, Any]:
    stats: dict[str, Any] = node.stats()["mixnet"]
    return stats


def total(network: MixNetwork, counter: str) -> int:
    return sum(mixnet_stats(n).get(counter, 0) for n in network.nodes)


async def test_anonymous_put_and_get_end_to_end(autojump_clock: trio.testing.MockClock) -> None:
    net = MemoryNetwork(seed=11)
    async with open_mix_network(5, 2, seed=11, network=net, mixnet=LIGHT) as mn:
        assert await mn.publish_directory() == len(mn.nodes)
        alice, bob = mn.clients
        key = await alice.anonymous.put_immutable(b"sent through three mixes")
        assert key == immutable_key(b"sent through three mixes")
        # Stored in the DHT like any record: a plain get finds it.
        assert await bob.get(key) == b"sent through three mixes"
        assert await bob.anonymous.get(key) == b"sent through three mixes"
        # A signed record: the asker checks the signature and the key.
        mkey = await alice.anonymous.put_mutable(b"version 0", salt=b"profile")
        assert mkey == alice.mutable_key(b"profile")
        record = await bob.anonymous.get_record(mkey)
        assert record is not None
        assert record.value == b"version 0"
        assert record.seq == 0
        await alice.anonymous.put_mutable(b"version 1", salt=b"profile")
        assert await bob.anonymous.get(mkey) == b"version 1"
        assert await bob.anonymous.get(hashlib.sha3_256(b"nothing here").digest()) is None
        # Exits ran the lookups; mixes mixed; nothing was refused.
        assert total(mn, "exit_requests") >= 2 * 6
        assert total(mn, "mixed") > 0
        assert all(mixnet_stats(m)["mix"] for m in mn.mixes)
        assert not mixnet_stats(alice)["mix"]
        assert mixnet_stats(alice)["anonymous_ok"] == 4  # 3 puts, 1 get (1 found nothing)
        assert mixnet_stats(bob)["anonymous_ok"] == 3  # the 4th get found nothing
        for node in mn.nodes:
            drops = mixnet_stats(node)["drops"]
            assert drops.get("forged-record", 0) == 0
            assert drops.get("bad-mac", 0) == 0


async def test_a_client_only_node_never_mixes(autojump_clock: trio.testing.MockClock) -> None:
    net = MemoryNetwork(seed=12)
    async with open_mix_network(4, 1, seed=12, network=net, mixnet=LIGHT) as mn:
        await mn.publish_directory()
        await trio.sleep(30)
        client = mixnet_stats(mn.clients[0])
        assert client["mixed"] == 0
        assert client["role"] == {}
        assert client["client"]["drop_sent"] > 0  # cover traffic flows
        assert sum(mixnet_stats(m)["mixed"] for m in mn.mixes) > 0
        assert client["loops_returned"] > 0


async def test_without_the_mixnet_a_node_pays_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=13)
    async with net.open_transport() as t, open_node(Config(puzzle_difficulty=0), transport=t) as n:
        assert "mixnet" not in n.services
        assert "mixnet" not in n.stats()
        with pytest.raises(NodeStateError, match="mixnet layer is off"):
            n.anonymous  # noqa: B018


async def test_a_directory_with_too_few_signatures_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Two directory keys, threshold two, but only one authority signs.
    net = MemoryNetwork(seed=14)
    async with open_mix_network(
        4, 1, seed=14, network=net, mixnet=LIGHT, authorities=1, threshold=2, silent=1
    ) as mn:
        assert await mn.publish_directory() == 0
        client = mn.clients[0]
        assert mixnet_stats(client)["drops"]["directory-too-few-signatures"] >= 1
        assert mixnet_stats(client)["directory_epochs"] == []
        with pytest.raises(NodeStateError, match="no verified mix directory"):
            await client.anonymous.get(bytes(32))


async def test_two_of_two_authorities_make_a_directory(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=15)
    async with open_mix_network(
        4, 1, seed=15, network=net, mixnet=LIGHT, authorities=2, threshold=2
    ) as mn:
        assert await mn.publish_directory() == len(mn.nodes)
        key = await mn.clients[0].anonymous.put_immutable(b"two signatures")
        assert await mn.clients[0].anonymous.get(key) == b"two signatures"


async def test_mix_keys_rotate_in_a_running_network(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = attrs.evolve(
        LIGHT, epoch_period=60.0, lambda_payload=0.3, lambda_loop=0.0, lambda_mix_loop=0.0
    )
    net = MemoryNetwork(seed=16)
    async with open_mix_network(5, 1, seed=16, network=net, mixnet=config) as mn:
        await mn.publish_directory()
        client = mn.clients[0]
        first = mixnet_stats(mn.mixes[0])["epoch"]
        key = await client.anonymous.put_immutable(b"before the rotation")
        # Two epochs later: the directory task republished and refetched by itself.
        await trio.sleep(2 * 60.0 + 10.0)
        now = mixnet_stats(mn.mixes[0])["epoch"]
        assert now >= first + 2
        assert now in mixnet_stats(client)["directory_epochs"]
        assert await client.anonymous.get(key) == b"before the rotation"
        assert total(mn, "bad-mac") == 0


async def test_the_n_minus_1_alarm_in_a_running_network(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = attrs.evolve(
        LIGHT,
        lambda_payload=0.1,
        lambda_drop=0.0,
        lambda_loop=1.0,
        loop_window=10.0,
        loop_alarm_min=5,
        lambda_mix_loop=0.0,
    )
    net = MemoryNetwork(seed=17)
    async with open_mix_network(5, 1, seed=17, network=net, mixnet=config) as mn:
        await mn.publish_directory()
        client = mn.clients[0]
        await trio.sleep(15)
        assert mixnet_stats(client)["loop_alarm"] is False
        assert mixnet_stats(client)["loops_returned"] > 0
        # An attacker cuts three of the five mixes off: every 3-hop loop is lost.
        cut = [m.contact.addresses[0] for m in mn.mixes[2:]]
        net.partition(cut)
        await trio.sleep(22)
        assert mixnet_stats(client)["loop_alarm"] is True
        assert mixnet_stats(client)["loop_alarms"] == 1
        net.heal()
        await trio.sleep(25)
        assert mixnet_stats(client)["loop_alarm"] is False


def test_mixnet_config_checks_the_node_roles() -> None:
    with pytest.raises(ConfigError, match="layer"):
        MixnetConfig(layer=9)
    with pytest.raises(ConfigError, match="mix must be True or False"):
        MixnetConfig(mix=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="mixnet must be a MixnetConfig"):
        Config(mixnet=object())
    with pytest.raises(ConfigError, match="random_seed must be an integer or None"):
        MixnetConfig(random_seed="7")  # type: ignore[arg-type]


@functools.cache
def _identity() -> Identity:
    return Identity.generate(0)


async def test_an_authority_must_hold_a_directory_key(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=18)
    config = Config(identity=_identity(), puzzle_difficulty=0, mixnet=MixnetConfig(authority=True))
    async with net.open_transport() as t:
        with pytest.raises(ConfigError, match="not one of directory_keys"):
            async with open_node(config, transport=t):
                pass


async def test_an_exit_can_withhold_but_not_forge(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=19)
    async with open_mix_network(5, 2, seed=19, network=net, mixnet=LIGHT) as mn:
        await mn.publish_directory()
        key = await mn.clients[0].anonymous.put_immutable(b"the real value")
        forged = make_immutable(b"a forged value", 2**32)

        async def forge(node: Any, request: ExitRequest) -> AnonAnswer:
            return AnonAnswer("found", forged)

        for mix in mn.mixes:  # every exit lies about what it found
            mix.anonymous.run_request = forge
        reader = mn.clients[1]
        assert await reader.anonymous.get(key) is None
        assert mixnet_stats(reader)["drops"]["forged-record"] == 2  # both exits' answers
