"""``qdht demo --messaging``: two users exchange private messages on loopback UDP.

Runs :class:`qdht.messaging.MessagingDemo`: Bob publishes his prekeys and
goes offline, Alice writes to his mailbox, Bob returns and reads, then they
ping-pong and an idle period measures polling.  Alice and Bob deliver
through mixes (``--nodes`` - 3 of them, 3..8, with one directory authority;
the mixes hold the mailboxes and serve as exits), or directly with
``--direct``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import trio

from qdht.cli._common import CommandError, usage_error
from qdht.cli._output import Output, format_bytes, format_seconds
from qdht.messaging import MessagingDemo

__all__ = ["run_messaging_demo"]


def run_messaging_demo(args: argparse.Namespace, out: Output) -> int:
    if not 3 <= args.nodes <= 64:
        raise usage_error("--nodes must be in 3..64 for the messaging demo")
    if args.rounds < 1:
        raise usage_error("--rounds must be at least 1")
    mixes = 0 if args.direct else max(3, min(8, args.nodes - 3))
    if mixes:
        out.note(
            f"qdht demo --messaging: 1 authority, {mixes} mixes and 2 users on loopback UDP, "
            "delivery through the mixnet"
        )
    else:
        out.note(f"qdht demo --messaging: {args.nodes} nodes on loopback UDP, direct delivery")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qdht-msg-demo-") as tmp:
        demo = MessagingDemo(
            Path(tmp),
            nodes=args.nodes,
            difficulty=args.difficulty,
            timeout=args.timeout,
            mixes=mixes,
            rounds=args.rounds,
            poll_interval=2.0 if mixes else 0.5,
            note=out.note,
        )
        try:
            report = trio.run(demo.run)
        except trio.TooSlowError:
            raise CommandError(
                f"the messaging demo timed out (--timeout {args.timeout:g})"
            ) from None
        except RuntimeError as exc:
            raise CommandError(f"the messaging demo failed: {exc}") from None
    report["elapsed_s"] = time.perf_counter() - started
    latencies = report["latencies_s"]
    out.table(
        f"qdht demo --messaging: {report['nodes']} nodes, {report['elapsed_s']:.1f} s",
        ("measure", "value"),
        [
            ("delivery", f"{report['delivery']} ({report['mixes']} mixes)"),
            ("stored while Bob was offline", f"{report['stored_while_offline']}/{demo.messages}"),
            ("read by Bob on return", f"{report['received_after_return']}/{demo.messages}"),
            ("return to all read", format_seconds(report["return_to_all_read_s"])),
            ("in order", str(report["in_order"])),
            ("ping-pong messages", str(len(latencies))),
            ("end-to-end latency median", format_seconds(report["latency_median_s"])),
            ("end-to-end latency max", format_seconds(max(latencies, default=None))),
            (
                "idle polling, mailbox requests",
                f"{format_bytes(report['idle_mailbox_bytes_per_s_per_contact'])}/s per contact",
            ),
            (
                "idle polling, all node traffic",
                f"{format_bytes(report['idle_node_bytes_per_s_per_contact'])}/s per contact",
            ),
            *(
                [
                    ("requests answered through exits", str(report["exit_replies"])),
                    ("intro reads sent directly (§7.4)", str(report["intro_reads_direct"])),
                    ("other requests sent directly", str(report["direct_requests"])),
                ]
                if mixes
                else []
            ),
            ("messaging drops", json.dumps(report["drops"]) if report["drops"] else "none"),
        ],
    )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        out.note(f"wrote {args.json}")
    if not report["ok"]:
        out.error("the messaging demo did not deliver every message")
        return 1
    return 0
