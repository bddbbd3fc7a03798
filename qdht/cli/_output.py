"""Terminal output of the ``qdht`` command: rich on a terminal, plain text in logs.

Machine-readable results (contact URIs, keys, values) are written as plain
lines with :func:`emit` so that scripts can read them whatever the terminal;
human-facing tables and progress go through a :class:`rich.console.Console`
that falls back to plain ASCII when stdout is not a terminal (CI logs).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final, TextIO

from rich import box
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

__all__ = ["Output", "format_bytes", "format_seconds"]

#: Log records without --verbose: warnings and errors, as one short line each.
_WARNING_FORMAT: Final = "qdht: %(levelname)s: %(message)s"
#: Width of plain (non-terminal) output, so logs look the same everywhere.
PLAIN_WIDTH: Final = 100


class Output:
    """Where the command writes: stdout for results, stderr for diagnostics."""

    def __init__(self, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.stdout = sys.stdout if stdout is None else stdout
        self.stderr = sys.stderr if stderr is None else stderr
        self.is_terminal = _isatty(self.stdout)
        self.console = _console(self.stdout)
        self.err_console = _console(self.stderr)

    def emit(self, line: str) -> None:
        """One machine-readable line on stdout, flushed at once (for pipes and scripts)."""
        self.stdout.write(line + "\n")
        self.stdout.flush()

    def note(self, message: str) -> None:
        """A human-facing line on stdout (no markup interpretation)."""
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)
        self.stdout.flush()

    def error(self, message: str, *, prog: str = "qdht") -> None:
        """One line on stderr: ``qdht: error: <message>``."""
        self.stderr.write(f"{prog}: error: {message}\n")
        self.stderr.flush()

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """A table: boxed on a terminal, ASCII in logs; numeric columns right-aligned."""
        table = Table(
            title=title,
            box=box.ROUNDED if self.is_terminal else box.ASCII,
            title_justify="left",
            show_lines=False,
        )
        for i, name in enumerate(columns):
            table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
        for row in rows:
            table.add_row(*row)
        self.console.print(table)
        self.stdout.flush()

    @contextmanager
    def logging_to_stderr(self, *, verbose: bool) -> Iterator[None]:
        """Show qdht's log records on stderr for the duration: DEBUG if verbose, else WARNING.

        The handler goes on the ``qdht`` logger and is removed afterwards, so
        calling :func:`qdht.cli.main` in-process leaves logging as it found it.
        """
        qdht_logger = logging.getLogger("qdht")
        handler: logging.Handler
        if _isatty(self.stderr):
            handler = RichHandler(console=self.err_console, show_path=False, markup=False)
        else:
            handler = logging.StreamHandler(self.stderr)
            fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose else _WARNING_FORMAT
            handler.setFormatter(logging.Formatter(fmt))
        handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
        old_level = qdht_logger.level
        qdht_logger.addHandler(handler)
        if verbose:
            qdht_logger.setLevel(logging.DEBUG)
        try:
            yield
        finally:
            qdht_logger.removeHandler(handler)
            qdht_logger.setLevel(old_level)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _console(stream: TextIO) -> Console:
    if _isatty(stream):
        return Console(file=stream, highlight=False)
    # Plain text for logs and pipes: no colour, no cursor movement, fixed width.
    return Console(
        file=stream,
        force_terminal=False,
        no_color=True,
        highlight=False,
        width=PLAIN_WIDTH,
        emoji=False,
    )


def format_seconds(seconds: float | None) -> str:
    """``12.3 ms`` / ``1.20 s``; ``-`` when there is no measurement."""
    if seconds is None:
        return "-"
    if seconds < 1.0:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def format_bytes(n: float | None) -> str:
    """``950 B`` / ``12.3 KiB`` / ``4.56 MiB``."""
    if n is None:
        return "-"
    if n < 1024:
        return f"{n:.0f} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.2f} MiB"
