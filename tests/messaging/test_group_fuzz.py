"""Remote input never raises out of the group core, and never changes its epoch.

Seeded mutations of every kind of input a member receives: slot writes,
commits inside a genuine slot (so the commit decoder and checks are reached),
sealed secrets, proposals, application messages and Welcomes.
"""

from __future__ import annotations

import random

import attrs
import cbor2
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from qdht.messaging import Group, GroupInvitations
from qdht.wire import CommitSlot, encode

from ._group_helpers import leaves_of, make_group, rng

ROUNDS = 150


def _mutate(data: bytes, r: random.Random) -> bytes:
    out = bytearray(data)
    kind = r.randrange(4)
    if kind == 0:  # flip a few bits
        for _ in range(r.randint(1, 4)):
            i = r.randrange(len(out))
            out[i] ^= 1 << r.randrange(8)
    elif kind == 1:  # truncate
        del out[r.randrange(len(out)) :]
    elif kind == 2:  # splice random bytes in
        i = r.randrange(len(out) + 1)
        out[i:i] = r.randbytes(r.randint(1, 16))
    else:  # overwrite a run
        i = r.randrange(len(out))
        n = r.randint(1, 32)
        out[i : i + n] = r.randbytes(n)
    return bytes(out)


def _mutate_map(obj: dict[str, object], r: random.Random) -> dict[str, object]:
    """A structural mutation of a decoded message map: drop, retype or resize a field."""
    out = dict(obj)
    key = r.choice(sorted(out))
    choice = r.randrange(4)
    if choice == 0:
        del out[key]
    elif choice == 1:
        out[key] = r.choice([0, -1, 2**64 - 1, "x", b"", [], {}, None, True])
    elif choice == 2 and isinstance(out[key], bytes):
        value = out[key]
        assert isinstance(value, bytes)
        out[key] = value + b"\0" if r.random() < 0.5 else value[:-1]
    else:
        out["extra"] = 1
    return out


def _slot_carrying(member: Group, plaintext: bytes, r: random.Random) -> bytes:
    """A genuine slot write of ``member``'s epoch whose content is ``plaintext``."""
    state = member._state
    nonce = r.randbytes(12)
    ct = ChaCha20Poly1305(state.commit_key()).encrypt(nonce, plaintext, state.slot_public_key)
    unsigned = CommitSlot(state.slot_public_key, nonce, ct, bytes(3309))
    sig = state.slot_key.sign(unsigned.signed_bytes(), CommitSlot.CONTEXT)
    return encode(attrs.evolve(unsigned, signature=sig))


def _unchanged(group: Group, before: tuple[int, bytes]) -> None:
    assert (group.epoch, group.epoch_authenticator) == before


def test_mutated_group_input_is_dropped_without_raising() -> None:
    r = rng(2024)
    members = make_group(3)
    alice, bob, carol = members
    bundle = alice.commit(10.0)
    commit = bob._open_slot(bundle.slot)[1]
    commit_map = commit.to_cbor()
    message = alice.seal_message(b"fuzz me")
    proposal = encode(alice.propose_update())
    before = (bob.epoch, bob.epoch_authenticator)
    for _ in range(ROUNDS):
        bob.receive_commit(_mutate(bundle.slot, r), bundle.sealed[1], 10.0)
        bob.receive_commit(bundle.slot, _mutate(bundle.sealed[1], r), 10.0)
        mutated = cbor2.dumps(_mutate_map(commit_map, r), canonical=True)
        bob.receive_commit(_slot_carrying(carol, mutated, r), bundle.sealed[1], 10.0)
        bob.receive_proposal(_mutate(proposal, r))
        assert bob.open_message(_mutate(message, r)) is None
    bob.handle_timer(10.0 + 1000.0)
    _unchanged(bob, before)
    drops = bob.stats()["drops"]
    assert isinstance(drops, dict)
    assert sum(drops.values()) == 5 * ROUNDS
    # The genuine commit still goes through afterwards.
    bob.receive_commit(bundle.slot, bundle.sealed[1], 2000.0)
    bob.handle_timer(3000.0)
    assert bob.epoch == before[0] + 1


def test_mutated_welcomes_are_dropped_without_raising() -> None:
    r = rng(7)
    members = make_group(2)
    alice = members[0]
    invitations = GroupInvitations(random=rng(3).randbytes)
    alice.propose_add(invitations.new_key_package(b"erin"))
    bundle = alice.commit(20.0)
    alice.handle_timer(100.0)
    (welcome,) = bundle.welcomes.values()
    leaves = leaves_of(alice)
    for _ in range(ROUNDS):
        assert invitations.receive_welcome(_mutate(welcome, r), leaves, 20.0) is None
    drops = invitations.stats()["drops"]
    assert isinstance(drops, dict)
    assert sum(drops.values()) == ROUNDS
    joined = invitations.receive_welcome(welcome, leaves, 20.0)
    assert joined is not None
    assert joined.epoch_authenticator == alice.epoch_authenticator
