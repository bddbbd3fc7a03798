"""What a node keeps in its data directory besides its key file and records.

* ``routing.cbor``: the routing table (:meth:`RoutingTable.to_snapshot`), so
  that a restarted node re-bootstraps from the peers it knew.  Written
  atomically (temporary file, fsync, rename): a crash leaves the old or the
  new snapshot, never half of one.  A snapshot that cannot be read is logged
  and ignored: the node then starts with an empty table, as a new node would.

The record store (``records.sqlite``) and the publisher's schedule
(``published.sqlite``) are SQLite files with their own modules.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Final

from qdht.errors import DecodeError
from qdht.wire import CborLimits, dumps_canonical, loads_canonical

__all__ = ["RECORDS_FILE", "ROUTING_FILE", "atomic_write", "load_snapshot", "save_snapshot"]

logger = logging.getLogger(__name__)

#: The routing table snapshot inside a node's data directory.
ROUTING_FILE: Final = "routing.cbor"
#: The SQLite record store inside a node's data directory.
RECORDS_FILE: Final = "records.sqlite"
#: Largest snapshot file read back (100,000 entries of ~120 bytes, with margin).
MAX_SNAPSHOT_BYTES: Final = 16 * 1024 * 1024
#: Decoding limits of a snapshot file: a local file, larger than any message,
#: but still bounded (``RoutingTable.from_snapshot`` then checks its shape).
SNAPSHOT_LIMITS: Final = CborLimits(
    max_bytes=MAX_SNAPSHOT_BYTES, max_depth=8, max_container_len=100_000, max_items=4_000_000
)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # not every platform can fsync a directory
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def save_snapshot(path: Path, snapshot: dict[str, Any]) -> None:
    """Write a routing table snapshot (deterministic CBOR) atomically."""
    atomic_write(path, dumps_canonical(snapshot))


def load_snapshot(path: Path) -> Any | None:
    """The snapshot saved at ``path``, or None when there is none or it is unreadable."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SNAPSHOT_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("cannot read the routing table snapshot %s: %s", path, exc)
        return None
    if len(data) > MAX_SNAPSHOT_BYTES:
        logger.warning("routing table snapshot %s is too large; ignored", path)
        return None
    try:
        return loads_canonical(data, SNAPSHOT_LIMITS)
    except DecodeError as exc:
        logger.warning("routing table snapshot %s is corrupt (%s); ignored", path, exc)
        return None
