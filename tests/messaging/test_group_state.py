"""The group state machine: membership, healing, ordering, forks and every refused input."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import attrs
import pytest

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.errors import ConfigError, GroupError, InvalidSignatureError
from qdht.messaging import (
    DEFAULT_KEEP_EPOCHS,
    EpochChanged,
    Equivocation,
    FlatKeyDistribution,
    ForkDetected,
    Group,
    GroupConfig,
    GroupEvent,
    GroupInvitations,
    KeyPackageBundle,
    LeafKey,
    MemberAdded,
    MemberKeys,
    MemberRemoved,
    Removed,
)
from qdht.messaging.mls import GroupContext
from qdht.wire import Commit, CommitSlot, GroupMessage, LeafNode, SealedSecret, decode, encode

from ._group_helpers import WINDOW, add_member, deliver, founder, leaves_of, make_group, rng, settle


def _events(group: Group) -> list[GroupEvent]:
    out = []
    while (event := group.next_event()) is not None:
        out.append(event)
    return out


def _drops(group: Group) -> dict[str, int]:
    drops = group.stats()["drops"]
    assert isinstance(drops, dict)
    return drops


def test_members_agree_on_each_epoch_and_read_each_other() -> None:
    members = make_group(4)
    assert {m.epoch for m in members} == {3}
    assert len({m.epoch_authenticator for m in members}) == 1
    assert len({m.export_secret(b"app", b"ctx", 32) for m in members}) == 1
    assert members[2].members() == {0: b"m0", 1: b"m1", 2: b"m2", 3: b"m3"}
    sealed = members[2].seal_message(b"hello group")
    for reader in (members[0], members[1], members[3]):
        got = reader.open_message(sealed)
        assert got is not None
        assert (got.sender, got.identity, got.data) == (2, b"m2", b"hello group")


def test_events_name_additions_and_the_new_epoch() -> None:
    members = make_group(2)
    _events(members[0])
    add_member(members, members[1], b"carol", 99, 10.0)
    events = _events(members[0])
    assert MemberAdded(2, 2, b"carol") in events
    assert isinstance(events[-1], EpochChanged)
    assert events[-1].epoch == 2
    # The committer learns that its own commit won: now it may send the Welcome.
    won = [e for e in _events(members[1]) if isinstance(e, EpochChanged)]
    assert won[-1].commit_hash == events[-1].commit_hash


def test_committers_take_turns_in_an_order_all_members_agree_on() -> None:
    members = make_group(4)
    delays = sorted(m.committer_delay() for m in members)
    assert delays == [0.0, 2.0, 4.0, 6.0]
    first = min(members, key=lambda m: m.committer_delay())
    bundle = first.commit(900.0)
    deliver(bundle, [m for m in members if m is not first], 900.0)
    settle(members, 900.0)
    # A new epoch, a new order.
    assert sorted(m.committer_delay() for m in members) == delays


def test_messages_have_one_size_whatever_their_length() -> None:
    members = make_group(2)
    sizes = {len(members[0].seal_message(b"x" * n)) for n in (0, 1, 100, 2000)}
    assert len(sizes) == 1
    with pytest.raises(GroupError):
        members[0].seal_message(b"x" * 2048)


def test_removed_member_cannot_read_the_next_epoch_nor_write_its_slot() -> None:
    members = make_group(3)
    alice, bob, carol = members
    before_removal = copy.deepcopy(carol)
    alice.propose_remove(2)
    bundle = alice.commit(20.0)
    assert 2 not in bundle.sealed
    deliver(bundle, [bob, carol], 20.0)
    settle(members, 20.0)
    assert alice.epoch == bob.epoch == 3
    assert carol.epoch == 2
    assert not carol.active
    assert Removed(2) in _events(carol)
    assert MemberRemoved(3, 2, b"m2") in _events(bob)
    # carol cannot read epoch 4 ...
    secret = alice.seal_message(b"not for carol")
    assert carol.open_message(secret) is None
    assert before_removal.open_message(secret) is None
    assert _drops(before_removal)["unknown-epoch"] == 1
    # ... nor address or write its commit slot: her slot key is epoch 3's.
    assert before_removal.slot_id() != alice.slot_id()
    with pytest.raises(GroupError):
        carol.commit(21.0)
    attempt = before_removal.commit(21.0)
    alice.receive_commit(attempt.slot, attempt.sealed.get(0), 21.0)
    assert _drops(alice)["removed-sender"] == 1
    forged_key = MLDSAPrivateKey.from_seed(bytes(32))
    forged = decode(attempt.slot, expect=(CommitSlot,))
    assert isinstance(forged, CommitSlot)
    unsigned = attrs.evolve(forged, public_key=forged_key.public_key_bytes())
    signed = attrs.evolve(
        unsigned, signature=forged_key.sign(unsigned.signed_bytes(), CommitSlot.CONTEXT)
    )
    bob.receive_commit(encode(signed), None, 21.0)
    assert _drops(bob)["wrong-slot"] == 1
    assert alice.epoch == bob.epoch == 3


def test_joiner_cannot_read_earlier_messages() -> None:
    members = make_group(2)
    earlier = members[0].seal_message(b"before you came")
    dave = add_member(members, members[0], b"dave", 5, 30.0)
    assert dave.open_message(earlier) is None
    assert _drops(dave)["unknown-epoch"] == 1
    later = members[1].seal_message(b"welcome dave")
    got = dave.open_message(later)
    assert got is not None
    assert got.data == b"welcome dave"


def test_state_before_an_update_commit_cannot_decrypt_after_it() -> None:
    members = make_group(3)
    alice, bob, _carol = members
    stolen = copy.deepcopy(alice)
    bundle = alice.commit(40.0)  # an empty commit: alice's fresh leaf heals her
    deliver(bundle, members[1:], 40.0)
    stolen.receive_commit(bundle.slot, bundle.sealed.get(0), 40.0)
    settle([*members, stolen], 40.0)
    assert alice.epoch == bob.epoch == stolen.epoch + 1
    assert _drops(stolen)["own-commit-unknown"] == 1
    assert stolen.open_message(bob.seal_message(b"healed")) is None
    assert _drops(stolen)["unknown-epoch"] == 1


def test_state_before_an_update_proposal_cannot_decrypt_after_it() -> None:
    members = make_group(3)
    alice, bob, carol = members
    stolen = copy.deepcopy(bob)
    proposal = bob.propose_update()
    assert alice.receive_proposal(encode(proposal)) is not None
    bundle = alice.commit(50.0)
    deliver(bundle, [bob, carol, stolen], 50.0)
    settle([*members, stolen], 50.0)
    assert alice.epoch == bob.epoch == carol.epoch == stolen.epoch + 1
    assert _drops(stolen)["unknown-update"] == 1
    message = carol.seal_message(b"after bob's update")
    got = bob.open_message(message)
    assert got is not None
    assert got.data == b"after bob's update"
    assert stolen.open_message(message) is None


def test_two_concurrent_commits_converge_on_one_epoch() -> None:
    members = make_group(4)
    first = members[1].commit(60.0)
    second = members[2].commit(60.5)
    # Members see the two commits in different orders, all within the window.
    for i, member in enumerate(members):
        order = [first, second] if i % 2 else [second, first]
        for bundle in order:
            if member.index != bundle.committer:
                member.receive_commit(bundle.slot, bundle.sealed.get(member.index), 61.0)
    settle(members, 61.0)
    assert {m.epoch for m in members} == {4}
    assert len({m.epoch_authenticator for m in members}) == 1
    winner = min(first.commit_hash, second.commit_hash)
    loser_bundle = second if winner == first.commit_hash else first
    # A second write to the decided slot is refused by everyone.
    late = members[3]
    late.receive_commit(loser_bundle.slot, loser_bundle.sealed.get(late.index), 70.0)
    assert _drops(late)["replay"] == 1


def test_a_late_lower_commit_switches_the_branch_and_names_the_fork() -> None:
    members = make_group(3)
    alice, bob, carol = members
    one = alice.commit(80.0)
    two = bob.commit(80.0)
    low, high = (one, two) if one.commit_hash < two.commit_hash else (two, one)
    # carol only sees the higher commit in time and applies it ...
    carol.receive_commit(high.slot, high.sealed.get(2), 80.0)
    settle([carol], 80.0)
    _events(carol)
    assert carol.epoch == 3
    on_high = carol.epoch_id
    # ... then learns of the lower one: the same fork, resolved to the lower hash.
    carol.receive_commit(low.slot, low.sealed.get(2), 90.0)
    events = _events(carol)
    fork = next(e for e in events if isinstance(e, ForkDetected))
    assert fork.ours == on_high
    assert fork.winner == fork.theirs != on_high
    assert carol.epoch == 3
    for member in (alice, bob):
        other = high if member.index == low.committer else low
        member.receive_commit(other.slot, other.sealed.get(member.index), 80.0)
    settle([alice, bob], 80.0)
    assert len({m.epoch_authenticator for m in members}) == 1


def test_an_equivocating_committer_is_detected() -> None:
    members = make_group(3)
    alice, bob, carol = members
    twin = copy.deepcopy(alice)
    one = alice.commit(100.0)
    two = twin.commit(100.0)  # a second, different commit by the same member
    for member in (bob, carol):
        member.receive_commit(one.slot, one.sealed.get(member.index), 100.0)
        member.receive_commit(two.slot, two.sealed.get(member.index), 100.5)
        events = _events(member)
        assert Equivocation(2, 0, tuple(sorted([one.commit_hash, two.commit_hash]))) in events
        assert _drops(member)["equivocation"] == 1
    settle([bob, carol], 100.5)
    assert bob.epoch_authenticator == carol.epoch_authenticator


def _rewrap(member: Group, commit: Commit) -> bytes:
    """A slot write by ``member`` (who knows the epoch's keys) carrying ``commit``."""
    return member._seal_slot(member._state, commit)


def _commit_of(member: Group, slot: bytes) -> Commit:
    _, commit = member._open_slot(slot)
    return commit


def test_invalid_commits_are_refused_and_never_advance_the_group() -> None:
    members = make_group(3)
    alice, bob, carol = members
    epoch, auth = bob.epoch, bob.epoch_authenticator
    good = alice.commit(200.0)
    commit = _commit_of(bob, good.slot)
    cases = {
        "bad-confirmation-tag": attrs.evolve(commit, confirmation_tag=bytes(32)),
        "bad-signature": attrs.evolve(commit, signature=bytes(3309)),
        "not-member": attrs.evolve(commit, sender=7),
        "wrong-epoch": attrs.evolve(commit, epoch=commit.epoch + 1),
    }
    for reason, bad in cases.items():
        bob.receive_commit(_rewrap(carol, bad), good.sealed.get(1), 200.0)
        assert _drops(bob)[reason] == 1, reason
    bob.receive_commit(good.slot, None, 200.0)
    assert _drops(bob)["missing-secret"] == 1
    bob.receive_commit(good.slot, good.sealed[2], 200.0)
    assert _drops(bob)["bad-secret"] == 1
    bob.receive_commit(b"\xa0", None, 200.0)
    assert _drops(bob)["decode"] == 1
    settle([bob], 200.0)
    assert (bob.epoch, bob.epoch_authenticator) == (epoch, auth)
    # The genuine commit still goes through, and once only.
    bob.receive_commit(good.slot, good.sealed[1], 201.0)
    bob.receive_commit(good.slot, good.sealed[1], 201.0)
    assert _drops(bob)["replay"] == 1
    settle([bob], 201.0)
    assert bob.epoch == epoch + 1


def test_a_replayed_old_commit_is_refused() -> None:
    members = make_group(3)
    alice, bob, _carol = members
    first = alice.commit(300.0)
    deliver(first, members[1:], 300.0)
    settle(members, 300.0)
    bob.receive_commit(first.slot, first.sealed[1], 310.0)
    assert _drops(bob)["replay"] == 1
    assert bob.epoch == alice.epoch


def test_proposals_from_non_members_or_other_epochs_are_refused() -> None:
    members = make_group(2)
    alice, bob = members
    outsider = founder(b"eve", 66)
    bob.receive_proposal(encode(outsider.propose_update()))
    stale = alice.propose_update()
    bundle = alice.commit(400.0)
    deliver(bundle, [bob], 400.0)
    settle(members, 400.0)
    bob.receive_proposal(encode(stale))
    assert _drops(bob)["wrong-epoch"] == 2


def test_a_welcome_for_someone_else_is_refused() -> None:
    members = make_group(2)
    alice = members[0]
    erin = GroupInvitations(random=rng(8).randbytes)
    frank = GroupInvitations(random=rng(9).randbytes)
    alice.propose_add(erin.new_key_package(b"erin"))
    bundle = alice.commit(500.0)
    (welcome,) = bundle.welcomes.values()
    assert frank.receive_welcome(welcome, leaves_of(alice), 500.0) is None
    assert frank.stats()["drops"] == {"welcome-not-for-us": 1}
    settle([alice], 500.0)
    assert erin.receive_welcome(welcome, {}, 500.0) is None
    assert erin.stats()["drops"] == {"missing-leaf": 1}
    joined = erin.receive_welcome(welcome, leaves_of(alice), 500.0)
    assert joined is not None
    assert joined.epoch_authenticator == alice.epoch_authenticator


def test_tampered_messages_are_refused() -> None:
    members = make_group(2)
    alice, bob = members
    sealed = decode(alice.seal_message(b"hi"), expect=(GroupMessage,))
    assert isinstance(sealed, GroupMessage)
    # The tag's last byte: the sample for the sender-data key is unchanged.
    flipped = sealed.ciphertext[:-1] + bytes([sealed.ciphertext[-1] ^ 1])
    assert bob.open_message(encode(attrs.evolve(sealed, ciphertext=flipped))) is None
    # The first byte: the sender-data key changes with the sample.
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    assert bob.open_message(encode(attrs.evolve(sealed, ciphertext=flipped))) is None
    assert bob.open_message(encode(attrs.evolve(sealed, epoch_id=bytes(32)))) is None
    # None of these burned the genuine message's key; a replay of it is refused.
    assert bob.open_message(encode(sealed)) is not None
    assert bob.open_message(encode(sealed)) is None
    assert _drops(bob) == {
        "bad-ciphertext": 1,
        "bad-sender-data": 1,
        "unknown-epoch": 1,
        "stale-generation": 1,
    }


def test_local_misuse_raises() -> None:
    alice = founder(b"alice", 3)
    with pytest.raises(GroupError):
        alice.propose_remove(0)
    with pytest.raises(ConfigError):
        Group.create(b"", MemberKeys.generate(b"x", rng(1).randbytes))
    with pytest.raises(ConfigError):
        GroupConfig(pad_size=8)
    with pytest.raises(ConfigError):
        GroupConfig(window=-1.0)
    with pytest.raises(TypeError):
        GroupConfig(keep_epochs=1.5)  # type: ignore[arg-type]
    bundle = KeyPackageBundle.generate(b"bob", rng(2).randbytes)
    bad = attrs.evolve(bundle.key_package, signature=bytes(3309))
    with pytest.raises(InvalidSignatureError):
        alice.propose_add(bad)


def test_a_member_offline_for_two_epochs_catches_up_from_the_slots() -> None:
    members = make_group(4)
    alice, bob, carol, dave = members
    online = [alice, bob, carol]
    slots = []
    for committer, now in ((bob, 600.0), (carol, 620.0)):
        bundle = committer.commit(now)
        slots.append(bundle)
        deliver(bundle, [m for m in online if m is not committer], now)
        settle(online, now)
    missed = carol.seal_message(b"while dave was away")
    assert dave.open_message(missed) is None  # not yet: dave is two epochs behind
    for bundle in slots:  # dave reads epoch n's slot, then epoch n+1's
        dave.receive_commit(bundle.slot, bundle.sealed.get(dave.index), 700.0)
        settle([dave], 700.0)
    assert dave.epoch_authenticator == alice.epoch_authenticator
    got = dave.open_message(missed)
    assert got is not None
    assert got.data == b"while dave was away"


class _CountingDistribution(FlatKeyDistribution):
    """Key distribution is one interface: a replacement sees every seal and open."""

    def __init__(self) -> None:
        self.sealed = 0
        self.opened = 0

    def seal(
        self,
        commit_secret: bytes,
        recipients: Sequence[tuple[int, LeafNode]],
        context: GroupContext,
    ) -> list[SealedSecret]:
        self.sealed += len(recipients)
        return super().seal(commit_secret, recipients, context)

    def open(self, sealed: SealedSecret, key: LeafKey, context: GroupContext) -> bytes:
        self.opened += 1
        return super().open(sealed, key, context)


def test_key_distribution_is_replaceable() -> None:
    members = make_group(3)
    alice, bob, carol = members
    counting = _CountingDistribution()
    alice._kd = counting
    bob._kd = counting
    bundle = alice.commit(800.0)
    deliver(bundle, [bob, carol], 800.0)
    settle(members, 800.0)
    assert (counting.sealed, counting.opened) == (2, 1)
    assert len({m.epoch_authenticator for m in members}) == 1


def test_a_commit_that_keeps_the_committers_old_key_is_refused() -> None:
    members = make_group(3)
    alice, bob, carol = members
    good = alice.commit(1000.0)
    commit = _commit_of(bob, good.slot)
    old_leaf = bob.leaf(0)
    assert old_leaf is not None
    stale = attrs.evolve(commit, leaf=old_leaf)
    state = alice._state
    signature = state.keys.signing_key().sign(
        stale.content_bytes() + state.context.serialize(), Commit.CONTEXT
    )
    bob.receive_commit(_rewrap(carol, attrs.evolve(stale, signature=signature)), None, 1000.0)
    assert _drops(bob) == {"bad-commit": 1}


def test_the_network_sees_neither_group_nor_members_nor_epoch() -> None:
    members = make_group(3)
    alice, bob, _carol = members
    first_slot = alice.slot_id()
    bundle = bob.commit(1100.0)
    message = alice.seal_message(b"hello")
    leaves = [alice.leaf(i) for i in alice.members()]
    keys = [
        k for leaf in leaves if leaf is not None for k in (leaf.signature_key, leaf.encryption_key)
    ]
    for data in (bundle.slot, *bundle.sealed.values(), message):
        assert alice.group_id not in data
        for key in keys:  # leaves (keys, identities) travel only encrypted
            assert key[:32] not in data
    deliver(bundle, [m for m in members if m is not bob], 1100.0)
    settle(members, 1100.0)
    assert alice.slot_id() != first_slot  # slots of two epochs are unlinkable


def test_the_window_delays_the_decision_until_it_ends() -> None:
    members = make_group(2)
    alice, bob = members
    bundle = alice.commit(1200.0)
    bob.receive_commit(bundle.slot, bundle.sealed[1], 1201.0)
    assert bob.get_timer() == 1201.0 + WINDOW
    bob.handle_timer(1201.0 + WINDOW - 0.1)
    assert bob.epoch == 1
    bob.handle_timer(1201.0 + WINDOW)
    assert bob.epoch == 2
    assert bob.get_timer() is None


def test_late_messages_of_kept_epochs_decrypt_and_older_ones_are_gone() -> None:
    members = make_group(2)
    alice, bob = members
    late = alice.seal_message(b"sent in epoch 1")
    old = alice.seal_message(b"also epoch 1")
    for i in range(DEFAULT_KEEP_EPOCHS):
        bundle = alice.commit(1300.0 + 10 * i)
        deliver(bundle, [bob], 1300.0 + 10 * i)
        settle(members, 1300.0 + 10 * i)
        if i == 0:
            got = bob.open_message(late)
            assert got is not None
            assert got.epoch == 1
    assert bob.epoch == 1 + DEFAULT_KEEP_EPOCHS
    bundle = alice.commit(1400.0)
    deliver(bundle, [bob], 1400.0)
    settle(members, 1400.0)
    assert bob.open_message(old) is None  # epoch 1's keys are deleted
    assert _drops(bob)["unknown-epoch"] == 1


def test_held_proposals_that_conflict_are_committed_once() -> None:
    members = make_group(4)
    alice, bob, carol, dave = members
    for proposer in (bob, carol):  # both ask to remove dave
        alice.receive_proposal(encode(proposer.propose_remove(3)))
    alice.receive_proposal(encode(dave.propose_update()))  # moot once dave is removed
    removes_alice = bob.propose_remove(0)
    alice.receive_proposal(encode(removes_alice))  # alice cannot commit her own removal
    bundle = alice.commit(1500.0)
    deliver(bundle, [bob, carol, dave], 1500.0)
    settle(members, 1500.0)
    assert alice.members() == bob.members() == {0: b"m0", 1: b"m1", 2: b"m2"}
    assert not dave.active
    # An explicit list is committed as given, or refused whole.
    with pytest.raises(GroupError):
        alice.commit(1600.0, [bob.propose_remove(0)])


def test_a_message_fills_whole_mix_payloads_with_the_matching_pad_size() -> None:
    alice, bob = make_group(2, config=GroupConfig(window=WINDOW, pad_size=2715))
    sealed = alice.seal_message(b"x" * 100)
    assert len(sealed) == 3 * 2048
    got = bob.open_message(sealed)
    assert got is not None
    assert got.data == b"x" * 100
