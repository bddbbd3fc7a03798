"""Bad group input between nodes (issue 16 "Bad input"): refused, counted in node.stats()."""

from __future__ import annotations

import trio
import trio.testing

from qdht.groups import slot_part_name, welcome_signing_key
from qdht.messaging import GroupInvitations, key_package_ref
from qdht.wire import KeyPackage, decode

from .test_groups_net import GROUPS, join, logs, network, settle


async def test_replays_second_writes_and_misdirected_welcomes_are_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(6, seed=31) as sim, trio.open_nursery() as nursery:
        a, b, c = sim.nodes[:3]
        la, lb, _lc = await logs(nursery, [a, b, c])
        gid = await a.groups.create()
        await join(a, b, gid, lb)
        group_a, group_b = a.groups.group(gid), b.groups.group(gid)
        delivery = a.groups.delivery
        # The slot of epoch 1 and its key: a replay of its commit later.
        old_key = group_b.slot_key()
        await a.groups.update(gid)
        await settle([group_a, group_b], la)
        epoch = group_b.epoch
        old_slot = await delivery.fetch(old_key, b"slot")
        assert old_slot is not None

        # A second write to a slot already written: every holder refuses it.
        assert not await delivery.store(old_key, b"slot", b"\x01another commit")
        assert await delivery.fetch(old_key, b"slot") == old_slot
        holders = sum(n.stats()["drops"].get("dht.store-write-once", 0) for n in sim.nodes)
        assert holders >= 1

        # The old commit replayed into the current slot (by a member gone bad,
        # who holds the slot key): refused by b, counted, the group stays put.
        assert await delivery.store(group_b.slot_key(), b"slot", old_slot)
        await trio.sleep(2 * GROUPS.poll_interval)
        assert b.stats()["drops"]["groups.replay"] == 1
        assert group_b.epoch == epoch

        # A Welcome for someone else, under the key c waits on: c refuses it.
        kp = decode(c.groups.key_package(), expect=(KeyPackage,))
        assert isinstance(kp, KeyPackage)
        stranger = GroupInvitations()
        group_a.propose_add(stranger.new_key_package(b"stranger"))
        other = group_a.commit(trio.current_time())
        group_a.withdraw(other.commit_hash)  # never written: only its Welcome is used
        (welcome,) = other.welcomes.values()
        assert await delivery.store(welcome_signing_key(key_package_ref(kp)), b"welcome", welcome)
        await trio.sleep(2 * GROUPS.poll_interval)
        assert c.stats()["drops"].get("groups.welcome-not-for-us", 0) >= 1
        assert c.groups.groups() == []
        assert slot_part_name(old_slot, 1) != slot_part_name(welcome, 1)
        nursery.cancel_scope.cancel()
