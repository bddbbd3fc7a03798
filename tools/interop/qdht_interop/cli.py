"""``qdht-interop``: run the conformance suite against an implementation of qdht.

``run --command CMD`` starts the implementation under test (see
``tools/interop/README.md`` for the contract), ``run --target URI`` tests one
already listening; ``self-test`` runs the suite against qdht's own node and
the JavaScript peer.  Exit status: 0 when no case FAILED, 1 when one did,
2 on a usage error.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import trio

from qdht_interop._cases import CASES
from qdht_interop._report import render_table, write_reports
from qdht_interop._runner import (
    DEFAULT_DIFFICULTY,
    RunOptions,
    RunReport,
    require_lint_extra,
    run_suite,
)

__all__ = ["JS_PEER", "main", "python_command", "self_test_targets"]

#: The JavaScript peer's entry point, next to this package in the source tree.
JS_PEER: Final = Path(__file__).resolve().parent.parent / "js-peer" / "src" / "main.js"


def python_command() -> str:
    """The ``--command`` that runs qdht's own node under the harness contract."""
    return f"{shlex.quote(sys.executable)} -m qdht_interop.pynode"


def self_test_targets() -> list[RunOptions]:
    """The two implementations ``self-test`` runs against (the JS one needs ``node``)."""
    node = shutil.which("node") or "node"
    return [
        RunOptions(command=python_command(), name="qdht (Python)"),
        RunOptions(
            command=f"{shlex.quote(node)} {shlex.quote(str(JS_PEER))}",
            name="js-peer (JavaScript)",
            control=True,
        ),
    ]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qdht-interop", description=(__doc__ or "").split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--cases", action="append", metavar="GLOB", help="run only cases whose ID matches GLOB"
    )
    common.add_argument("--report", type=Path, metavar="DIR", help="write JSON, Markdown, HTML")
    common.add_argument(
        "--difficulty",
        type=int,
        default=DEFAULT_DIFFICULTY,
        help=f"the network's puzzle difficulty (QDHT_DIFFICULTY; default {DEFAULT_DIFFICULTY})",
    )
    common.add_argument(
        "--startup-timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="wait this long for the target's contact URI (default 20)",
    )
    common.add_argument(
        "--no-network", action="store_true", help="do not start the harness's Python network"
    )
    run = sub.add_parser("run", parents=[common], help="run the suite against one target")
    which = run.add_mutually_exclusive_group(required=True)
    which.add_argument("--command", metavar="CMD", help="start the target with /bin/sh -c CMD")
    which.add_argument("--target", metavar="URI", help="test a target already listening")
    run.add_argument(
        "--control", action="store_true", help="the target speaks the stdin control interface"
    )
    run.add_argument("--name", default="", help="the target's name in reports")
    run.add_argument("--listen", default="udp://127.0.0.1:0", help="QDHT_LISTEN for --command")
    sub.add_parser(
        "self-test", parents=[common], help="run the suite against qdht's node and the JS peer"
    )
    sub.add_parser("list", help="list the cases")
    return parser


async def _run_all(options: Sequence[RunOptions]) -> list[RunReport]:
    return [await run_suite(o) for o in options]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "list":
        for case in CASES:
            print(f"{case.id:<12} {case.spec:<24} {case.title}")
        return 0
    try:
        require_lint_extra()
    except ImportError as exc:
        print(f"qdht-interop: error: {exc}", file=sys.stderr)
        return 2
    if args.difficulty < 0 or args.difficulty > 32 or args.startup_timeout <= 0:
        print(
            "qdht-interop: --difficulty must be 0..32, --startup-timeout positive", file=sys.stderr
        )
        return 2
    shared = {
        "cases": tuple(args.cases or ["*"]),
        "difficulty": args.difficulty,
        "startup_timeout": args.startup_timeout,
        "network": not args.no_network,
    }
    if args.cmd == "run":
        options = [
            RunOptions(
                command=args.command,
                target=args.target,
                name=args.name,
                control=args.control,
                listen=args.listen,
                **shared,
            )
        ]
    else:
        options = [
            RunOptions(
                command=o.command,
                name=o.name,
                control=o.control,
                **shared,
            )
            for o in self_test_targets()
        ]
    try:
        reports = trio.run(_run_all, options)
    except KeyboardInterrupt:
        print("qdht-interop: interrupted", file=sys.stderr)
        return 130
    for report in reports:
        print(render_table(report))
        print()
    if args.report is not None:
        for path in write_reports(args.report, reports):
            print(f"wrote {path}")
    failed = [r.name for r in reports if r.failed]
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
