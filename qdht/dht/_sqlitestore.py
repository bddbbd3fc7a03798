"""The SQLite record store: records that survive a restart or a SIGKILL (07-records.md §8).

A :class:`~qdht.dht.RecordStore` that works in memory and journals every change
to one SQLite database (stdlib ``sqlite3``, WAL), written off the event loop;
the node answers a STORE once its change is saved.  The schema migrates
forward in order (:data:`MIGRATIONS`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path
from typing import Final, Literal, NamedTuple

from qdht.dht._records import DEFAULT_RECORD_LIMITS, RecordLimits, ValidRecord
from qdht.dht._recordstore import DEFAULT_STORE_LIMITS, MemoryRecordStore, StoreLimits, _Row
from qdht.errors import ConfigError, DecodeError, StoreError
from qdht.wire import decode_record, loads_canonical

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqliteRecordStore"]


# ---------------------------------------------------------------- SQLite

#: Schema migrations, applied in order on open: migration i takes a database
#: from ``PRAGMA user_version`` i to i + 1.  Append; never edit a shipped one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE records (
        key BLOB NOT NULL,
        slot BLOB NOT NULL,
        kind TEXT NOT NULL,
        owner BLOB,
        seq INTEGER NOT NULL,
        expires INTEGER NOT NULL,
        cached INTEGER NOT NULL,
        source TEXT NOT NULL,
        size INTEGER NOT NULL,
        digest BLOB NOT NULL,
        used INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (key, slot)
    );
    CREATE INDEX records_expires ON records (expires);
    CREATE INDEX records_lru ON records (used) WHERE cached = 1;
    """,
)

# The ``expires`` column is when the entry goes: the record's ``exp``, or for a
# cached entry the end of its path-cache lifetime if that comes first (§10.6).

#: The schema version this code writes (the number of migrations).
SCHEMA_VERSION: Final = len(MIGRATIONS)

_COLUMNS: Final = "key, slot, kind, owner, seq, expires, cached, source, size, digest, used, data"


class SqliteRecordStore(MemoryRecordStore):
    """Records in memory, made durable in one SQLite database off the event loop.

    The default for a node with a data directory.  Reads, the §7 merge rules
    and the quotas work on memory exactly as :class:`MemoryRecordStore` does,
    so a node's loop never waits for the disk; every change is also appended
    to a journal, and :meth:`save` writes the journal in one ``BEGIN
    IMMEDIATE … COMMIT`` transaction (group commit).  :meth:`save` blocks: the
    node runs it in a worker thread whenever :attr:`unsaved` says there are
    changes, and answers a STORE only once the change is saved (07-records.md
    §8: a ``stored`` answer means the record survives the holder's crash).
    The memory held is what the store holds, bounded by :class:`StoreLimits`.

    Changes are numbered (tickets): :attr:`unsaved` is the ticket of the
    newest change not yet saved (None: all saved), and :meth:`save` returns
    the ticket it saved up to.

    Durability: the database runs in ``journal_mode=WAL`` with
    ``synchronous=NORMAL`` by default.  A saved transaction has then been
    written to the WAL file (in the operating system's page cache), so it
    survives the *process* being killed at any point, SIGKILL included: the
    next open replays the WAL.  What NORMAL does not promise is surviving
    *power loss or a kernel crash*: the WAL is fsynced only at checkpoints,
    so the last transactions before the crash may be lost (the database
    stays consistent).  Records are replicated on k nodes and republished by
    their publishers, so that window costs little, and NORMAL writes several
    times faster.  Pass ``synchronous="FULL"`` to fsync on every commit.

    On open, the schema is created or migrated (``PRAGMA user_version``,
    :data:`MIGRATIONS`), a database of a newer schema version is refused
    with :class:`~qdht.errors.StoreError`, ``PRAGMA quick_check`` runs (skip
    it with ``check_integrity=False``), and every record is loaded; an entry
    that no longer decodes is deleted and counted in ``stats()["corrupt"]``.
    A failed :meth:`save` (disk full, database locked by another process for
    longer than SQLite's 5 s busy timeout) raises StoreError and keeps its
    changes for the next one.  Least-recently-used order of cached entries
    is kept in memory; a reopened store orders them by when they were written.

    Threads: :meth:`save` may run in a worker thread while the loop's thread
    puts and gets; the journal is handed over under a lock, and SQLite is
    used by one thread at a time.
    """

    def __init__(
        self,
        path: str | Path,
        limits: StoreLimits = DEFAULT_STORE_LIMITS,
        *,
        record_limits: RecordLimits = DEFAULT_RECORD_LIMITS,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        check_integrity: bool = True,
    ) -> None:
        super().__init__(limits, record_limits=record_limits)
        if synchronous not in ("NORMAL", "FULL"):
            raise ConfigError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        self.path = Path(path)
        # _journal_lock guards the journal and the tickets (held for microseconds);
        # _db_lock makes SQLite one thread's at a time (held for a whole save).
        self._journal_lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._journal: list[_Change] = []
        self._ticket = 0
        self._saved = 0
        self._used = 0
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        try:
            self._open(synchronous, check_integrity)
        except BaseException:
            self._db.close()
            raise

    def _open(self, synchronous: str, check_integrity: bool) -> None:
        db = self._db
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{self.path}: cannot use WAL (journal mode {mode})")
            db.execute(f"PRAGMA synchronous={synchronous}")
            if check_integrity:
                problems = self.integrity_check(quick=True)
                if problems:
                    raise StoreError(f"{self.path} is corrupt: {'; '.join(problems[:5])}")
            self._migrate()
            self._load()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    def _migrate(self) -> None:
        db = self._db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema version {version}; this qdht knows up to {len(MIGRATIONS)}"
            )
        for number in range(version, len(MIGRATIONS)):
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={number + 1}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _load(self) -> None:
        """Every record into memory, least recently used first; drop what no longer decodes."""
        db = self._db
        corrupt: list[tuple[bytes, bytes]] = []
        for key, slot, expires, cached, source, size, digest, used, data in db.execute(
            "SELECT key, slot, expires, cached, source, size, digest, used, data"
            " FROM records ORDER BY used"
        ):
            self._used = max(self._used, used)
            try:
                record = ValidRecord(decode_record(loads_canonical(data)), key, digest)
            except DecodeError:
                corrupt.append((key, slot))
                continue
            row = _Row(record, size, source, bool(cached), expires)
            super()._write(key, slot, row, data, [])  # memory only: it is on disk already
            self._charge(row, +1)
        if corrupt:
            self._corrupt += len(corrupt)
            db.execute("BEGIN IMMEDIATE")
            db.executemany("DELETE FROM records WHERE key = ? AND slot = ?", corrupt)
            db.execute("COMMIT")

    def integrity_check(self, *, quick: bool = False) -> list[str]:
        """SQLite's ``PRAGMA integrity_check`` findings (empty: the database is sound).

        ``quick`` runs ``quick_check`` instead: O(n) too, but it skips checking
        that indexes match their tables, several times faster (what open runs).
        """
        pragma = "quick_check" if quick else "integrity_check"
        with self._db_lock:
            rows = self._db.execute(f"PRAGMA {pragma}").fetchall()
        problems = [str(row[0]) for row in rows]
        return [] if problems == ["ok"] else problems

    @property
    def schema_version(self) -> int:
        """The database's ``PRAGMA user_version``."""
        self._check_open()
        with self._db_lock:
            version: int = self._db.execute("PRAGMA user_version").fetchone()[0]
        return version

    # -- the journal

    def _journal_change(self, change: _Change) -> None:
        with self._journal_lock:
            self._journal.append(change)
            self._ticket += 1

    def _write(
        self, key: bytes, slot: bytes, row: _Row, blob: bytes, evict: list[tuple[bytes, bytes]]
    ) -> None:
        super()._write(key, slot, row, blob, evict)
        self._used += 1
        record = row.record
        values = (
            key,
            slot,
            record.kind,
            record.owner,
            record.seq,
            int(row.expires),
            int(row.cached),
            row.source,
            row.size,
            record.digest,
            self._used,
            blob,
        )
        self._journal_change(_Change(tuple(evict), values, None))

    def delete_expired(self, now: float) -> int:
        """Remove every entry whose expiry is at or before ``now`` (saved with the journal)."""
        gone = super().delete_expired(now)
        if gone:
            self._journal_change(_Change((), None, int(now)))
        return gone

    @property
    def unsaved(self) -> int | None:
        """The ticket of the newest change not yet saved, or None when all are."""
        ticket = self._ticket
        return None if ticket == self._saved else ticket

    def save(self) -> int:
        """Write every change journalled so far in one transaction; return its last ticket.

        Blocking (the disk): call it from a worker thread.  On a SQLite
        failure the changes stay journalled for the next call and
        :class:`~qdht.errors.StoreError` is raised.
        """
        with self._db_lock:
            if self._closed:
                raise StoreError("the record store is closed")
            with self._journal_lock:
                batch, self._journal = self._journal, []
                upto = self._ticket
            if not batch:
                return self._saved
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                for change in batch:
                    if change.evict:
                        db.executemany(
                            "DELETE FROM records WHERE key = ? AND slot = ?", change.evict
                        )
                    if change.row is not None:
                        db.execute(
                            f"INSERT OR REPLACE INTO records ({_COLUMNS}) "
                            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                            change.row,
                        )
                    if change.expired_at is not None:
                        db.execute("DELETE FROM records WHERE expires <= ?", (change.expired_at,))
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                with self._journal_lock:
                    self._journal[:0] = batch
                raise StoreError(f"{self.path}: {exc}") from exc
            self._saved = upto
            return upto

    def close(self) -> None:
        """Save what is journalled, close the database; later calls raise StoreError."""
        if self._closed:
            return
        try:
            self.save()
        finally:
            self._closed = True
            with self._db_lock:
                self._db.close()


class _Change(NamedTuple):
    """One journalled change: cached entries evicted, a row written, an expiry sweep."""

    evict: tuple[tuple[bytes, bytes], ...]
    row: tuple[object, ...] | None
    expired_at: int | None
