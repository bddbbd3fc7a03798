"""The groups layer's state on disk (12-groups.md §13): one SQLite file in the data directory.

One row per group holds everything a member needs to go on after a restart:
the group's saved state (:meth:`qdht.messaging.Group.dump_parts`: all but
the secret trees) and the runner's own (messages sent and read per epoch, a
commit being published); the secret trees, which every message sealed or
opened changes, are a row of their own in ``trees``, so a message rewrites
a few hundred bytes rather than every member's keys (the rest is written
only when it changed).  Each save is one transaction.  A row of the first
schema (the whole :meth:`~qdht.messaging.Group.dump` in ``state``, no
``trees`` row) still loads.  One more row holds the key packages waiting
for a Welcome.  Writes run in a worker thread (inline under a mock clock:
simulated time would race ahead of a thread), one at a time.

``secure_delete`` is on: SQLite overwrites what a write replaces, so the
secrets of an epoch dropped from the state do not linger in the file's free
pages (12 §13 says what this does not cover).
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from pathlib import Path
from typing import Final

import attrs
import trio

from qdht.errors import StoreError

__all__ = ["GROUPS_FILE", "GroupStore", "SavedGroup"]

#: The file in the node's data directory.
GROUPS_FILE: Final = "groups.sqlite"
_INVITATIONS: Final = b"invitations"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS groups (id BLOB PRIMARY KEY, state BLOB NOT NULL, runner BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS trees (id BLOB PRIMARY KEY, trees BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS kv (name BLOB PRIMARY KEY, value BLOB NOT NULL);
"""


@attrs.frozen
class SavedGroup:
    """One group's row: ``state`` (None: unchanged since the last write), the
    runner's state and the secret trees (:meth:`~qdht.messaging.Group.dump_parts`)."""

    state: bytes | None
    runner: bytes
    trees: bytes


class GroupStore:
    """Saved groups; ``path`` None keeps nothing (a node without a data directory)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._thread_lock = threading.Lock()
        self._lock = trio.Lock()
        if path is not None:
            try:
                self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
                self._db.execute("PRAGMA secure_delete=ON")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open {path}: {exc}") from None

    @property
    def durable(self) -> bool:
        """Whether anything is written at all."""
        return self._db is not None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # ------------------------------------------------------------ reads (at start)

    def groups(self) -> list[tuple[bytes, bytes, bytes, bytes | None]]:
        """Every saved group: ``(group_id, state, runner, trees)``; ``trees`` is
        None for a row of the first schema (its ``state`` holds the trees)."""
        if self._db is None:
            return []
        rows = self._db.execute(
            "SELECT g.id, g.state, g.runner, t.trees FROM groups g"
            " LEFT JOIN trees t ON t.id = g.id ORDER BY g.id"
        ).fetchall()
        return [
            (bytes(i), bytes(s), bytes(r), None if t is None else bytes(t)) for i, s, r, t in rows
        ]

    def invitations(self) -> bytes | None:
        """The saved key packages waiting for a Welcome, or None."""
        if self._db is None:
            return None
        row = self._db.execute("SELECT value FROM kv WHERE name = ?", (_INVITATIONS,)).fetchone()
        return None if row is None else bytes(row[0])

    # ------------------------------------------------------------ writes

    def write(
        self,
        groups: dict[bytes, SavedGroup | None],
        invitations: bytes | None = None,
    ) -> None:
        """Save (or, for None, delete) groups, and the invitations, in one transaction.

        A :class:`SavedGroup` whose ``state`` is None keeps the state written
        before (the group must have been saved once).
        """
        db = self._db
        if db is None:
            return
        with self._thread_lock:
            try:
                db.execute("BEGIN IMMEDIATE")
                for gid, row in groups.items():
                    if row is None:
                        db.execute("DELETE FROM groups WHERE id = ?", (gid,))
                        db.execute("DELETE FROM trees WHERE id = ?", (gid,))
                        continue
                    if row.state is None:
                        cursor = db.execute(
                            "UPDATE groups SET runner = ? WHERE id = ?", (row.runner, gid)
                        )
                        if cursor.rowcount != 1:
                            raise StoreError(f"group {gid.hex()} was never saved whole")
                    else:
                        db.execute(
                            "INSERT OR REPLACE INTO groups (id, state, runner) VALUES (?, ?, ?)",
                            (gid, row.state, row.runner),
                        )
                    db.execute(
                        "INSERT OR REPLACE INTO trees (id, trees) VALUES (?, ?)", (gid, row.trees)
                    )
                if invitations is not None:
                    db.execute(
                        "INSERT OR REPLACE INTO kv (name, value) VALUES (?, ?)",
                        (_INVITATIONS, invitations),
                    )
                db.execute("COMMIT")
            except (sqlite3.Error, StoreError) as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if isinstance(exc, StoreError):
                    raise
                raise StoreError(f"cannot save the groups: {exc}") from None

    async def save(
        self,
        groups: dict[bytes, SavedGroup | None],
        invitations: bytes | None = None,
    ) -> None:
        """:meth:`write`, off the event loop; returns once it is on disk."""
        if self._db is None:
            return
        async with self._lock:
            if _simulated():
                self.write(groups, invitations)
            else:
                await trio.to_thread.run_sync(self.write, groups, invitations)


def _simulated() -> bool:
    testing = sys.modules.get("trio.testing")
    return testing is not None and isinstance(trio.lowlevel.current_clock(), testing.MockClock)
