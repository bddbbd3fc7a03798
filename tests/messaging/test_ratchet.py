"""The triple ratchet (11-messaging.md §4) and the acceptance tests of messaging-notes §5."""

from __future__ import annotations

import random

import attrs
import pytest

from qdht.errors import ConfigError, SessionError
from qdht.messaging import MAX_JUMP, MAX_SKIPPED, RatchetSession, RatchetState, chain_step
from qdht.wire import RatchetMessage, decode, encode

from ._pair import exchange, pair
from ._support import Rng


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def _lose(session: RatchetSession, count: int) -> None:
    """Advance the sending chain as if ``count`` messages were sent and lost."""
    st = session.state
    assert st.cks is not None
    for _ in range(count):
        st.cks = chain_step(st.cks)[0]
        st.ns += 1


def _thief(state: bytes, label: str = "thief") -> RatchetSession:
    return RatchetSession(RatchetState.from_bytes(state), rng=Rng(label))


def test_conversation_both_ways_with_epochs_advancing() -> None:
    alice, bob = pair()
    for i in range(6):
        exchange(alice, bob, f"a{i}".encode())
        exchange(bob, alice, f"b{i}".encode())
    # Each round trip completes an ML-KEM step; roles alternate, epochs climb.
    assert alice.state.send_epoch >= 3
    assert bob.state.send_epoch >= 3
    assert abs(alice.mailbox_epoch() - bob.mailbox_epoch()) <= 1


def test_messages_are_wire_messages_and_carry_no_clear_counters() -> None:
    alice, bob = pair()
    first = alice.encrypt(b"x")
    second = alice.encrypt(b"x")
    data = encode(second)
    assert decode(data) == second
    assert first.hdr[:8] != second.hdr[:8]  # fresh header nonces, nothing to link
    assert bob.decrypt(second) == b"x"
    assert bob.decrypt(first) == b"x"


def test_thousand_messages_shuffled_with_ten_percent_loss_all_decrypt() -> None:
    alice, bob = pair()
    rnd = random.Random(15)
    messages = [(i, alice.encrypt(f"message {i}".encode())) for i in range(1000)]
    rnd.shuffle(messages)
    delivered = [m for m in messages if rnd.random() >= 0.10]
    assert 850 <= len(delivered) <= 950
    for i, message in delivered:
        assert bob.decrypt(message) == f"message {i}".encode()
    assert bob.state.skipped_count() == 1000 - len(delivered) - (999 - max(i for i, _ in delivered))
    assert bob.state.skipped_count() <= MAX_SKIPPED
    assert not bob.drops


def test_shuffled_and_lossy_in_both_directions_across_epochs() -> None:
    alice, bob = pair()
    rnd = random.Random(7)
    for _ in range(8):
        batch = [(i, alice.encrypt(f"a{i}".encode())) for i in range(20)]
        replies = [(i, bob.encrypt(f"b{i}".encode())) for i in range(5)]
        rnd.shuffle(batch)
        rnd.shuffle(replies)
        for i, message in batch:
            if rnd.random() >= 0.10:
                assert bob.decrypt(message) == f"a{i}".encode()
        for i, message in replies:
            if rnd.random() >= 0.10:
                assert alice.decrypt(message) == f"b{i}".encode()
    assert not alice.drops
    assert not bob.drops
    assert bob.state.send_epoch >= 2


def test_duplicate_is_refused_without_state_change() -> None:
    alice, bob = pair()
    message = alice.encrypt(b"once")
    later = alice.encrypt(b"later")
    assert bob.decrypt(later) == b"later"
    assert bob.decrypt(message) == b"once"  # from the skipped keys
    before = bob.to_bytes()
    assert bob.decrypt(message) is None
    assert bob.decrypt(later) is None
    assert bob.to_bytes() == before
    assert bob.drops["duplicate"] == 2


def test_jump_beyond_max_jump_is_refused_without_state_change() -> None:
    alice, bob = pair()
    exchange(alice, bob, b"warm up")
    saved = alice.state.copy()
    _lose(alice, MAX_JUMP + 1)
    far = alice.encrypt(b"far")
    before = bob.to_bytes()
    assert bob.decrypt(far) is None
    assert bob.drops["too-far"] == 1
    assert bob.to_bytes() == before
    alice.state = saved
    _lose(alice, MAX_JUMP)  # a jump of exactly MAX_JUMP is still taken
    assert bob.decrypt(alice.encrypt(b"near")) == b"near"


def test_skipped_keys_stay_bounded() -> None:
    alice, bob = pair()
    for _ in range(3):
        _lose(alice, 1500)
        exchange(alice, bob, b"skip")
    assert bob.state.skipped_count() == MAX_SKIPPED


@pytest.mark.parametrize("part", ["hdr", "body"])
def test_every_flipped_bit_is_refused_and_state_rolled_back(part: str) -> None:
    alice, bob = pair()
    exchange(bob, alice, b"so alice carries a ciphertext")
    message = alice.encrypt(b"payload")
    value = getattr(message, part)
    before = bob.to_bytes()
    for index in range(0, len(value), max(1, len(value) // 40)):
        tampered = attrs.evolve(message, **{part: _flip(value, index)})
        assert bob.decrypt(tampered) is None
        assert bob.to_bytes() == before
    assert bob.decrypt(message) == b"payload"


def test_truncated_body_is_refused() -> None:
    alice, bob = pair()
    message = alice.encrypt(b"payload")
    assert bob.decrypt(RatchetMessage(message.hdr, message.body[:-1])) is None
    assert bob.decrypt(message) == b"payload"


def test_turning_the_pq_ratchet_off_mid_session_is_refused() -> None:
    alice, bob = pair()
    exchange(alice, bob, b"with pq")
    alice.state.pq = False
    alice.state.pq_seed = None
    downgraded = alice.encrypt(b"without pq")
    before = bob.to_bytes()
    assert bob.decrypt(downgraded) is None
    assert bob.drops["pq-downgrade"] == 1
    assert bob.to_bytes() == before


def test_forward_secrecy_by_state_dump() -> None:
    alice, bob = pair()
    earlier = []
    for i in range(5):
        earlier.append(alice.encrypt(f"old {i}".encode()))
        exchange(bob, alice, b"ack")
    lost = alice.encrypt(b"never delivered before the dump")
    for message in earlier:
        assert bob.decrypt(message) is not None
    dump = bob.to_bytes()
    for message in earlier:
        assert _thief(dump).decrypt(message) is None
    # A message not yet received is readable from the dump, as in every double ratchet.
    assert _thief(dump).decrypt(lost) == b"never delivered before the dump"


def test_post_compromise_security_after_one_round_trip() -> None:
    alice, bob = pair()
    exchange(alice, bob, b"before")
    stolen = alice.to_bytes()
    m1 = bob.encrypt(b"one")
    thief = _thief(stolen)
    assert thief.decrypt(m1) == b"one"  # the stolen state still reads the next chain
    assert alice.decrypt(m1) == b"one"
    exchange(alice, bob, b"two")  # alice's fresh ratchet key: the round trip completes
    m3 = bob.encrypt(b"three")
    assert thief.decrypt(m3) is None
    assert alice.decrypt(m3) == b"three"


def test_post_compromise_security_of_the_pq_epoch_with_x25519_leaked() -> None:
    alice, bob = pair()
    exchange(alice, bob, b"start")
    stolen = RatchetState.from_bytes(alice.to_bytes())
    while alice.state.send_epoch < stolen.send_epoch + 2:
        exchange(bob, alice, b"ping")
        exchange(alice, bob, b"pong")
    message = bob.encrypt(b"secret")
    # Every classical value leaked (current DH ratchet state), PQ epochs as stolen.
    leaked = attrs.evolve(alice.state.copy(), epochs=dict(stolen.epochs))
    assert RatchetSession(leaked, rng=Rng("thief")).decrypt(message) is None
    assert alice.decrypt(message) == b"secret"


def test_state_round_trips_through_bytes_mid_conversation() -> None:
    alice, bob = pair()
    exchange(alice, bob, b"a")
    skipped = alice.encrypt(b"late")
    exchange(alice, bob, b"b")
    restored = RatchetSession(RatchetState.from_bytes(bob.to_bytes()), rng=Rng("bob2"))
    assert restored.to_bytes() == bob.to_bytes()
    assert restored.decrypt(skipped) == b"late"
    exchange(restored, alice, b"c")
    with pytest.raises(ConfigError):
        RatchetState.from_bytes(b"\xa0")


def test_padding_fixes_the_encoded_size() -> None:
    alice, bob = pair()
    sizes = set()
    for i in range(4):
        message = alice.encrypt(b"x" * i * 100, pad_to=2048)
        sizes.add(len(encode(message)))
        assert bob.decrypt(message) == b"x" * i * 100
        reply = bob.encrypt(b"y", pad_to=2048)  # carries an ML-KEM key or ciphertext
        sizes.add(len(encode(reply)))
        assert alice.decrypt(reply) == b"y"
    assert sizes == {2048}
    with pytest.raises(ConfigError):
        alice.encrypt(b"z" * 2048, pad_to=2048)


def test_misuse_raises() -> None:
    alice, bob = pair()
    with pytest.raises(ConfigError):
        alice.encrypt("text")  # type: ignore[arg-type]
    fresh = RatchetSession(attrs.evolve(bob.state.copy(), cks=None))
    with pytest.raises(SessionError):
        fresh.encrypt(b"x")


def test_forged_messages_are_refused_and_counted() -> None:
    alice, bob = pair()
    rnd = random.Random(9)
    before = bob.to_bytes()
    for size in (70, 74, 1300, 2374):
        forged = RatchetMessage(rnd.randbytes(size), rnd.randbytes(64))
        assert bob.decrypt(forged) is None
    assert bob.drops == {"header": 4}
    assert bob.to_bytes() == before
    exchange(alice, bob, b"still fine")


def test_message_delayed_across_three_epochs_still_decrypts() -> None:
    alice, bob = pair()
    exchange(alice, bob, b"start")
    late = alice.encrypt(b"late")
    epoch = bob.state.send_epoch
    while bob.state.send_epoch < epoch + 3:
        exchange(bob, alice, b"ping")
        exchange(alice, bob, b"pong")
    assert bob.decrypt(late) == b"late"
