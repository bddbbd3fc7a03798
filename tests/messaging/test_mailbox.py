"""Mailbox slots and intro boxes (11-messaging.md §5)."""

from __future__ import annotations

import random

import attrs
import pytest

from qdht.errors import ConfigError
from qdht.messaging import (
    DEFAULT_SLOT_SIZE,
    SLOT_LIFETIME,
    Accepted,
    IntroHolder,
    Mailbox,
    RatchetSession,
    RatchetState,
    SlotHolder,
    accept_first,
    intro_box_key,
    solve_intro,
)
from qdht.wire import IntroEntry, SlotDelete, decode, encode

from ._pair import first_contact, pair
from ._support import DAY, NOW, User


def _deliver(sender: Mailbox, receiver: Mailbox, holder: SlotHolder, data: bytes) -> bytes:
    key, record = sender.send(data, now=NOW)
    assert holder.put(key, record, now=NOW)
    assert key in receiver.poll_keys()
    fetched = holder.get(key, now=NOW)
    assert fetched is not None
    received = receiver.receive(key, fetched)
    assert received is not None
    assert holder.delete(received[1], now=NOW)
    return received[0]


def test_messages_travel_through_slots_and_are_deleted() -> None:
    alice_s, bob_s = pair()
    alice, bob, holder = Mailbox(alice_s), Mailbox(bob_s), SlotHolder()
    for i in range(5):
        assert _deliver(alice, bob, holder, f"a{i}".encode()) == f"a{i}".encode()
        assert _deliver(bob, alice, holder, f"b{i}".encode()) == f"b{i}".encode()
    assert all(holder.get(key, now=NOW) is None for key in holder.slots)
    # Epochs advanced, so the mailboxes rotated to new chains.
    assert bob_s.mailbox_epoch() >= 2


def test_slot_records_are_fixed_size_and_name_nobody() -> None:
    alice_s, _ = pair()
    alice = Mailbox(alice_s)
    sizes = set()
    keys = set()
    for data in (b"", b"x" * 500, b"y" * 700):
        key, record = alice.send(data, now=NOW)
        sizes.add(len(record.box))
        keys.add(key)
        assert len(encode(record)) < 2200
        assert decode(encode(record)) == record
    assert sizes == {DEFAULT_SLOT_SIZE}
    assert len(keys) == 3
    # No ratchet public key or counter appears in clear.
    assert alice_s.state.dh_public not in record.box
    with pytest.raises(ConfigError):
        alice.send(b"z" * DEFAULT_SLOT_SIZE, now=NOW)


def test_out_of_order_and_lost_slots_are_read() -> None:
    alice_s, bob_s = pair()
    alice, bob, holder = Mailbox(alice_s), Mailbox(bob_s), SlotHolder()
    sent = [alice.send(f"m{i}".encode(), now=NOW) for i in range(20)]
    for key, record in sent:
        assert holder.put(key, record, now=NOW)
    rnd = random.Random(3)
    order = [pair_ for pair_ in sent if rnd.random() > 0.1]
    rnd.shuffle(order)
    got = set()
    for key, _ in order:
        assert key in bob.poll_keys()
        fetched = holder.get(key, now=NOW)
        assert fetched is not None
        result = bob.receive(key, fetched)
        assert result is not None
        got.add(result[0])
    assert len(got) == len(order)
    assert not bob.drops


def test_poll_set_has_the_same_size_whatever_arrives() -> None:
    alice_s, bob_s = pair()
    alice, bob, holder = Mailbox(alice_s), Mailbox(bob_s), SlotHolder()
    idle = len(bob.poll_keys())
    for i in range(100):
        _deliver(alice, bob, holder, f"{i}".encode())
    assert len(bob.poll_keys()) == idle


def test_holder_refuses_tokenless_second_and_bad_writes() -> None:
    alice_s, _ = pair()
    alice, holder = Mailbox(alice_s), SlotHolder()
    key, record = alice.send(b"hi", now=NOW)
    assert not holder.put(bytes(32), record, now=NOW)
    assert holder.put(key, record, now=NOW)
    assert holder.put(key, record, now=NOW)  # the same record again: a replica
    other = attrs.evolve(record, box=bytes(DEFAULT_SLOT_SIZE))
    assert not holder.put(key, other, now=NOW)
    assert not holder.put(key, attrs.evolve(record, box=bytes(1024)), now=NOW)
    assert not holder.put(key, attrs.evolve(record, exp=int(NOW) + SLOT_LIFETIME + 1), now=NOW)
    assert holder.drops == {
        "slot-token": 1,
        "slot-taken": 1,
        "slot-size": 1,
        "slot-expiry": 1,
    }


def test_deletion_needs_the_preimage_and_blocks_rewrites() -> None:
    alice_s, _ = pair()
    alice, holder = Mailbox(alice_s), SlotHolder()
    key, record = alice.send(b"hi", now=NOW)
    assert holder.put(key, record, now=NOW)
    assert not holder.delete(SlotDelete(key, bytes(32)), now=NOW)
    assert holder.get(key, now=NOW) == record
    secret = next(s for s in alice._slots.values() if s.key == key).delete_secret
    assert holder.delete(SlotDelete(key, secret), now=NOW)
    assert holder.get(key, now=NOW) is None
    assert not holder.put(key, record, now=NOW)
    assert holder.drops["slot-deleted"] == 1
    assert holder.expire(record.exp) == 1
    assert holder.slots == {}


def test_slots_expire_after_14_days() -> None:
    alice_s, _ = pair()
    alice, holder = Mailbox(alice_s), SlotHolder()
    key, record = alice.send(b"hi", now=NOW)
    assert holder.put(key, record, now=NOW)
    assert holder.get(key, now=NOW + 14 * DAY - 1) == record
    assert holder.get(key, now=NOW + 14 * DAY) is None


def test_forged_or_tampered_slots_are_refused_by_the_reader() -> None:
    alice_s, bob_s = pair()
    alice, bob = Mailbox(alice_s), Mailbox(bob_s)
    key, record = alice.send(b"hi", now=NOW)
    tampered = attrs.evolve(record, box=record.box[:200] + b"\x00" + record.box[201:])
    assert bob.receive(key, tampered) is None
    assert bob.receive(bytes(32), record) is None
    assert bob.receive(key, attrs.evolve(record, token=bytes(32))) is None
    assert bob.receive(key, record) is not None
    assert set(bob.drops) == {"slot-unknown", "slot-forged"} | (
        {"slot-decode"} if "slot-decode" in bob.drops else {"slot-decrypt"}
    )


def test_intro_box_takes_first_messages_with_work_up_to_its_cap() -> None:
    alice, bob = User("alice"), User("bob")
    store = bob.prekeys()
    box = intro_box_key(store.record(NOW).intro)
    holder = IntroHolder(cap=3, pow_bits=8)
    firsts = [
        first_contact(alice, bob, store, data=f"{i}".encode(), use_one_time=False).message
        for i in range(5)
    ]
    entries = [solve_intro(box, f, exp=int(NOW) + DAY, bits=8) for f in firsts]
    assert decode(encode(entries[0]), expect=(IntroEntry,)) == entries[0]
    assert holder.put(box, entries[0], now=NOW)
    assert not holder.put(box, entries[0], now=NOW)
    lazy = attrs.evolve(entries[1], nonce=entries[1].nonce + 1)
    if holder.put(box, lazy, now=NOW):  # 1 in 256 nonces also solves it
        holder.boxes[box].popitem()
    assert holder.put(box, entries[1], now=NOW)
    assert holder.put(box, entries[2], now=NOW)
    assert not holder.put(box, entries[3], now=NOW)
    assert not holder.put(bytes(32), entries[4], now=NOW)
    assert holder.drops["intro-duplicate"] == 1
    assert holder.drops["intro-full"] == 1
    assert holder.drops["intro-box"] == 1
    got = holder.get(box, now=NOW)
    assert len(got) == 3
    for entry in got:
        assert isinstance(accept_first(store, entry.first, rng=bob.rng), Accepted)
    assert holder.get(box, now=NOW + DAY) == []


def test_mailbox_positions_survive_a_restart() -> None:
    alice_s, bob_s = pair()
    alice, bob, holder = Mailbox(alice_s), Mailbox(bob_s), SlotHolder()
    for i in range(3):
        _deliver(alice, bob, holder, f"{i}".encode())
    restored_bob = Mailbox.from_bytes(
        bob.to_bytes(), RatchetSession(RatchetState.from_bytes(bob_s.to_bytes()))
    )
    restored_alice = Mailbox.from_bytes(alice.to_bytes(), alice_s)
    assert restored_bob.poll_keys() == bob.poll_keys()
    assert _deliver(restored_alice, restored_bob, holder, b"after") == b"after"
    with pytest.raises(ConfigError):
        Mailbox.from_bytes(b"\xa0", bob_s)


def test_a_flood_of_intro_entries_fills_the_box_but_cannot_rotate_it() -> None:
    alice, bob = User("alice"), User("bob")
    store = bob.prekeys()
    box = intro_box_key(store.record(NOW).intro)
    holder = IntroHolder(pow_bits=4)
    first = first_contact(alice, bob, store, use_one_time=False).message
    honest = solve_intro(box, first, exp=int(NOW) + DAY, bits=4)
    assert holder.put(box, honest, now=NOW)
    flood = [
        solve_intro(
            box, attrs.evolve(first, env=bytes([i % 256, i // 256]) * 8), exp=int(NOW) + DAY, bits=4
        )
        for i in range(100)
    ]
    accepted = sum(holder.put(box, entry, now=NOW) for entry in flood)
    assert accepted == 63
    assert holder.drops["intro-full"] == 37
    assert honest in holder.get(box, now=NOW)
    lazy = [attrs.evolve(e, nonce=e.nonce + 1) for e in flood[:20]]
    assert sum(IntroHolder(pow_bits=20).put(box, e, now=NOW) for e in lazy) == 0
