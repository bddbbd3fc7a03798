"""The session key log (``protocol-spec/09-keylog.md``): like TLS's SSLKEYLOGFILE.

A node started with ``QDHT_KEYLOGFILE=PATH`` appends one line per installed
transport keypair (every established session and every rekey) so that a
capture of its traffic can be decrypted and linted (``qdht-lint capture``).
Anyone who can read the file can read that traffic: it is for debugging and
conformance testing only.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

import attrs

from qdht.errors import ConfigError
from qdht.session._config import KEYLOG_ENV

__all__ = [
    "KEYLOG_LABEL",
    "KeyLogEntry",
    "KeyLogFile",
    "keylog_from_environ",
    "parse_keylog",
]

logger = logging.getLogger(__name__)

#: First field of every key log line.
KEYLOG_LABEL: Final = "QDHT_SESSION"
#: Longest line a reader accepts (a valid line is at most 358 characters).
MAX_LINE: Final = 1024
_LINE = re.compile(
    r"QDHT_SESSION ([0-9a-f]{64}) ([0-9]{1,10}) ([0-9]{1,10}) ([0-9a-f]{64}) ([0-9a-f]{64})"
    r" ([0-9a-f]{128})"
)
_MAX_INDEX: Final = 2**32 - 1

KeyLog = Callable[[str], None]


@attrs.frozen
class KeyLogEntry:
    """One line of a key log: the keys of one keypair, seen from the logging node."""

    #: The peer's node ID (32 bytes).
    peer_id: bytes
    #: The logging node's index for these keys: the ``rid`` of packets it receives.
    local_index: int
    #: The peer's index: the ``rid`` of packets the logging node sends.
    peer_index: int
    #: Key the logging node encrypts with (32 bytes).
    send_key: bytes
    #: Key the logging node decrypts with (32 bytes).
    recv_key: bytes
    #: The handshake hash ``h`` after ``Split`` (64 bytes).
    handshake_hash: bytes

    def line(self) -> str:
        """The line as written to the file (without its newline)."""
        return (
            f"{KEYLOG_LABEL} {self.peer_id.hex()} {self.local_index} {self.peer_index} "
            f"{self.send_key.hex()} {self.recv_key.hex()} {self.handshake_hash.hex()}"
        )


def parse_keylog(text: str) -> tuple[list[KeyLogEntry], list[int]]:
    """The entries of a key log, and the (1-based) numbers of the lines it skipped.

    Blank lines and lines starting with ``#`` are comments; any other line
    that is not exactly one entry is skipped (never raises).
    """
    entries: list[KeyLogEntry] = []
    skipped: list[int] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.fullmatch(line) if len(line) <= MAX_LINE else None
        if match is None:
            skipped.append(number)
            continue
        peer, local, remote, send, recv, hh = match.groups()
        if not (1 <= int(local) <= _MAX_INDEX and 1 <= int(remote) <= _MAX_INDEX):
            skipped.append(number)
            continue
        entries.append(
            KeyLogEntry(
                bytes.fromhex(peer),
                int(local),
                int(remote),
                bytes.fromhex(send),
                bytes.fromhex(recv),
                bytes.fromhex(hh),
            )
        )
    return entries, skipped


class KeyLogFile:
    """Appends key log lines to ``path`` (created mode 0600; never truncated).

    Each line is one ``write`` on a descriptor opened with ``O_APPEND``, so
    several nodes (and processes) may share one file.  A failure to write is
    logged, never raised: the key log must not take a node down.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._append(b"")
        except OSError as exc:
            raise ConfigError(
                f"{KEYLOG_ENV}: cannot open {str(self.path)!r} for appending: {exc.strerror or exc}"
            ) from None
        self.lines = 0

    def _append(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if data:
                os.write(fd, data)
        finally:
            os.close(fd)

    def __call__(self, line: str) -> None:
        try:
            self._append(line.encode("ascii") + b"\n")
            self.lines += 1
        except OSError as exc:
            logger.error("cannot append to the key log %s: %s", self.path, exc)


def keylog_from_environ(environ: Mapping[str, str] | None = None) -> KeyLogFile | None:
    """The key log named by ``QDHT_KEYLOGFILE``, or None when it is unset or empty."""
    path = (os.environ if environ is None else environ).get(KEYLOG_ENV, "")
    if not path:
        return None
    keylog = KeyLogFile(path)
    logger.warning(
        "%s is set: session keys are appended to %s; anyone who can read that file can "
        "decrypt this node's traffic (debugging only)",
        KEYLOG_ENV,
        path,
    )
    return keylog
