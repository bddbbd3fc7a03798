"""``qdht-lint``: check protocol-spec/ and any implementation's messages against it.

``qdht-lint spec [DIR]`` checks the spec itself; ``qdht-lint messages
[FILE|-]...`` gives each message a verdict: OK, NON-STRICT (breaks a SHOULD),
NON-DETERMINISTIC (right content, wrong encoding) or INVALID;
``qdht-lint capture FILE --keylog PATH`` decrypts a pcap/pcapng capture with
a key log (``protocol-spec/09-keylog.md``) and gives each UDP packet a
verdict.  Exit status: 0 all OK, 1 anything not OK, 2 usage or input errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any, NoReturn, TextIO

from qdht.session import KeyLogEntry, parse_keylog
from qdht_lint._cddl import CddlError, default_spec_dir
from qdht_lint._input import FORMATS, InputError, Message, parse_input
from qdht_lint.capture import (
    CAPTURE_VERDICTS,
    DATAGRAM_SIZE,
    CaptureError,
    CaptureReport,
    lint_capture,
)
from qdht_lint.engine import OK, VERDICTS, Linter, Verdict
from qdht_lint.spec_check import check_spec

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as exceptions (exit 2, one line)."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="qdht-lint",
        description="Check protocol-spec/ and any implementation's messages against it.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    spec = sub.add_parser("spec", help="check the spec: CDDL, reachability, vectors")
    spec.add_argument("dir", nargs="?", type=Path, help="spec directory (default: protocol-spec)")
    msgs = sub.add_parser(
        "messages",
        help="lint encoded messages",
        description="Lint messages given as raw CBOR, a CBOR sequence, hex lines or JSON lines.",
    )
    msgs.add_argument("files", nargs="*", default=["-"], metavar="FILE", help="'-' is stdin")
    msgs.add_argument(
        "--input-format", "-f", choices=FORMATS, default="auto", help="default: auto-detect"
    )
    msgs.add_argument("--spec", type=Path, metavar="DIR", help="spec directory")
    msgs.add_argument("--json", action="store_true", help="print a JSON report")
    msgs.add_argument("--quiet", "-q", action="store_true", help="list only messages not OK")
    cap = sub.add_parser(
        "capture",
        help="decrypt a pcap/pcapng capture with a key log and lint every packet",
        description=(
            "Read a pcap or pcapng capture (Ethernet, Linux cooked, loopback or raw IP; "
            "IPv4/IPv6; UDP), decrypt qdht data packets with the keys of a key log "
            "(QDHT_KEYLOGFILE, protocol-spec/09-keylog.md), reassemble fragments and "
            "lint every packet, frame and message."
        ),
    )
    cap.add_argument("file", type=Path, metavar="FILE", help="pcap or pcapng capture")
    cap.add_argument(
        "--keylog", type=Path, metavar="PATH", help="key log file (without it: UNDECRYPTABLE)"
    )
    cap.add_argument("--spec", type=Path, metavar="DIR", help="spec directory")
    cap.add_argument("--json", action="store_true", help="print a JSON report")
    cap.add_argument("--quiet", "-q", action="store_true", help="list only packets not OK")
    cap.add_argument(
        "--datagram-size",
        type=int,
        default=DATAGRAM_SIZE,
        metavar="BYTES",
        help=f"the network's datagram_size: larger packets are INVALID (default {DATAGRAM_SIZE})",
    )
    cap.add_argument(
        "--strict",
        action="store_true",
        help="also exit 1 on UNDECRYPTABLE and NOT-QDHT packets",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status (never raises for bad input)."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        if args.command == "spec":
            return _spec(args.dir or default_spec_dir())
        if args.command == "capture":
            return _capture(args)
        return _messages(args)
    except (_UsageError, InputError, CaptureError) as exc:
        print(f"qdht-lint: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CddlError as exc:
        print(f"qdht-lint: error: the spec's CDDL: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader of the output went away (`| head`)
        # Point stdout at /dev/null so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (OSError, UnicodeDecodeError) as exc:  # the spec itself unreadable
        print(f"qdht-lint: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:
        return 130


def _spec(spec_dir: Path) -> int:
    if not (spec_dir / "qdht.cddl").is_file():
        raise _UsageError(f"{spec_dir}: no qdht.cddl there (not a spec directory)")
    report = check_spec(spec_dir)
    for failure in report.failures:
        print(f"FAIL {failure}")
    for warning in report.warnings:
        print(f"WARN {warning}")
    if report.ok:
        print(f"spec OK: {report.rules} rules, {report.vectors} vectors")
        return EXIT_OK
    print(
        f"spec FAILED: {len(report.failures)} problems "
        f"({report.rules} rules, {report.vectors} vectors)"
    )
    return EXIT_FAILED


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None


def _messages(args: argparse.Namespace) -> int:
    spec_dir = args.spec or default_spec_dir()
    if not (spec_dir / "qdht.cddl").is_file():
        raise _UsageError(f"{spec_dir}: no qdht.cddl there (use --spec DIR)")
    messages: list[Message] = []
    for name in args.files:
        messages.extend(
            parse_input(_read(name), "<stdin>" if name == "-" else name, args.input_format)
        )
    verdicts = Linter(spec_dir).lint_many(m.data for m in messages)
    counts = Counter(v.verdict for v in verdicts)
    if args.json:
        _print_json(messages, verdicts, counts, args.quiet, sys.stdout)
    else:
        _print_table(messages, verdicts, counts, args.quiet, sys.stdout)
    return EXIT_OK if counts[OK] == len(verdicts) else EXIT_FAILED


def _capture(args: argparse.Namespace) -> int:
    spec_dir = args.spec or default_spec_dir()
    if not (spec_dir / "qdht.cddl").is_file():
        raise _UsageError(f"{spec_dir}: no qdht.cddl there (use --spec DIR)")
    entries: list[KeyLogEntry] = []
    skipped: list[int] = []
    if args.keylog is not None:
        try:
            text = args.keylog.read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            raise InputError(f"{args.keylog}: cannot read: {exc.strerror or exc}") from None
        entries, skipped = parse_keylog(text)
    if not 600 <= args.datagram_size <= 65507:
        raise _UsageError(f"--datagram-size must be in 600..65507, got {args.datagram_size}")
    report = lint_capture(
        args.file,
        entries,
        linter=Linter(spec_dir),
        keep_ok=not args.quiet,
        datagram_size=args.datagram_size,
    )
    report.keylog_skipped = skipped
    out = sys.stdout
    if args.json:
        data = report.to_json()
        if args.quiet:
            data["packets"] = [p for p in data["packets"] if p["verdict"] != OK]
        json.dump(data, out, indent=1)
        out.write("\n")
    else:
        _print_capture(report, args.quiet, out)
    return EXIT_FAILED if report.failed(strict=args.strict) else EXIT_OK


def _print_capture(report: CaptureReport, quiet: bool, out: TextIO) -> None:
    header = ("frame", "src", "dst", "bytes", "verdict", "what", "reason")
    rows: list[tuple[tuple[str, ...], str]] = []
    for p in report.packets:
        if quiet and p.verdict == OK:
            continue
        row: tuple[str, ...] = (
            str(p.frame),
            p.src,
            p.dst,
            str(p.size),
            p.verdict,
            p.what,
            p.reason or "",
        )
        rows.append((row, p.detail))
    if rows:
        widths = [max(len(r[i]) for r in [header, *(r for r, _ in rows)]) for i in range(7)]
        out.write("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        out.write("\n")
        for row, detail in rows:
            out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
            out.write("\n")
            if detail:
                out.write(f"{'':{widths[0]}}  {detail}\n")
    counts = report.counts
    skipped = sum(report.skipped.values())
    out.write(
        f"{report.total} UDP packets ({report.linktype}): "
        + ", ".join(f"{counts[v]} {v}" for v in CAPTURE_VERDICTS)
        + f"; {skipped} other frames skipped"
        + (
            f" ({', '.join(f'{n} {k}' for k, n in sorted(report.skipped.items()))})"
            if skipped
            else ""
        )
        + "\n"
    )
    messages = sum(report.messages.values())
    out.write(
        f"{messages} application messages"
        + (
            f" ({', '.join(f'{n} {t}' for t, n in sorted(report.messages.items()))})"
            if messages
            else ""
        )
        + f"; key log: {report.keylog_entries} entries, {report.keys_used} keys used"
        + (f", lines skipped: {report.keylog_skipped}" if report.keylog_skipped else "")
        + "\n"
    )


def _summary(counts: Counter[str], total: int) -> str:
    return f"{total} messages: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS)


def _print_json(
    messages: list[Message],
    verdicts: list[Verdict],
    counts: Counter[str],
    quiet: bool,
    out: TextIO,
) -> None:
    results: list[dict[str, Any]] = []
    for index, (message, verdict) in enumerate(zip(messages, verdicts, strict=True)):
        if quiet and verdict.verdict == OK:
            continue
        entry: dict[str, Any] = {
            "index": index,
            "source": message.source,
            "size": len(message.data),
        }
        entry.update(verdict.to_json())
        if message.fields:
            entry["fields"] = message.fields
        results.append(entry)
    summary: dict[str, int] = {"messages": len(verdicts)}
    summary.update({v: counts[v] for v in VERDICTS})
    json.dump({"summary": summary, "results": results}, out, indent=1)
    out.write("\n")


def _print_table(
    messages: list[Message],
    verdicts: list[Verdict],
    counts: Counter[str],
    quiet: bool,
    out: TextIO,
) -> None:
    header = ("#", "source", "verdict", "rule", "reason", "path")
    rows: list[tuple[str, ...]] = []
    details: list[str] = []
    for index, (message, verdict) in enumerate(zip(messages, verdicts, strict=True)):
        if quiet and verdict.verdict == OK:
            continue
        source = message.source
        if "id" in message.fields:
            source += f" [{message.fields['id']}]"
        reason = verdict.reason or ""
        if verdict.should:
            reason = ",".join(verdict.should)
        rows.append(
            (str(index), source, verdict.verdict, verdict.rule or "-", reason, verdict.path or "")
        )
        details.append(verdict.detail)
    if rows:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        out.write(
            "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip() + "\n"
        )
        for row, detail in zip(rows, details, strict=True):
            line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            out.write(line + "\n")
            if detail and row[2] != OK:
                out.write(f"{'':{widths[0]}}  {detail}\n")
    out.write(_summary(counts, len(verdicts)) + "\n")


if __name__ == "__main__":
    sys.exit(main())
