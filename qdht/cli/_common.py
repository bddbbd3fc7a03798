"""Pieces every ``qdht`` subcommand shares: the command error, argument converters, paths."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from qdht.errors import ContactError
from qdht.wire import Contact

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "default_data_dir",
    "parse_contacts",
    "parse_hex_id",
    "read_passphrase",
    "usage_error",
]

#: Largest passphrase file read (a passphrase, not a document).
MAX_PASSPHRASE_FILE: Final = 4096

#: Exit statuses of every ``qdht`` command.
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130


class CommandError(Exception):
    """An error the command reports as one line on stderr, with its exit code.

    ``exit_code`` 2 means the command line was wrong; 1 means the operation failed.
    """

    def __init__(self, message: str, *, exit_code: int = EXIT_FAILED, prog: str = "qdht") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.prog = prog


def usage_error(message: str) -> CommandError:
    """A :class:`CommandError` for a bad command line (exit code 2)."""
    return CommandError(message, exit_code=EXIT_USAGE)


def default_data_dir() -> Path:
    """``$QDHT_HOME``, else ``$XDG_DATA_HOME/qdht``, else ``~/.local/share/qdht``."""
    if home := os.environ.get("QDHT_HOME"):
        return Path(home)
    if xdg := os.environ.get("XDG_DATA_HOME"):
        return Path(xdg) / "qdht"
    return Path.home() / ".local" / "share" / "qdht"


def parse_hex_id(text: str, *, what: str) -> bytes:
    """A 32-byte node ID or key from 64 hex digits; a usage error naming ``what`` otherwise."""
    cleaned = text.strip().lower()
    if len(cleaned) != 64:
        raise usage_error(f"{what} must be 64 hex digits, got {len(cleaned)} characters")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise usage_error(f"{what} must be 64 hex digits, got {text!r}") from None


def parse_contacts(uris: Sequence[str], *, option: str = "--bootstrap") -> list[Contact]:
    """Contacts from ``qdht+udp://`` / ``qdht+ws://`` URIs; a usage error naming the option."""
    contacts = []
    for uri in uris:
        try:
            contacts.append(Contact.from_uri(uri))
        except ContactError as exc:
            raise usage_error(f"{option}: {exc}") from None
    return contacts


def read_passphrase(path: str | None) -> str | None:
    """The passphrase in ``path`` (first line, without its line ending), or None."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_PASSPHRASE_FILE + 1)
    except OSError as exc:
        raise CommandError(f"cannot read passphrase file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CommandError(f"passphrase file {path} is not UTF-8 text") from None
    if len(text) > MAX_PASSPHRASE_FILE:
        raise CommandError(f"passphrase file {path} is larger than {MAX_PASSPHRASE_FILE} bytes")
    passphrase = text.splitlines()[0] if text else ""
    if not passphrase:
        raise CommandError(f"passphrase file {path} is empty")
    return passphrase
