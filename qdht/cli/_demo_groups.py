"""``qdht demo --groups``: a group of 10 on loopback UDP (12-groups.md §12).

Ten member nodes and a few further nodes, each on its own UDP socket on
127.0.0.1.  Node 0 creates a group and adds the nine others; every member
sends a message; one member goes offline (its datagrams dropped both ways)
while an eleventh node is added and another member removed, two epochs; it
comes back and catches up; a member updates its keys; everyone sends again.
Each step is checked: who reads what, who is in the group, one epoch
authenticator for all.  Delivery is direct through DHT records; mixes come
when the mixnet carries groups.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from contextlib import AsyncExitStack
from typing import Any, Final

import trio

from qdht.cli._output import Output
from qdht.config import Config
from qdht.groups import GroupJoined, GroupNotice, GroupsConfig
from qdht.identity import Identity
from qdht.messaging import ApplicationMessage, GroupConfig, Removed
from qdht.node import Node, open_node
from qdht.testing import FaultInjector
from qdht.transport import open_udp_transport

__all__ = ["run_groups_demo"]

#: Members at the start, and further nodes that only hold records.
MEMBERS: Final = 10
EXTRA: Final = 5
GROUPS: Final = GroupsConfig(group=GroupConfig(window=1.0, turn_interval=0.5), poll_interval=2.0)


class _Demo:
    def __init__(self, out: Output, timeout: float) -> None:
        self.out = out
        self.timeout = timeout
        self.nodes: list[Node] = []
        self.links: list[FaultInjector] = []
        self.inbox: dict[int, list[bytes]] = defaultdict(list)
        self.joined: dict[int, trio.Event] = defaultdict(trio.Event)
        self.removed: dict[int, trio.Event] = defaultdict(trio.Event)
        self.changed = trio.Event()
        self.steps: list[tuple[str, float, str]] = []
        self.failures: list[str] = []

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)

    async def _node(self, i: int, *, task_status: Any) -> None:
        async with open_udp_transport("127.0.0.1", 0) as udp:
            link = FaultInjector(udp, seed=i)
            config = Config(
                identity=Identity.generate(0),
                puzzle_difficulty=0,
                groups=GROUPS if i < MEMBERS + 1 else None,
            )
            async with open_node(config, transport=link) as node:
                self.links.append(link)
                task_status.started(node)
                if config.groups is None:
                    await trio.sleep_forever()
                async with node.groups.events() as notices:
                    notice: GroupNotice
                    async for notice in notices:
                        event = notice.event
                        if isinstance(event, ApplicationMessage):
                            self.inbox[i].append(event.data)
                        elif isinstance(event, GroupJoined):
                            self.joined[i].set()
                        elif isinstance(event, Removed):
                            self.removed[i].set()
                        self.changed.set()
                        self.changed = trio.Event()

    async def until(self, check: Any) -> bool:
        with trio.move_on_after(self.timeout):
            while not check():
                await self.changed.wait()
            return True
        return False

    async def step(self, name: str, body: Any) -> None:
        started = time.perf_counter()
        detail = await body()
        self.steps.append((name, time.perf_counter() - started, detail or ""))

    async def run(self) -> None:
        async with AsyncExitStack() as stack:
            nursery = await stack.enter_async_context(trio.open_nursery())
            for i in range(MEMBERS + 1 + EXTRA):
                self.nodes.append(await nursery.start(self._node, i))
            for node in self.nodes[1:]:
                await node.bootstrap([self.nodes[0].contact])
            await self.scenario()
            nursery.cancel_scope.cancel()

    def agreed(self, members: list[int]) -> bool:
        states = [self.nodes[i].groups.group(self.gid) for i in members]
        return len({(s.epoch, s.epoch_authenticator) for s in states}) == 1

    async def send_all(self, members: list[int], tag: str) -> str:
        for i in members:
            await self.nodes[i].groups.send(self.gid, f"{tag} from {i}".encode())
        expected = {i: {f"{tag} from {j}".encode() for j in members if j != i} for i in members}
        ok = await self.until(lambda: all(expected[i] <= set(self.inbox[i]) for i in members))
        self.check(ok, f"{tag}: every member reads every other member's message")
        return f"{len(members)} senders, {len(members) * (len(members) - 1)} deliveries"

    async def scenario(self) -> None:
        founder = self.nodes[0]
        members = list(range(MEMBERS))
        offline, newcomer, leaver, updater = 9, MEMBERS, 1, 2

        async def build() -> str:
            self.gid = await founder.groups.create()
            for i in members[1:]:
                await founder.groups.add(self.gid, self.nodes[i].groups.key_package())
                with trio.move_on_after(self.timeout):
                    await self.joined[i].wait()
                self.check(self.joined[i].is_set(), f"member {i} joined")
            self.check(await self.until(lambda: self.agreed(members)), "one epoch for all")
            return f"{len(members)} members, epoch {founder.groups.group(self.gid).epoch}"

        await self.step("create and add 9", build)
        await self.step("everyone sends", lambda: self.send_all(members, "hello"))

        async def offline_epochs() -> str:
            self.links[offline].partition(["127.0.0.1"])  # every peer of it is there
            epoch = self.nodes[offline].groups.group(self.gid).epoch
            await founder.groups.add(self.gid, self.nodes[newcomer].groups.key_package())
            with trio.move_on_after(self.timeout):
                await self.joined[newcomer].wait()
            self.check(self.joined[newcomer].is_set(), "the newcomer joined")
            await founder.groups.remove(self.gid, self.nodes[leaver].node_id)
            with trio.move_on_after(self.timeout):
                await self.removed[leaver].wait()
            self.check(self.removed[leaver].is_set(), "the removed member learned it")
            behind = self.nodes[offline].groups.group(self.gid).epoch
            self.check(behind == epoch, "the offline member stayed behind")
            return f"member {offline} offline at epoch {epoch}; add {newcomer}, remove {leaver}"

        await self.step("offline: add and remove", offline_epochs)
        current = [i for i in members if i != leaver] + [newcomer]

        async def catch_up() -> str:
            self.links[offline].heal()
            ok = await self.until(lambda: self.agreed(current))
            self.check(ok, "the offline member caught up")
            return f"member {offline} at epoch {self.nodes[offline].groups.group(self.gid).epoch}"

        await self.step("back online, catch up", catch_up)

        async def update() -> str:
            await self.nodes[updater].groups.update(self.gid)
            self.check(await self.until(lambda: self.agreed(current)), "one epoch after update")
            return f"member {updater} updated; epoch {founder.groups.group(self.gid).epoch}"

        await self.step("update", update)
        await self.step("everyone sends again", lambda: self.send_all(current, "again"))
        leaked = [m for m in self.inbox[leaver] if m.startswith(b"again")]
        self.check(not leaked, "the removed member reads nothing after its removal")

    def report(self) -> int:
        self.out.table(
            "qdht demo --groups: a group on loopback UDP (direct delivery, no mixes yet)",
            ["step", "time", "result"],
            [[name, f"{seconds:.2f} s", detail] for name, seconds, detail in self.steps],
        )
        for failure in self.failures:
            self.out.error(f"check failed: {failure}")
        if not self.failures:
            self.out.note("every check passed")
        return 1 if self.failures else 0


def run_groups_demo(args: argparse.Namespace, out: Output) -> int:
    """Run the groups demo; 0 if every check passed."""
    demo = _Demo(out, args.timeout)
    out.note(
        f"qdht demo --groups: {MEMBERS} members and {EXTRA + 1} further nodes on loopback UDP, "
        f"window {GROUPS.group.window:g} s"
    )
    trio.run(demo.run)
    return demo.report()
