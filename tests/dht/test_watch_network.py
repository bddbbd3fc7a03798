"""Watching keys across a simulated network of production DHT cores (08-watch.md).

CoreNetwork runs real :class:`~qdht.dht.DhtCore` objects in simulated time
(sessions are vouched for by the simulator).  Unix time is the simulated
clock (``unix_offset`` 0), so record expiry follows it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import attrs

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import DhtEvent, WatchConfig, WatchLimits, WatchUpdate, sign_mutable, sign_tombstone
from qdht.testing import DELIVER, CoreNetwork, SimCore
from qdht.wire import MutableRecord, Notify, encode

SALT = b"status"


@cache
def owner() -> MLDSAPrivateKey:
    return MLDSAPrivateKey.from_seed(bytes(range(100, 132)))


def version(seq: int, exp: int = 100_000) -> MutableRecord:
    return sign_mutable(owner(), salt=SALT, seq=seq, value=f"v{seq}".encode(), expires=exp)


KEY = version(1).key()


class WatchNet(CoreNetwork):
    """CoreNetwork that keeps each node's WatchUpdate events and can put records."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.updates: dict[int, list[WatchUpdate]] = {}
        #: While set, every NOTIFY in flight is lost.
        self.lose_notifies = False

    def _push(self, at: float, kind: int, a: Any, b: Any) -> None:
        if self.lose_notifies and kind == DELIVER and b"\x64typefnotify" in b[1]:
            self.messages_lost += 1
            return
        super()._push(at, kind, a, b)

    def _on_event(self, node: SimCore, event: DhtEvent) -> None:
        if type(event) is WatchUpdate:
            self.updates.setdefault(node.index, []).append(event)
        else:
            super()._on_event(node, event)

    def watch(self, node: SimCore, key: bytes = KEY) -> None:
        node.core.start_watch(key, self.now)
        self._flush(node)

    def unwatch(self, node: SimCore, key: bytes = KEY) -> None:
        node.core.stop_watch(key, self.now)
        self._flush(node)

    def put(self, node: SimCore, record: object, settle: float = 5.0) -> None:
        node.core.start_put_record(record, self.now)  # type: ignore[arg-type]
        self._flush(node)
        self.run_until(self.now + settle)

    def seen(self, node: SimCore) -> list[tuple[str, int]]:
        return [(u.kind, u.record.seq) for u in self.updates.get(node.index, [])]


def network(
    n: int = 24, *, config: WatchConfig | None = None, limits: WatchLimits | None = None
) -> WatchNet:
    options: dict[str, object] = {}
    if config is not None:
        options["watch_config"] = config
    if limits is not None:
        options["watch_limits"] = limits
    net = WatchNet(seed=5, join_refresh=3, core_options=options)
    net.build(n, settle=20.0)
    return net


def test_newer_versions_reach_the_watcher_once_each() -> None:
    net = network()
    watcher, publisher = net.nodes[3], net.nodes[9]
    net.watch(watcher)
    net.run_until(net.now + 5)
    assert len(watcher.core.watching.holders(KEY)) == 8
    net.put(publisher, version(1))
    net.put(publisher, version(2))
    net.put(publisher, version(1))  # an old version: refused by the holders, never reported
    assert net.seen(watcher) == [("update", 1), ("update", 2)]
    assert net.updates[watcher.index][-1].value == b"v2"
    stats = watcher.core.stats()["watch"]["watcher"]
    assert stats["duplicates"] > 0  # several holders pushed each change


def test_a_watcher_that_starts_late_gets_the_current_record_first() -> None:
    net = network()
    watcher, publisher = net.nodes[5], net.nodes[11]
    net.put(publisher, version(7))
    net.watch(watcher)
    net.run_until(net.now + 5)
    assert net.seen(watcher) == [("update", 7)]


def test_a_delete_arrives_as_deleted_and_expiry_as_expired() -> None:
    net = network()
    watcher, publisher = net.nodes[2], net.nodes[17]
    net.watch(watcher)
    net.run_until(net.now + 5)
    short = int(net.now) + 120
    net.put(publisher, version(1, exp=short))
    net.run_until(short + 1)
    assert net.seen(watcher) == [("update", 1), ("expired", 1)]
    # The holders said so too, as hints; the report came from the watcher's own clock.
    assert watcher.core.stats()["watch"]["watcher"]["drops"]["notify-expiry-hint"] >= 1
    net.put(publisher, version(2))
    tomb = sign_tombstone(owner(), salt=SALT, seq=3, expires=100_000)
    net.put(publisher, tomb)
    assert net.seen(watcher)[-2:] == [("update", 2), ("deleted", 3)]
    assert net.updates[watcher.index][-1].value is None


def test_a_forged_record_from_a_holder_is_refused_and_counted() -> None:
    net = network()
    watcher, publisher = net.nodes[4], net.nodes[8]
    net.watch(watcher)
    net.run_until(net.now + 5)
    net.put(publisher, version(1))
    holder = net.node(watcher.core.watching.holders(KEY)[0])
    assert holder is not None
    forged = attrs.evolve(version(2), value=b"forged")
    payload = encode(Notify(b"\x11" * 8, KEY, forged))
    watcher.core.receive_message(holder.node_id, holder.contact.address, payload, net.now)
    net._flush(watcher)
    net.run_until(net.now + 15)
    assert net.seen(watcher) == [("update", 1)]
    assert watcher.core.stats()["drops"]["watch-notify-bad-signature"] == 1
    assert holder.node_id not in watcher.core.watching.holders(KEY)
    # The watcher replaced the lying holder and still hears the truth.
    assert len(watcher.core.watching.holders(KEY)) == 8
    net.put(publisher, version(3))
    assert net.seen(watcher) == [("update", 1), ("update", 3)]


def test_holders_refuse_watchers_beyond_their_limits() -> None:
    config = WatchConfig(holders=3)
    net = network(12, config=config, limits=WatchLimits(max_watchers_per_key=2))
    watchers = net.nodes[:5]
    for node in watchers:
        net.watch(node)
    net.run_until(net.now + 5)
    refused = sum(n.core.stats()["drops"].get("watch-watchers-per-key", 0) for n in net.nodes)
    assert refused > 0
    for node in net.nodes:
        assert node.core.watches.stats()["subscriptions"] <= 2


def test_a_watcher_whose_holders_die_resubscribes_and_gets_the_next_update() -> None:
    config = WatchConfig(holders=3, ttl=60)
    net = network(30, config=config)
    watcher, publisher = net.nodes[6], net.nodes[13]
    net.watch(watcher)
    net.run_until(net.now + 5)
    first = set(watcher.core.watching.holders(KEY))
    assert len(first) == 3
    for node_id in first:
        victim = net.node(node_id)
        assert victim is not None
        assert victim is not publisher
        net.kill(victim)
    net.run_until(net.now + 120)  # past a renewal (45 s) and its timeouts
    now_at = set(watcher.core.watching.holders(KEY))
    assert len(now_at) == 3
    assert not now_at & first
    net.put(publisher, version(4))
    assert net.seen(watcher) == [("update", 4)]


def test_unwatch_releases_the_subscriptions() -> None:
    net = network()
    watcher = net.nodes[7]
    net.watch(watcher)
    net.run_until(net.now + 5)
    held = sum(n.core.watches.stats()["subscriptions"] for n in net.nodes if n.alive)
    assert held == 8
    net.unwatch(watcher)
    net.run_until(net.now + 5)
    assert sum(n.core.watches.stats()["subscriptions"] for n in net.nodes if n.alive) == 0
    assert KEY not in watcher.core.watching


def test_a_client_mode_node_can_watch() -> None:
    net = network()
    publisher = net.nodes[3]
    net.core_options["client_mode"] = True
    phone = net.add_node(bootstrap=[net.nodes[0]])
    net.core_options["client_mode"] = False
    net.run_until(net.now + 10)
    net.watch(phone)
    net.run_until(net.now + 5)
    assert len(phone.core.watching.holders(KEY)) == 8
    net.put(publisher, version(5))
    assert net.seen(phone) == [("update", 5)]


def test_lost_notifications_are_made_up_at_the_next_renewal() -> None:
    net = network(40, config=WatchConfig(ttl=60))
    # A watcher far from the key: it holds no copy itself, only notifications reach it.
    by_distance = sorted(
        net.nodes, key=lambda n: int.from_bytes(n.node_id, "big") ^ int.from_bytes(KEY, "big")
    )
    watcher, publisher = by_distance[-1], by_distance[-2]
    net.watch(watcher)
    net.run_until(net.now + 5)
    net.lose_notifies = True
    net.put(publisher, version(6))
    assert net.seen(watcher) == []
    net.lose_notifies = False
    net.run_until(net.now + 60)  # one renewal (after 45 s) with since: nothing yet
    assert net.seen(watcher) == [("update", 6)]
