"""The messaging client without a network: a crash never loses or repeats a message key."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from qdht.identity import Identity
from qdht.messaging import IncomingMessage, MessagingClient, MessagingStore, OutboxItem
from qdht.wire import IntroEntry, SlotRecord, decode

NOW = 1_750_000_000.0


@functools.cache
def identity(name: str) -> Identity:
    return Identity.generate(0)


def client(name: str, path: Path) -> MessagingClient:
    me = identity(name)
    return MessagingClient(
        mldsa_key=me.mldsa,
        identity_key=me.xwing,
        node_id=me.node_id,
        nonce=me.nonce,
        store=MessagingStore(path / f"{name}.sqlite"),
        slot_size=2048,
        one_time_prekeys=2,
        intro_pow_bits=2,
        poll_slots=8,
        poll_window=2,
        writes_per_tick=8,
    )


class Crash(Exception):
    pass


def crash_on(store: MessagingStore, statement: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``store`` fail (as a crash would) when it runs ``statement``."""
    execute = store.execute

    def failing(sql: str, args: tuple[object, ...] = ()) -> object:
        if sql.startswith(statement):
            raise Crash(sql)
        return execute(sql, args)

    monkeypatch.setattr(store, "execute", failing)


def deliver(sender: MessagingClient, receiver: MessagingClient) -> list[bytes]:
    """Hand every queued write of ``sender`` to ``receiver`` as a holder would."""
    got = []
    plan = receiver.poll_plan()
    for item in sender.queued(100):
        try:
            message = _hand_over(receiver, item, plan.slots)
        finally:
            sender.release(item)
        sender.write_done(item, True)
        if message is not None:
            got.append(message.data)
    return got


def _hand_over(
    receiver: MessagingClient, item: OutboxItem, polled: tuple[bytes, ...]
) -> IncomingMessage | None:
    if item.kind == "intro":
        entry = decode(item.payload, expect=(IntroEntry,))
        assert isinstance(entry, IntroEntry)
        return receiver.on_intro(entry, NOW)
    assert item.kind == "slot"
    assert item.key in polled
    record = decode(item.payload, expect=(SlotRecord,))
    assert isinstance(record, SlotRecord)
    return receiver.on_slot(item.key, record, NOW)


def conversation(tmp_path: Path) -> tuple[MessagingClient, MessagingClient]:
    """Alice and Bob after Alice's first message, "hi", reached Bob."""
    alice, bob = client("alice", tmp_path), client("bob", tmp_path)
    record = bob.prekey_step(NOW)
    assert record is not None
    alice.queue_first(bob.node_id, record, identity("bob").mldsa.public_key_bytes(), b"hi", NOW)
    assert deliver(alice, bob) == [b"hi"]
    return alice, bob


def test_a_crash_before_a_receive_commits_reads_the_slot_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = conversation(tmp_path)
    alice.queue_message(bob.node_id, b"second", NOW)
    # Bob crashes while storing what "second" changed: nothing of it is kept ...
    crash_on(bob.store, "INSERT INTO inbox", monkeypatch)
    with pytest.raises(Crash):
        deliver(alice, bob)
    monkeypatch.undo()
    bob.store.close()
    # ... so after the restart the same slot decrypts once, with the key not yet used.
    bob = client("bob", tmp_path)
    assert deliver(alice, bob) == [b"second"]
    assert [m.data for m in bob.inbox()] == [b"hi", b"second"]
    assert bob.stats()["drops"] == {}


def test_a_crash_before_a_send_commits_queues_nothing_and_reuses_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = conversation(tmp_path)
    crash_on(alice.store, "INSERT INTO outbox", monkeypatch)
    with pytest.raises(Crash):
        alice.queue_message(bob.node_id, b"lost before it left", NOW)
    monkeypatch.undo()
    alice.store.close()
    alice = client("alice", tmp_path)
    assert alice.queued(10) == ()  # nothing left the node under the key it drew
    alice.queue_message(bob.node_id, b"after the crash", NOW)
    assert deliver(alice, bob) == [b"after the crash"]
    assert bob.stats()["drops"] == {}
