"""The node's own files: published-records schedule and routing table snapshot."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from qdht.dht import RoutingTable, make_immutable, sign_mutable
from qdht.errors import StoreError
from qdht.identity import Identity
from qdht.node import SCHEMA_VERSION, PublishedRecords, atomic_write, load_snapshot, save_snapshot
from qdht.wire import Address, Contact, immutable_key, mutable_key, owner_hash


def test_published_records_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "published.sqlite"
    identity = Identity.generate(0)
    mutable = sign_mutable(identity.mldsa, salt=b"s", seq=7, value=b"v", expires=5000)
    mkey = mutable_key(owner_hash(identity.mldsa.public_key_bytes()), b"s")
    immutable = make_immutable(b"x", 4000)
    ikey = immutable_key(b"x")
    store = PublishedRecords(path)
    store.remember(mkey, mutable, 100.0)
    store.remember(ikey, immutable, 50.0)
    store.reschedule(ikey, 300.0)
    store.close()

    again = PublishedRecords(path)
    assert len(again) == 2
    row = again.get(mkey)
    assert row is not None
    assert row.record == mutable
    assert row.due == 100.0
    assert [r.key for r in again.due(200.0, 10)] == [mkey]
    assert again.next_due() == 100.0
    again.forget(mkey)
    again.close()
    assert len(PublishedRecords(path)) == 1


def test_due_is_most_overdue_first_and_bounded() -> None:
    store = PublishedRecords()
    for i in range(5):
        value = bytes([i])
        store.remember(immutable_key(value), make_immutable(value, 10_000), float(10 - i))
    due = store.due(8.0, 2)
    assert [row.due for row in due] == [6.0, 7.0]
    assert store.due(5.0, 10) == []


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "published.sqlite"
    PublishedRecords(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        PublishedRecords(path)


def test_unreadable_row_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "published.sqlite"
    store = PublishedRecords(path)
    store.remember(immutable_key(b"ok"), make_immutable(b"ok", 9000), 1.0)
    store.close()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO published (key, due, data) VALUES (?, ?, ?)", (b"k" * 32, 1.0, b"\xff")
        )
    again = PublishedRecords(path)
    assert len(again) == 1
    assert again.get(immutable_key(b"ok")) is not None


def test_routing_snapshot_round_trip(tmp_path: Path) -> None:
    local = os.urandom(32)
    table = RoutingTable(local, now=0.0)
    for i in range(20):
        contact = Contact(os.urandom(32), (Address("udp", f"10.0.{i}.1", 4000 + i),))
        list(table.update_verified(contact, 1.0, 0.05))
    path = tmp_path / "routing.cbor"
    save_snapshot(path, table.to_snapshot(2.0))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    restored = RoutingTable.from_snapshot(load_snapshot(path), now=100.0)
    assert len(restored) == len(table) == 20
    assert {c.node_id for c in restored.closest(local, 20)} == {
        c.node_id for c in table.closest(local, 20)
    }


def test_missing_or_corrupt_snapshot_is_none(tmp_path: Path) -> None:
    path = tmp_path / "routing.cbor"
    assert load_snapshot(path) is None
    atomic_write(path, b"\xa1\x61")  # a truncated map
    assert load_snapshot(path) is None


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    atomic_write(path, b"old contents")
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
