"""A conversation between two fixed users, set up by first contact."""

from __future__ import annotations

from typing import Any

from qdht.messaging import (
    Accepted,
    FirstContact,
    PrekeyStore,
    RatchetSession,
    accept_first,
    initiate,
)

from ._support import NOW, User


def first_contact(
    alice: User,
    bob: User,
    store: PrekeyStore,
    data: bytes = b"hello bob",
    **kw: object,
) -> FirstContact:
    args: dict[str, Any] = {
        "mldsa_key": alice.mldsa,
        "identity_key": alice.xwing,
        "record": store.record(NOW),
        "signer": bob.mldsa.public_key_bytes(),
        "data": data,
        "now": NOW,
        "rng": alice.rng,
    }
    args.update(kw)
    return initiate(**args)


def pair(*, deniable: bool = False, pq: bool = True) -> tuple[RatchetSession, RatchetSession]:
    """(alice's session, bob's session) after alice's first message reached bob."""
    alice, bob = User("alice"), User("bob")
    store = bob.prekeys()
    contact = first_contact(alice, bob, store, deniable=deniable, pq=pq)
    accepted = accept_first(store, contact.message, rng=bob.rng, allow_pq_off=not pq)
    assert isinstance(accepted, Accepted)
    return contact.session, accepted.session


def exchange(sender: RatchetSession, receiver: RatchetSession, data: bytes) -> None:
    """Deliver one message and check it arrives intact."""
    assert receiver.decrypt(sender.encrypt(data)) == data
