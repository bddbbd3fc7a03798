"""What only the SQLite record store does: persistence, schema migrations, crash safety."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import (
    SCHEMA_VERSION,
    SqliteRecordStore,
    StoreLimits,
    ValidRecord,
    _sqlitestore,
    encoded_size,
    make_immutable,
    sign_mutable,
    validate_record,
)
from qdht.errors import ConfigError, StoreError
from qdht.wire import AnyRecord

from .conftest import DAY, NOW


def _valid(record: AnyRecord) -> ValidRecord:
    return validate_record(record, record.key(), NOW)


def _imm(n: int) -> ValidRecord:
    return _valid(make_immutable(n.to_bytes(4, "big") * 64, NOW + DAY))


def test_reopen_keeps_records_and_accounting(tmp_path: Path, alice: MLDSAPrivateKey) -> None:
    path = tmp_path / "records.db"
    mutable = _valid(sign_mutable(alice, salt=b"s", seq=3, value=b"v", expires=NOW + DAY))
    records = [_imm(n) for n in range(10)]
    with SqliteRecordStore(path, StoreLimits(max_cached_bytes=10_000)) as store:
        assert store.put(mutable, source=("::1", 9), cached=False, now=NOW).accepted
        for n, record in enumerate(records):
            assert store.put(record, source="a", cached=n < 3, now=NOW).accepted
        before = store.stats()
    with SqliteRecordStore(path, StoreLimits(max_cached_bytes=10_000)) as store:
        assert store.stats() == {**before, "refusals": {}, "evictions": 0}
        assert store.get(mutable.key) == [mutable]
        assert all(store.get(r.key) == [r] for r in records)
        older = _valid(sign_mutable(alice, salt=b"s", seq=2, value=b"v", expires=NOW + DAY))
        assert store.put(older, source="a", cached=False, now=NOW).reason == "seq-regression"
        assert store.schema_version == SCHEMA_VERSION
        assert store.integrity_check() == []


def test_reopen_keeps_a_cached_entry_s_lifetime(tmp_path: Path, alice: MLDSAPrivateKey) -> None:
    path = tmp_path / "records.db"
    mutable = _valid(sign_mutable(alice, salt=b"s", seq=1, value=b"v", expires=NOW + DAY))
    with SqliteRecordStore(path) as store:
        assert store.put(mutable, source="c", cached=True, now=NOW, cache_until=NOW + 90).accepted
    with SqliteRecordStore(path) as store:
        assert store.get(mutable.key, now=NOW + 89) == [mutable]
        assert store.get(mutable.key, now=NOW + 90) == []
        assert store.delete_expired(NOW + 90) == 1
    with SqliteRecordStore(path) as store:
        assert len(store) == 0


def test_database_runs_in_wal_mode_with_indexed_columns(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    with SqliteRecordStore(path) as store:
        store.put(_imm(1), source="a", cached=False, now=NOW)
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        row = db.execute("SELECT kind, seq, expires, cached, source, size FROM records").fetchone()
        assert row == ("immutable", 0, NOW + DAY, 0, "a", encoded_size(_imm(1)))
    finally:
        db.close()


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    SqliteRecordStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="schema version"):
        SqliteRecordStore(path)


def test_migrations_apply_in_order_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "records.db"
    with SqliteRecordStore(path) as store:
        store.put(_imm(1), source="a", cached=False, now=NOW)
    extra = "CREATE TABLE notes (n INTEGER); INSERT INTO notes VALUES (42)"
    monkeypatch.setattr(_sqlitestore, "MIGRATIONS", (*_sqlitestore.MIGRATIONS, extra))
    for _ in range(2):  # the second open finds nothing to migrate
        with SqliteRecordStore(path) as store:
            assert store.schema_version == SCHEMA_VERSION + 1
            assert store.get(_imm(1).key) == [_imm(1)]
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT n FROM notes").fetchall() == [(42,)]
    finally:
        db.close()


def test_corrupt_file_is_refused_on_open(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match=r"records\.db"):
        SqliteRecordStore(path)
    with pytest.raises(ConfigError, match="synchronous"):
        SqliteRecordStore(tmp_path / "other.db", synchronous="OFF")  # type: ignore[arg-type]


def test_entry_that_no_longer_decodes_is_dropped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    good, bad = _imm(1), _imm(2)
    with SqliteRecordStore(path) as store:
        for record in (good, bad):
            store.put(record, source="a", cached=False, now=NOW)
    db = sqlite3.connect(path)
    db.execute("UPDATE records SET data = X'ff00' WHERE key = ?", (bad.key,))
    db.commit()
    db.close()
    with SqliteRecordStore(path) as store:
        assert store.get(bad.key) == []
        assert store.get(good.key) == [good]
        stats = store.stats()
        assert (stats["corrupt"], stats["records"]) == (1, 1)
        assert store.put(bad, source="a", cached=False, now=NOW).accepted


_CHILD = """
import sys
from qdht.dht._records import make_immutable, validate_record
from qdht.dht import SqliteRecordStore

path, round_ = sys.argv[1], int(sys.argv[2])
store = SqliteRecordStore(path, check_integrity=False)
n = 0
while True:
    value = round_.to_bytes(2, "big") + n.to_bytes(4, "big") + bytes(1018)
    record = make_immutable(value, 1_750_000_000 + 86400)
    valid = validate_record(record, record.key(), 1_750_000_000)
    store.put(valid, source="child", cached=False, now=1_750_000_000)
    store.save()  # what a node waits for before it answers "stored"
    sys.stdout.write(valid.key.hex() + "\\n")
    sys.stdout.flush()
    n += 1
"""


@pytest.mark.slow
def test_acknowledged_puts_survive_sigkill(tmp_path: Path) -> None:
    """A child acknowledges each saved put on stdout; SIGKILL at random points loses none.

    ``QDHT_KILL_ROUNDS`` (default 4) sets how many kills: 25 take about 15 s.
    """
    path = tmp_path / "crash.db"
    rng = random.Random(20261121)
    acknowledged: set[bytes] = set()
    for round_ in range(int(os.environ.get("QDHT_KILL_ROUNDS", "4"))):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), str(round_)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert child.stdout is not None
        kill_after = rng.randrange(1, 400)
        lines = 0
        for line in child.stdout:
            if len(line) == 65:
                acknowledged.add(bytes.fromhex(line[:64].decode()))
                lines += 1
            if lines >= kill_after:
                break
        child.send_signal(signal.SIGKILL)
        rest = child.stdout.read()
        child.wait()
        assert child.returncode == -signal.SIGKILL
        for line in rest.split(b"\n"):
            if len(line) == 64:  # complete lines only: a put acknowledged before the kill
                acknowledged.add(bytes.fromhex(line.decode()))
        child.stdout.close()
        with SqliteRecordStore(path) as store:  # check_integrity runs on open
            assert store.integrity_check() == []
            missing = [key for key in acknowledged if not store.get(key)]
            assert missing == []
            assert store.stats()["records"] >= len(acknowledged)
    assert len(acknowledged) >= 4


def test_benchmark_runs_and_reports_every_metric() -> None:
    import argparse

    from qdht_bench import records_store

    args = argparse.Namespace(count=20, runs=1, value_size=64, full_count=3, index_count=2000)
    result = records_store.run(args)
    assert set(result.metrics) == {
        "sqlite_writes_per_s",
        "sqlite_group_writes_per_s",
        "sqlite_loop_put_us",
        "sqlite_reads_per_s",
        "sqlite_full_writes_per_s",
        "memory_puts_per_s",
        "memory_reads_per_s",
        "memory_bytes_per_record",
        "memory_overhead_per_record",
        "republish_page_ms",
        "sort_keys_ms",
        "republish_page_vs_sort",
    }
    assert all(value > 0 for name, value in result.metrics.items() if "overhead" not in name)
