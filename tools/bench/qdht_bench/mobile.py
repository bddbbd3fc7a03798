"""``qdht-bench mobile``: what an idle client node costs, and how fast it is back after suspend.

Three processes on loopback UDP: a ``--nodes`` network (one process, one
UDP socket per node, a value stored), an idle *client* (client mode, the
phone) and, as the baseline, an idle *serving* node joined to the same
network, measured over the same ``--idle`` seconds after both did one get.
For each: wake-ups per second of the whole process (context switches of
all its threads, from ``/proc``; an idle process only switches when
something wakes it), event-loop wake-ups (trio's I/O waits that returned),
bytes per second sent and received, resident memory (VmRSS, VmHWM).

Then the client is "suspended": its clock jumps ``--jump`` seconds (every
session key it holds expires, as after a night in a pocket) and its socket
moves to a new port (a new network: peers see a new address).  The
``resume_to_get_s`` figure is the time from there to the first successful
get, which needs new handshakes from the new address.  Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import attrs
import trio

from qdht import Config, open_node
from qdht.identity import Identity
from qdht_bench._common import BenchResult, Target
from qdht_bench._mobile_idle import (
    DIFFICULTY,
    VALUE,
    JumpClock,
    LoopWakeups,
    context_switches,
    memory_kb,
)

__all__ = [
    "DESCRIPTION",
    "JumpClock",
    "LoopWakeups",
    "add_arguments",
    "compile_bytecode",
    "context_switches",
    "memory_kb",
    "run",
]

DESCRIPTION: Final = "idle client in a loopback network: wake-ups/s, B/s, RSS, resume→get"
BOOTSTRAP_CONCURRENCY: Final = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=50, help="nodes of the network (default 50)")
    parser.add_argument("--idle", type=float, default=60.0, help="idle window, seconds")
    parser.add_argument("--jump", type=float, default=600.0, help="clock jump of the suspend, s")
    parser.add_argument(
        "--runs", type=int, default=3, help="idle client/serving pairs, medians (default 3)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="20 nodes, 10 s idle (a smoke run, not a measurement)"
    )


# -- the network process ------------------------------------------------------------


async def _network(conn: Any, n: int) -> None:
    config = Config(listen=("udp://127.0.0.1:0",), puzzle_difficulty=DIFFICULTY)
    async with trio.open_nursery() as nursery:
        nodes: list[Any] = []

        async def start(ready: trio.Event | None = None) -> None:
            identity = Identity.generate(DIFFICULTY)
            async with open_node(attrs.evolve(config, identity=identity)) as node:
                if nodes:
                    await node.bootstrap([nodes[0].contact])
                nodes.append(node)
                if ready is not None:
                    ready.set()
                await trio.sleep_forever()

        first = trio.Event()
        nursery.start_soon(start, first)
        await first.wait()
        limiter = trio.CapacityLimiter(BOOTSTRAP_CONCURRENCY)

        async def join() -> None:
            async with limiter:
                ready = trio.Event()
                nursery.start_soon(start, ready)
                await ready.wait()

        async with trio.open_nursery() as joins:
            for _ in range(n - 1):
                joins.start_soon(join)
        key = await nodes[1].put(VALUE)
        contacts = [node.contact.to_uri() for node in nodes[:4]]
        conn.send((contacts, key))
        await trio.to_thread.run_sync(conn.recv)  # "stop"
        nursery.cancel_scope.cancel()


def _network_main(conn: Any, n: int) -> None:
    trio.run(_network, conn, n)


#: What every Python process running a qdht node loads before qdht itself: the
#: interpreter, trio (which imports ``ssl``: OpenSSL), ``cryptography`` (its
#: own statically linked OpenSSL, loaded on first use; ML-KEM from a seed, as
#: X-Wing derives it, also loads its Python OpenSSL backend module), cbor2 and
#: attrs.  Measured as a baseline; ``QDHT=1`` adds ``import qdht`` (what the
#: library's code costs before a node runs).
_FLOOR = """
import os, trio, attrs, cbor2
from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
mlkem.MLKEM768PrivateKey.generate(), mldsa.MLDSA65PrivateKey.generate()  # backend loaded on use
mlkem.MLKEM768PrivateKey.from_seed_bytes(bytes(64))
x25519.X25519PrivateKey.generate(), ChaCha20Poly1305(bytes(32))
if os.environ.get("QDHT"):
    import qdht
import json
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
print(json.dumps({"vmrss_mb": int(status["VmRSS"].split()[0]) / 1024}))
"""


def compile_bytecode() -> int:
    """Compile qdht's modules, as installing a package does; return how many were (re)written.

    A source checkout run with ``PYTHONDONTWRITEBYTECODE`` (or never
    imported) has no ``.pyc`` files, and every process then compiles qdht from
    source, which leaves ~1.5 MB more resident: not what an installed app pays.
    """
    import compileall
    import io
    from contextlib import redirect_stdout

    import qdht

    out = io.StringIO()
    with redirect_stdout(out):
        compileall.compile_dir(Path(qdht.__file__).parent, quiet=0)
    return sum(1 for line in out.getvalue().splitlines() if line.startswith("Compiling"))


def _python(args: list[str], timeout: float, **env: str) -> dict[str, float]:
    """Run ``python ARGS`` (with ``env`` added) and return the JSON line it prints."""
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={**os.environ, **env},
    )
    if done.returncode != 0:
        raise RuntimeError(f"python {' '.join(args[:2])} failed: {done.stderr[-2000:]}")
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


def _idle_pair(contacts: list[str], key: bytes, idle: float, jump: float) -> list[dict[str, float]]:
    """A client and a serving node, each in a clean process, idle side by side."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "qdht_bench._mobile_idle",
                key.hex(),
                str(idle),
                str(jump),
                role,
                *contacts,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role in ("client", "serving")
    ]
    figures = []
    for proc in procs:
        out, err = proc.communicate(timeout=idle + 300)
        if proc.returncode != 0:
            raise RuntimeError(f"an idle node failed: {err[-2000:]}")
        figures.append(json.loads(out.splitlines()[-1]))
    return figures


def run(args: argparse.Namespace) -> BenchResult:
    nodes, idle = (20, 10.0) if args.quick else (args.nodes, args.idle)
    runs = 1 if args.quick else args.runs
    compiled = compile_bytecode()
    floor = statistics.median(_python(["-c", _FLOOR], 120)["vmrss_mb"] for _ in range(max(runs, 3)))
    imported = statistics.median(
        _python(["-c", _FLOOR], 120, QDHT="1")["vmrss_mb"] for _ in range(max(runs, 3))
    )
    ctx = multiprocessing.get_context("spawn")
    net_conn, net_child = ctx.Pipe()
    network = ctx.Process(target=_network_main, args=(net_child, nodes), daemon=True)
    network.start()
    try:
        if not net_conn.poll(600):
            raise RuntimeError("the network did not start")
        contacts, key = net_conn.recv()
        pairs = [_idle_pair(contacts, key, idle, args.jump) for _ in range(runs)]
    finally:
        net_conn.send("stop")
        network.join(30)
        if network.is_alive():
            network.kill()

    def med(role: int, name: str) -> float:
        return statistics.median(pair[role][name] for pair in pairs)

    result = BenchResult("mobile")
    result.add("client_wakeups_per_s", med(0, "wakeups_per_s"), Target("<=", 1.0))
    result.add("client_loop_wakeups_per_s", med(0, "loop_wakeups_per_s"))
    result.add("client_bytes_sent_per_s", med(0, "bytes_sent_per_s"), Target("<=", 100.0))
    result.add("client_bytes_received_per_s", med(0, "bytes_received_per_s"), Target("<=", 100.0))
    result.add("client_rss_mb", med(0, "vmrss_mb"), Target("<=", 40.0))
    result.add("client_peak_rss_mb", med(0, "vmhwm_mb"))
    # Private heap vs mapped files (libpython, OpenSSL, extension modules, code).
    result.add("client_rss_anon_mb", med(0, "rssanon_mb"))
    result.add("client_rss_file_mb", med(0, "rssfile_mb"))
    result.add("floor_rss_mb", floor)
    result.add("floor_plus_import_qdht_rss_mb", imported)
    result.add("client_rss_above_floor_mb", med(0, "vmrss_mb") - floor)
    result.add("resume_to_get_s", med(0, "resume_to_get_s"), Target("<=", 2.0))
    result.add("resume_get_ok", min(pair[0]["resume_get_ok"] for pair in pairs), Target("==", 1.0))
    result.add("serving_wakeups_per_s", med(1, "wakeups_per_s"))
    result.add("serving_bytes_sent_per_s", med(1, "bytes_sent_per_s"))
    result.add("serving_bytes_received_per_s", med(1, "bytes_received_per_s"))
    result.add("serving_rss_mb", med(1, "vmrss_mb"))
    if med(1, "wakeups_per_s") > 0:
        result.add("wakeups_ratio_to_serving", med(0, "wakeups_per_s") / med(1, "wakeups_per_s"))
    result.notes.append(
        f"{nodes} nodes on loopback UDP; idle window {idle:g} s after one get; "
        f"suspend: clock +{args.jump:g} s and a new UDP port; medians of {runs} run(s)"
    )
    result.notes.append("baseline: a serving node (not client mode) idle in the same network")
    result.notes.append(
        "floor: a process with only python, trio (ssl), cryptography, cbor2 and attrs imported"
    )
    result.notes.append(
        f"qdht's bytecode compiled first, as an installed package has it ({compiled} files "
        "written); MB here are MiB (VmRSS kB / 1024)"
    )
    return result
