"""A member's saved state (12 §13): what a restart brings back, and what it never does."""

from __future__ import annotations

import pytest

from qdht.errors import ConfigError
from qdht.messaging import Group, GroupInvitations

from ._group_helpers import CONFIG, deliver, leaves_of, make_group, rng, settle


def _reload(group: Group, now: float) -> Group:
    return Group.load(group.dump(), now, config=CONFIG, random=rng(99).randbytes)


def test_a_reloaded_member_goes_on_where_it_stood() -> None:
    members = make_group(3)
    alice, bob, carol = members
    first = alice.seal_message(b"before the restart")
    bob = _reload(bob, 10.0)
    got = bob.open_message(first)
    assert got is not None
    assert got.data == b"before the restart"
    assert bob.open_message(first) is None  # the key went with the first reading
    # A commit after the restart: the reloaded member applies it with the others.
    bundle = carol.commit(20.0)
    deliver(bundle, [alice, bob], 20.0)
    settle([alice, bob, carol], 20.0)
    assert bob.epoch_authenticator == alice.epoch_authenticator == carol.epoch_authenticator
    # Its own sending ratchet and leaf keys came back too.
    reply = bob.seal_message(b"after")
    assert (m := alice.open_message(reply)) is not None
    assert m.data == b"after"
    bundle = bob.commit(30.0)
    deliver(bundle, [alice, carol], 30.0)
    settle([alice, bob, carol], 30.0)
    assert bob.epoch_authenticator == alice.epoch_authenticator


def test_a_saved_state_never_hands_out_a_used_message_key() -> None:
    members = make_group(2)
    alice, bob = members
    sent = alice.seal_message(b"one")
    saved = alice.dump()  # after sealing: the generation is gone from the saved ratchet
    again = Group.load(saved, 0.0, config=CONFIG).seal_message(b"two")
    got = [bob.open_message(m) for m in (sent, again)]
    assert [m.data for m in got if m is not None] == [b"one", b"two"]
    assert bob.stats()["drops"] == {}


def test_a_pending_commit_survives_and_reopens_its_window() -> None:
    members = make_group(3)
    alice, bob, carol = members
    bundle = alice.commit(100.0)
    alice = _reload(alice, 500.0)
    assert alice.get_timer() == 500.0 + CONFIG.window
    deliver(bundle, [bob, carol], 100.0)
    settle([bob, carol], 100.0)
    settle([alice], 500.0)
    assert alice.epoch_authenticator == bob.epoch_authenticator


def test_old_epochs_are_not_in_the_saved_state() -> None:
    members = make_group(2)
    alice, bob = members
    epoch_secret = alice._state.secrets.epoch_secret
    for now in range(100, 100 + 100 * (CONFIG.keep_epochs + 1), 100):
        bundle = alice.commit(float(now))
        deliver(bundle, [bob], float(now))
        settle(members, float(now))
    assert epoch_secret not in alice.dump()
    assert epoch_secret not in bob.dump()


def test_pending_key_packages_survive_and_garbage_is_refused() -> None:
    members = make_group(2)
    alice = members[0]
    erin = GroupInvitations(random=rng(8).randbytes)
    alice.propose_add(erin.new_key_package(b"erin"))
    again = GroupInvitations(config=CONFIG)
    again.restore(erin.dump())
    assert again.pending() == erin.pending()
    bundle = alice.commit(50.0)
    settle([alice], 50.0)
    (welcome,) = bundle.welcomes.values()
    joined = again.receive_welcome(welcome, leaves_of(alice), 50.0)
    assert joined is not None
    assert joined.epoch_authenticator == alice.epoch_authenticator
    with pytest.raises(ConfigError):
        Group.load(b"\xa1av\x02", 0.0)
    with pytest.raises(ConfigError):
        again.restore(b"not cbor")
