"""Groups between nodes (12-groups.md §12): the issue's "Done when" list end to end.

Every node is a full qdht node on one in-memory network under the autojump
clock; groups talk only through write-once DHT records.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from qdht import Config
from qdht.errors import ConfigError, GroupError, NodeStateError
from qdht.groups import GroupJoined, GroupNotice, GroupsConfig, GroupsFace
from qdht.messaging import (
    ApplicationMessage,
    EpochChanged,
    Group,
    GroupConfig,
    MemberAdded,
    MemberRemoved,
    Removed,
)
from qdht.node import Node
from qdht.testing import SimNetwork, build_network

WINDOW = 2.0
GROUPS = GroupsConfig(group=GroupConfig(window=WINDOW, turn_interval=1.0), poll_interval=5.0)


@asynccontextmanager
async def network(n: int, seed: int) -> AsyncIterator[SimNetwork]:
    async with build_network(n, seed=seed, config=Config(groups=GROUPS)) as sim:
        yield sim


class Signal:
    """Set (and replaced) whenever any log of a test gets a notice."""

    def __init__(self) -> None:
        self.event = trio.Event()

    def fire(self) -> None:
        self.event.set()
        self.event = trio.Event()


class Log:
    """Every notice one node's groups layer reported."""

    def __init__(self, signal: Signal) -> None:
        self.notices: list[GroupNotice] = []
        self.signal = signal

    async def collect(self, face: GroupsFace, *, task_status: trio.TaskStatus[None]) -> None:
        async with face.events() as notices:
            task_status.started()
            async for notice in notices:
                self.notices.append(notice)
                self.signal.fire()

    def of(self, kind: type) -> list[object]:
        return [n.event for n in self.notices if isinstance(n.event, kind)]

    def messages(self) -> list[bytes]:
        return [e.data for e in self.of(ApplicationMessage)]  # type: ignore[attr-defined]

    async def until(self, check: Callable[[], bool]) -> None:
        """Until ``check()`` holds, looking again after each notice (two minutes at most)."""
        with trio.fail_after(120):
            while not check():
                await self.signal.event.wait()


async def logs(nursery: trio.Nursery, nodes: list[Node]) -> list[Log]:
    out = []
    signal = Signal()
    for node in nodes:
        log = Log(signal)
        await nursery.start(log.collect, node.groups)
        out.append(log)
    return out


async def join(adder: Node, joiner: Node, gid: bytes, log: Log) -> None:
    joined = len(log.of(GroupJoined))
    await adder.groups.add(gid, joiner.groups.key_package())
    await log.until(lambda: len(log.of(GroupJoined)) > joined)
    assert gid in joiner.groups.groups()


async def settle(groups: list[Group], log: Log) -> None:
    """Until every member is in the same epoch (``log`` shares the test's signal)."""
    await log.until(lambda: len({g.epoch_authenticator for g in groups}) == 1)


async def three(
    sim: SimNetwork, nursery: trio.Nursery
) -> tuple[list[Node], list[Log], bytes, list[Group]]:
    """Nodes 0-2 in one group (0 created it, added 1, then 2), every member settled."""
    nodes = sim.nodes[:3]
    found = await logs(nursery, nodes)
    gid = await nodes[0].groups.create()
    for node, log in zip(nodes[1:], found[1:], strict=True):
        await join(nodes[0], node, gid, log)
    groups = [n.groups.group(gid) for n in nodes]
    await settle(groups, found[0])
    return nodes, found, gid, groups


async def test_a_group_of_three_talks_adds_removes_and_locks_the_removed_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(8, seed=1) as sim, trio.open_nursery() as nursery:
        a, b, c = sim.nodes[:3]
        la, lb, lc = await logs(nursery, [a, b, c])
        gid = await a.groups.create()
        await join(a, b, gid, lb)
        await join(b, c, gid, lc)
        group_a, group_b, group_c = (n.groups.group(gid) for n in (a, b, c))
        assert group_a.epoch == group_b.epoch == group_c.epoch == 2
        assert group_a.epoch_authenticator == group_c.epoch_authenticator
        assert [e.identity for e in la.of(MemberAdded)] == [b.node_id, c.node_id]  # type: ignore[attr-defined]

        await a.groups.send(gid, b"hello from a")
        await c.groups.send(gid, b"hello from c")
        await lb.until(lambda: len(lb.messages()) == 2)
        await lc.until(lambda: lc.messages() == [b"hello from a"])
        assert sorted(lb.messages()) == [b"hello from a", b"hello from c"]
        # Only members learn who spoke.
        senders = {e.identity for e in lb.of(ApplicationMessage)}  # type: ignore[attr-defined]
        assert senders == {a.node_id, c.node_id}

        # Remove c: it learns it, and a and b move on without it.
        await a.groups.remove(gid, c.node_id)
        await lc.until(lambda: bool(lc.of(Removed)))
        await lb.until(lambda: bool(lb.of(MemberRemoved)))
        assert gid not in c.groups.groups()
        assert group_b.epoch == group_a.epoch == 3
        assert set(group_b.members().values()) == {a.node_id, b.node_id}

        # c cannot read epoch 3 ...
        await b.groups.send(gid, b"after c left")
        await la.until(lambda: b"after c left" in la.messages())
        assert b"after c left" not in lc.messages()
        assert not group_c.active
        with pytest.raises(GroupError):
            group_c.seal_message(b"x")
        # ... nor write its slot: c never held the slot key of epoch 3, and the
        # slot of epoch 2 it held is written already: holders refuse a second write.
        assert group_c.slot_id() != group_a.slot_id()
        assert not await c.groups.delivery.store(group_c.slot_key(), b"slot", b"\x01forged")
        nursery.cancel_scope.cancel()


async def test_update_heals_and_a_joiner_cannot_read_earlier_messages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(8, seed=2) as sim, trio.open_nursery() as nursery:
        a, b, c = sim.nodes[:3]
        la, lb, lc = await logs(nursery, [a, b, c])
        gid = await a.groups.create()
        await join(a, b, gid, lb)
        await a.groups.send(gid, b"before c")
        await lb.until(lambda: lb.messages() == [b"before c"])
        await join(a, c, gid, lc)
        groups = [n.groups.group(gid) for n in (a, b, c)]
        await settle(groups, la)

        # b updates; its state from before cannot decrypt what comes after.
        group_b = groups[1]
        epoch = group_b.epoch
        before = copy.deepcopy(group_b)
        await b.groups.update(gid)
        assert group_b.epoch == epoch + 1
        await settle(groups, la)
        await a.groups.send(gid, b"after the update")
        await lc.until(lambda: b"after the update" in lc.messages())
        await lb.until(lambda: b"after the update" in lb.messages())
        assert lc.messages() == [b"after the update"]  # never the earlier one
        after_update = [n.event for n in la.notices if isinstance(n.event, ApplicationMessage)]
        assert after_update == []  # a sends, it does not read its own
        sealed = groups[0].seal_message(b"\x00secret")
        assert before.open_message(sealed) is None
        assert before.stats()["drops"] == {"unknown-epoch": 1}
        assert group_b.open_message(sealed) is not None
        changed = [e.epoch for e in la.of(EpochChanged)]  # type: ignore[attr-defined]
        assert changed == sorted(changed)
        nursery.cancel_scope.cancel()


async def test_two_concurrent_commits_converge_to_one_epoch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(8, seed=3) as sim, trio.open_nursery() as nursery:
        (a, b, _), (_, lb, _), gid, groups = await three(sim, nursery)
        epoch = groups[0].epoch
        results: list[bool] = []

        async def update(node: Node) -> None:
            try:
                await node.groups.update(gid)
                results.append(True)
            except GroupError:
                results.append(False)

        async with trio.open_nursery() as racers:
            racers.start_soon(update, a)
            racers.start_soon(update, b)
        # Both committed in one epoch: one lost, retried in the next epoch and won.
        assert results == [True, True]
        written = sum(n.stats()["groups"]["commits_written"] for n in (a, b))
        assert written >= 3
        await settle(groups, lb)
        assert groups[0].epoch == groups[1].epoch == groups[2].epoch == epoch + 2
        nursery.cancel_scope.cancel()


async def test_a_member_offline_for_two_epochs_catches_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(8, seed=4) as sim, trio.open_nursery() as nursery:
        (a, b, c), (_, _, lc), gid, (group_a, _, group_c) = await three(sim, nursery)
        epoch = group_c.epoch
        host_c = c.contact.addresses[0].host
        others = [n.contact.addresses[0].host for n in sim.nodes if n is not c]
        sim.network.partition([host_c], others)
        await a.groups.update(gid)
        await b.groups.update(gid)
        assert group_c.epoch == epoch
        sim.network.heal()
        await lc.until(lambda: group_c.epoch_authenticator == group_a.epoch_authenticator)
        assert group_c.epoch == epoch + 2
        await a.groups.send(gid, b"welcome back")
        await lc.until(lambda: b"welcome back" in lc.messages())
        nursery.cancel_scope.cancel()


async def test_a_member_leaves_and_the_others_commit_its_removal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(6, seed=6) as sim, trio.open_nursery() as nursery:
        (a, b, c), (la, lb, lc), gid, _ = await three(sim, nursery)
        await c.groups.leave(gid)
        assert gid not in c.groups.groups()
        await lc.until(lambda: bool(lc.of(Removed)))
        await la.until(lambda: bool(la.of(MemberRemoved)) and bool(lb.of(MemberRemoved)))
        assert set(a.groups.group(gid).members().values()) == {a.node_id, b.node_id}
        nursery.cancel_scope.cancel()


async def test_bad_input_is_counted_and_misuse_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(6, seed=5) as sim, trio.open_nursery() as nursery:
        a, b = sim.nodes[:2]
        (lb,) = await logs(nursery, [b])
        gid = await a.groups.create()
        await join(a, b, gid, lb)
        group_b = b.groups.group(gid)
        # Garbage in the current commit slot (written with the real slot key, as a
        # member gone bad could): refused by b and counted in node.stats().
        assert await a.groups.delivery.store(group_b.slot_key(), b"slot", b"\x01not a commit slot")
        await trio.sleep(2 * GROUPS.poll_interval)  # the watch, or else the poll, reads it
        assert b.stats()["drops"]["groups.decode"] == 1
        assert group_b.epoch == 1
        with pytest.raises(ConfigError):
            await a.groups.send(b"\x00" * 32, b"no such group")
        with pytest.raises(ConfigError):
            await a.groups.add(gid, b"not a key package")
        with pytest.raises(ConfigError):
            await a.groups.remove(gid, a.node_id)
        nursery.cancel_scope.cancel()


async def test_the_layer_is_off_by_default(autojump_clock: trio.testing.MockClock) -> None:
    async with build_network(1, seed=6) as sim:
        with pytest.raises(NodeStateError):
            _ = sim.nodes[0].groups
    with pytest.raises(ConfigError):
        Config(groups="yes")  # type: ignore[arg-type]
