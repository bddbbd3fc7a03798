"""Messaging through the mixnet (11-messaging.md §7.4, 10-mixnet.md §14.6).

Clients deliver every mailbox request in mix packets to exits, which run
them against the holders and answer through reply blocks.  Everything runs
on ``qdht.testing.MemoryNetwork`` under the autojump clock.
"""

from __future__ import annotations

import random
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
from qdht.messaging import (
    FIRST_MESSAGE_OVERHEAD,
    MessagingConfig,
    MixnetDelivery,
    intro_fragments,
    mailbox_fragments,
    slot_payload_needed,
)
from qdht.mixnet import Geometry, MixnetConfig
from qdht.testing import MemoryNetwork, MixNetwork, open_mix_network, seeded_identity
from qdht.wire import RID_SIZE, AnonMbox, MboxGet, MboxPut, MboxReply, SlotRecord, decode, encode

from .test_network import receive

#: The default geometry (2,048-byte payloads: a slot request takes two
#: fragments); light cover traffic and short poll ticks keep the tests quick.
MIX = MixnetConfig(
    lambda_payload=1.0,
    lambda_loop=0.05,
    lambda_drop=0.05,
    lambda_mix_loop=0.05,
    lambda_dummy_lookup=0.0,
    directory_interval=60.0,
)
#: Two slot reads and two writes per tick: 8 packets, in a 20 s tick.
MSG = MessagingConfig(
    one_time_prekeys=2, intro_pow_bits=4, poll_interval=20.0, poll_slots=2, writes_per_tick=2
)
#: Three mixes: the fewest a three-hop route through three layers takes.
MIXES = 3


def msg_stats(node: Node) -> dict[str, Any]:
    stats: dict[str, Any] = node.stats()["messaging"]
    return stats


@asynccontextmanager
async def mix_network(
    seed: int,
    clients: int = 2,
    mixnet: MixnetConfig = MIX,
    messaging: MessagingConfig = MSG,
    settle: float = 60.0,
    mixes: int = MIXES,
) -> AsyncIterator[tuple[MixNetwork, MemoryNetwork]]:
    net = MemoryNetwork(seed=seed)
    async with open_mix_network(
        mixes, clients, seed=seed, network=net, mixnet=mixnet, messaging=messaging
    ) as mn:
        assert await mn.publish_directory() == len(mn.nodes)
        await trio.sleep(settle)  # prekeys and directory entries published
        yield mn, net


def test_the_fragments_of_a_mailbox_request_follow_from_the_slot_and_the_payload() -> None:
    slot = SlotRecord(bytes(32), bytes(2048), bytes(32), 2**39)
    put = encode(AnonMbox(MboxPut(bytes(RID_SIZE), bytes(32), slot=slot)))
    assert len(put) <= slot_payload_needed(2048) <= 2048 + 256
    default = Geometry()
    # 2,048-byte slots in 2,048-byte payloads: two fragments each way; a
    # first message (an intro entry) seven; a payload that holds it: one.
    assert mailbox_fragments(2048, default) == 2
    assert intro_fragments(2048, default) == 7
    assert mailbox_fragments(2048, Geometry(user_payload_size=2400)) == 1
    assert intro_fragments(2048, Geometry(user_payload_size=2048 + FIRST_MESSAGE_OVERHEAD)) == 1
    with pytest.raises(ConfigError, match=r"2 fragments per slot request.*max_fragments 1"):
        MixnetDelivery(
            None,  # type: ignore[arg-type]
            mixnet=MixnetConfig(max_fragments=1),
            slot_size=2048,
            counters=Counter(),
            drops=Counter(),
        )
    delivery = MixnetDelivery(
        None,  # type: ignore[arg-type]
        mixnet=MixnetConfig(),
        slot_size=2048,
        counters=Counter(),
        drops=Counter(),
    )
    assert (delivery.fragments, delivery.intro_fragments) == (2, 7)
    assert delivery.intro_writes_fit
    assert not delivery.intro_reads_fit
    assert not MixnetDelivery(
        None,  # type: ignore[arg-type]
        mixnet=MixnetConfig(max_fragments=6),
        slot_size=2048,
        counters=Counter(),
        drops=Counter(),
    ).intro_writes_fit


async def test_mixnet_delivery_needs_the_mixnet_and_room_for_a_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=3)
    identity = seeded_identity(random.Random(3), 0)
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
                mixnet=MixnetConfig(max_fragments=1),
                messaging=MessagingConfig(),
            ),
            "max_fragments",
        ),
    ):
        with pytest.raises(ConfigError, match=match):
            async with net.open_transport() as transport, open_node(config, transport=transport):
                pass  # pragma: no cover
    # The defaults deliver through the mixnet.
    defaults = Config(
        identity=identity,
        puzzle_difficulty=0,
        mixnet=MixnetConfig(),
        messaging=MessagingConfig(),
    )
    async with net.open_transport() as transport, open_node(defaults, transport=transport) as n:
        assert msg_stats(n)["delivery"] == "mixnet"
    # "auto" without the mixnet, and "direct" with it, deliver directly.
    for config in (
        Config(identity=identity, puzzle_difficulty=0, messaging=MessagingConfig()),
        attrs.evolve(defaults, messaging=MessagingConfig(delivery="direct")),
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
        await trio.sleep_until(alice.messaging.next_tick + 1)  # a whole tick sent
        # Every slot request and the first message went through exits: a slot
        # request in two fragments, the first message in seven; the intro reads
        # (too large for two fragments) went directly, and nothing else did.
        for client, firsts in ((alice, 1), (bob, 0)):
            stats = msg_stats(client)
            mixnet = client.stats()["mixnet"]
            assert stats["exit_replies"] > 0
            assert stats["intro_direct"] == stats["intro_reads"]
            assert stats["drops"].get("exit-reply-rid", 0) == 0
            sent = mixnet["exit_requests_sent"]
            # (Ticks before the directory came asked nothing.)
            unready = stats.get("mixnet_unready", 0)
            assert sent == stats["mailbox_ops"] - stats["intro_reads"] - unready
            assert mixnet["exit_request_packets"] == 2 * sent + 5 * firsts
            # Each answer came back through every reply block of its request.
            assert mixnet["client"]["replies_received"] >= 2 * stats["exit_replies"]
        served = sum(msg_stats(m).get("exit_requests", 0) for m in mn.mixes)
        assert served >= msg_stats(alice)["exit_replies"]
        # The exits hold nothing about who asked: no request of theirs is waiting,
        # and the reply blocks they used are gone.
        await trio.sleep(60)
        for mix in mn.mixes:
            assert msg_stats(mix)["waiting"] == 0


async def test_the_defaults_deliver_through_mixes(autojump_clock: trio.testing.MockClock) -> None:
    """``MixnetConfig()`` and ``MessagingConfig()`` as they come: a message each way."""
    async with mix_network(seed=25, mixnet=MixnetConfig(), messaging=MessagingConfig()) as (
        mn,
        _,
    ):
        alice, bob = mn.clients
        await alice.messaging.send(bob.node_id, b"hello at the defaults")
        [message] = await receive(bob, 1)
        assert (message.sender, message.data) == (alice.node_id, b"hello at the defaults")
        await bob.messaging.send(alice.node_id, b"and back")
        [answer] = await receive(alice, 1)
        assert answer.data == b"and back"
        for client in (alice, bob):
            stats = msg_stats(client)
            assert stats["delivery"] == "mixnet"
            assert stats["exit_replies"] > 0
            assert stats.get("intro_writes_direct", 0) == 0
            assert stats.get("exit_timeouts", 0) == 0


async def test_an_offline_client_gets_its_message_through_mixes_on_return(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with mix_network(seed=22, clients=1) as (mn, net):
        [alice] = mn.clients
        identity = seeded_identity(random.Random("bob"), 0)  # not one of the network's
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
        await trio.sleep(300)
        async with AsyncExitStack() as stack:
            bob = await run_bob(stack)
            [message] = await receive(bob, 1)
            assert (message.sender, message.data) == (alice.node_id, b"while you were away")
            # It was a first message: Alice wrote it through an exit in seven
            # fragments, Bob read his intro box directly, his slots through exits.
            mixnet = alice.stats()["mixnet"]
            assert mixnet["exit_request_packets"] == 2 * mixnet["exit_requests_sent"] + 5
            await trio.sleep(2 * MSG.poll_interval)
            stats = msg_stats(bob)
            assert stats["exit_replies"] > 0
            assert stats["intro_direct"] > 0


#: Only the payload stream: cover streams do not change what a tick asks.
QUIET_COVER = attrs.evolve(MIX, lambda_loop=0.0, lambda_drop=0.0, lambda_mix_loop=0.0)


async def test_the_poll_rate_is_the_same_with_and_without_messages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Bob gets 100 messages an hour, Carol none: both send the same packets each tick."""
    async with mix_network(seed=23, clients=3, mixnet=QUIET_COVER) as (mn, _):
        alice, bob, carol = mn.clients
        for peer in (bob, carol):
            await alice.messaging.send(peer.node_id, b"hello")
            await receive(peer, 1)
            await peer.messaging.send(alice.node_id, b"hi")
        await receive(alice, 2)
        await trio.sleep_until(max(bob.messaging.next_tick, carol.messaging.next_tick) + 1)

        def sent(node: Node) -> tuple[int, int, int]:
            mixnet = node.stats()["mixnet"]
            return (
                msg_stats(node)["ticks"],
                mixnet["exit_requests_sent"],
                mixnet["exit_request_packets"],
            )

        before = {node: sent(node) for node in (bob, carol)}
        window, per_hour, messages = 10 * MSG.poll_interval, 100, 0
        start = trio.current_time()
        while trio.current_time() - start < window:
            if messages < per_hour * (trio.current_time() - start) / 3600:
                await alice.messaging.send(bob.node_id, b"m%d" % messages)
                messages += 1
            await trio.sleep(5)
        assert messages == 6
        assert msg_stats(bob)["messages_received"] >= 1 + messages // 2
        assert msg_stats(carol)["messages_received"] == 1
        per_tick = MSG.poll_slots + MSG.writes_per_tick  # the intro reads go directly
        for node in (bob, carol):
            ticks, requests, fragments = (
                a - b for a, b in zip(sent(node), before[node], strict=True)
            )
            # Ten poll intervals hold ten ticks, give or take the one on the
            # window's edge; every tick, read or written, costs the same.
            assert ticks in (9, 10, 11)
            assert (requests, fragments) == (ticks * per_tick, 2 * ticks * per_tick)


async def test_bad_mailbox_requests_through_an_exit_are_refused_and_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Alice polls once an hour: her own ticks add no replies while this runs.
    rare = attrs.evolve(MSG, poll_interval=3600.0)
    async with mix_network(seed=24, clients=1, messaging=rare, settle=0.0) as (mn, _):
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
        # A read of an empty slot, in one packet and in two: the same answer,
        # through one reply block and through both.
        read = encode(AnonMbox(MboxGet(rid, key)))
        for fragments in (1, 2):
            replies = alice.stats()["mixnet"]["client"]["replies_received"]
            answer = await alice.anonymous.exit_request(read, fragments=fragments)
            assert answer is not None
            assert decode(answer, expect=(MboxReply,)) == MboxReply(rid, True)
            got = alice.stats()["mixnet"]["client"]["replies_received"] - replies
            assert got == fragments
        # Not a mailbox request at all: the exit drops it.
        garbage = encode(AnonMbox(MboxGet(rid, key)))[:-3]
        assert await alice.anonymous.exit_request(garbage) is None
        assert await alice.anonymous.exit_request(garbage, fragments=2) is None
        bad = sum(m.stats()["mixnet"]["drops"].get("bad-request", 0) for m in mn.mixes)
        assert bad == 2
        # A request past max_fragments is refused before it leaves.
        with pytest.raises(ConfigError, match="more than max_fragments 8"):
            await alice.anonymous.exit_request(garbage, fragments=9)
