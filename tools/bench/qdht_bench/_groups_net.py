"""``qdht-bench groups``, network part: how long until a group agrees on a new epoch.

``--net-members`` full nodes (default 10) in this process, each on its own
UDP socket on 127.0.0.1 (``qdht.testing.open_group_network``): first with
direct delivery, through ``--net-extra`` nodes that only hold records; then,
unless ``--net-mixes 0``, with one authority and ``--net-mixes`` mixes, every
member a mixnet client whose group records all go through exits (12-groups.md
§14).  Node 0 creates a group and adds the others one by one (each add is a
commit, its window Δ, then a Welcome).  Then ``--net-updates`` times a
member in turn commits an update, and the figure is the wall time from the
call until the last member reported the new epoch (its ``EpochChanged``),
every member checked to hold the same epoch authenticator.  Δ is part of it
by design (12-groups.md §7.3): ``agree_minus_window_ms`` is the rest.
Baselines in the same run: one ``put_signed`` of a slot-sized write-once
record (``baseline_put_ms``), and with mixes one anonymous get of it
(``baseline_anonymous_get_ms``).
"""

from __future__ import annotations

import argparse
import os
import time

import trio

from qdht import Node
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import sign_mutable
from qdht.groups import GroupJoined, GroupNotice, GroupsConfig, record_key, record_salt
from qdht.messaging import EpochChanged, GroupConfig
from qdht.mixnet import MixnetConfig
from qdht.testing import open_group_network
from qdht_bench._common import BenchResult, median

__all__ = ["add_network_arguments", "measure_agreement"]

#: The mixnet of the measurement: a payload that carries a whole group record,
#: light cover traffic (the process runs every node).
BENCH_MIXNET = MixnetConfig(
    user_payload_size=16384,
    lambda_payload=2.0,
    lambda_loop=0.1,
    lambda_drop=0.1,
    lambda_mix_loop=0.1,
    lambda_dummy_lookup=0.0,
    mean_delay=0.02,
    exits=1,
)


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--net-members", type=int, default=10, help="members on loopback (0: skip the network)"
    )
    parser.add_argument("--net-extra", type=int, default=5, help="further nodes holding records")
    parser.add_argument(
        "--net-mixes", type=int, default=4, help="mixes for the mixnet run (0: skip it)"
    )
    parser.add_argument("--net-updates", type=int, default=5, help="epochs measured")
    parser.add_argument("--window", type=float, default=1.0, help="the window Δ (s)")
    parser.add_argument(
        "--anonymous-poll", type=float, default=3.0, help="poll interval through mixes (s)"
    )


async def _agreement(args: argparse.Namespace, result: BenchResult, mixes: int) -> None:
    groups = GroupsConfig(
        group=GroupConfig(window=args.window, turn_interval=0.5),
        anonymous_poll=args.anonymous_poll,
    )
    seen: dict[tuple[int, int], float] = {}
    agreed: dict[int, trio.Event] = {}
    joined = [trio.Event() for _ in range(args.net_members)]
    n = args.net_members

    async def watch(i: int, node: Node) -> None:
        async with node.groups.events() as notices:
            notice: GroupNotice
            async for notice in notices:
                if isinstance(notice.event, EpochChanged):
                    epoch = notice.event.epoch
                    seen[(i, epoch)] = time.perf_counter()
                    if all((j, epoch) in seen for j in range(n)):
                        agreed.setdefault(epoch, trio.Event()).set()
                elif isinstance(notice.event, GroupJoined):
                    joined[i].set()

    async with open_group_network(
        n,
        groups=groups,
        seed=args.seed,
        mixes=mixes,
        holders=args.net_extra,
        mixnet=BENCH_MIXNET,
        watcher=watch,
    ) as gn:
        members = [gn.member(i) for i in range(n)]
        gid = await members[0].groups.create()
        for i, node in enumerate(members[1:], 1):
            await members[0].groups.add(gid, node.groups.key_package())
            with trio.fail_after(300):
                await joined[i].wait()
        states = [m.groups.group(gid) for m in members]
        times, rest = [], []
        for u in range(args.net_updates):
            epoch = states[0].epoch + 1
            start = time.perf_counter()
            await members[1 + u % (len(members) - 1)].groups.update(gid)
            with trio.fail_after(300):
                await agreed.setdefault(epoch, trio.Event()).wait()
            if len({s.epoch_authenticator for s in states}) != 1:
                raise RuntimeError("members disagree on the epoch")
            took = (max(seen[(i, epoch)] for i in range(n)) - start) * 1000
            times.append(took)
            rest.append(took - args.window * 1000)
        puts, gets = [], []
        for _ in range(5):
            key = MLDSAPrivateKey.from_seed(os.urandom(32))
            record = sign_mutable(
                key,
                salt=record_salt(b"slot"),
                seq=0,
                value=os.urandom(8000),
                expires=int(time.time()) + 3600,
            )
            start = time.perf_counter()
            await members[-1].put_signed(record, ttl_remember=False)
            puts.append((time.perf_counter() - start) * 1000)
            if mixes:
                start = time.perf_counter()
                await members[0].anonymous.get(record_key(key, b"slot"))
                gets.append((time.perf_counter() - start) * 1000)
        tag = f"net{n}_mix" if mixes else f"net{n}"
        result.add(f"{tag}_agree_ms", median(times))
        result.add(f"{tag}_agree_minus_window_ms", median(rest))
        result.add(f"{tag}_baseline_put_ms", median(puts))
        result.add(f"{tag}_agree_per_put", median(times) / median(puts))
        if mixes:
            result.add(f"{tag}_baseline_anonymous_get_ms", median(gets))
            result.add(f"{tag}_agree_per_anonymous_get", median(times) / median(gets))
        how = (
            f"{mixes} mixes and 1 authority, every record through exits, payload "
            f"{BENCH_MIXNET.user_payload_size} B, λ_payload {BENCH_MIXNET.lambda_payload:g}/s, "
            f"polls every {args.anonymous_poll:g} s"
            if mixes
            else f"direct delivery through {args.net_extra} holders, watched keys"
        )
        result.notes.append(
            f"network ({tag}): {n} members on 127.0.0.1 UDP, {how}; window Δ {args.window:g} s, "
            f"{args.net_updates} updates, wall time, medians"
        )


def measure_agreement(args: argparse.Namespace, result: BenchResult) -> None:
    """Add the network figures to ``result`` (nothing with ``--net-members 0``)."""
    if args.net_members >= 2:
        trio.run(_agreement, args, result, 0)
        if args.net_mixes > 0:
            trio.run(_agreement, args, result, args.net_mixes)
