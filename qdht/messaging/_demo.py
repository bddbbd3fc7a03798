"""Two users exchange messages through a loopback network, one of them offline for a while.

The scenario behind ``qdht demo --messaging`` and ``qdht-bench messaging``'s
network figures, on 127.0.0.1 UDP with the messaging layer, Alice (node 1)
and Bob (node 2).  With ``mixes`` > 0 the other nodes are a directory
authority (node 0, everyone's bootstrap) and ``mixes`` mixes, which hold the
mailboxes and serve as exits, and Alice and Bob deliver through the mixnet
(``exit_mbox`` in mix packets with reply blocks); with ``mixes`` 0 there are
``nodes`` plain nodes and delivery is direct.  Bob publishes his prekeys and
goes offline; Alice writes ``messages`` messages (the first a first
contact), which wait in the holders; Bob returns with the same data
directory and reads them; then ``rounds`` ping-pongs time the end-to-end
latency, and an idle period measures what polling costs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from qdht.identity import Identity
from qdht.messaging._client import IncomingMessage
from qdht.messaging._delivery import mailbox_fragments
from qdht.messaging._face import MessagingConfig

if TYPE_CHECKING:
    from qdht.node import Node

__all__ = ["MessagingDemo"]


class MessagingDemo:
    """One run of the scenario; :meth:`run` returns its figures (see the module docstring)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        nodes: int = 4,
        messages: int = 3,
        offline: float = 2.0,
        rounds: int = 5,
        idle: float = 10.0,
        poll_interval: float = 0.5,
        difficulty: int = 0,
        timeout: float = 60.0,
        mixes: int = 0,
        note: Callable[[str], None] | None = None,
    ) -> None:
        if nodes < 3:
            raise ValueError("the demo needs at least 3 nodes")
        if mixes and mixes < 3:
            raise ValueError("the demo needs at least 3 mixes (or 0: direct delivery)")
        self.data_dir = data_dir
        self.n = nodes
        self.messages = messages
        self.offline = offline
        self.rounds = rounds
        self.idle = idle
        self.difficulty = difficulty
        self.timeout = timeout
        self.note = note or (lambda _: None)
        self.messaging = MessagingConfig(
            poll_interval=poll_interval,
            poll_slots=4,
            intro_pow_bits=8,
            one_time_prekeys=4,
            writes_per_tick=4,
        )
        self.mixes = mixes
        self.mixnet: Any = None
        if mixes:
            from qdht.mixnet import MixnetConfig

            # The default geometry: 4 slot reads + 2 writes per tick through
            # exits, two packets each (a first message seven); the intro reads
            # go directly (§7.4).  A payload stream fast enough to carry a
            # tick's batch in half an interval.
            self.messaging = attrs.evolve(self.messaging, writes_per_tick=2)
            geometry = MixnetConfig().geometry
            packets = (4 + 2) * mailbox_fragments(self.messaging.slot_size, geometry)
            self.mixnet = MixnetConfig(
                lambda_payload=2.0 * packets / poll_interval,
                lambda_loop=0.5,
                lambda_drop=0.5,
                lambda_mix_loop=0.2,
                lambda_dummy_lookup=0.0,
                directory_interval=30.0,
            )
            self.n = 1 + mixes + 2
        self.holder = attrs.evolve(self.messaging, poll_interval=3600.0, delivery="direct")
        self.identities = [Identity.generate(difficulty) for _ in range(self.n)]
        self.nodes: dict[int, Node] = {}

    async def _start(self, stack: AsyncExitStack, i: int) -> Node:
        import qdht

        changes: dict[str, Any] = {}
        if self.mixnet is not None:
            from qdht.session import SessionConfig

            changes["mixnet"] = self.mixnet
            # Every node shares 127.0.0.1 (as in open_mix_network).
            changes["session"] = SessionConfig(
                handshake_rate_per_address=1000.0, handshake_burst_per_address=1000
            )
        config = qdht.Config(
            listen=("udp://127.0.0.1:0",),
            identity=self.identities[i],
            puzzle_difficulty=self.difficulty,
            data_dir=self.data_dir / f"node{i}",
            # The other nodes only hold mailboxes: they poll rarely.
            messaging=self.messaging if i in (1, 2) else self.holder,
            **changes,
        )
        node = await stack.enter_async_context(qdht.open_node(config))
        if i != 0 and not await node.bootstrap([self.nodes[0].contact]):
            raise RuntimeError(f"node {i} could not join the demo network")
        if self.mixnet is not None and not await node.anonymous.update_directory():
            raise RuntimeError(f"node {i} found no mix directory")
        self.nodes[i] = node
        return node

    async def _start_mixes(self, stack: AsyncExitStack) -> None:
        from qdht.testing import open_mix_network

        mn = await stack.enter_async_context(
            open_mix_network(
                self.mixes,
                0,
                seed=int.from_bytes(self.identities[0].node_id[:4], "big"),
                mixnet=self.mixnet,
                messaging=self.holder,
                difficulty=self.difficulty,
            )
        )
        if not await mn.publish_directory():
            raise RuntimeError("the mixes published no directory")
        self.mix_network = mn
        self.nodes[0] = mn.authorities[0]
        for j, mix in enumerate(mn.mixes):
            self.nodes[3 + j] = mix
        self.mixnet = mn.config

    async def _receive(self, node: Node, count: int) -> list[IncomingMessage]:
        got: list[IncomingMessage] = []
        with trio.fail_after(self.timeout):
            async for message in node.messaging.incoming():
                got.append(message)
                if len(got) == count:
                    break
        return got

    async def run(self) -> dict[str, Any]:
        delivery = "mixnet" if self.mixes else "direct"
        result: dict[str, Any] = {"nodes": self.n, "delivery": delivery, "mixes": self.mixes}
        async with AsyncExitStack() as stack:
            if self.mixes:
                await self._start_mixes(stack)
                await self._start(stack, 1)
            else:
                for i in range(self.n):
                    if i != 2:
                        await self._start(stack, i)
            alice = self.nodes[1]
            async with AsyncExitStack() as bob_stack:
                bob = await self._start(bob_stack, 2)
                with trio.fail_after(self.timeout):
                    await bob.messaging.published()
                    await alice.messaging.published()
                bob_id = bob.node_id
            self.note(f"{self.n} nodes up; Bob published his prekeys and went offline")
            for i in range(self.messages):
                await alice.messaging.send(bob_id, f"message {i} while Bob is away".encode())
            await alice.messaging.flush()
            states = [alice.messaging.delivery_state(i + 1) for i in range(self.messages)]
            result["stored_while_offline"] = states.count("stored")
            self.note(f"Alice wrote {self.messages} messages to Bob's mailbox: {states}")
            await trio.sleep(self.offline)
            back = time.perf_counter()
            bob = await self._start(stack, 2)
            got = await self._receive(bob, self.messages)
            result["received_after_return"] = len(got)
            result["return_to_all_read_s"] = time.perf_counter() - back
            result["in_order"] = [m.data for m in got] == [
                f"message {i} while Bob is away".encode() for i in range(self.messages)
            ]
            self.note(f"Bob came back and read {len(got)} messages")
            latencies: list[float] = []
            for r in range(self.rounds):
                for sender, receiver in ((alice, bob), (bob, alice)):
                    started = time.perf_counter()
                    await sender.messaging.send(receiver.node_id, b"ping %d" % r)
                    [message] = await self._receive(receiver, 1)
                    assert message.data == b"ping %d" % r
                    latencies.append(time.perf_counter() - started)
            result["latencies_s"] = latencies
            result["latency_median_s"] = statistics.median(latencies) if latencies else None
            self.note(f"{len(latencies)} ping-pong messages delivered")
            result.update(await self._idle(alice))
            result["drops"] = {
                k: v
                for node in self.nodes.values()
                for k, v in node.stats()["drops"].items()
                if k.startswith("messaging.")
            }
            if self.mixes:
                stats = [node.stats()["messaging"] for node in (alice, bob)]
                result["exit_replies"] = sum(s.get("exit_replies", 0) for s in stats)
                # Only the intro reads go directly (§7.4): every other request
                # that did would show here.
                result["intro_reads_direct"] = sum(
                    s.get("intro_direct", 0) - s.get("intro_writes_direct", 0) for s in stats
                )
                result["direct_requests"] = sum(s.get("intro_writes_direct", 0) for s in stats)
                result["fragments"] = mailbox_fragments(
                    self.messaging.slot_size, self.mixnet.geometry
                )
        result["ok"] = (
            result["stored_while_offline"] == self.messages
            and result["received_after_return"] == self.messages
            and len(result["latencies_s"]) == 2 * self.rounds
        )
        return result

    async def _idle(self, node: Node) -> dict[str, Any]:
        packet = 0 if self.mixnet is None else self.mixnet.geometry.packet_size

        def sample() -> tuple[float, int, int, int]:
            mailbox = node.stats()["messaging"]
            # Through the mixnet a request goes in F packets, its answer comes
            # back in as many (§7.4).
            mixnet = node.stats().get("mixnet", {})
            exits = mixnet.get("exit_request_packets", 0)
            return (
                time.perf_counter(),
                mailbox.get("request_bytes_sent", 0)
                + mailbox.get("reply_bytes_received", 0)
                + 2 * packet * exits,
                mailbox.get("mailbox_ops", 0),
                node.stats()["bytes_sent"] + node.stats()["bytes_received"],
            )

        await trio.sleep(2 * self.messaging.poll_interval)  # deletions written
        t0, mbox0, ops0, all0 = sample()
        await trio.sleep(self.idle)
        t1, mbox1, ops1, all1 = sample()
        seconds = t1 - t0
        contacts = max(1, len(node.messaging.contacts()))
        return {
            "idle_s": seconds,
            "contacts": contacts,
            "idle_mailbox_bytes_per_s_per_contact": (mbox1 - mbox0) / seconds / contacts,
            "idle_node_bytes_per_s_per_contact": (all1 - all0) / seconds / contacts,
            "idle_mailbox_ops_per_s": (ops1 - ops0) / seconds,
        }
