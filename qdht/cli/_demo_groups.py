"""``qdht demo --groups``: a group of 10 on loopback UDP with mixes (12-groups.md §12-§14).

One directory authority and ``--mixes`` mixes (``--mixes 0``: direct
delivery, through nodes that only hold records), and eleven member nodes,
each on its own UDP socket on 127.0.0.1 and with its own data directory;
the members run the mixnet as clients, so every group record is put and
read by exits.  Node 0 creates a group and adds the nine others; every
member sends a message; one member goes offline (its node is closed, its
state stays on disk) while an eleventh node is added and another member
removed, two epochs; it is started again from its data directory and
catches up; a member updates its keys; everyone sends again.  Each step is
checked (who reads what, who is in the group, one epoch authenticator for
all), and the time until every member agreed on each new epoch is printed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Final

import trio

from qdht.cli._output import Output
from qdht.groups import GroupJoined, GroupNotice, GroupsConfig
from qdht.messaging import ApplicationMessage, GroupConfig, Removed
from qdht.node import Node
from qdht.testing import GROUP_DATAGRAM_SIZE, GROUP_MIXNET, GroupNetwork, open_group_network

__all__ = ["DEMO_GROUPS", "run_groups_demo"]

#: Members at the start (one more joins later).
MEMBERS: Final = 10
DEMO_GROUPS: Final = GroupsConfig(
    group=GroupConfig(window=1.0, turn_interval=0.5), poll_interval=2.0, anonymous_poll=6.0
)


class _Demo:
    def __init__(self, out: Output, timeout: float, mixes: int) -> None:
        self.out = out
        self.timeout = timeout
        self.mixes = mixes
        self.inbox: dict[int, list[bytes]] = defaultdict(list)
        self.joined: dict[int, trio.Event] = defaultdict(trio.Event)
        self.removed: dict[int, trio.Event] = defaultdict(trio.Event)
        self.changed = trio.Event()
        self.steps: list[tuple[str, float, float | None, str]] = []
        self.failures: list[str] = []
        self.gid = b""

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)

    async def watch(self, i: int, node: Node) -> None:
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
        self.agreement: float | None = None
        detail = await body()
        took = time.perf_counter() - started
        self.steps.append((name, took, self.agreement, detail or ""))
        self.out.note(f"{name}: {detail or ''} ({took:.1f} s)")

    async def run(self) -> None:
        with tempfile.TemporaryDirectory(prefix="qdht-demo-groups-") as tmp:
            async with open_group_network(
                MEMBERS + 1,
                groups=DEMO_GROUPS,
                seed=1,
                mixes=self.mixes,
                mixnet=GROUP_MIXNET,
                data_dir=Path(tmp),
                watcher=self.watch,
                datagram_size=GROUP_DATAGRAM_SIZE,
            ) as gn:
                self.gn = gn
                await self.scenario(gn)

    def agreed(self, members: list[int]) -> bool:
        nodes = [self.gn.nodes[i] for i in members]
        if any(n is None or self.gid not in n.groups.groups() for n in nodes):
            return False
        states = [n.groups.group(self.gid) for n in nodes if n is not None]
        return len({(s.epoch, s.epoch_authenticator) for s in states}) == 1

    async def commit(self, call: Any, members: list[int], what: str) -> None:
        """Run a commit; note how long until ``members`` all agree on its epoch."""
        started = time.perf_counter()
        await call()
        ok = await self.until(lambda: self.agreed(members))
        self.check(ok, f"{what}: one epoch for every member")
        took = time.perf_counter() - started
        self.agreement = took if self.agreement is None else max(self.agreement, took)

    async def send_all(self, members: list[int], tag: str) -> str:
        for i in members:
            await self.gn.member(i).groups.send(self.gid, f"{tag} from {i}".encode())
        expected = {i: {f"{tag} from {j}".encode() for j in members if j != i} for i in members}
        ok = await self.until(lambda: all(expected[i] <= set(self.inbox[i]) for i in members))
        self.check(ok, f"{tag}: every member reads every other member's message")
        return f"{len(members)} senders, {len(members) * (len(members) - 1)} deliveries"

    async def add(self, i: int) -> None:
        founder = self.gn.member(0)
        await founder.groups.add(self.gid, self.gn.member(i).groups.key_package())
        with trio.move_on_after(self.timeout):
            await self.joined[i].wait()
        self.check(self.joined[i].is_set(), f"member {i} joined")

    async def scenario(self, gn: GroupNetwork) -> None:
        founder = gn.member(0)
        members = list(range(MEMBERS))
        offline, newcomer, leaver, updater = 9, MEMBERS, 1, 2

        async def build() -> str:
            self.gid = await founder.groups.create()
            for i in members[1:]:
                await self.commit(lambda i=i: self.add(i), members[: i + 1], f"add {i}")
            return f"{len(members)} members, epoch {founder.groups.group(self.gid).epoch}"

        await self.step("create and add 9", build)
        await self.step("everyone sends", lambda: self.send_all(members, "hello"))
        online = [i for i in members if i != offline]

        async def offline_epochs() -> str:
            epoch = founder.groups.group(self.gid).epoch
            await gn.stop(offline)
            await self.commit(lambda: self.add(newcomer), [*online, newcomer], "add")
            still = [i for i in online if i != leaver] + [newcomer]

            async def remove() -> None:
                await founder.groups.remove(self.gid, gn.member(leaver).node_id)
                with trio.move_on_after(self.timeout):
                    await self.removed[leaver].wait()
                self.check(self.removed[leaver].is_set(), "the removed member learned it")

            await self.commit(remove, still, "remove")
            return f"member {offline} off at epoch {epoch}; add {newcomer}, remove {leaver}"

        await self.step("offline: add and remove", offline_epochs)
        current = [i for i in members if i != leaver] + [newcomer]

        async def catch_up() -> str:
            started = time.perf_counter()
            node = await gn.start(offline)
            behind = node.groups.group(self.gid).epoch
            ok = await self.until(lambda: self.agreed(current))
            self.check(ok, "the restarted member caught up")
            self.agreement = time.perf_counter() - started
            now = node.groups.group(self.gid).epoch
            return f"member {offline} restarted at epoch {behind}, caught up to {now}"

        await self.step("back from disk, catch up", catch_up)

        async def update() -> str:
            member = gn.member(updater)
            await self.commit(lambda: member.groups.update(self.gid), current, "update")
            return f"member {updater} updated; epoch {founder.groups.group(self.gid).epoch}"

        await self.step("update", update)
        await self.step("everyone sends again", lambda: self.send_all(current, "again"))
        leaked = [m for m in self.inbox[leaver] if m.startswith(b"again")]
        self.check(not leaked, "the removed member reads nothing after its removal")
        if self.mixes:
            direct = sum(gn.member(i).stats()["records_published"] for i in current)
            self.check(direct == 0, "no member put a group record itself")

    def report(self) -> int:
        how = f"{self.mixes} mixes" if self.mixes else "direct delivery, no mixes"
        self.out.table(
            f"qdht demo --groups: a group on loopback UDP ({how})",
            ["step", "time", "agreement", "result"],
            [
                [name, f"{seconds:.2f} s", "-" if agree is None else f"{agree:.2f} s", detail]
                for name, seconds, agree, detail in self.steps
            ],
        )
        for failure in self.failures:
            self.out.error(f"check failed: {failure}")
        if not self.failures:
            self.out.note("every check passed")
        return 1 if self.failures else 0


def run_groups_demo(args: argparse.Namespace, out: Output) -> int:
    """Run the groups demo; 0 if every check passed."""
    mixes = args.mixes
    demo = _Demo(out, args.timeout, mixes)
    via = f"1 authority and {mixes} mixes" if mixes else "3 record holders (no mixes)"
    out.note(
        f"qdht demo --groups: {MEMBERS} members (+1 added later) and {via} on loopback UDP, "
        f"window {DEMO_GROUPS.group.window:g} s"
    )
    trio.run(demo.run)
    return demo.report()
