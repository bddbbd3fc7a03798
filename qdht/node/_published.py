"""The records a node published itself, and when to publish each again.

A publisher keeps its records alive (07-records.md §10): holders replicate
what they hold, but only the publisher can extend a record's life — an
immutable record by storing it again with a later ``exp`` (``exp`` is not
signed), a mutable record or tombstone by signing the same content again at
``seq + 1`` (``exp`` is signed, and at equal ``seq`` a re-signed copy would
be ordered by digest, not by age).  This module remembers, per key, the
latest record published and the Unix time it is next due; the node's timer
re-publishes what is due.

Two backends behind one class: in memory (no data directory), or one SQLite
file (``<data_dir>/published.sqlite``, WAL, one transaction per change) so
that the schedule and the sequence numbers survive a restart.  A publisher
that forgot its last ``seq`` would sign versions every holder refuses.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs

from qdht.errors import DecodeError, StoreError
from qdht.wire import AnyRecord, ImmutableRecord, MutableRecord, SetEntry, Tombstone, decode, encode

if TYPE_CHECKING:
    import sqlite3

__all__ = [
    "PUBLISHED_FILE",
    "SCHEMA_VERSION",
    "Published",
    "PublishedRecords",
]

#: File name of the SQLite backend inside a node's data directory.
PUBLISHED_FILE: Final = "published.sqlite"
#: Schema version of the SQLite backend (``PRAGMA user_version``).
SCHEMA_VERSION: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS published (
    key BLOB PRIMARY KEY,
    due REAL NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS published_due ON published (due);
"""


@attrs.frozen
class Published:
    """One published record and the Unix time it is next due for republishing."""

    key: bytes
    record: AnyRecord
    due: float


class PublishedRecords:
    """The publisher's own records; ``path`` None keeps them in memory only.

    Not safe for concurrent use from several threads; one node owns it.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._rows: dict[bytes, Published] = {}
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        if path is not None:
            self._open(Path(path))

    # ------------------------------------------------------------ backend

    def _open(self, path: Path) -> None:
        import sqlite3  # only with a data directory: a phone without one never loads it

        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{path}: schema version {version} is newer than this qdht "
                    f"({SCHEMA_VERSION}); refusing to open it"
                )
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            rows = db.execute("SELECT key, due, data FROM published").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the published-records store: {exc}") from exc
        for key, due, data in rows:
            try:
                record = decode(bytes(data))
            except DecodeError:
                continue  # a row this version cannot read: skip it, keep the rest
            if isinstance(record, ImmutableRecord | MutableRecord | Tombstone | SetEntry):
                self._rows[bytes(key)] = Published(bytes(key), record, float(due))
        self._db = db

    def _execute(self, sql: str, params: tuple[object, ...]) -> None:
        if self._db is None:
            return
        import sqlite3

        try:
            with self._lock:
                self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"published-records store: {exc}") from exc

    # ------------------------------------------------------------ API

    def remember(self, key: bytes, record: AnyRecord, due: float) -> None:
        """Remember ``record`` as the latest published under ``key``, due at ``due``.

        Durable once this returns (SQLite backend).
        """
        self._execute(
            "INSERT OR REPLACE INTO published (key, due, data) VALUES (?, ?, ?)",
            (key, due, encode(record)),
        )
        self._rows[key] = Published(key, record, due)

    def reschedule(self, key: bytes, due: float) -> None:
        """Move the next republish of ``key`` to ``due`` (no-op for an unknown key)."""
        row = self._rows.get(key)
        if row is None:
            return
        self._execute("UPDATE published SET due = ? WHERE key = ?", (due, key))
        self._rows[key] = attrs.evolve(row, due=due)

    def forget(self, key: bytes) -> None:
        """Stop republishing ``key``."""
        self._execute("DELETE FROM published WHERE key = ?", (key,))
        self._rows.pop(key, None)

    def get(self, key: bytes) -> Published | None:
        """What was last published under ``key``, or None."""
        return self._rows.get(key)

    def due(self, unix_now: float, limit: int) -> list[Published]:
        """Up to ``limit`` records due at ``unix_now``, most overdue first."""
        ready = [row for row in self._rows.values() if row.due <= unix_now]
        ready.sort(key=lambda row: row.due)
        return ready[:limit]

    def keys(self) -> list[bytes]:
        """The keys of every published record."""
        return list(self._rows)

    def next_due(self) -> float | None:
        """The earliest due time (Unix seconds), or None when nothing is published."""
        return min((row.due for row in self._rows.values()), default=None)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def close(self) -> None:
        """Close the SQLite file (idempotent)."""
        if self._db is not None:
            self._db.close()
            self._db = None
