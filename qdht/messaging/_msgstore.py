"""The messaging layer's state on disk: one SQLite file, every change one transaction.

What a crash must never do (issue 15): lose a message or use a message key
twice.  So each step that advances a ratchet writes the new ratchet and
mailbox state together with what it produced, in one transaction: a sent
message's slot record goes into the outbox with the sender's new state, a
received message goes into the inbox with the receiver's new state and the
slot's deletion.  If the process dies before the commit, the old state comes
back and the same slot is read (or written) again; after it, the work is
done and the key is gone.  SQLite's journal makes each commit atomic.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from qdht.errors import StoreError

__all__ = ["HELD_FILE", "MESSAGING_FILE", "HeldStore", "MessagingStore"]

#: The file in the node's data directory.
MESSAGING_FILE: Final = "messaging.sqlite"
#: The file of what this node holds for others (slots, tombstones, intro entries).
HELD_FILE: Final = "messaging-held.sqlite"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS kv (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS contacts (
    node_id BLOB PRIMARY KEY, mldsa BLOB, session BLOB, mailbox BLOB, added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY, contact BLOB NOT NULL, kind TEXT NOT NULL, key BLOB NOT NULL,
    payload BLOB NOT NULL, state TEXT NOT NULL, created REAL NOT NULL, message INTEGER
);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY, sender BLOB NOT NULL, time REAL NOT NULL, data BLOB NOT NULL,
    taken INTEGER NOT NULL DEFAULT 0, verified INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS intros (digest BLOB PRIMARY KEY, exp INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS held (
    id INTEGER PRIMARY KEY, key BLOB NOT NULL, request BLOB NOT NULL, exp INTEGER NOT NULL
);
"""


class MessagingStore:
    """SQLite tables of the messaging layer; ``path`` None keeps them in memory."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db = sqlite3.connect(":memory:" if path is None else str(path), isolation_level=None)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(inbox)")}
        if "verified" not in columns:  # a file written before deniable mode was exposed
            self._db.execute("ALTER TABLE inbox ADD COLUMN verified INTEGER NOT NULL DEFAULT 1")
        self._depth = 0

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, args)

    # ------------------------------------------------------------ kv

    def get(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM kv WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, name: str, value: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv (name, value) VALUES (?, ?)", (name, value))


_HELD_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS held (
    id INTEGER PRIMARY KEY, key BLOB NOT NULL, request BLOB NOT NULL, exp INTEGER NOT NULL
);
"""


class HeldStore:
    """The puts a mailbox holder accepted, in memory first and saved off the event loop.

    :meth:`append` journals one accepted put (its encoded request) in memory
    and returns its ticket; :meth:`save` (blocking: the messaging service
    runs it in a worker thread) writes the journal in one transaction and
    returns the ticket it saved up to.  The holder answers a put only once
    its ticket is saved, so an acknowledged write survives a crash, and one
    not yet saved is not acknowledged: its writer retries, and §5's rules
    accept the same record again.  ``path`` None: nothing to save, every
    ticket is saved at once.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._journal: list[tuple[bytes, bytes, int]] = []
        self._expire_at: int | None = None
        self._ticket = 0
        self._saved = 0
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_HELD_SCHEMA)

    @property
    def unsaved(self) -> int | None:
        """The ticket of the newest put not saved yet (None: all saved)."""
        return self._ticket if self._ticket > self._saved else None

    def append(self, key: bytes, request: bytes, exp: int) -> int:
        """Journal an accepted put; its ticket (saved already when there is no file)."""
        with self._lock:
            self._ticket += 1
            if self._db is None:
                self._saved = self._ticket
            else:
                self._journal.append((key, request, exp))
            return self._ticket

    def expire(self, unix: float) -> None:
        """Forget, at the next save, every put whose mailbox expired by ``unix``."""
        with self._lock:
            self._expire_at = int(unix)

    def save(self) -> int:
        """Write the journal in one transaction (blocking); the ticket saved up to."""
        with self._lock:
            journal, self._journal = self._journal, []
            expire, self._expire_at = self._expire_at, None
            ticket = self._ticket
        db = self._db
        if db is not None and (journal or expire is not None):
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("INSERT INTO held (key, request, exp) VALUES (?, ?, ?)", journal)
                if expire is not None:
                    db.execute("DELETE FROM held WHERE exp <= ?", (expire,))
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                with self._lock:  # keep the order: these go first next time
                    self._journal[:0] = journal
                    if expire is not None and self._expire_at is None:
                        self._expire_at = expire
                raise StoreError(f"cannot save the held mailboxes: {exc}") from exc
        with self._lock:
            self._saved = max(self._saved, ticket)
        return ticket

    def rows(self) -> list[bytes]:
        """Every saved request, oldest first (at start, before any save runs)."""
        if self._db is None:
            return []
        return [bytes(r[0]) for r in self._db.execute("SELECT request FROM held ORDER BY id")]

    def count(self) -> int:
        """How many puts are saved (a test's view of the file)."""
        if self._db is None:
            return 0
        return int(self._db.execute("SELECT COUNT(*) FROM held").fetchone()[0])

    def close(self) -> None:
        if self._db is not None:
            self.save()
            self._db.close()
            self._db = None
