"""Messaging through the mixnet (11-messaging.md §7.4, 10-mixnet.md §14.6).

Clients deliver every mailbox request in mix packets to exits, which run
them against the holders and answer through reply blocks.  Everything runs
on ``qdht.testing.MemoryNetwork`` under the autojump clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from qdht import Config, Node, open_node
from qdht.errors import ConfigError
from qdht.identity import Identity
from qdht.messaging import (
    FIRST_MESSAGE_OVERHEAD,
    MessagingConfig,
    MixnetDelivery,
    slot_payload_needed,
)
from qdht.mixnet import MixnetConfig
from qdht.testing import MemoryNetwork, MixNetwork, open_mix_network
from qdht.wire import RID_SIZE, AnonMbox, MboxGet, MboxPut, MboxReply, SlotRecord, decode, encode

from .test_network import receive

#: Room for a signed first message in one payload; light cover traffic keeps it quick.
MIX = MixnetConfig(
    user_payload_size=2048 + FIRST_MESSAGE_OVERHEAD,
    lambda_payload=2.0,
    lambda_loop=0.05,
    lambda_drop=0.05,
    lambda_mix_loop=0.05,
    lambda_dummy_lookup=0.0,
    directory_interval=60.0,
)
MSG = MessagingConfig(one_time_prekeys=2, intro_pow_bits=4, poll_interval=60.0)


def msg_stats(node: Node) -> dict[str, Any]:
    stats: dict[str, Any] = node.stats()["messaging"]
    return stats


@asynccontextmanager
async def mix_network(
    seed: int, clients: int = 2, mixnet: MixnetConfig = MIX, messaging: MessagingConfig = MSG
) -> AsyncIterator[tuple[MixNetwork, MemoryNetwork]]:
    net = MemoryNetwork(seed=seed)
    async with open_mix_network(
        4, clients, seed=seed, network=net, mixnet=mixnet, messaging=messaging
    ) as mn:
        assert await mn.publish_directory() == len(mn.nodes)
        await trio.sleep(120)  # prekeys and directory entries published
        yield mn, net


def test_a_slot_fits_the_payload_it_is_checked_against() -> None:
    slot = SlotRecord(bytes(32), bytes(2048), bytes(32), 2**39)
    put = encode(AnonMbox(MboxPut(bytes(RID_SIZE), bytes(32), slot=slot)))
    assert len(put) <= slot_payload_needed(2048) <= 2048 + 256
    with pytest.raises(ConfigError, match="user_payload_size >= 22"):
        MixnetDelivery(
            None,  # type: ignore[arg-type]
            payload_size=2048,
            slot_size=2048,
            counters=Counter(),
            drops=Counter(),
        )


async def test_mixnet_delivery_needs_the_mixnet_and_room_for_a_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=3)
    identity = Identity.generate(0)
    for config, match in (
        (
            Config(
                identity=identity, puzzle_difficulty=0, messaging=MessagingConfig(delivery="mixnet")
            ),
            "Config.mixnet",
        ),
        (
            Config(
                identity=identity,
                puzzle_difficulty=0,
                mixnet=MixnetConfig(),
                messaging=MessagingConfig(),
            ),
            "user_payload_size",
        ),
    ):
        with pytest.raises(ConfigError, match=match):
            async with net.open_transport() as transport, open_node(config, transport=transport):
                pass  # pragma: no cover
    # "auto" without the mixnet, and "direct" with it, deliver directly.
    for config in (
        Config(identity=identity, puzzle_difficulty=0, messaging=MessagingConfig()),
        Config(
            identity=identity,
            puzzle_difficulty=0,
            mixnet=MixnetConfig(),
            messaging=MessagingConfig(delivery="direct"),
        ),
    ):
        async with net.open_transport() as transport, open_node(config, transport=transport) as n:
            assert msg_stats(n)["delivery"] == "direct"
    with pytest.raises(ConfigError, match="delivery must be one of auto, direct, mixnet"):
        MessagingConfig(delivery="carrier pigeon")
    with pytest.raises(ConfigError, match="sender_auth must be one of signature, deniable"):
        MessagingConfig(sender_auth="none")


async def test_messages_go_end_to_end_through_mixes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with mix_network(seed=21) as (mn, _):
        alice, bob = mn.clients
        assert msg_stats(alice)["delivery"] == "mixnet"
        assert msg_stats(mn.mixes[0])["delivery"] == "direct"
        first = await alice.messaging.send(bob.node_id, b"hello through the mixes")
        [message] = await receive(bob, 1)
        assert (message.sender, message.data) == (alice.node_id, b"hello through the mixes")
        assert message.verified
        assert alice.messaging.delivery_state(first) == "stored"
        await bob.messaging.send(alice.node_id, b"and back")
        [answer] = await receive(alice, 1)
        assert (answer.sender, answer.data) == (bob.node_id, b"and back")
        await alice.messaging.send(bob.node_id, b"second")
        [again] = await receive(bob, 1)
        assert again.data == b"second"
        # Every request of the clients went through exits, none directly to a holder.
        for client in (alice, bob):
            stats = msg_stats(client)
            assert stats["exit_replies"] > 0
            assert stats.get("intro_direct", 0) == 0
            assert stats.get("requests_sent", 0) == 0
            assert stats["drops"].get("exit-reply-rid", 0) == 0
        served = sum(msg_stats(m).get("exit_requests", 0) for m in mn.mixes)
        assert served >= msg_stats(alice)["exit_replies"]
        # The exits hold nothing about who asked: no request of theirs is waiting,
        # and the reply blocks they used are gone.
        await trio.sleep(60)
        for mix in mn.mixes:
            assert msg_stats(mix)["waiting"] == 0


async def test_an_offline_client_gets_its_message_through_mixes_on_return(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with mix_network(seed=22, clients=1) as (mn, net):
        [alice] = mn.clients
        identity = Identity.generate(0)
        config = Config(
            identity=identity,
            puzzle_difficulty=0,
            k=5,
            data_dir=tmp_path,
            mixnet=mn.config,
            messaging=MSG,
        )

        async def run_bob(stack: AsyncExitStack) -> Node:
            transport = await stack.enter_async_context(net.open_transport())
            bob = await stack.enter_async_context(open_node(config, transport=transport))
            await bob.bootstrap([mn.nodes[0].contact])
            assert await bob.anonymous.update_directory()
            return bob

        async with AsyncExitStack() as stack:
            bob = await run_bob(stack)
            await bob.messaging.published()
        # Bob is offline: Alice's message waits in the holders.
        await alice.messaging.send(bob.node_id, b"while you were away")
        await alice.messaging.flush()
        assert msg_stats(alice)["outbox_queued"] == 0
        await trio.sleep(1800)
        async with AsyncExitStack() as stack:
            bob = await run_bob(stack)
            [message] = await receive(bob, 1)
            assert (message.sender, message.data) == (alice.node_id, b"while you were away")
            assert msg_stats(bob)["exit_replies"] > 0
            assert msg_stats(bob).get("requests_sent", 0) == 0


#: Only the payload stream: cover streams do not change what a tick asks.
QUIET_COVER = attrs.evolve(MIX, lambda_loop=0.0, lambda_drop=0.0, lambda_mix_loop=0.0)


async def _exit_requests_in_window(seed: int, per_hour: int, tmp: float = 600.0) -> int:
    async with mix_network(seed=seed, mixnet=QUIET_COVER) as (mn, _):
        alice, bob = mn.clients
        await alice.messaging.send(bob.node_id, b"hello")
        await receive(bob, 1)
        await bob.messaging.send(alice.node_id, b"hi")
        await receive(alice, 1)
        await trio.sleep_until(bob.messaging.next_tick + 1)
        before = bob.stats()["mixnet"].get("exit_requests_sent", 0)
        ticks = msg_stats(bob)["ticks"]
        start = trio.current_time()
        sent = 0
        while trio.current_time() - start < tmp:
            if per_hour and sent < per_hour * (trio.current_time() - start) / 3600:
                await alice.messaging.send(bob.node_id, b"m%d" % sent)
                sent += 1
            await trio.sleep(5)
        assert msg_stats(bob)["ticks"] - ticks == tmp / 60
        if per_hour:
            assert msg_stats(bob)["messages_received"] >= sent // 2
        requests: int = bob.stats()["mixnet"]["exit_requests_sent"] - before
        return requests


async def test_the_poll_rate_is_the_same_with_and_without_messages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    quiet = await _exit_requests_in_window(seed=23, per_hour=0)
    busy = await _exit_requests_in_window(seed=23, per_hour=100)
    per_tick = MSG.poll_slots + 2 + MSG.writes_per_tick
    assert quiet == busy == 10 * per_tick


async def test_bad_mailbox_requests_through_an_exit_are_refused_and_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with mix_network(seed=24) as (mn, _):
        alice = mn.clients[0]
        key = bytes(32)  # no token hashes to it
        slot = SlotRecord(b"\x01" * 32, bytes(MSG.slot_size), bytes(32), 2**31)
        rid = b"r" * RID_SIZE
        answer = await alice.anonymous.exit_request(encode(AnonMbox(MboxPut(rid, key, slot=slot))))
        assert answer is not None
        reply = decode(answer, expect=(MboxReply,))
        assert reply == MboxReply(rid, False, reason="slot-token")
        refused = sum(msg_stats(m)["drops"].get("exit-slot-token", 0) for m in mn.mixes)
        assert refused == 1
        # No holder saw it: the exit refused it by itself.
        assert sum(msg_stats(n)["drops"].get("slot-token", 0) for n in mn.nodes) == 0
        # Not a mailbox request at all: the exit drops it.
        garbage = encode(AnonMbox(MboxGet(rid, key)))[:-3]
        assert await alice.anonymous.exit_request(garbage) is None
        bad = sum(m.stats()["mixnet"]["drops"].get("bad-request", 0) for m in mn.mixes)
        assert bad == 1
