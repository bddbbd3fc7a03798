"""Deniable first contact between nodes (11-messaging.md §3.4, ``sender_auth="deniable"``).

The in-memory network and the autojump clock, direct delivery.
"""

from __future__ import annotations

import hashlib
from typing import Any

import trio
import trio.testing

from qdht.crypto.xwing import XWingPrivateKey
from qdht.messaging import DENIABLE_MIN_SLOT_SIZE, initiate, intro_box_key, solve_intro
from qdht.wire import IntroEntry, MboxPut, dumps_canonical

from .test_network import identity, network, receive


def msg_stats(node: Any) -> dict[str, Any]:
    stats: dict[str, Any] = node.stats()["messaging"]
    return stats


async def test_a_deniable_sender_is_verified_after_one_round_trip(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(4, seed=31, sender_auth="deniable", slot_size=DENIABLE_MIN_SLOT_SIZE) as net:
        alice, bob = net.nodes[1], net.nodes[2]
        await alice.messaging.send(bob.node_id, b"guess who")
        [first] = await receive(bob, 1)
        # Nothing in the first message proves who sent it: Bob shows it unverified.
        assert (first.sender, first.data, first.verified) == (alice.node_id, b"guess who", False)
        assert not bob.messaging.verified(alice.node_id)
        assert msg_stats(bob)["unverified_received"] == 1
        # Alice knows Bob already: his prekey record is signed.
        assert alice.messaging.verified(bob.node_id)
        await bob.messaging.send(alice.node_id, b"prove it")
        [reply] = await receive(alice, 1)
        assert (reply.data, reply.verified) == (b"prove it", True)
        # Alice's answer needs her identity key: one round trip authenticates her.
        await alice.messaging.send(bob.node_id, b"it is me")
        [proof] = await receive(bob, 1)
        assert (proof.data, proof.verified) == (b"it is me", True)
        assert bob.messaging.verified(alice.node_id)
        # The inbox on disk keeps what was and was not verified.
        assert [m.verified for m in bob.messaging.inbox()] == [False, True]


class _Claims(XWingPrivateKey):
    """Mallory's secret X-Wing key presenting someone else's public key."""

    __slots__ = ("claimed",)

    def __init__(self, seed: bytes, claimed: bytes) -> None:
        super().__init__(seed)
        self.claimed = claimed

    def public_key_bytes(self) -> bytes:
        return self.claimed


class _PublicOnly:
    """An ML-DSA key of which Mallory has only the public half: deniable mode never signs."""

    def __init__(self, public: bytes) -> None:
        self.public = public

    def public_key_bytes(self) -> bytes:
        return self.public

    def sign(self, data: bytes, context: bytes = b"") -> bytes:
        raise AssertionError("a deniable first message is never signed")


async def _forge_first_from(net: Any, mallory: Any, victim: int, bob: Any) -> None:
    """Mallory writes a deniable first message to Bob claiming node ``victim``'s identity."""
    face = mallory.messaging
    record, signer = await face.fetch_prekeys(mallory, bob.node_id)
    claimed = identity(victim)
    unix = trio.current_time() + face.unix_offset
    payload = dumps_canonical(
        {"t": int(unix), "d": b"send money", "n": [claimed.node_id, claimed.nonce]}
    )
    first = initiate(
        mldsa_key=_PublicOnly(claimed.mldsa.public_key_bytes()),
        identity_key=_Claims(
            hashlib.sha3_256(b"mallory").digest(), claimed.xwing.public_key_bytes()
        ),
        record=record,
        signer=signer,
        data=payload,
        now=unix,
        deniable=True,
        use_one_time=False,
        pad_to=face.config.slot_size,
    ).message
    box = intro_box_key(record.intro)
    entry: IntroEntry = solve_intro(
        box, first, exp=int(unix) + 3600, bits=face.config.intro_pow_bits
    )
    replies = await face.delivery.request(mallory, box, lambda rid: MboxPut(rid, box, intro=entry))
    assert any(reply.ok for reply in replies)


async def test_a_forged_deniable_sender_is_not_accepted_as_that_contact(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network(5, seed=32, sender_auth="deniable", slot_size=DENIABLE_MIN_SLOT_SIZE) as net:
        alice, bob, carol, mallory = net.nodes[1], net.nodes[2], net.nodes[3], net.nodes[4]
        # Alice already talks with Bob: a forgery in her name cannot take the session over.
        await alice.messaging.send(bob.node_id, b"hi bob")
        await receive(bob, 1)
        await _forge_first_from(net, mallory, 1, bob)
        await trio.sleep(300)
        assert [m.data for m in bob.messaging.inbox()] == [b"hi bob"]
        assert msg_stats(bob)["drops"].get("first-unverified-taken") == 1, msg_stats(bob)["drops"]
        # Carol never wrote to Bob: the forgery arrives, shown as unverified ...
        await _forge_first_from(net, mallory, 3, bob)
        [forged] = await receive(bob, 1)
        assert (forged.sender, forged.data, forged.verified) == (
            carol.node_id,
            b"send money",
            False,
        )
        # ... and stays so: Mallory cannot open Bob's answer, so she never proves it.
        await bob.messaging.send(carol.node_id, b"who are you?")
        await trio.sleep(600)
        assert not bob.messaging.verified(carol.node_id)
        assert all(not m.verified for m in bob.messaging.inbox() if m.sender == carol.node_id)
        assert carol.messaging.inbox() == []  # the slot is Mallory's session's, not Carol's
