"""EXIT_FORWARD (10-mixnet.md §14.7): an exit hands a message to a node, which gives it
to the service owning its type with no peer, only if that service accepts it anonymously.

Every network runs on ``qdht.testing.MemoryNetwork`` under the autojump clock.
"""

from __future__ import annotations

from typing import Any

import attrs
import cbor2
import pytest
import trio
import trio.testing

from qdht.errors import ConfigError, NodeStateError
from qdht.mixnet import MAX_HANDOFFS, AnonymousMessage, HandoffDone, MixnetCore
from qdht.node import QuietCore, Service, ServiceContext
from qdht.testing import MemoryNetwork, open_mix_network
from qdht.wire import AnonForward, AnonHandoff, AnonHandoffAck, decode, encode

from .test_node import LIGHT, mixnet_stats, total


class InboxCore(QuietCore):
    """Takes ``note`` messages from anonymous senders; owns ``note`` and ``private``."""

    anonymous_types = frozenset({"note"})

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.drops: dict[str, int] = {}

    def drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def receive_anonymous(self, payload: bytes, now: float) -> bool:
        text = cbor2.loads(payload).get("text")
        if type(text) is not str:
            self.drop("bad-note")
            return False
        self.notes.append(text)
        return True

    def stats(self) -> dict[str, Any]:
        return {"notes": len(self.notes), "drops": dict(self.drops)}


def inbox_service(context: ServiceContext) -> Service:
    return Service("inbox", InboxCore(), {"note", "private"})


def note(text: Any, kind: str = "note") -> bytes:
    return cbor2.dumps({"type": kind, "text": text})


def inbox(node: Any) -> InboxCore:
    core = node.services.get("inbox").core
    assert isinstance(core, InboxCore)
    return core


async def test_an_exit_hands_a_message_to_a_node_with_no_sender(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=31)
    extra: dict[str, Any] = {"services": (inbox_service,)}
    async with open_mix_network(
        5, 2, seed=31, network=net, mixnet=LIGHT, clients_config=extra
    ) as mn:
        assert await mn.publish_directory() == len(mn.nodes)
        alice, bob = mn.clients
        assert await alice.anonymous.forward(bob.node_id, note("hello"))
        assert inbox(bob).notes == ["hello"]
        # Without an ack: done once queued; it still arrives.
        assert await alice.anonymous.forward(bob.node_id, note("quiet"), ack=False)
        await trio.sleep(30)
        assert inbox(bob).notes == ["hello", "quiet"]
        # A type the service owns but does not take anonymously: refused, counted.
        assert not await alice.anonymous.forward(bob.node_id, note("x", kind="private"))
        # A type nobody owns goes to the DHT service, which takes nothing anonymously.
        assert not await alice.anonymous.forward(bob.node_id, note("x", kind="ping"))
        assert mixnet_stats(bob)["drops"]["not-anonymous"] == 2
        # The service refused a bad one itself.
        assert not await alice.anonymous.forward(bob.node_id, note(7))
        assert inbox(bob).drops == {"bad-note": 1}
        assert inbox(bob).notes == ["hello", "quiet"]
        assert total(mn, "handoffs_sent") == 5
        assert mixnet_stats(bob)["handoffs_accepted"] == 2
        assert mixnet_stats(bob)["handoffs_refused"] == 3
        assert mixnet_stats(alice)["anonymous_forwards"] == 5


async def test_a_large_message_is_forwarded_in_fragments(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=32)
    small = attrs.evolve(LIGHT, user_payload_size=1024, lambda_payload=2.0)
    extra: dict[str, Any] = {"services": (inbox_service,)}
    async with open_mix_network(
        5, 2, seed=32, network=net, mixnet=small, clients_config=extra
    ) as mn:
        await mn.publish_directory()
        alice, bob = mn.clients
        text = "y" * 3000
        assert await alice.anonymous.forward(bob.node_id, note(text))
        assert inbox(bob).notes == [text]
        assert total(mn, "fragmented_requests") == 1


async def test_a_flood_of_forwards_is_bounded(autojump_clock: trio.testing.MockClock) -> None:
    net = MemoryNetwork(seed=33)
    flood = attrs.evolve(
        LIGHT,
        user_payload_size=1024,
        lambda_payload=50.0,
        max_send_queue=512,
        forward_rate=0.5,
        forward_burst=3,
    )
    extra: dict[str, Any] = {"services": (inbox_service,)}
    async with open_mix_network(
        3, 2, seed=33, network=net, mixnet=flood, clients_config=extra
    ) as mn:
        await mn.publish_directory()
        alice, bob = mn.clients
        results: list[bool] = []

        async def one(i: int) -> None:
            results.append(await alice.anonymous.forward(bob.node_id, note(str(i)), ack=False))

        async with trio.open_nursery() as nursery:
            for i in range(60):
                nursery.start_soon(one, i)
        await trio.sleep(20)
        # Each exit ran at most its burst plus its rate over the time taken; the
        # rest were dropped and counted, and the node took only what was run.
        dropped = sum(mixnet_stats(m)["drops"].get("forward-rate", 0) for m in mn.mixes)
        delivered = len(inbox(bob).notes)
        assert dropped > 0
        assert delivered + dropped == 60
        assert delivered <= 3 * (3 + 0.5 * 40)


def test_forward_messages_check_their_fields() -> None:
    message = AnonForward(bytes(32), note("hi"))
    assert decode(encode(message)) == message
    handoff = AnonHandoff(bytes(16), note("hi"))
    assert decode(encode(handoff)) == handoff
    assert decode(encode(AnonHandoffAck(bytes(16), True))) == AnonHandoffAck(bytes(16), True)
    with pytest.raises(ConfigError, match="node must be 32 bytes"):
        AnonForward(bytes(31), b"x")
    with pytest.raises(ConfigError, match="message must be"):
        AnonForward(bytes(32), b"")
    with pytest.raises(ConfigError, match="ok must be a bool"):
        AnonHandoffAck(bytes(16), 1)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the core, sans-IO

EXIT_ID, NODE_ID, OTHER_ID = (bytes([i]) * 32 for i in (1, 2, 3))


def core(node_id: bytes, **changes: Any) -> MixnetCore:
    config = attrs.evolve(LIGHT, **changes)
    mixnet = MixnetCore(node_id, config, now=0.0, unix_offset=1_800_000_000.0)
    mixnet.resolve = lambda peer: ("addr", peer[:1])
    return mixnet


def test_a_hand_off_ends_on_its_ack_or_its_timeout() -> None:
    exit_ = core(EXIT_ID, handoff_timeout=5.0)
    first = exit_.start_handoff(NODE_ID, note("one"), 0.0)
    ((peer, _, data),) = exit_.messages_to_send()
    handoff = decode(data, expect=(AnonHandoff,))
    assert peer == NODE_ID
    assert type(handoff) is AnonHandoff
    # The node gets it from the exit: an event with no sender, then acks it.
    node = core(NODE_ID, forward_burst=1)
    node.receive_message(EXIT_ID, "exit-addr", data, 0.0)
    event = node.next_event()
    assert type(event) is AnonymousMessage
    assert event.message == note("one")
    node.acknowledge(event, True, 0.0)
    ((to, _, ack),) = node.messages_to_send()
    assert to == EXIT_ID
    # An ack from another node does not count; the node's does.
    exit_.receive_message(OTHER_ID, "other", ack, 1.0)
    assert exit_.stats()["drops"]["late-handoff-ack"] == 1
    exit_.receive_message(NODE_ID, "node", ack, 1.0)
    assert exit_.next_event() == HandoffDone(first, True)
    # A second hand-off gets no ack: it fails at its timeout.
    second = exit_.start_handoff(NODE_ID, note("two"), 2.0)
    timer = exit_.get_timer()
    assert timer is not None
    assert timer <= 7.0
    exit_.handle_timer(7.0)
    assert exit_.next_event() == HandoffDone(second, False)
    assert exit_.stats()["handoffs_timed_out"] == 1
    # The node takes forward_burst hand-offs from one exit at once, then drops them.
    node.receive_message(EXIT_ID, "exit-addr", data, 0.0)
    assert node.stats()["drops"]["handoff-rate"] == 1


def test_an_exit_waits_on_a_bounded_number_of_hand_offs() -> None:
    exit_ = core(EXIT_ID)
    for _ in range(MAX_HANDOFFS):
        exit_.start_handoff(NODE_ID, note("x"), 0.0)
    with pytest.raises(NodeStateError, match="hand-offs are waiting"):
        exit_.start_handoff(NODE_ID, note("x"), 0.0)
    exit_.peer_unreachable(NODE_ID, 1.0, "gone")  # every one of them fails at once
    events = []
    while (event := exit_.next_event()) is not None:
        events.append(event)
    assert len(events) == MAX_HANDOFFS
    assert not any(e.ok for e in events if type(e) is HandoffDone)
