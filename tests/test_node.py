"""The public node: open_node, bootstrap, find_node, put/get, events, stats, shutdown."""

from __future__ import annotations

import functools
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import cbor2
import pytest
import trio
import trio.testing

import qdht
from qdht import Config, Node, open_node
from qdht.dht import LookupCompleted, LookupTrace, NodeDiscovered, RoutingTableChanged, ValueStored
from qdht.errors import ConfigError, IdentityError, LookupFailedError, NodeStateError
from qdht.identity import Identity
from qdht.session import mac1_key
from qdht.testing import FaultInjector, MemoryNetwork
from qdht.transport import DatagramTransport
from qdht.wire import Address, Contact, FindNode, Pong, encode, immutable_key

DIFFICULTY = 4


@functools.cache
def identity(n: int) -> Identity:
    """The n-th test identity (cached: key generation is the slow part)."""
    return Identity.generate(DIFFICULTY)


def config(n: int, **changes: Any) -> Config:
    return Config(identity=identity(n), puzzle_difficulty=DIFFICULTY, **changes)


Wrap = Callable[[DatagramTransport, int], DatagramTransport]


@asynccontextmanager
async def running(
    count: int,
    *,
    net: MemoryNetwork | None = None,
    wrap: Wrap | None = None,
    first: int = 0,
    join: bool = True,
    **changes: Any,
) -> AsyncIterator[list[Node]]:
    """``count`` nodes on a memory network; with ``join`` all bootstrap through the first."""
    net = net if net is not None else MemoryNetwork(seed=first)
    async with AsyncExitStack() as stack:
        nodes = []
        for i in range(first, first + count):
            transport: DatagramTransport = await stack.enter_async_context(net.open_transport())
            if wrap is not None:
                transport = wrap(transport, i)
            nodes.append(
                await stack.enter_async_context(
                    open_node(config(i, **changes), transport=transport)
                )
            )
        if join:
            for node in nodes[1:]:
                assert await node.bootstrap([nodes[0].contact]) == 1
        yield nodes


async def test_network_put_get_find_node_from_every_node(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(30) as nodes:
        assert all(node.stats()["routing_table_size"] >= 10 for node in nodes)
        values = [f"value {i}".encode() for i in range(5)]
        keys = [await nodes[i * 6].put(value) for i, value in enumerate(values)]
        assert keys == [immutable_key(v) for v in values]
        for node in nodes:
            for key, value in zip(keys, values, strict=True):
                assert await node.get(key) == value
        target = nodes[17]
        found = await nodes[3].find_node(target.node_id)
        assert found[0] == target.contact
        assert await nodes[4].get(immutable_key(b"never stored")) is None
        stats = nodes[3].stats()
        assert stats["lookups"]["success_rate"] is not None
        assert stats["drops"].get("dht.forged-value", 0) == 0


async def test_bootstrap_contact_with_another_node_id_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(3, join=False) as (a, b, c):
        # Another node at the pinned address: the handshake is keyed to the pinned
        # ID (mac1), so b does not even answer; the contact stays out of the table.
        pinned_elsewhere = Contact(identity(99).node_id, b.contact.addresses)
        assert await a.bootstrap([pinned_elsewhere]) == 0
        assert a.stats()["bootstrap"] == {"answered": 0, "refused": 0, "unreachable": 1}
        assert b.stats()["drops"]["session.bad-mac1"] >= 1
        assert len(a.core.routing) == 0
        # An impostor that does answer for the pinned ID (it knows the ID, not the
        # keys) is caught by the handshake and refused at once, without retries.
        c.endpoint._mac1_key = mac1_key(b.node_id)
        impostor = Contact(b.node_id, c.contact.addresses)
        assert await a.bootstrap([impostor]) == 0
        assert a.stats()["bootstrap"]["refused"] == 1
        assert a.stats()["drops"]["dht.wrong-identity"] == 1
        assert len(a.core.routing) == 0
        # The genuine contact is accepted (in parallel with a dead one, which backs off).
        dead = Contact(identity(98).node_id, (Address("udp", "10.255.255.1", 6881),))
        assert await a.bootstrap([b.contact_uri, dead]) == 1
        assert a.stats()["bootstrap"]["unreachable"] == 2
        assert b.node_id in a.core.routing


async def test_events_report_discovery_lookups_and_stores(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(8, join=False) as nodes:
        seen: list[Any] = []
        stored: list[Any] = []
        async with nodes[1].events() as events, nodes[0].events() as events0:
            for node in nodes[1:]:
                await node.bootstrap([nodes[0].contact])
            await nodes[1].find_node(nodes[5].node_id)
            key = await nodes[2].put(b"event test")
            while True:
                with trio.move_on_after(0.01) as scope:
                    seen.append(await events.__anext__())
                if scope.cancelled_caught:
                    break
            with trio.move_on_after(0.01):
                async for event in events0:
                    stored.append(event)
        kinds = {type(e) for e in seen}
        assert {NodeDiscovered, RoutingTableChanged, LookupCompleted} <= kinds
        lookups = [e for e in seen if isinstance(e, LookupCompleted) and e.kind != "refresh"]
        assert [e.kind for e in lookups] == ["bootstrap", "find_node"]
        assert lookups[1].trace.rpcs >= 1
        assert lookups[1].succeeded
        assert ValueStored(key, len(b"event test"), nodes[2].node_id) in stored


async def test_slow_subscriber_loses_events_and_they_are_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(6, join=False, event_queue_size=2) as nodes, nodes[0].events() as events:
        for node in nodes[1:]:
            await node.bootstrap([nodes[0].contact])
        assert events.dropped > 0
        assert nodes[0].stats()["events_dropped"] == events.dropped
        first = await events.__anext__()
        assert isinstance(first, NodeDiscovered)


async def test_stats_add_up(autojump_clock: trio.testing.MockClock) -> None:
    async with running(2, join=False) as (a, b):
        await a.bootstrap([b.contact])
        sa, sb = a.stats(), b.stats()
        # a pings b to join.  Outbound first: each admits the other only once it
        # answered a request of its own, so each pings the other back once (b's
        # ping-back reaches a before b's pong does).
        assert sa["rpcs_sent"]["ping"] == sb["rpcs_received"]["ping"] == 2
        assert sb["rpcs_sent"]["ping"] == sa["rpcs_received"]["ping"] == 2
        assert sb["rpcs_sent"]["pong"] == sa["rpcs_received"]["pong"] == 2
        assert sa["rpcs_sent"]["pong"] == sb["rpcs_received"]["pong"] == 2
        assert sa["rpcs_sent"]["find_node"] == sb["rpcs_received"]["find_node"]
        assert sa["bytes_sent"] == sb["bytes_received"] > sa["dht_bytes_sent"] > 0
        assert sa["datagrams_sent"] == sb["datagrams_received"]
        assert sa["lookups"]["by_kind"]["bootstrap"] == {"started": 1, "succeeded": 1, "failed": 0}
        assert sa["routing_table_size"] == sb["routing_table_size"] == 1
        assert sa["sessions"] == 1
        assert sa["drops_total"] == sum(sa["drops"].values())
        assert a.last_lookup_trace is None  # bootstrap is not a user lookup
        await a.find_node(b.node_id)
        trace = last_trace(a)
        assert trace is not None
        assert trace.responses == 1
        assert a.stats()["lookups"]["started"] == 1


def last_trace(node: Node) -> LookupTrace | None:
    # A function call, so that mypy does not narrow the property across awaits.
    return node.last_lookup_trace


class TaskCounter(trio.abc.Instrument):
    def __init__(self) -> None:
        self.live: set[trio.lowlevel.Task] = set()

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.live.add(task)

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.live.discard(task)


async def test_leaving_the_block_stops_every_task(autojump_clock: trio.testing.MockClock) -> None:
    counter = TaskCounter()
    trio.lowlevel.add_instrument(counter)
    try:
        net = MemoryNetwork(seed=7)
        async with running(5, net=net):
            assert counter.live  # readers, timers, upkeep, and the network's own tasks
            node_tasks = [t.name for t in counter.live if t.name.startswith("qdht node")]
            # Per node: the session driver's tree, and one tree per service.
            trees = {" ".join(name.split()[3:]) for name in node_tasks}
            assert trees == {
                "session",
                "session reader",
                "session timer",
                "dht",
                "dht timer",
                "dht _save_records",
                "dht _save_routing_periodically",
                "watch",
                "watch timer",
                "replication",
                "replication timer",
                "replication _republish_own_records",
            }
            assert len(node_tasks) == 5 * len(trees)
        assert not counter.live
        assert len(net) == 0
    finally:
        trio.lowlevel.remove_instrument(counter)


async def test_body_exception_propagates_unwrapped(autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(KeyError):
        async with running(1, join=False):
            raise KeyError("mine")


async def test_stopped_node_refuses_work(autojump_clock: trio.testing.MockClock) -> None:
    async with running(1, join=False) as (node,):
        pass
    with pytest.raises(NodeStateError):
        await node.get(bytes(32))


async def test_lonely_node_put_fails_clearly_get_finds_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(1, join=False, client_mode=True) as (node,):
        with pytest.raises(LookupFailedError):
            await node.put(b"nobody to keep this")
        assert await node.get(immutable_key(b"x")) is None
        with pytest.raises(ConfigError, match="key"):
            await node.get(b"short")


async def test_client_mode_node_queries_but_is_not_routed_to(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=3)
    async with running(10, net=net) as servers:
        transport = net.bind()
        async with open_node(config(50, client_mode=True), transport=transport) as phone:
            assert await phone.bootstrap([servers[0].contact_uri]) == 1
            key = await phone.put(b"from a phone")
            assert await servers[4].get(key) == b"from a phone"
            assert await phone.get(await servers[6].put(b"to a phone")) == b"to a phone"
            assert all(phone.node_id not in s.core.routing for s in servers)
            assert phone.stats()["storage"]["records"] == 0
        await transport.aclose()


async def test_gets_succeed_with_ten_percent_loss(autojump_clock: trio.testing.MockClock) -> None:
    def lossy(transport: DatagramTransport, i: int) -> DatagramTransport:
        return FaultInjector(transport, seed=i, loss=0.1)

    async with running(20, wrap=lossy) as nodes:
        rng = random.Random(5)
        keys = {}
        for i in range(4):
            value = f"lossy {i}".encode()
            keys[await rng.choice(nodes).put(value)] = value
        for node in nodes:
            for key, value in keys.items():
                assert await node.get(key) == value
        assert sum(n.transport.stats()["fault_lost"] for n in nodes) > 0


async def test_real_udp_nodes_on_loopback_close_their_sockets() -> None:
    udp = ("udp://127.0.0.1:0",)
    async with open_node(config(60, listen=udp)) as a, open_node(config(61, listen=udp)) as b:
        assert a.contact.address.host == "127.0.0.1"
        assert a.contact.address.port != 0
        assert Contact.from_uri(a.contact_uri) == a.contact
        with trio.fail_after(10):
            assert await b.bootstrap([a.contact_uri]) == 1
            key = await b.put(b"over real UDP")
            assert await a.get(key) == b"over real UDP"
        sockets = [a.transport.socket, b.transport.socket]  # type: ignore[attr-defined]
    assert [s.fileno() for s in sockets] == [-1, -1]


async def test_identity_key_file_in_data_dir_is_created_then_reused(tmp_path: Path) -> None:
    cfg = Config(listen=("udp://127.0.0.1:0",), data_dir=tmp_path, puzzle_difficulty=DIFFICULTY)
    async with open_node(cfg) as first:
        pass
    assert (tmp_path / "identity.key").exists()
    async with open_node(cfg) as second:
        assert second.node_id == first.node_id


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="listen"):
        Config(listen=("tcp://1.2.3.4:5",))
    with pytest.raises(ConfigError, match="listen"):
        Config(listen=("udp://0.0.0.0:1", "udp://[::]:2"))
    with pytest.raises(ConfigError, match="bootstrap"):
        Config(bootstrap=("qdht+udp://1.2.3.4:5/not-hex",))
    with pytest.raises(ConfigError, match="puzzle_difficulty"):
        Config(puzzle_difficulty=99)
    with pytest.raises(ConfigError, match="event_queue_size"):
        Config(event_queue_size=0)
    with pytest.raises(ConfigError, match="difficulty"):
        Config(identity=identity(0), puzzle_difficulty=5)
    defaults = Config()
    assert defaults.listen == ("udp://0.0.0.0:6881",)
    assert defaults.lookup.k == 20
    assert defaults.lookup.alpha == 3
    assert qdht.Config is Config
    assert qdht.open_node is open_node


async def test_signed_contact_list_bootstraps_a_new_node(
    autojump_clock: trio.testing.MockClock,
) -> None:
    net = MemoryNetwork(seed=11)
    async with running(6, net=net) as nodes:
        data = nodes[2].signed_contacts(4)
        async with open_node(config(40), transport=net.bind()) as newcomer:
            listed = newcomer.verify_contacts(data, signer=nodes[2].node_id)
            assert listed[0] == nodes[2].contact
            assert len(listed) == 4
            assert await newcomer.bootstrap(listed) == 4
            assert newcomer.stats()["routing_table_size"] == 6
            with pytest.raises(IdentityError, match="another node"):
                newcomer.verify_contacts(data, signer=nodes[3].node_id)


async def test_hostile_peer_input_is_dropped_and_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(5) as (victim, attacker, *others):
        key = await others[0].put(b"still served")

        async def send(payload: bytes) -> None:
            attacker.endpoint.send_message(
                victim.node_id, payload, trio.current_time(), addr=victim.contact.address
            )
            await attacker._flush()

        await send(b"\xff not cbor")
        await send(cbor2.dumps({"type": "teleport", "rid": b"r" * 8}, canonical=True))
        await send(encode(Pong(b"p" * 8)))  # a response nobody asked for
        for i in range(400):  # a FIND_NODE flood
            await send(encode(FindNode(i.to_bytes(8, "big"), bytes(32))))
        await trio.sleep(1)
        drops = victim.stats()["drops"]
        assert drops["dht.malformed"] == 1
        assert drops["dht.unknown-request"] == 1
        assert drops["dht.unsolicited-response"] == 1
        # Refused by the rate limit, or -- once the flood got the attacker banned --
        # by the session layer before decryption.
        refused = drops["dht.rate-limited"] + drops.get("session.refused-peer", 0)
        assert refused >= 400 - victim.config.rpc.rate_burst - 50
        # The ban holds at the session layer for as long as it lasts: ten seconds
        # on, the flooder's packets are still dropped before decryption.
        await trio.sleep(10)
        banned = victim.stats()["drops"].get("dht.banned", 0)
        for i in range(10):
            await send(encode(FindNode(i.to_bytes(8, "big"), bytes(32))))
        await trio.sleep(1)
        drops = victim.stats()["drops"]
        assert drops.get("dht.banned", 0) == banned
        assert drops["session.refused-peer"] >= 10
        # The victim still serves everyone else, the flooder included once it calms down.
        assert await others[1].get(key) == b"still served"
        await trio.sleep(10)
        assert await attacker.find_node(victim.node_id)


async def test_websocket_and_udp_listeners_together() -> None:
    both = ("udp://127.0.0.1:0", "ws://127.0.0.1:0")
    async with (
        open_node(config(70, listen=both)) as hub,
        open_node(config(71, listen=("ws://127.0.0.1:0",))) as browserish,
    ):
        assert [a.transport for a in hub.contact.addresses] == ["udp", "ws"]
        with trio.fail_after(10):
            assert await browserish.bootstrap([hub.contact.to_uri(1)]) == 1
            key = await hub.put(b"over websocket")
            assert await browserish.get(key) == b"over websocket"
        # It dialled in from an ephemeral port, but named the port it listens on.
        [entry] = [c for c in hub.core.routing if c.node_id == browserish.node_id]
        assert entry == browserish.contact
