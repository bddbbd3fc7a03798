"""``qdht``: argument parsing, dispatch, and the mapping of errors to exit codes.

Exit codes: 0 success; 1 the operation failed (not found, unreachable,
refused); 2 usage error (bad arguments, unparsable URIs or IDs); 130
interrupted.  Every error is one line on stderr, never a traceback:
:mod:`qdht.errors` exceptions carry messages written for users.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable, Iterator, Sequence

import qdht
from qdht.cli import _client, _demo, _group, _id, _model, _msg, _node, _train
from qdht.cli._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
)
from qdht.cli._output import Output
from qdht.errors import ConfigError, ContactError, QdhtError

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "main"]

Command = Callable[[argparse.Namespace, Output], int]


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors become a :class:`CommandError` (exit 2) instead of SystemExit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CommandError(
            f"{message} (see '{self.prog} --help')", exit_code=EXIT_USAGE, prog=self.prog
        )


def build_parser() -> argparse.ArgumentParser:
    """The whole ``qdht`` command line."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log qdht's debug messages to stderr",
    )
    parser = _Parser(
        prog="qdht",
        description="A post-quantum secure Kademlia DHT: run nodes, store and fetch values.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"qdht {qdht.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _demo.register(sub, common)
    _node.register(sub, common)
    _client.register(sub, common)
    _id.register(sub, common)
    _msg.register(sub, common)
    _group.register(sub, common)
    _model.register(sub, common)
    _train.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``qdht`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    out = Output()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except CommandError as exc:
        return _report(out, exc)
    run: Command | None = getattr(args, "run", None)
    if run is None:
        parser.print_help(out.stdout)
        return EXIT_USAGE
    with out.logging_to_stderr(verbose=getattr(args, "verbose", False)):
        try:
            return run(args, out)
        except KeyboardInterrupt:
            out.error("interrupted")
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # stdout's reader went away (``qdht find-node ... | head -1``): stop
            # quietly, and keep Python from complaining when it flushes stdout.
            _silence_stdout()
            return EXIT_FAILED
        except BaseExceptionGroup as group:
            leaf = _reportable(group)
            if leaf is None:
                raise
            if isinstance(leaf, KeyboardInterrupt):
                out.error("interrupted")
                return EXIT_INTERRUPTED
            return _report(out, leaf)
        except (CommandError, QdhtError, OSError) as exc:
            return _report(out, exc)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _reportable(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The error to show for an exception group from a nursery, or None for a real bug."""
    leaves = list(_leaves(group))
    for leaf in leaves:
        if isinstance(leaf, KeyboardInterrupt):
            return leaf
    if all(isinstance(leaf, CommandError | QdhtError | OSError) for leaf in leaves):
        return leaves[0] if leaves else None
    return None


def _report(out: Output, exc: BaseException) -> int:
    if isinstance(exc, CommandError):
        out.error(str(exc), prog=exc.prog)
        return exc.exit_code
    out.error(str(exc) or type(exc).__name__)
    if isinstance(exc, ContactError | ConfigError):
        return EXIT_USAGE
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
