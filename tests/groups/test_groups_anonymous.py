"""Groups through the mixnet (12-groups.md §14): every record put and get by exits."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing

from qdht.errors import ConfigError
from qdht.groups import AnonymousDelivery, GroupsConfig
from qdht.testing import GROUP_MIXNET, MemoryNetwork, open_mix_network

from .test_groups_net import GROUPS, join, logs, settle

#: The default 2 KiB payload: a group record (up to 12 KB with its signature
#: and keys) goes in fragments, each its own packet (10-mixnet.md §14.6).
MIXNET = attrs.evolve(GROUP_MIXNET, user_payload_size=2048)
ANONYMOUS = attrs.evolve(GROUPS, delivery="anonymous", anonymous_poll=2.0)


async def test_a_group_talks_through_the_mixnet_and_holders_never_see_a_member(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=21)
    async with (
        open_mix_network(
            5,
            3,
            seed=21,
            network=net,
            mixnet=MIXNET,
            clients_config={"groups": ANONYMOUS},
        ) as mn,
        trio.open_nursery() as nursery,
    ):
        assert await mn.publish_directory() == len(mn.nodes)
        a, b, c = mn.clients
        assert all(isinstance(n.groups.delivery, AnonymousDelivery) for n in mn.clients)
        la, lb, lc = await logs(nursery, [a, b, c])
        direct: list[str] = []
        for member in (a, b, c):
            # A member's own DHT puts of signed records: none may be a group's.
            member.put_signed = lambda record, **_: direct.append("put")  # type: ignore[method-assign, assignment]
        gid = await a.groups.create()
        await join(a, b, gid, lb)
        await join(a, c, gid, lc)
        groups = [n.groups.group(gid) for n in (a, b, c)]
        await settle(groups, la)
        await b.groups.send(gid, b"through three mixes")
        await la.until(lambda: la.messages() == [b"through three mixes"])
        await lc.until(lambda: lc.messages() == [b"through three mixes"])
        await a.groups.remove(gid, c.node_id)
        await lb.until(lambda: groups[1].epoch == groups[0].epoch)
        assert set(groups[0].members().values()) == {a.node_id, b.node_id}
        # Every put and get went through exits: no member put a group record
        # itself, watched a key, or keeps republishing one.
        assert direct == []
        for member in (a, b, c):
            stats = member.stats()
            assert stats["mixnet"]["anonymous_ok"] > 0
            assert member.published() == []
            assert stats["watch"]["watcher"]["keys"] == 0
        exits = sum(m.stats()["mixnet"].get("exit_requests", 0) for m in mn.mixes)
        assert exits >= sum(n.stats()["mixnet"]["anonymous_ok"] for n in mn.clients)
        nursery.cancel_scope.cancel()


def test_the_delivery_mode_is_checked() -> None:
    with pytest.raises(ConfigError):
        GroupsConfig(delivery="carrier pigeon")
