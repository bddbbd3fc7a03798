"""Groups across a restart (12-groups.md §13): state in the data directory, no key used twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from messaging._group_helpers import CONFIG, make_group

from qdht import Config, open_node
from qdht.errors import StoreError
from qdht.groups import GROUPS_FILE, GroupStore, SavedGroup
from qdht.identity import Identity
from qdht.messaging import Group
from qdht.node import Node
from qdht.testing import SimNetwork
from qdht.wire import CborLimits, loads_canonical

from .test_groups_net import GROUPS, join, logs, network, settle

LIMITS = CborLimits(max_bytes=1 << 24)


def _config(identity: Identity, data_dir: Path) -> Config:
    return Config(identity=identity, puzzle_difficulty=0, data_dir=data_dir, groups=GROUPS)


async def _open(sim: SimNetwork, identity: Identity, data_dir: Path, stack: trio.Nursery) -> Node:
    """Start a node with a data directory on ``sim``'s network, bootstrapped; it runs
    until ``stack`` is cancelled."""
    started: trio.Event = trio.Event()
    box: list[Node] = []
    stop = trio.Event()

    async def run() -> None:
        transport = sim.network.bind(sim.network.allocate_host(), 6881)
        async with open_node(_config(identity, data_dir), transport=transport) as node:
            await node.bootstrap([sim.nodes[0].contact])
            box.append(node)
            started.set()
            await stop.wait()

    stack.start_soon(run)
    await started.wait()
    node = box[0]
    node.stop_event = stop  # type: ignore[attr-defined]
    return node


async def _joined(
    sim: SimNetwork, a: Node, identity: Identity, data_dir: Path, nursery: trio.Nursery
) -> tuple[Node, bytes]:
    """A node with ``data_dir`` started, and added to a new group of ``a``'s."""
    d = await _open(sim, identity, data_dir, nursery)
    (ld,) = await logs(nursery, [d])
    gid = await a.groups.create()
    await join(a, d, gid, ld)
    return d, gid


async def test_a_restarted_member_goes_on_in_its_group(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    identity = Identity.generate(0)
    async with network(6, seed=11) as sim, trio.open_nursery() as nursery:
        a = sim.nodes[0]
        (la,) = await logs(nursery, [a])
        async with trio.open_nursery() as first:
            d, gid = await _joined(sim, a, identity, tmp_path, first)
            await d.groups.send(gid, b"before the restart")
            await la.until(lambda: la.messages() == [b"before the restart"])
            await d.groups.flush()
            d.stop_event.set()  # type: ignore[attr-defined]
            first.cancel_scope.cancel()
        assert (tmp_path / GROUPS_FILE).exists()
        # While d is down: a message, and a commit d has to catch up with.
        await a.groups.send(gid, b"while d was down")
        await a.groups.update(gid)
        async with trio.open_nursery() as second:
            d = await _open(sim, identity, tmp_path, second)
            (ld,) = await logs(second, [d])
            assert d.groups.groups() == [gid]
            assert d.stats()["groups"]["restored"] == 1
            group_a, group_d = a.groups.group(gid), d.groups.group(gid)
            await settle([group_a, group_d], ld)
            # The message of the epoch it left in is still read after the restart
            # (maybe before the log above subscribed: counted, then).
            await ld.until(lambda: d.stats()["groups"].get("messages_received", 0) >= 1)
            # Its sending ratchet and message counter went on: nothing is sealed or
            # named twice, so a reads the new message and drops nothing.
            await d.groups.send(gid, b"after the restart")
            await la.until(lambda: b"after the restart" in la.messages())
            assert la.messages() == [b"before the restart", b"after the restart"]
            assert "groups.stale-generation" not in a.stats()["drops"]
            d.stop_event.set()  # type: ignore[attr-defined]
            second.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


async def test_a_message_leaves_only_after_its_key_is_gone_from_the_disk(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    identity = Identity.generate(0)
    async with network(6, seed=12) as sim, trio.open_nursery() as nursery:
        a = sim.nodes[0]
        d = await _open(sim, identity, tmp_path, nursery)
        (ld,) = await logs(nursery, [d])
        gid = await a.groups.create()
        await join(a, d, gid, ld)
        delivery = d.groups.delivery
        seen: list[dict[int, int]] = []
        store = delivery.store

        async def checked(*args: Any, **kwargs: Any) -> bool:
            if args[1].startswith(b"m/"):  # a message record: what is on disk now?
                ((_, _, runner, _),) = GroupStore(tmp_path / GROUPS_FILE).groups()
                seen.append(dict(loads_canonical(runner, LIMITS)["sent"]))
            return await store(*args, **kwargs)

        delivery.store = checked  # type: ignore[method-assign]
        await d.groups.flush()  # what joining changed
        written: list[SavedGroup | None] = []
        write = d.groups.store.write

        def recorded(groups: dict[bytes, SavedGroup | None], invitations: Any = None) -> None:
            written.extend(groups.values())
            write(groups, invitations)

        d.groups.store.write = recorded  # type: ignore[method-assign]
        epoch = d.groups.group(gid).epoch
        await d.groups.send(gid, b"one")
        await d.groups.send(gid, b"two")
        # A crash at the moment either message left would restart past its key.
        assert seen == [{epoch: 1}, {epoch: 2}]
        # Each message rewrote the runner and the secret trees, not the members' keys.
        assert written
        assert all(row is not None and row.state is None for row in written)
        nursery.cancel_scope.cancel()


def test_the_store_keeps_the_state_and_loads_the_first_schema(tmp_path: Path) -> None:
    members = make_group(2)
    alice = members[0]
    state, trees = alice.dump_parts()
    assert len(trees) < len(state) // 10
    store = GroupStore(tmp_path / GROUPS_FILE)
    gid = alice.group_id
    with pytest.raises(StoreError, match="never saved whole"):
        store.write({gid: SavedGroup(None, b"runner", trees)})
    assert store.groups() == []  # the failed write left nothing
    store.write({gid: SavedGroup(state, b"runner", trees)})
    sealed = alice.seal_message(b"x")
    _, newer = alice.dump_parts()
    store.write({gid: SavedGroup(None, b"runner2", newer)})
    ((_, kept, runner, got),) = store.groups()
    assert (kept, runner, got) == (state, b"runner2", newer)
    reloaded = Group.load(kept, 0.0, config=CONFIG, trees=got)
    assert reloaded.dump() == alice.dump()
    # A row of the first schema: the whole dump in ``state``, no trees row.
    store.write({gid: None})
    assert store.groups() == []
    db = sqlite3.connect(str(tmp_path / GROUPS_FILE))
    with db:
        db.execute("INSERT INTO groups VALUES (?, ?, ?)", (gid, alice.dump(), b"r"))
    db.close()
    ((_, whole, _, none),) = store.groups()
    assert none is None
    bob = members[1]
    assert bob.open_message(sealed) is not None
    assert Group.load(whole, 0.0, config=CONFIG).dump() == alice.dump()
    store.close()


async def test_a_commit_cut_short_by_a_crash_goes_on_after_the_restart(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    identity = Identity.generate(0)
    async with network(6, seed=13) as sim, trio.open_nursery() as nursery:
        a = sim.nodes[0]
        (la,) = await logs(nursery, [a])
        async with trio.open_nursery() as first:
            d, gid = await _joined(sim, a, identity, tmp_path, first)
            epoch = a.groups.group(gid).epoch
            store = d.groups.delivery.store

            async def dies_before_the_slot(*args: Any, **kwargs: Any) -> bool:
                if args[1] == b"slot":
                    await trio.sleep_forever()  # the process dies here
                return await store(*args, **kwargs)

            d.groups.delivery.store = dies_before_the_slot  # type: ignore[method-assign]
            first.start_soon(d.groups.update, gid)
            await trio.sleep(5)
            ((_, _, runner, _),) = GroupStore(tmp_path / GROUPS_FILE).groups()
            pending = loads_canonical(runner, LIMITS)["pending"]
            assert pending is not None  # the commit was saved before anything left
            d.stop_event.set()  # type: ignore[attr-defined]
            first.cancel_scope.cancel()
        assert a.groups.group(gid).epoch == epoch  # nobody saw it
        async with trio.open_nursery() as second:
            d = await _open(sim, identity, tmp_path, second)
            group_a, group_d = a.groups.group(gid), d.groups.group(gid)
            # The same commit is written again and wins: both move to the next epoch.
            await settle([group_a, group_d], la)
            await la.until(lambda: group_a.epoch == epoch + 1)
            await settle([group_a, group_d], la)
            assert group_a.epoch_authenticator == group_d.epoch_authenticator
            d.stop_event.set()  # type: ignore[attr-defined]
            second.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
