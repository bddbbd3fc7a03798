"""Direct messaging between nodes (11-messaging.md §7): the in-memory network, a mock clock."""

from __future__ import annotations

import functools
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
from qdht.crypto import sha3_256
from qdht.errors import ConfigError, NodeStateError
from qdht.identity import Identity
from qdht.messaging import (
    INTRO_CAP,
    IncomingMessage,
    MessagingConfig,
    initiate,
    intro_box_key,
    intro_work,
    solve_intro,
)
from qdht.testing import MemoryNetwork
from qdht.wire import RID_SIZE, IntroEntry, MboxPut, SlotRecord

DIFFICULTY = 0
RID = bytes(RID_SIZE)
#: Small, fast settings: two one-time prekeys, cheap proof of work, a tick a minute.
FAST: dict[str, Any] = {
    "one_time_prekeys": 2,
    "intro_pow_bits": 4,
    "poll_interval": 60.0,
}


@functools.cache
def identity(n: int) -> Identity:
    return Identity.generate(DIFFICULTY)


def config(n: int, data_dir: Path | None = None, **changes: Any) -> Config:
    return Config(
        identity=identity(n),
        puzzle_difficulty=DIFFICULTY,
        data_dir=data_dir,
        messaging=MessagingConfig(**{**FAST, **changes}),
    )


class Net:
    """Nodes with messaging on one in-memory network; node 0 is everyone's bootstrap."""

    def __init__(self, stack: AsyncExitStack, seed: int) -> None:
        self.stack = stack
        self.net = MemoryNetwork(seed=seed)
        self.nodes: dict[int, Node] = {}

    async def start(
        self,
        n: int,
        data_dir: Path | None = None,
        *,
        stack: AsyncExitStack | None = None,
        **changes: Any,
    ) -> Node:
        """Start node ``n``; it runs until ``stack`` (default: the network's) closes."""
        stack = stack or self.stack
        transport = await stack.enter_async_context(self.net.open_transport())
        node = await stack.enter_async_context(
            open_node(config(n, data_dir, **changes), transport=transport)
        )
        if self.nodes and n != 0:
            await node.bootstrap([self.nodes[0].contact])
        self.nodes[n] = node
        return node


@asynccontextmanager
async def network(count: int, seed: int, **changes: Any) -> AsyncIterator[Net]:
    async with AsyncExitStack() as stack:
        net = Net(stack, seed)
        for i in range(count):
            await net.start(i, **changes)
        await trio.sleep(120)  # prekeys and directory entries published
        yield net


async def receive(node: Node, count: int) -> list[IncomingMessage]:
    got: list[IncomingMessage] = []
    with trio.fail_after(3600):
        async for message in node.messaging.incoming():
            got.append(message)
            if len(got) == count:
                break
    return got


async def test_two_nodes_exchange_messages_end_to_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(4, seed=1) as net:
        alice, bob = net.nodes[1], net.nodes[2]
        first = await alice.messaging.send(bob.node_id, b"hello bob")
        assert alice.messaging.delivery_state(first) == "queued"
        [message] = await receive(bob, 1)
        assert (message.sender, message.data) == (alice.node_id, b"hello bob")
        assert alice.messaging.delivery_state(first) == "stored"
        # Bob answers by contact URI; Alice's next message goes to a slot.
        await bob.messaging.send(alice.contact_uri, b"hello alice")
        [answer] = await receive(alice, 1)
        assert (answer.sender, answer.data) == (bob.node_id, b"hello alice")
        await alice.messaging.send(bob.node_id, b"second")
        [again] = await receive(bob, 1)
        assert again.data == b"second"
        assert bob.messaging.contacts() == [alice.node_id]
        assert [m.data for m in bob.messaging.inbox()] == [b"hello bob", b"second"]
        stats = bob.stats()["messaging"]
        assert stats["messages_received"] == 2
        assert stats["sessions"] == 1
        # Read slots are deleted by their reader at its next ticks: tombstones remain.
        await trio.sleep(180)
        held = sum(n.stats()["messaging"]["slots_held"] for n in net.nodes.values())
        assert held >= 1
        for node in net.nodes.values():
            assert all(
                not isinstance(v, SlotRecord) for v in node.messaging.core.slots.slots.values()
            )


async def test_an_offline_recipient_gets_its_messages_on_return(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        net = Net(stack, seed=2)
        for i in (0, 1, 3):
            await net.start(i)
        bob_dir = tmp_path / "bob"
        async with AsyncExitStack() as bob_stack:
            bob = await net.start(2, bob_dir, stack=bob_stack)
            await trio.sleep(120)
            bob_id = bob.node_id
        # Bob is offline now; Alice writes three messages, which wait in the DHT.
        alice = net.nodes[1]
        ids = [await alice.messaging.send(bob_id, f"m{i}".encode()) for i in range(3)]
        await trio.sleep(6 * 3600)
        assert [alice.messaging.delivery_state(i) for i in ids] == ["stored"] * 3
        bob = await net.start(2, bob_dir)
        got = await receive(bob, 3)
        assert sorted(m.data for m in got) == [b"m0", b"m1", b"m2"]
        assert got[0].data == b"m0"  # the first message opens the session
        assert {m.sender for m in got} == {alice.node_id}


async def test_the_polling_rate_does_not_depend_on_incoming_messages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(4, seed=3) as net:
        alice, bob = net.nodes[1], net.nodes[2]
        await alice.messaging.send(bob.node_id, b"hi")
        await receive(bob, 1)
        await bob.messaging.send(alice.node_id, b"hi")
        await receive(alice, 1)

        def ops() -> tuple[int, int]:
            stats = bob.stats()["messaging"]
            return stats["ticks"], stats["mailbox_ops"]

        # Sample halfway between two ticks, so each hour holds exactly 60 of them.
        await trio.sleep_until(bob.messaging.next_tick + 30)
        # An hour with nothing arriving ...
        ticks0, ops0 = ops()
        await trio.sleep(3600)
        ticks1, ops1 = ops()
        # ... and an hour with 100 messages arriving.
        with trio.move_on_after(3600):
            for i in range(100):
                await alice.messaging.send(bob.node_id, b"%d" % i)
                await trio.sleep(34)
            await trio.sleep_forever()
        ticks2, ops2 = ops()
        assert ticks1 - ticks0 == ticks2 - ticks1 == 60
        assert ops1 - ops0 == ops2 - ops1 == 60 * (8 + 2 + 2)
        received = bob.stats()["messaging"]["messages_received"]
        assert received >= 1 + 95  # nearly all arrived within the hour
        assert bob.stats()["messaging"]["deletes_queued"] >= 95


async def test_state_survives_a_restart_without_repeating_a_key(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        net = Net(stack, seed=4)
        for i in (0, 2, 3):
            await net.start(i)
        alice_dir = tmp_path / "alice"
        async with AsyncExitStack() as first_run:
            alice = await net.start(1, alice_dir, stack=first_run)
            await trio.sleep(120)
            bob = net.nodes[2]
            await alice.messaging.send(bob.node_id, b"before restart")
            await receive(bob, 1)
            await alice.messaging.send(bob.node_id, b"queued, then restart")
            await alice.messaging.flush()
        alice = await net.start(1, alice_dir)
        assert alice.messaging.contacts() == [bob.node_id]
        await alice.messaging.send(bob.node_id, b"after restart")
        got = await receive(bob, 2)
        assert sorted(m.data for m in got) == [b"after restart", b"queued, then restart"]
        drops = bob.stats()["drops"]
        assert not any(k.startswith("messaging.") for k in drops), drops
        await bob.messaging.send(alice.node_id, b"reply")
        [reply] = await receive(alice, 1)
        assert reply.data == b"reply"


async def test_bad_mailbox_input_is_refused_and_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(3, seed=5) as net:
        alice, bob = net.nodes[1], net.nodes[2]
        face = alice.messaging

        async def put(key: bytes, **what: Any) -> set[str]:
            replies = await face.delivery.request(alice, key, lambda rid: MboxPut(rid, key, **what))
            assert len(replies) == 3
            return {"ok" if r.ok else r.reason for r in replies}

        unix = trio.current_time() + face.unix_offset
        token = b"\x22" * 32
        slot = SlotRecord(token, bytes(2048), b"\x33" * 32, int(unix) + 3600)
        key = sha3_256(token)
        # A slot whose token does not hash to its key; one of the wrong size.
        assert await put(b"\x11" * 32, slot=slot) == {"slot-token"}
        small = SlotRecord(token, bytes(1024), b"\x33" * 32, int(unix) + 3600)
        assert await put(key, slot=small) == {"slot-size"}
        # First write wins; a second, different one is refused.
        assert await put(key, slot=slot) == {"ok"}
        assert await put(key, slot=attrs.evolve(slot, box=b"\x01" * 2048)) == {"slot-taken"}
        # Deletion needs the preimage of dh.
        assert await put(key, secret=b"\x44" * 32) == {"slot-secret"}
        # An intro entry without enough work, for Bob's real intro box.
        record, signer = await face.fetch_prekeys(alice, bob.node_id)
        first = initiate(
            mldsa_key=identity(1).mldsa,
            identity_key=identity(1).xwing,
            record=record,
            signer=signer,
            data=b"spam",
            now=unix,
        ).message
        box = intro_box_key(record.intro)
        lazy = next(
            IntroEntry(box, first, int(unix) + 3600, nonce)
            for nonce in range(100)
            if intro_work(box, first, int(unix) + 3600, nonce)[0] >= 0x10
        )
        assert await put(box, intro=lazy) == {"intro-pow"}
        # Garbage straight into a holder's core.
        bob.messaging.core.receive_message(alice.node_id, None, b"\xa1\x61x\x01", 0.0)
        await trio.sleep(300)  # Bob polls his intro box: nothing arrived, nothing broke
        assert bob.messaging.inbox() == []
        drops: Counter[str] = Counter()
        for node in net.nodes.values():
            drops.update(node.stats()["drops"])
        assert drops["messaging.slot-token"] == 3
        assert drops["messaging.slot-size"] == 3
        assert drops["messaging.slot-taken"] == 3
        assert drops["messaging.slot-secret"] == 3
        assert drops["messaging.intro-pow"] == 3
        assert drops["messaging.mbox-malformed"] == 1


async def test_a_flood_of_intro_entries_fills_the_box_but_cannot_rotate_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(3, seed=8) as net:
        alice, bob = net.nodes[1], net.nodes[2]
        record, signer = await alice.messaging.fetch_prekeys(alice, bob.node_id)
        box = intro_box_key(record.intro)
        unix = int(trio.current_time() + alice.messaging.unix_offset)
        outcomes: Counter[str] = Counter()
        for i in range(INTRO_CAP + 2):
            first = initiate(
                mldsa_key=identity(1).mldsa,
                identity_key=identity(1).xwing,
                record=record,
                signer=signer,
                data=b"flood %d" % i,
                now=unix,
                use_one_time=False,
            ).message
            entry = solve_intro(box, first, exp=unix + 3600, bits=4)
            replies = await alice.messaging.delivery.request(
                alice, box, functools.partial(_put_intro, box, entry)
            )
            outcomes.update("ok" if r.ok else r.reason for r in replies)
        # Every holder took the first 64 and refused the rest.
        assert outcomes == {"ok": 3 * INTRO_CAP, "intro-full": 3 * 2}
        drops: Counter[str] = Counter()
        for node in net.nodes.values():
            drops.update(node.stats()["drops"])
        assert drops["messaging.intro-full"] == 6
        # Bob opens every entry once; none names its sender as §7.1 asks, so none
        # reaches his inbox: each is refused and counted, and Bob keeps running.
        await trio.sleep(600)
        assert bob.messaging.inbox() == []
        assert bob.stats()["drops"]["messaging.first-sender"] == INTRO_CAP


async def test_a_holder_keeps_its_mailboxes_across_a_restart(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        net = Net(stack, seed=9)
        await net.start(0, poll_interval=3600.0)
        unix = trio.current_time() + net.nodes[0].messaging.unix_offset
        kept, gone = b"\x01" * 32, b"\x02" * 32
        secret = {token: sha3_256(token, b"delete") for token in (kept, gone)}
        slots = {
            token: SlotRecord(token, bytes(2048), sha3_256(secret[token]), int(unix) + 86400)
            for token in (kept, gone)
        }
        async with AsyncExitStack() as first_run:
            holder = await net.start(1, tmp_path / "holder", stack=first_run, poll_interval=3600.0)
            core, now = holder.messaging.core, trio.current_time()
            for token, slot in slots.items():
                assert core.hold(MboxPut(RID, sha3_256(token), slot=slot), now).ok
            wrong = MboxPut(RID, sha3_256(gone), secret=secret[kept])
            assert core.hold(wrong, now).reason == "slot-secret"
            assert core.hold(MboxPut(RID, sha3_256(gone), secret=secret[gone]), now).ok
        holder = await net.start(1, tmp_path / "holder", poll_interval=3600.0)
        core, now = holder.messaging.core, trio.current_time()
        unix = now + holder.messaging.unix_offset
        assert core.stats()["restored"] == 3
        assert core.slots.get(sha3_256(kept), now=unix) == slots[kept]
        assert core.slots.get(sha3_256(gone), now=unix) is None
        # The tombstone came back too: the deleted slot cannot be written again.
        again = core.hold(MboxPut(RID, sha3_256(gone), slot=slots[gone]), now)
        assert again.reason == "slot-deleted"
        # A day later both have expired, in memory and on disk.
        await trio.sleep(86400 + 1200)
        assert core.slots.slots == {}
        assert core.stats()["expired"] == 2
        assert holder.messaging.held.count() == 0


def _put_intro(box: bytes, entry: IntroEntry, rid: bytes) -> MboxPut:
    return MboxPut(rid, box, intro=entry)


async def test_local_misuse_raises_clear_errors(autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(ConfigError, match="mixnet"):
        MessagingConfig(delivery="mixnets")
    with pytest.raises(ConfigError, match="slot_size"):
        MessagingConfig(slot_size=10)
    async with network(2, seed=6) as net:
        node = net.nodes[1]
        with pytest.raises(ConfigError, match="node ID or a contact URI"):
            await node.messaging.send("nobody", b"x")
        with pytest.raises(ConfigError, match="own contact"):
            node.messaging.add_contact(node.node_id)
        with pytest.raises(ConfigError, match="bytes"):
            await node.messaging.send(net.nodes[0].node_id, "text")  # type: ignore[arg-type]
    net2 = MemoryNetwork(seed=7)
    async with (
        net2.open_transport() as transport,
        open_node(Config(identity=identity(9), puzzle_difficulty=0), transport=transport) as off,
    ):
        with pytest.raises(NodeStateError, match="messaging layer is off"):
            _ = off.messaging
