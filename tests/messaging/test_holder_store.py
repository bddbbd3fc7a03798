"""A mailbox holder saves off the event loop and answers a put only once it is saved
(11-messaging.md §7.5): :class:`~qdht.messaging.HeldStore` with the sans-IO core."""

from __future__ import annotations

from pathlib import Path

import attrs

from qdht.crypto import sha3_256
from qdht.messaging import HeldStore, MailboxCore
from qdht.wire import RID_SIZE, MboxGet, MboxPut, MboxReply, SlotRecord, decode, encode

PEER = b"\x07" * 32
NOW = 1_800_000_000.0
TOKEN = b"\x01" * 32
SECRET = b"\x05" * 32
SLOT = SlotRecord(TOKEN, bytes(2048), sha3_256(SECRET), int(NOW) + 86400)
PUT = MboxPut(b"p" * RID_SIZE, sha3_256(TOKEN), slot=SLOT)


def holder(store: HeldStore) -> MailboxCore:
    core = MailboxCore(slot_size=2048)

    def keep(request: MboxPut) -> int:
        stored = attrs.evolve(request, rid=bytes(RID_SIZE))
        return store.append(request.key, encode(stored), SLOT.exp)

    core.on_held = keep
    return core


def replies(core: MailboxCore) -> list[MboxReply]:
    out = [decode(payload, expect=(MboxReply,)) for _, _, payload in core.messages_to_send()]
    assert all(isinstance(reply, MboxReply) for reply in out)
    return out  # type: ignore[return-value]


def test_a_put_is_answered_only_once_it_is_saved(tmp_path: Path) -> None:
    store = HeldStore(tmp_path / "held.sqlite")
    core = holder(store)
    core.receive_message(PEER, "addr", encode(PUT), NOW)
    assert replies(core) == []  # not on disk yet: no answer
    assert core.stats()["answers_unsaved"] == 1
    # Applied in memory at once: a read sees it, and is answered without waiting.
    core.receive_message(PEER, "addr", encode(MboxGet(b"g" * RID_SIZE, PUT.key)), NOW)
    [read] = replies(core)
    assert read.slot == SLOT
    ticket = store.unsaved
    assert ticket is not None
    assert store.save() == ticket
    assert store.unsaved is None
    core.saved(ticket)
    assert replies(core) == [MboxReply(PUT.rid, True)]
    assert core.stats()["answers_unsaved"] == 0
    store.close()
    # What was acknowledged is on disk.
    again = HeldStore(tmp_path / "held.sqlite")
    assert [decode(row) for row in again.rows()] == [attrs.evolve(PUT, rid=bytes(RID_SIZE))]


def test_a_crash_before_the_save_loses_only_unacknowledged_puts(tmp_path: Path) -> None:
    store = HeldStore(tmp_path / "held.sqlite")
    core = holder(store)
    core.receive_message(PEER, "addr", encode(PUT), NOW)
    store.save()
    core.saved(1)
    assert replies(core) == [MboxReply(PUT.rid, True)]
    second = MboxPut(b"q" * RID_SIZE, PUT.key, secret=SECRET)
    core.receive_message(PEER, "addr", encode(second), NOW)
    assert replies(core) == []
    # The process dies here (no save, no close): the deletion was never acknowledged.
    reopened = HeldStore(tmp_path / "held.sqlite")
    assert len(reopened.rows()) == 1
    fresh = holder(reopened)
    for row in reopened.rows():
        request = decode(row, expect=(MboxPut,))
        assert isinstance(request, MboxPut)
        assert fresh.restore(request, NOW)
    # The writer sends the deletion again and gets its answer after the save.
    fresh.receive_message(PEER, "addr", encode(second), NOW)
    reopened.save()
    fresh.saved(1)
    assert replies(fresh) == [MboxReply(second.rid, True)]


def test_without_a_file_every_put_is_answered_at_once() -> None:
    store = HeldStore(None)
    core = holder(store)
    core.receive_message(PEER, "addr", encode(PUT), NOW)
    core.saved(store.save())
    assert replies(core) == [MboxReply(PUT.rid, True)]
    assert store.unsaved is None
    assert store.rows() == []
