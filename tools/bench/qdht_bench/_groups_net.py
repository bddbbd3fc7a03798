"""``qdht-bench groups``, network part: how long until a group agrees on a new epoch.

``--net-members`` full nodes (default 10) in this process, each on its own
UDP socket on 127.0.0.1, plus ``--net-extra`` nodes that only hold records;
node 0 creates a group and adds the others one by one (each add is a
commit, its window Δ, then a Welcome).  Then ``--net-updates`` times a
member in turn commits an update, and the figure is the wall time from the
call until the last member reported the new epoch (its ``EpochChanged``),
every member checked to hold the same epoch authenticator.  Δ is part of
it by design (12-groups.md §7.3): ``agree_minus_window_ms`` is the rest.
Delivery is direct (DHT records, watched); mixes come with the mixnet.
Baseline in the same run: one ``put_signed`` of a slot-sized write-once
record (``baseline_put_ms``).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import trio

from qdht import Config, Node
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import sign_mutable
from qdht.groups import GroupJoined, GroupNotice, GroupsConfig, record_salt
from qdht.identity import Identity
from qdht.messaging import EpochChanged, GroupConfig
from qdht_bench._common import BenchResult, median
from qdht_bench.records_net import spawn_node

__all__ = ["add_network_arguments", "measure_agreement"]


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--net-members", type=int, default=10, help="members on loopback (0: skip the network)"
    )
    parser.add_argument("--net-extra", type=int, default=5, help="further nodes holding records")
    parser.add_argument("--net-updates", type=int, default=5, help="epochs measured")
    parser.add_argument("--window", type=float, default=1.0, help="the window Δ (s)")


async def _agreement(args: argparse.Namespace, result: BenchResult) -> None:
    groups = GroupsConfig(group=GroupConfig(window=args.window, turn_interval=0.5))
    seen: dict[tuple[int, int], float] = {}
    agreed: dict[int, trio.Event] = {}
    joined: list[trio.Event] = []
    async with trio.open_nursery() as nursery:
        nodes: list[Node] = []
        for i in range(args.net_members + args.net_extra):
            config = Config(
                listen=("udp://127.0.0.1:0",),
                identity=Identity.generate(0),
                puzzle_difficulty=0,
                groups=groups if i < args.net_members else None,
            )
            nodes.append(await spawn_node(nursery, config))
        for node in nodes[1:]:
            await node.bootstrap([nodes[0].contact])
        members = nodes[: args.net_members]

        async def watch(i: int, node: Node, *, task_status: Any) -> None:
            async with node.groups.events() as notices:
                task_status.started()
                notice: GroupNotice
                async for notice in notices:
                    if isinstance(notice.event, EpochChanged):
                        epoch = notice.event.epoch
                        seen[(i, epoch)] = time.perf_counter()
                        if all((j, epoch) in seen for j in range(len(members))):
                            agreed.setdefault(epoch, trio.Event()).set()
                    elif isinstance(notice.event, GroupJoined):
                        joined[i].set()

        for i, node in enumerate(members):
            joined.append(trio.Event())
            await nursery.start(watch, i, node)
        gid = await members[0].groups.create()
        for i, node in enumerate(members[1:], 1):
            await members[0].groups.add(gid, node.groups.key_package())
            await joined[i].wait()
        states = [m.groups.group(gid) for m in members]
        times, rest = [], []
        for u in range(args.net_updates):
            epoch = states[0].epoch + 1
            start = time.perf_counter()
            await members[1 + u % (len(members) - 1)].groups.update(gid)
            with trio.fail_after(60):
                await agreed.setdefault(epoch, trio.Event()).wait()
            if len({s.epoch_authenticator for s in states}) != 1:
                raise RuntimeError("members disagree on the epoch")
            took = (max(seen[(i, epoch)] for i in range(len(members))) - start) * 1000
            times.append(took)
            rest.append(took - args.window * 1000)
        puts = []
        for _ in range(5):
            key = MLDSAPrivateKey.from_seed(os.urandom(32))
            record = sign_mutable(
                key,
                salt=record_salt(b"slot"),
                seq=0,
                value=os.urandom(16000),
                expires=int(time.time()) + 3600,
            )
            start = time.perf_counter()
            await nodes[-1].put_signed(record, ttl_remember=False)
            puts.append((time.perf_counter() - start) * 1000)
        result.add(f"net{args.net_members}_agree_ms", median(times))
        result.add(f"net{args.net_members}_agree_minus_window_ms", median(rest))
        result.add("baseline_put_ms", median(puts))
        result.add(f"net{args.net_members}_agree_per_put", median(times) / median(puts))
        result.notes.append(
            f"network: {args.net_members} members + {args.net_extra} nodes on 127.0.0.1 UDP, "
            f"window Δ {args.window:g} s, {args.net_updates} updates, wall time, medians; "
            "direct delivery (no mixes yet)"
        )
        nursery.cancel_scope.cancel()


def measure_agreement(args: argparse.Namespace, result: BenchResult) -> None:
    """Add the network figures to ``result`` (nothing with ``--net-members 0``)."""
    if args.net_members >= 2:
        trio.run(_agreement, args, result)
