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
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

__all__ = ["MESSAGING_FILE", "MessagingStore"]

#: The file in the node's data directory.
MESSAGING_FILE: Final = "messaging.sqlite"

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
    taken INTEGER NOT NULL DEFAULT 0
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
