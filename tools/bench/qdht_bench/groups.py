"""``qdht-bench groups``: group commits and messages at 10 and 100 members.

A group of n members is built in-process (adds in batches of at most
``ADD_BATCH`` key packages per commit, the most one 64 KiB slot holds), then
``--count`` members each create one commit for the same epoch (an empty
commit: the committer's fresh leaf, with the commit secret sealed to the
n-1 others) and one other member processes every one of them: slot
signature, decryption, commit signature, opening its sealed secret, key
schedule and confirmation tag.  Times are process CPU time, medians.

Bytes: ``commit_slot_bytes`` is the slot write (the encrypted commit with
the slot key's signature), ``commit_total_bytes`` adds the n-1 sealed
secrets, ``fetched_per_receiver_bytes`` is what one receiver reads: the slot
and its own sealed secret (the research estimate for a flat commit was
5.9 KB).  Baselines in the same run: one HPKE seal and open to one leaf
(X-Wing, the unit of flat key distribution), one ML-DSA-65 signature and
verification.  Messages: seal and open of a 100-byte message padded to
2048 bytes.

Network (``--net-members``, default 10; 0 skips it): the time until every
member of a group on a loopback network agrees on a new epoch, with direct
delivery through DHT records and then through ``--net-mixes`` mixes
(``_groups_net.py``).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

from qdht.crypto.mldsa import MLDSAPrivateKey, verify
from qdht.messaging import CommitBundle, Group, GroupInvitations, LeafKey, MemberKeys, leaf_ref
from qdht.messaging.mls import encrypt_with_label
from qdht.wire import LeafNode, encode
from qdht_bench._common import BenchResult, median
from qdht_bench._groups_net import add_network_arguments, measure_agreement

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION: Final = "group commit create/process time and bytes at 10/100 members, messages"
T = TypeVar("T")
#: Add proposals per building commit: ~14.5 KB each (key package and signature);
#: a slot holds 64 KiB.
ADD_BATCH: Final = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100], help="group sizes")
    parser.add_argument("--count", type=int, default=5, help="commits measured per size")
    parser.add_argument("--messages", type=int, default=200, help="messages measured")
    parser.add_argument("--seed", type=int, default=1, help="randomness seed")
    add_network_arguments(parser)


def _timed(fn: Callable[..., T], *args: Any) -> tuple[float, T]:
    """(CPU milliseconds, result) of ``fn(*args)``."""
    start = time.process_time()
    out = fn(*args)
    return (time.process_time() - start) * 1000, out


def _deliver(bundle: CommitBundle, members: list[Group], now: float) -> None:
    for member in members:
        if member.index != bundle.committer:
            member.receive_commit(bundle.slot, bundle.sealed.get(member.index), now)
    for member in members:
        member.handle_timer(now + 10.0)


def _build(n: int, rng: random.Random) -> list[Group]:
    """A group of ``n`` members, every one in the same epoch."""
    founder = Group.create(
        b"bench-%d" % n, MemberKeys.generate(b"m0", rng.randbytes), random=rng.randbytes
    )
    members = [founder]
    now = 0.0
    while len(members) < n:
        batch = min(ADD_BATCH, n - len(members))
        invitations = []
        for i in range(batch):
            inv = GroupInvitations(random=rng.randbytes)
            founder.propose_add(inv.new_key_package(b"m%d" % (len(members) + i)))
            invitations.append(inv)
        bundle = founder.commit(now)
        _deliver(bundle, members, now)
        leaves: dict[bytes, LeafNode] = {}
        for index in founder.members():
            leaf = founder.leaf(index)
            assert leaf is not None
            leaves[leaf_ref(leaf)] = leaf
        for inv, welcome in zip(invitations, bundle.welcomes.values(), strict=True):
            joined = inv.receive_welcome(welcome, leaves, now)
            if joined is None:
                raise RuntimeError(f"join failed: {inv.stats()}")
            members.append(joined)
        now += 20.0
    if len({m.epoch_authenticator for m in members}) != 1:
        raise RuntimeError("members disagree on the epoch")
    return members


def _baselines(result: BenchResult, rng: random.Random, count: int) -> tuple[float, float]:
    key = LeafKey(rng.randbytes(32))
    public = key.public_key_bytes()
    seal, open_, sign, check = [], [], [], []
    signer = MLDSAPrivateKey.from_seed(rng.randbytes(32))
    pk = signer.public_key_bytes()
    message = bytes(200)
    context = b"qdht/v1/bench"
    for _ in range(count):
        ms, (kem, ct) = _timed(encrypt_with_label, public, b"x", b"", bytes(32))
        seal.append(ms)
        open_.append(_timed(key.decrypt, b"x", b"", kem, ct)[0])
        ms, sig = _timed(signer.sign, message, context)
        sign.append(ms)
        check.append(_timed(verify, pk, message, sig, context)[0])
    result.add("baseline_hpke_seal_ms", median(seal))
    result.add("baseline_hpke_open_ms", median(open_))
    result.add("baseline_mldsa_sign_ms", median(sign))
    result.add("baseline_mldsa_verify_ms", median(check))
    return median(seal), median(open_)


def run(args: argparse.Namespace) -> BenchResult:
    rng = random.Random(args.seed)
    result = BenchResult("groups")
    seal_ms, open_ms = _baselines(result, rng, 50)
    for n in args.sizes:
        members = _build(n, rng)
        committers = members[1 : 1 + args.count]
        receiver = members[0]
        create, process = [], []
        bundles: list[CommitBundle] = []
        for i, committer in enumerate(committers):
            ms, bundle = _timed(committer.commit, 1000.0 + i)
            create.append(ms)
            bundles.append(bundle)
        for bundle in bundles:
            sealed = bundle.sealed[receiver.index]
            process.append(_timed(receiver.receive_commit, bundle.slot, sealed, 2000.0)[0])
        drops = receiver.stats()["drops"]
        if drops:
            raise RuntimeError(f"receiver refused a commit: {drops}")
        bundle = bundles[0]
        slot = len(bundle.slot)
        sealed_sizes = [len(s) for s in bundle.sealed.values()]
        result.add(f"n{n}_commit_create_ms", median(create))
        result.add(f"n{n}_commit_process_ms", median(process))
        result.add(f"n{n}_commit_create_per_hpke_seal", median(create) / seal_ms)
        result.add(f"n{n}_commit_process_per_hpke_open", median(process) / open_ms)
        result.add(f"n{n}_commit_slot_bytes", slot)
        result.add(f"n{n}_commit_total_bytes", slot + sum(sealed_sizes))
        result.add(f"n{n}_fetched_per_receiver_bytes", slot + sealed_sizes[0])
        leaf = receiver.leaf(receiver.index)
        assert leaf is not None
        leaf_bytes = len(encode(leaf))
    members = _build(10, rng)
    sender, reader = members[1], members[2]
    text = bytes(100)
    encrypt, decrypt = [], []
    for _ in range(args.messages):
        ms, sealed_message = _timed(sender.seal_message, text)
        encrypt.append(ms)
        decrypt.append(_timed(reader.open_message, sealed_message)[0])
    result.add("message_bytes", len(sealed_message))
    result.add("message_seal_ms", median(encrypt))
    result.add("message_open_ms", median(decrypt))
    result.add("leaf_bytes", leaf_bytes)
    result.add("sealed_secret_bytes", sealed_sizes[0])
    result.notes.append(
        "a receiver's fetch is the slot (ML-DSA-65 slot key 1,952 B and signature 3,309 B,"
        " AEAD nonce and tag) around the commit (the committer's new leaf, its signature"
        " 3,309 B, a 32-byte digest per receiver), plus its own sealed secret"
    )
    result.notes.append(
        f"process CPU time, medians; {args.count} commits per size, {args.messages} messages"
    )
    measure_agreement(args, result)
    return result
