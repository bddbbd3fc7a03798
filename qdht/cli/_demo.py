"""``qdht demo``: a whole DHT on loopback UDP in one process, measured.

Starts ``--nodes`` nodes (each its own UDP socket on 127.0.0.1), bootstraps
them off the first one, stores random values from random nodes, fetches each
from another random node, runs FIND_NODE lookups for random nodes, and ends
with a table: success rate, latency median and p99, hops, RPCs per lookup,
bytes sent, handshakes.  Exit status 1 if any operation failed.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Final

import attrs
import trio
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import qdht
from qdht.cli._common import usage_error
from qdht.cli._demo_msg import run_messaging_demo
from qdht.cli._output import Output, format_bytes, format_seconds
from qdht.cli._plot import plot_demo, require_matplotlib
from qdht.errors import QdhtError
from qdht.identity import DEFAULT_PUZZLE_DIFFICULTY, Identity
from qdht.testing import percentile as percentile
from qdht.wire import Contact, immutable_key

__all__ = ["DEFAULT_DEMO_DIFFICULTY", "register"]

#: Puzzle difficulty of the demo network: minting 20 identities at the network
#: default (19 bits, about a second each) would dominate the run.
DEFAULT_DEMO_DIFFICULTY: Final = 8
DEFAULT_NODES: Final = 20
#: Bucket size and replication factor of the demo network.
DEFAULT_DEMO_K: Final = 5
MAX_NODES: Final = 500
#: Sizes of the random values stored, in bytes.
VALUE_SIZES: Final = (32, 4096)
#: Columns of the result table ("local": answered from the node's own store).
OPERATION_COLUMNS: Final = (
    "operation",
    "ok",
    "success",
    "latency median",
    "latency p99",
    "hops",
    "RPCs",
    "local",
)
#: Rows of the network table: key in the JSON report → label.
NETWORK_LABELS: Final = {
    "bytes_sent": "bytes sent (total)",
    "bytes_sent_per_node": "bytes sent (per node)",
    "datagrams_sent": "datagrams sent",
    "handshakes": "handshakes",
    "handshakes_failed": "handshakes failed",
    "sessions": "sessions (both ends)",
    "routing_table_size_median": "routing table size (median)",
    "values_stored": "values stored (all copies)",
    "drops": "drops",
    "drops_by_reason": "drops by reason",
}
#: Bootstraps run at once (each is a handshake plus a self-lookup).
BOOTSTRAP_CONCURRENCY: Final = 4


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "demo",
        help="run a DHT of N nodes on loopback UDP and measure it",
        description=__doc__.split("\n\n")[1].replace("``", "") if __doc__ else None,
        parents=[common],
    )
    p.add_argument("--nodes", type=int, default=DEFAULT_NODES, help="nodes to start (default 20)")
    p.add_argument(
        "--values", type=int, default=None, help="values to store and fetch (default: --nodes)"
    )
    p.add_argument("--lookups", type=int, default=None, help="FIND_NODE lookups (default: --nodes)")
    p.add_argument("--seed", type=int, default=None, help="seed for the choice of nodes and values")
    p.add_argument(
        "--difficulty",
        type=int,
        default=DEFAULT_DEMO_DIFFICULTY,
        help=f"puzzle difficulty of the demo network (default {DEFAULT_DEMO_DIFFICULTY}; "
        f"real networks use {DEFAULT_PUZZLE_DIFFICULTY})",
    )
    p.add_argument(
        "--k",
        type=int,
        default=DEFAULT_DEMO_K,
        help=f"bucket size and replication factor (default {DEFAULT_DEMO_K}; networks use 20, "
        "which on a 20-node demo would put every value on every node)",
    )
    p.add_argument(
        "--timeout", type=float, default=30.0, help="seconds one operation may take (default 30)"
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    p.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="also draw latency, hops and RPCs per operation (needs the plot extra)",
    )
    p.add_argument(
        "--messaging",
        action="store_true",
        help="instead: two users exchange private messages through mixes (--nodes - 3 "
        "of them, 3..8, and an authority), one user offline for a while",
    )
    p.add_argument(
        "--direct",
        action="store_true",
        help="with --messaging: deliver directly, without mixes",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="with --messaging: ping-pong rounds once Bob is back (default 5)",
    )
    p.add_argument(
        "--mixnet",
        action="store_true",
        help="run a mixnet instead (an authority, --mixes mixes, --clients clients) and "
        "measure anonymous puts and gets",
    )
    p.add_argument("--mixes", type=int, default=9, help="mixes with --mixnet (default 9)")
    p.add_argument("--clients", type=int, default=4, help="clients with --mixnet (default 4)")
    p.add_argument(
        "--groups",
        action="store_true",
        help="instead: a group of 10 members (messages, an add, a remove, an update, "
        "a member offline for two epochs)",
    )
    p.set_defaults(run=run)


@attrs.define
class Operation:
    """Outcomes of one kind of operation (put, get, find_node)."""

    name: str
    total: int = 0
    ok: int = 0
    latencies: list[float] = attrs.Factory(list)
    hops: list[int] = attrs.Factory(list)
    rpcs: list[int] = attrs.Factory(list)
    failures: list[str] = attrs.Factory(list)
    #: Operations answered from the node's own store (no lookup ran).
    local: int = 0

    def record(self, latency: float, ok: bool, failure: str = "") -> None:
        self.total += 1
        self.latencies.append(latency)
        if ok:
            self.ok += 1
        else:
            self.failures.append(failure)

    def summary(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "ok": self.ok,
            "success_rate": self.ok / self.total if self.total else None,
            "latency_median_s": percentile(self.latencies, 50),
            "latency_p99_s": percentile(self.latencies, 99),
            "hops_median": percentile(self.hops, 50),
            "rpcs_median": percentile(self.rpcs, 50),
            "answered_locally": self.local,
            "failures": list(self.failures),
        }


def run(args: argparse.Namespace, out: Output) -> int:
    if args.messaging:
        return run_messaging_demo(args, out)
    if args.mixnet:
        from qdht.cli._demo_mixnet import run_mixnet_demo

        return run_mixnet_demo(args, out)
    if args.groups:
        from qdht.cli._demo_groups import run_groups_demo

        return run_groups_demo(args, out)
    if not 2 <= args.nodes <= MAX_NODES:
        raise usage_error(f"--nodes must be in 2..{MAX_NODES}")
    values = args.nodes if args.values is None else args.values
    lookups = args.nodes if args.lookups is None else args.lookups
    if values < 0 or lookups < 0:
        raise usage_error("--values and --lookups must not be negative")
    if not 0 <= args.difficulty <= 32:
        raise usage_error("--difficulty must be in 0..32 for the demo")
    if not args.timeout > 0:
        raise usage_error("--timeout must be positive")
    if not 1 <= args.k <= 20:
        raise usage_error("--k must be in 1..20")
    if args.plot is not None:
        require_matplotlib()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    out.note(
        f"qdht demo: {args.nodes} nodes on loopback UDP, k = {args.k}, puzzle difficulty "
        f"{args.difficulty} (networks default to {DEFAULT_PUZZLE_DIFFICULTY}), seed {seed}"
    )
    demo = Demo(args.nodes, values, lookups, seed, args.difficulty, args.k, args.timeout, out)
    started = time.perf_counter()
    trio.run(demo.run)
    elapsed = time.perf_counter() - started
    report = demo.report(elapsed)
    demo.print_report(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        out.note(f"wrote {args.json}")
    if args.plot is not None:
        title = f"qdht demo: {args.nodes} nodes, k = {args.k}, seed {seed}"
        plot_demo(demo.operations, title, args.plot)
        out.note(f"wrote {args.plot}")
    for failure in demo.bootstrap_failures:
        out.error(f"bootstrap failed: {failure}")
    failed = [op for op in demo.operations if op.ok < op.total]
    for op in failed:
        for failure in op.failures:
            out.error(f"{op.name} failed: {failure}")
    return 1 if failed or not demo.all_bootstrapped else 0


class _Phases:
    """Progress of the demo's phases: a live bar on a terminal, one line per phase in logs."""

    def __init__(self, out: Output) -> None:
        self._out = out
        self._progress: Progress | None = None
        if out.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description:<28}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=out.console,
                transient=False,
            )
        self._task: Any = None
        self._name = ""
        self._started = 0.0
        self._total = 0
        self._done = 0

    def __enter__(self) -> _Phases:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, name: str, total: int) -> None:
        self._name, self._total, self._done = name, total, 0
        self._started = time.perf_counter()
        if self._progress is not None:
            self._task = self._progress.add_task(name, total=total)

    def advance(self) -> None:
        self._done += 1
        if self._progress is not None:
            self._progress.advance(self._task)

    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def finish(self, detail: str = "") -> None:
        if self._progress is not None:
            if detail:
                self._progress.update(self._task, description=f"{self._name} ({detail})")
        else:
            seconds = time.perf_counter() - self._started
            suffix = f", {detail}" if detail else ""
            self._out.note(f"{self._name}: {self._done}/{self._total} in {seconds:.2f} s{suffix}")


class Demo:
    """One demo run: the nodes, the operations, and what was measured."""

    def __init__(
        self,
        nodes: int,
        values: int,
        lookups: int,
        seed: int,
        difficulty: int,
        k: int,
        timeout: float,
        out: Output,
    ) -> None:
        self.k = k
        self.n = nodes
        self.n_values = values
        self.n_lookups = lookups
        self.seed = seed
        self.difficulty = difficulty
        self.timeout = timeout
        self.out = out
        self.rng = random.Random(seed)
        self.nodes: list[qdht.Node] = []
        self.put = Operation("put")
        self.get = Operation("get")
        self.find_node = Operation("find_node")
        self.operations = (self.put, self.get, self.find_node)
        self.all_bootstrapped = True
        self.bootstrap_failures: list[str] = []
        self.network: dict[str, Any] = {}
        self.timings: dict[str, float] = {}

    async def run(self) -> None:
        with _Phases(self.out) as phases:
            identities = self._mint(phases)
            async with AsyncExitStack() as stack:
                phases.start("starting nodes", self.n)
                for identity in identities:
                    config = qdht.Config(
                        listen=("udp://127.0.0.1:0",),
                        identity=identity,
                        puzzle_difficulty=self.difficulty,
                        k=self.k,
                    )
                    self.nodes.append(await stack.enter_async_context(qdht.open_node(config)))
                    phases.advance()
                self._finish(phases, "start")
                await self._bootstrap_all(phases)
                stored = await self._put_all(phases)
                await self._get_all(phases, stored)
                await self._find_all(phases)
                self.network = self._network_stats()

    def _finish(self, phases: _Phases, name: str, detail: str = "") -> None:
        self.timings[name] = phases.elapsed()
        phases.finish(detail)

    def _mint(self, phases: _Phases) -> list[Identity]:
        phases.start(f"minting {self.n} identities", self.n)
        identities = []
        for _ in range(self.n):
            identities.append(Identity.generate(self.difficulty))
            phases.advance()
        self._finish(phases, "identities")
        return identities

    async def _bootstrap_all(self, phases: _Phases) -> None:
        phases.start("bootstrapping", self.n - 1)
        seed = self.nodes[0].contact
        limiter = trio.CapacityLimiter(BOOTSTRAP_CONCURRENCY)

        async def join(node: qdht.Node) -> None:
            async with limiter:
                try:
                    with trio.fail_after(self.timeout):
                        answered = await node.bootstrap([seed])
                    failure = "" if answered else "the seed node did not answer"
                except (QdhtError, trio.TooSlowError) as exc:
                    failure = _why(exc)
                if failure:
                    self.all_bootstrapped = False
                    self.bootstrap_failures.append(f"{node.node_id.hex()[:16]}: {failure}")
                phases.advance()

        async with trio.open_nursery() as nursery:
            for node in self.nodes[1:]:
                nursery.start_soon(join, node)
        sizes = [node.stats()["routing_table_size"] for node in self.nodes]
        self._finish(phases, "bootstrap", f"routing table sizes median {percentile(sizes, 50)}")

    async def _timed(
        self,
        op: Operation,
        node: qdht.Node,
        call: Callable[[], Awaitable[Any]],
        check: Callable[[Any], str | None],
    ) -> Any:
        """Run one operation under the timeout and record it; ``check`` names a wrong result."""
        previous = node.last_lookup_trace
        started = time.perf_counter()
        try:
            with trio.fail_after(self.timeout):
                result = await call()
        except (QdhtError, trio.TooSlowError) as exc:
            op.record(time.perf_counter() - started, False, _why(exc))
            return None
        failure = check(result)
        op.record(time.perf_counter() - started, failure is None, failure or "")
        trace = node.last_lookup_trace
        if trace is None or trace is previous:
            op.local += 1  # answered from the node's own store: no lookup ran
        else:
            op.hops.append(trace.hops if op.name == "get" else trace.closest_hops)
            op.rpcs.append(trace.rpcs)
        return result if failure is None else None

    async def _put_all(self, phases: _Phases) -> list[tuple[int, bytes, bytes]]:
        phases.start("storing values", self.n_values)
        stored = []
        for _ in range(self.n_values):
            origin = self.rng.randrange(self.n)
            value = self.rng.randbytes(self.rng.randint(*VALUE_SIZES))
            node = self.nodes[origin]
            expected = immutable_key(value)

            def check_key(key: bytes, expected: bytes = expected) -> str | None:
                return None if key == expected else f"put returned key {key.hex()[:16]}"

            key = await self._timed(self.put, node, functools.partial(node.put, value), check_key)
            if key is not None:
                stored.append((origin, key, value))
            phases.advance()
        self._finish(phases, "put")
        return stored

    async def _get_all(self, phases: _Phases, stored: list[tuple[int, bytes, bytes]]) -> None:
        phases.start("fetching values", len(stored))
        for origin, key, value in stored:
            node = self.nodes[self._other(origin)]

            def check_value(
                got: bytes | None, key: bytes = key, value: bytes = value
            ) -> str | None:
                if got is None:
                    return f"key {key.hex()[:16]}: not found"
                return None if got == value else f"key {key.hex()[:16]}: wrong value"

            await self._timed(self.get, node, functools.partial(node.get, key), check_value)
            phases.advance()
        self._finish(phases, "get")

    async def _find_all(self, phases: _Phases) -> None:
        phases.start("finding nodes", self.n_lookups)
        for _ in range(self.n_lookups):
            origin = self.rng.randrange(self.n)
            target = self.nodes[self._other(origin)].node_id
            node = self.nodes[origin]

            def check_found(found: list[Contact], target: bytes = target) -> str | None:
                if found and found[0].node_id == target:
                    return None
                return f"node {target.hex()[:16]}: not found"

            call = functools.partial(node.find_node, target)
            await self._timed(self.find_node, node, call, check_found)
            phases.advance()
        self._finish(phases, "find_node")

    def _other(self, index: int) -> int:
        """A random node index other than ``index``."""
        other = self.rng.randrange(self.n - 1)
        return other + 1 if other >= index else other

    def _network_stats(self) -> dict[str, Any]:
        stats = [node.stats() for node in self.nodes]
        # Handshakes started count each handshake once (at its initiator).
        sessions = [node.endpoint.stats() for node in self.nodes]
        sent = sum(s["bytes_sent"] for s in stats)
        return {
            "bytes_sent": sent,
            "bytes_sent_per_node": sent / len(stats),
            "datagrams_sent": sum(s["datagrams_sent"] for s in stats),
            "handshakes": sum(s.get("handshakes_started", 0) for s in sessions),
            "handshakes_failed": sum(s["handshakes_failed"] for s in stats),
            "sessions": sum(s["sessions"] for s in stats),
            "routing_table_size_median": percentile([s["routing_table_size"] for s in stats], 50),
            "values_stored": sum(s["storage"].get("records", 0) for s in stats),
            "drops": sum(s["drops_total"] for s in stats),
            "drops_by_reason": _merge_counts(s["drops"] for s in stats),
        }

    def report(self, elapsed: float) -> dict[str, Any]:
        return {
            "nodes": self.n,
            "seed": self.seed,
            "difficulty": self.difficulty,
            "k": self.k,
            "elapsed_s": elapsed,
            "phases_s": dict(self.timings),
            "bootstrap_failures": list(self.bootstrap_failures),
            "operations": {op.name: op.summary() for op in self.operations},
            "network": dict(self.network),
            "ok": self.all_bootstrapped and all(op.ok == op.total for op in self.operations),
        }

    def print_report(self, report: dict[str, Any]) -> None:
        rows = []
        for name, op in report["operations"].items():
            rate = op["success_rate"]
            rows.append(
                (
                    name,
                    f"{op['ok']}/{op['total']}",
                    "-" if rate is None else f"{100 * rate:.1f} %",
                    format_seconds(op["latency_median_s"]),
                    format_seconds(op["latency_p99_s"]),
                    _number(op["hops_median"]),
                    _number(op["rpcs_median"]),
                    str(op["answered_locally"]),
                )
            )
        self.out.table(
            f"qdht demo: {self.n} nodes, seed {self.seed}, {report['elapsed_s']:.1f} s",
            (
                "operation",
                "ok",
                "success",
                "latency median",
                "latency p99",
                "hops",
                "RPCs",
                "local",
            ),
            rows,
        )
        net = report["network"]
        self.out.table(
            "network",
            ("measure", "value"),
            [(label, _describe(key, net[key])) for key, label in NETWORK_LABELS.items()],
        )


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}"


def _describe(key: str, value: Any) -> str:
    if key.startswith("bytes"):
        return format_bytes(value)
    if isinstance(value, dict):
        shown = list(value.items())[:3]
        more = ", ..." if len(value) > len(shown) else ""
        return ", ".join(f"{k} {v}" for k, v in shown) + more if shown else "none"
    return str(value)


def _merge_counts(tables: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for table in tables:
        for name, count in table.items():
            total[name] = total.get(name, 0) + count
    return dict(sorted(total.items(), key=lambda item: -item[1]))


def _why(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return "timed out"
    return str(exc) or type(exc).__name__
