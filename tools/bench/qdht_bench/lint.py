"""``qdht-bench lint``: qdht-lint's message throughput on small mixed DHT messages.

Generates ``--count`` DHT messages (deterministic seed: every type, NODES
with 1 to 3 contacts), writes them as one CBOR sequence (RFC 8742) to a
temporary file, and times :class:`qdht_lint.engine.Linter` over the whole
file (read + split + lint, median of ``--runs``, one process, one core).  A
plain ``cbor2.loads`` pass over the same messages is the same-run baseline;
the CLI is timed end to end once (``qdht-lint messages --quiet FILE``,
in-process, output discarded).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import tempfile
import time
from pathlib import Path
from typing import Final

import cbor2

from qdht.wire import (
    Address,
    Contact,
    ErrorMessage,
    FindNode,
    FindValue,
    ImmutableRecord,
    Nodes,
    Ping,
    Pong,
    Store,
    Stored,
    Value,
    WireMessage,
    encode,
)
from qdht_bench._common import BenchResult, Target, median

__all__ = ["DESCRIPTION", "add_arguments", "make_messages", "run"]

DESCRIPTION: Final = "qdht-lint messages throughput on 100,000 small mixed DHT messages"

#: The issue's target, on one core.
TARGET_MSGS_PER_S: Final = 20_000.0
SEED: Final = 20261121


def _contact(rng: random.Random) -> Contact:
    addresses = []
    for _ in range(rng.randint(1, 2)):
        if rng.random() < 0.7:
            host = ".".join(str(rng.randint(1, 254)) for _ in range(4))
        else:
            host = "2001:db8::" + format(rng.randint(1, 0xFFFF), "x")
        addresses.append(Address(rng.choice(("udp", "ws")), host, rng.randint(1024, 65535)))
    return Contact(rng.randbytes(32), addresses)


def _message(rng: random.Random, kind: int) -> WireMessage:
    rid = rng.randbytes(8)
    if kind == 0:
        return Ping(rid=rid)
    if kind == 1:
        return Pong(rid=rid)
    if kind == 2:
        return FindNode(rid=rid, target=rng.randbytes(32))
    if kind == 3:
        return Nodes(rid=rid, nodes=[_contact(rng) for _ in range(rng.randint(1, 3))])
    if kind == 4:
        return FindValue(rid=rid, key=rng.randbytes(32))
    if kind == 5:
        record = ImmutableRecord(rng.randbytes(rng.randint(0, 64)), 1_750_000_000)
        return Value(rid=rid, record=record)
    if kind == 6:
        record = ImmutableRecord(rng.randbytes(rng.randint(1, 64)), 1_750_000_000)
        return Store(rid=rid, key=rng.randbytes(32), record=record)
    if kind == 7:
        return Stored(rid=rid)
    return ErrorMessage(code=rng.randint(1, 5), message="request failed", rid=rid)


def make_messages(count: int, seed: int = SEED) -> list[bytes]:
    """``count`` encoded DHT messages, cycling through the nine types."""
    rng = random.Random(seed)
    return [encode(_message(rng, i % 9)) for i in range(count)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=100_000, help="messages (default 100000)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs (median; default 3)")


def run(args: argparse.Namespace) -> BenchResult:
    from qdht_lint._input import parse_input
    from qdht_lint.cli import main as lint_main
    from qdht_lint.engine import OK, Linter

    result = BenchResult("lint")
    messages = make_messages(args.count)
    linter = Linter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "messages.cbor"
        path.write_bytes(b"".join(messages))

        lint_times: list[float] = []
        lint_cpu_times: list[float] = []
        decode_times: list[float] = []
        not_ok = 0
        for _ in range(max(1, args.runs)):
            start, start_cpu = time.perf_counter(), time.process_time()
            items = parse_input(path.read_bytes(), str(path), "cbor-seq")
            verdicts = linter.lint_many(item.data for item in items)
            lint_times.append(time.perf_counter() - start)
            lint_cpu_times.append(time.process_time() - start_cpu)
            not_ok = sum(1 for v in verdicts if v.verdict != OK)

            start = time.perf_counter()
            loads = cbor2.loads
            for data in messages:
                loads(data)
            decode_times.append(time.perf_counter() - start)

        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            status = lint_main(["messages", "--quiet", "--input-format", "cbor-seq", str(path)])
        cli_time = time.perf_counter() - start

    lint_rate = args.count / median(lint_times)
    decode_rate = args.count / median(decode_times)
    result.add("messages", args.count)
    result.add("mean_message_bytes", sum(map(len, messages)) / len(messages))
    result.add("lint_msgs_per_s", lint_rate, Target(">=", TARGET_MSGS_PER_S))
    result.add("lint_us_per_msg", 1e6 / lint_rate)
    # CPU time of this process: what one core costs when the machine is shared.
    result.add("lint_cpu_msgs_per_s", args.count / median(lint_cpu_times))
    result.add("cbor_decode_msgs_per_s", decode_rate)
    result.add("lint_cost_ratio", decode_rate / lint_rate)
    result.add("cli_msgs_per_s", args.count / cli_time)
    result.add("not_ok_messages", not_ok, Target("==", 0))
    result.add("cli_exit_status", status, Target("==", 0))
    result.notes.append(
        f"median of {max(1, args.runs)} runs; lint = read + split the CBOR sequence + "
        "Linter.lint_many (cyclic GC paused for the batch, as the CLI does)"
    )
    return result
