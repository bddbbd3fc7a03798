"""A loopback for group cores: members, a commit slot per epoch, delivery in order."""

from __future__ import annotations

import random
from collections.abc import Iterable

from qdht.messaging import CommitBundle, Group, GroupConfig, GroupInvitations, MemberKeys, leaf_ref
from qdht.wire import LeafNode

WINDOW = 5.0
CONFIG = GroupConfig(window=WINDOW)


def rng(seed: int) -> random.Random:
    return random.Random(seed)


def founder(name: bytes, seed: int = 1, config: GroupConfig = CONFIG) -> Group:
    r = rng(seed)
    keys = MemberKeys.generate(name, r.randbytes)
    return Group.create(b"group-" + name, keys, random=r.randbytes, config=config)


def leaves_of(group: Group) -> dict[bytes, LeafNode]:
    """What a joiner reads from the roster records: every current leaf by reference."""
    out = {}
    for index in group.members():
        leaf = group.leaf(index)
        assert leaf is not None
        out[leaf_ref(leaf)] = leaf
    return out


def deliver(bundle: CommitBundle, members: Iterable[Group], now: float) -> None:
    """Every member reads the slot and its own sealed secret at ``now``."""
    for member in members:
        member.receive_commit(bundle.slot, bundle.sealed.get(member.index), now)


def settle(members: Iterable[Group], now: float) -> None:
    """Every member's window ends: each applies its winning commit."""
    for member in members:
        member.handle_timer(now + WINDOW)


def add_member(
    group_members: list[Group],
    committer: Group,
    name: bytes,
    seed: int,
    now: float,
    config: GroupConfig = CONFIG,
) -> Group:
    """Add ``name`` through ``committer``; every member and the joiner end in the new epoch."""
    invitations = GroupInvitations(random=rng(seed).randbytes, config=config)
    kp = invitations.new_key_package(name)
    committer.propose_add(kp)
    bundle = committer.commit(now)
    others = [m for m in group_members if m is not committer]
    deliver(bundle, others, now)
    settle(group_members, now)
    (welcome,) = bundle.welcomes.values()
    joined = invitations.receive_welcome(welcome, leaves_of(committer), now)
    assert joined is not None
    group_members.append(joined)
    return joined


def make_group(n: int, seed: int = 7, config: GroupConfig = CONFIG) -> list[Group]:
    """A group of ``n`` members built by successive adds from the first."""
    members = [founder(b"m0", seed, config)]
    for i in range(1, n):
        add_member(members, members[0], b"m%d" % i, seed * 1000 + i, float(i), config)
    return members
