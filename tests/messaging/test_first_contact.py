"""First contact (11-messaging.md §3): key agreement, authentication, replay defences."""

from __future__ import annotations

import hashlib

import attrs
import pytest

from qdht.crypto.xwing import XWingPrivateKey
from qdht.errors import ConfigError
from qdht.messaging import Accepted, accept_first
from qdht.wire import FirstMessage, decode, encode

from ._pair import exchange, first_contact, pair
from ._support import DAY, NOW, User


def test_signed_first_message_opens_with_the_same_session_key() -> None:
    alice, bob = User("alice"), User("bob")
    store = bob.prekeys()
    contact = first_contact(alice, bob, store, data=b"hi")
    assert contact.message.opk_id is not None
    received = decode(encode(contact.message), expect=(FirstMessage,))
    assert isinstance(received, FirstMessage)
    accepted = accept_first(store, received, rng=bob.rng)
    assert isinstance(accepted, Accepted)
    assert accepted.data == b"hi"
    assert accepted.session_key == contact.session_key
    assert accepted.signed
    assert accepted.sender_mldsa == alice.mldsa.public_key_bytes()
    assert accepted.session.verified
    exchange(accepted.session, contact.session, b"hi alice")
    exchange(contact.session, accepted.session, b"how are you")


def test_first_message_names_nobody_in_clear() -> None:
    alice, bob = User("alice"), User("bob")
    data = encode(first_contact(alice, bob, bob.prekeys()).message)
    for public in (alice.mldsa.public_key_bytes(), alice.xwing.public_key_bytes()):
        assert public[:32] not in data
        assert public[-32:] not in data


def test_deniable_sender_is_verified_after_one_round_trip() -> None:
    alice_s, bob_s = pair(deniable=True)
    assert not bob_s.verified
    exchange(bob_s, alice_s, b"who are you?")
    assert not bob_s.verified  # alice has not answered yet
    exchange(alice_s, bob_s, b"alice")
    assert bob_s.stats()["verified"]  # (a second read of the property; mypy narrows it)
    exchange(bob_s, alice_s, b"hello, verified alice")


def test_deniable_impostor_is_never_verified() -> None:
    alice, bob, mallory = User("alice"), User("bob"), User("mallory")
    store = bob.prekeys()

    class ClaimsAlice(XWingPrivateKey):
        """Mallory's secret key presenting alice's public key."""

        __slots__ = ()

        def public_key_bytes(self) -> bytes:
            return alice.xwing.public_key_bytes()

    impostor = ClaimsAlice(hashlib.sha3_256(b"mallory").digest())
    contact = first_contact(mallory, bob, store, identity_key=impostor, deniable=True)
    # The envelope claims alice's keys; nothing signs them in deniable mode.
    accepted = accept_first(store, contact.message, rng=bob.rng)
    assert isinstance(accepted, Accepted)
    assert accepted.sender_ik == alice.xwing.public_key_bytes()
    bob_s, mallory_s = accepted.session, contact.session
    assert not bob_s.verified
    assert mallory_s.decrypt(bob_s.encrypt(b"prove it")) is None  # cannot open the reply
    # Whatever mallory sends on her first chain stays unverified.
    assert bob_s.decrypt(mallory_s.encrypt(b"trust me")) == b"trust me"
    assert not bob_s.verified


def test_replayed_first_message_is_refused() -> None:
    alice, bob = User("alice"), User("bob")
    store = bob.prekeys()
    message = first_contact(alice, bob, store).message
    assert accept_first(store, message, rng=bob.rng) is not None
    assert accept_first(store, message, rng=bob.rng) is None
    assert dict(store.drops) == {"replay": 1}  # the cache answers before the prekey check


def test_replay_without_one_time_prekey_is_refused_by_the_cache() -> None:
    alice, bob = User("alice"), User("bob")
    store = bob.prekeys()
    message = first_contact(alice, bob, store, use_one_time=False).message
    assert message.opk_id is None
    assert accept_first(store, message, rng=bob.rng) is not None
    assert accept_first(store, message, rng=bob.rng) is None
    assert store.drops["replay"] == 1


def test_replay_after_the_signed_prekey_is_deleted_does_not_decrypt() -> None:
    alice, bob = User("alice"), User("bob")
    store = bob.prekeys()
    message = first_contact(alice, bob, store, use_one_time=False).message
    spk_seed = store.current_spk().seed
    store.rotate(NOW + 7 * DAY)
    store.rotate(NOW + 14 * DAY)
    assert spk_seed not in store.to_bytes()  # a state dump no longer holds its secret
    assert accept_first(store, message, rng=bob.rng) is None
    assert store.drops["spk-unknown"] == 1


def test_reused_one_time_prekey_id_is_refused_and_retry_without_works() -> None:
    alice, carol, bob = User("alice"), User("carol"), User("bob")
    store = bob.prekeys(one_time=1)
    record = store.record(NOW)
    first = first_contact(alice, bob, store).message
    assert accept_first(store, first, rng=bob.rng) is not None
    # carol fetched the same record before it was republished
    second = first_contact(carol, bob, store, record=record)
    assert accept_first(store, second.message, rng=bob.rng) is None
    assert store.drops["opk-reused"] == 1
    retry = first_contact(carol, bob, store, record=record, use_one_time=False)
    assert accept_first(store, retry.message, rng=bob.rng) is not None


@pytest.mark.parametrize("field", ["ct_ik", "ct_spk", "ct_opk", "env"])
def test_tampered_first_message_is_refused_without_using_the_prekey(field: str) -> None:
    alice, bob = User("alice"), User("bob")
    store = bob.prekeys()
    message = first_contact(alice, bob, store).message
    value = getattr(message, field)
    tampered = attrs.evolve(message, **{field: value[:100] + bytes([value[100] ^ 1]) + value[101:]})
    before = store.to_bytes()
    assert accept_first(store, tampered, rng=bob.rng) is None
    assert store.to_bytes() == before
    assert sum(store.drops.values()) == 1
    assert accept_first(store, message, rng=bob.rng) is not None


def test_forged_signature_is_refused() -> None:
    alice, bob = User("alice"), User("bob")
    store = bob.prekeys()

    class WrongSigner:
        def public_key_bytes(self) -> bytes:
            return alice.mldsa.public_key_bytes()

        def sign(self, message: bytes, context: bytes) -> bytes:
            return User("mallory").mldsa.sign(message, context)

    contact = first_contact(User("mallory"), bob, store, mldsa_key=WrongSigner())
    assert accept_first(store, contact.message, rng=bob.rng) is None
    assert store.drops["first-signature"] == 1


def test_pq_off_is_refused_unless_allowed_at_setup() -> None:
    alice, bob = User("alice"), User("bob")
    store = bob.prekeys()
    message = first_contact(alice, bob, store, pq=False).message
    assert accept_first(store, message, rng=bob.rng) is None
    assert store.drops["pq-required"] == 1
    alice_s, bob_s = pair(pq=False)
    exchange(bob_s, alice_s, b"classical only")


def test_expired_record_cannot_start_a_conversation() -> None:
    alice, bob = User("alice"), User("bob")
    store = bob.prekeys()
    with pytest.raises(ConfigError, match="prekeys-expired"):
        first_contact(alice, bob, store, now=NOW + 30 * DAY)
