"""``qdht-bench durability``: do records survive two days of churn with replication on?

A core-level simulation (:class:`qdht.testing.CoreNetwork`: production
``DhtCore`` s in simulated time, sessions not simulated) of ``--nodes``
nodes, with ``--loss`` (5 %) of all messages lost.  ``--records`` immutable
records are put from random nodes; then for ``--hours`` simulated hours the
network churns while every holder runs its republish rounds and hands
records to new close nodes (``protocol-spec/07-records.md`` §10).  A node
that leaves loses everything it stored; a new one bootstraps from a random
live node.  At the end every record is fetched from a random live node:
``retrievable_<scenario>`` is the fraction found, with its trial count and
95 % Wilson lower bound.  Records expire after the run (``exp`` beyond it),
so this measures the holders' replication alone, without any publisher
putting its records again.

Churn as measured in deployed DHTs (:class:`qdht.testing.SessionLengths`):
every node's session length is Weibull, shape 0.5 (heavy tailed; Stutzbach &
Rejaie, IMC 2006), with the mean that makes ``--churn`` of the network leave
per hour (0.3: mean session 3 h 20 min); each departure is replaced by an
arrival at once, so the population stays put; the nodes present at the start
get the remainder of a session in progress, so every node is eligible to
leave and the run starts in the steady state.  Scenarios: ``churn30`` and
``churn50`` (``--churn 0.3 0.5``), and ``mass30`` (``--mass 0.3``): 30 % of
the nodes leave at the same moment, half-way through the run, not replaced,
with ``--mass-churn`` hourly churn around it.

Replication cost: ``republish_lookups_per_h`` and ``republish_stores_per_h``
are the region lookups and STOREs of every node's republish rounds, per
simulated hour over the whole network; ``handoff_stores_per_h`` the STOREs
handed to new close nodes.  ``replicas_*`` count the live nodes holding each
record at the end (k = 20 is the goal).

Speed (issue 20): the simulator passes each message as the attrs object
its sender built instead of CBOR bytes (``CoreNetwork(pass_objects=True)``;
sizes counted per message shape), so a run measures the DHT, not the codec,
and decides exactly as an encoding run does (same messages, losses and
results for a seed).  Profiled at 300 and 2,000 nodes, what remains is the
DHT itself, spread thin: serving requests (routing-table updates, handoff,
``closest``), lookups (candidates, windows, timers), the rate limiters; no
single function above about 5 % of the samples.  The traffic is what the
node's rules ask for (300 nodes, 30 % churn, 6 h; per node and hour): 1.0
republish rounds with 0.6 region lookups (07-records.md §10.4), 6 handoffs
of 10 STOREs (§10.3), 82 PINGs of stale bucket heads, and 3.8 "refresh"
lookups, which were the random walks of ``routing.random_walk_interval``
(then 900 s: 4 an hour) -- idle-bucket refreshes are almost none, the traffic
keeps buckets fresh.  The random walks were about 45 % of all messages;
since the walk runs hourly (``02-dht-rpc.md`` §8) a simulated hour costs
less than half the messages and CPU it did, with the same records kept.
``--jobs 3`` runs the three scenarios in three processes at once; each still
reports its own wall and CPU time.  ``mass30`` is ``churn30`` until its
departure (same seed, same events), so it branches off ``churn30``'s state
at that moment instead of simulating the first half again (its ``wall_s``
and ``cpu_s`` include the shared half; ``*_own`` is the branch alone).
Cyclic garbage is collected once per simulated hour, not whenever
allocations pass the thresholds (5-8 % of the CPU at 500 nodes).

Then (session 9), at 2,000 nodes: the routing table finds a peer through an
index by node ID (the bucket scans were 5.8 % of the samples), keeps its
next refresh time and size estimate until a change can move them; a node
forgets late requests, neutral reputations and handoff times it no longer
needs (per-node state had grown with every peer ever met, hundreds per node
by hour 11); and replication sends what churn needs: of the republishing
STOREs at 1,000 nodes, four fifths came from holders churn had pushed out of
a key's k closest, each storing at all k (nearly all held it already); they
now store at the 3 nearest (07-records.md §10.4).  What a simulated hour
costs at 2,000 nodes is then the protocol's own upkeep, per node and hour
(hour 2, 30 % churn): one random walk of 47 FIND_NODEs and 0.75 republish
region lookups of 36 (a lookup ends when the k closest it saw have answered,
and at 30 % churn many of those it tries have left), 34 STOREs, 25 PINGs of
stale bucket heads, and 13 FIND_NODEs of the arrivals' joins -- about 0.43 M
messages per hour at about 100 µs each, in a flat profile.

Then (session 10): the cost of a simulated hour had doubled over the 48 hours
(48 to 100 CPU-seconds) because every node that left kept its whole core to
the end: 85 MB and 0.5 s more hourly garbage collection per simulated hour.
The run now forgets its dead (``CoreNetwork(forget_dead=)``, keeping their
counters), and what survives an hourly collection is frozen.  Counting the
timer events showed 2,000 record holders sweeping their stores 120,000 times
an hour, each deleting nothing: a node now sweeps when its earliest record
expires (``RecordConfig.expire_interval``), which a phone needs as much.
Lookups keep their in-flight requests apart (the slow-request scan went over
up to 200 candidates per message), and a NODES answer's contacts are checked
once per shared contact.  In same-run pairs at 2,000 nodes (two processes at
once) a simulated hour costs 0.80-0.90 of what it cost before these changes
(after forgetting the dead, which shows in the later hours).  Where the
messages go (per node and hour at 30 % churn): 88 FIND_NODEs (47 of the
hourly random walk and idle-bucket refreshes, 27 of republish region
lookups, 13 of joins), 34 STOREs and 26 PINGs; 36 % of the FIND_NODEs and
PINGs are never answered (the node left, or a message was lost).  Without the random walk an hour
sends 15 % fewer messages (measured; 02-dht-rpc.md §8 says why it stays).

Then (session 11): the walk and idle-bucket refreshes are narrow lookups
(``LookupConfig.refresh_window`` = 5: they end when the 5 closest nodes
they found answered, not k; 02-dht-rpc.md §8 has the measurements, including
that no walk, narrow or k-wide, measurably repairs an eclipsed table).  A
simulated hour at 30 % churn sends about 0.31 M messages instead of 0.41-0.42 M.
Where the rest goes (hour 2, 2,000 nodes, per node and hour): 62 FIND_NODEs
(22 of refresh lookups, 27 of republish region lookups, 13 of joins), 33
STOREs, 10 PINGs.  The republish rounds plan about 3 keys per record and hour
(1,711 region lookups for 3,022 due keys at hour 2): the first holder of the
hour, holders that missed its STOREs, and holders outside the k closest
(mostly new ones, pushed out by closer newcomers: at 1,000 nodes and 50 %
churn, a 24-hour ``outside_pause`` instead of 6 sent 2,584,112 messages in
16 simulated hours against 2,584,492).  Counted at hour 3: of the
keys due when their region lookup ended, 1,506 were held by a node among
their k closest and 1,724 by one outside them (325 more had meanwhile
arrived in another holder's STORE): outside holders are most of the
republish work, and the next place to look.

Then (session 12): most of those outside holders learn it from their own
routing table, without the region lookup (07-records.md §10.4,
``ReplicationConfig.outside_reach``): at 2,000 nodes and 50 % churn a
simulated hour sends 0.87-0.89 of the messages it did and costs 0.83-0.90 of
the CPU (hours 2-3, both commits side by side at the same time); the full
``churn50`` run sent 14.2 M messages instead of 16.1 M, with the same
replicas (17 / 20 / 29).  What is left is flat (py-spy over the build and
hours 1-3, inclusive: ``closest`` 11 %, handoff 14 %, request timeouts 12 %,
this loop about 8 %); compiling the hot modules with mypyc is the lever left.

Then (session 13): it runs compiled (``--core compiled``, the default;
:mod:`qdht_bench._compiled`).  The same source, compiled to C by mypyc once
per source version (about 2.5 minutes), and checked before every run: a
reference scenario (120 nodes, 2 h, 50 % churn, seed ``--seed``) must give
exactly the pure-Python core's figures, or the run stops.  At 2,000 nodes
and 50 % churn, both cores side by side at the same time, the compiled one
spent 0.64 of the CPU to build the network and 0.71, 0.58 and 0.65 of it
for simulated hours 1-3 (11.5 / 13.9 / 15.7 CPU-seconds against 16.3 / 23.9
/ 24.2), with the same messages.  Native classes cannot be pickled, so a
compiled run has no checkpoints and ``mass30`` runs from the start instead
of branching off ``churn30``.  ``--core python`` runs the library as it is.
At full size (7856d90, nothing else running) the three scenarios took 12.6,
16.1 and 13.8 minutes; ``churn50`` alone with ``--core python`` took 26.1 the
same day, with the same figures, message for message.

A long run can be stopped and taken up again (with ``--core python``):
``--checkpoint PATH`` saves it (a pickle of the whole simulation) every
``--checkpoint-every`` simulated hours and ``--resume PATH`` finishes it from
there, with the same result as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import multiprocessing
import os
import pickle
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Final

import attrs

from qdht.dht import make_immutable
from qdht.testing import (
    ChurnEvent,
    ChurnSchedule,
    CoreNetwork,
    SessionLengths,
    SimCore,
    SimOperation,
)
from qdht.wire import immutable_key
from qdht_bench import _compiled
from qdht_bench._common import BenchResult, median, percentile

DESCRIPTION = "records retrievable after 48 simulated hours of churn, with replication"

#: Unix time at simulated time 0 (records carry absolute expiry times).
UNIX_START = 1_800_000_000
_HOUR = 3600.0
#: Targets of ``retrievable`` by scenario, checked on the 95 % lower bound.
_TARGETS = {"churn30": 0.999, "churn50": 0.99}
#: Message loss on every run.
DEFAULT_LOSS = 0.05


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=2000)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=48.0, help="simulated hours of churn")
    parser.add_argument(
        "--churn",
        type=float,
        nargs="*",
        default=[0.3, 0.5],
        help="hourly churn: fractions of the network leaving (and replaced) per hour, "
        "one run each (default 0.3 0.5)",
    )
    parser.add_argument(
        "--mass",
        type=float,
        default=0.3,
        help="the mass-departure run: this fraction leaves at once half-way (0: no such run)",
    )
    parser.add_argument(
        "--mass-churn",
        type=float,
        default=0.3,
        help="hourly churn around the mass departure (default 0.3; 0: none)",
    )
    parser.add_argument(
        "--loss", type=float, default=DEFAULT_LOSS, help="fraction of messages lost (default 0.05)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--join-interval", type=float, default=0.05, help="simulated seconds between joins"
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="print wall time and messages per simulated hour to stderr",
    )
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=1,
        help="run the scenarios in this many processes at once (default 1: one after the "
        "other); each scenario is still one process, its wall_s and cpu_s its own",
    )
    parser.add_argument(
        "--core",
        choices=("compiled", "python"),
        default="compiled",
        help="compiled (default): run the DHT core compiled with mypyc (built once per "
        "source version into --core-cache, about 2.5 min; checked against the pure-Python "
        "core on a reference scenario before the run); python: as it is",
    )
    parser.add_argument(
        "--core-cache",
        type=Path,
        metavar="DIR",
        help="where compiled cores are kept (default $XDG_CACHE_HOME/qdht-bench/mypyc)",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="save the run to PATH every --checkpoint-every simulated hours (with several "
        "--churn levels, PATH-<pct> for each), so a stopped run can be resumed; needs "
        "--core python",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=3,
        metavar="HOURS",
        help="simulated hours between checkpoints (default 3; a full-size save grows from "
        "about 130 to 420 MB over 48 hours and takes tens of seconds, against a few minutes "
        "per simulated hour)",
    )
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="PATH",
        help="finish the run saved in checkpoint PATH (its own parameters; --nodes, "
        "--records, --hours, --churn and --seed are ignored) and keep checkpointing there",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


@attrs.define(eq=False)
class LifetimeChurn:
    """Every node leaves when its session ends; an arrival replaces it at once.

    Departures are events in the network's own loop (``call_at``), so the run
    stays one ordered, seeded sequence and a checkpoint holds them.
    """

    net: CoreNetwork
    sessions: SessionLengths
    rng: random.Random
    departures: int = 0

    def start(self) -> None:
        """Give every live node the rest of a session in progress."""
        for node in self.net.alive:
            self._schedule(node, self.sessions.draw_remaining(self.rng))

    def _schedule(self, node: SimCore, after: float) -> None:
        self.net.call_at(self.net.now + after, functools.partial(self.depart, node))

    def depart(self, node: SimCore) -> None:
        if not node.alive:
            return  # gone already (a mass departure)
        self.net.kill(node)
        self.departures += 1
        _, joined = self.net.apply_churn(ChurnEvent(0.0, "join"))
        for new in joined:
            self._schedule(new, self.sessions.draw(self.rng))


_TOTALS: Final = ("round_lookups", "round_stores", "handoff_stores", "stores_sent")


@attrs.define(eq=False)
class _Retired:
    """The replication counters of the nodes that left (``CoreNetwork(forget_dead=)``):
    what the run's totals need of them, once their cores are dropped."""

    totals: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(_TOTALS, 0))

    def __call__(self, node: SimCore) -> None:
        counts = node.core.replication.counts
        for name in _TOTALS:
            self.totals[name] += counts[name]


def _replication_totals(net: CoreNetwork) -> dict[str, int]:
    retired = net.forget_dead
    totals = dict(retired.totals) if isinstance(retired, _Retired) else dict.fromkeys(_TOTALS, 0)
    for node in net.nodes:
        counts = node.core.replication.counts
        for name in totals:
            totals[name] += counts[name]
    return totals


@attrs.define(eq=False)
class _Run:
    """Everything one run is: what a checkpoint holds.

    The churn phase is driven from here, one schedule event at a time
    (``next_event`` is the first not yet applied), stopping at every simulated
    hour to report and save, so a checkpoint is taken between two events of
    the loop, never inside one, and a resumed run goes on exactly as the
    uninterrupted one would (same seeds, same event order).
    """

    nodes: int
    records: int
    hours: float
    churn: float
    seed: int
    net: CoreNetwork
    rng: random.Random
    keys: list[tuple[bytes, bytes]]
    puts_ok: int
    before: dict[str, int]
    start: float
    #: One-off events (the mass departure); the lifetime churn runs in the loop.
    events: tuple[ChurnEvent, ...]
    lifetimes: LifetimeChurn | None = None
    mass: float = 0.0
    next_event: int = 0
    next_hour: int = 1
    wall_spent: float = 0.0
    #: CPU seconds of this process (what a shared machine's load does not inflate).
    cpu_spent: float = 0.0


def _start(
    *, nodes: int, records: int, hours: float, seed: int, join_interval: float, **churn: float
) -> _Run:
    """Build the network, put the records; the run stands at the start of the churn.

    ``churn`` holds the churn model's figures: ``churn`` (hourly), ``mass``
    and ``loss`` (see :func:`run_one`)."""
    rng = random.Random(seed)
    loss, mass = churn["loss"], churn["mass"]
    net = CoreNetwork(
        seed=seed,
        loss=loss,
        core_options={"unix_offset": float(UNIX_START)},
        pass_objects=True,
        forget_dead=_Retired(),
    )
    net.build(nodes, join_interval=join_interval)
    built_at = net.now
    expires = UNIX_START + round(built_at + (hours + 24) * _HOUR)
    puts: list[SimOperation] = []
    keys: list[tuple[bytes, bytes]] = []
    for _ in range(records):
        value = rng.randbytes(64)
        record = make_immutable(value, expires)
        puts.append(net.start_put_record(rng.choice(net.alive), record))
        keys.append((immutable_key(value), value))
    net.wait(puts)
    lifetimes = None
    if churn["churn"] > 0:
        sessions = SessionLengths.for_hourly_churn(churn["churn"])
        lifetimes = LifetimeChurn(net, sessions, random.Random(f"lifetimes {seed}"))
        lifetimes.start()
    mass_events = ChurnSchedule.kill_fraction(mass, nodes, at=hours * _HOUR / 2).events
    return _Run(
        nodes=nodes,
        records=records,
        hours=hours,
        churn=churn["churn"],
        seed=seed,
        net=net,
        rng=rng,
        keys=keys,
        puts_ok=sum(op.succeeded for op in puts),
        before=_replication_totals(net),
        start=net.now,
        events=mass_events,
        lifetimes=lifetimes,
        mass=mass,
    )


def _report(run: _Run) -> None:
    """One progress line on stderr for the hour just ended; every sixth hour also
    the live replicas per record (read off the nodes' stores, no messages sent,
    so the run is not disturbed)."""
    hour = run.next_hour
    stats = run.net.stats()
    line = (
        f"durability: {_scenario(run)} hour {hour}/{run.hours:g} "
        f"wall {run.wall_spent:.0f} s cpu {run.cpu_spent:.0f} s "
        f"messages {stats['delivered']} alive {stats['alive']}"
    )
    if hour % 6 == 0:
        replicas = [float(len(run.net.holders(key))) for key, _ in run.keys]
        line += f" replicas min {min(replicas):g} median {median(replicas):g}"
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: (un)pickling a full-size run makes
    millions of containers, and collections triggered by them only rescan the
    growing heap (measured: about a third of the time even at 100 nodes)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def save_checkpoint(run: _Run, path: Path) -> None:
    """Write ``run`` to ``path`` atomically (a temporary file, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f, _gc_paused():
        pickle.dump(run, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> _Run:
    """A run saved by :func:`save_checkpoint`.

    A checkpoint is a pickle: load only checkpoints this benchmark wrote (to
    resume a run that was stopped), never one from elsewhere.
    """
    with path.open("rb") as f, _gc_paused():
        run = pickle.load(f)
    if not isinstance(run, _Run):
        raise TypeError(f"{path} is not a durability checkpoint")
    return run


def _advance(
    run: _Run,
    *,
    progress: bool,
    checkpoint: Path | None,
    every: int = 1,
    branch: tuple[float, Path] | None = None,
) -> None:
    """Run the churn phase to its end, stopping at every simulated hour (and
    saving to ``checkpoint``, if given, every ``every`` hours).

    ``branch`` = (``at``, ``path``): save the run to ``path`` when it reaches
    ``at`` simulated seconds into the churn, at the very point of the loop where
    a mass departure at ``at`` would be applied (:func:`run_branch`)."""
    with _gc_paused():
        try:
            _advance_hours(
                run, progress=progress, checkpoint=checkpoint, every=every, branch=branch
            )
        finally:
            gc.unfreeze()


def _advance_hours(
    run: _Run,
    *,
    progress: bool,
    checkpoint: Path | None,
    every: int,
    branch: tuple[float, Path] | None,
) -> None:
    """:func:`_advance`, with cyclic garbage collected once per simulated hour
    (not whenever allocations pass the thresholds: measured 5-8 % of the CPU at
    500 nodes, every collection rescanning the simulation's growing heap), and
    only among the objects made since the last collection: what survived one is
    frozen (``gc.freeze``).  The simulation makes little cyclic garbage
    (measured at 500 nodes: 400-700 unreachable objects a simulated hour, of
    220,000-280,000 tracked), so what freezing keeps of it is small, while a full
    collection at 2,000 nodes scanned about a million objects every hour (1.2 s,
    4 % of the hour's CPU).  Refcounting frees frozen objects as usual."""
    net, end = run.net, run.start + run.hours * _HOUR
    wall, cpu = time.perf_counter(), time.process_time()
    while True:
        hour_at = run.start + run.next_hour * _HOUR
        if branch is not None and (run.start + branch[0] < hour_at or hour_at > end):
            net.run_until(run.start + branch[0])
            now, now_cpu = time.perf_counter(), time.process_time()
            run.wall_spent += now - wall
            run.cpu_spent += now_cpu - cpu
            save_checkpoint(run, branch[1])
            branch = None
            wall, cpu = time.perf_counter(), time.process_time()
            continue
        if run.next_event < len(run.events):
            event = run.events[run.next_event]
            if run.start + event.at < hour_at or hour_at > end:
                net.run_until(run.start + event.at)
                net.apply_churn(event)
                run.next_event += 1
                continue
        elif hour_at > end:
            break
        net.run_until(hour_at)
        gc.collect()
        gc.freeze()
        now, now_cpu = time.perf_counter(), time.process_time()
        run.wall_spent += now - wall
        run.cpu_spent += now_cpu - cpu
        wall, cpu = now, now_cpu
        if progress:
            _report(run)
        run.next_hour += 1
        if checkpoint is not None and (run.next_hour - 1) % every == 0:
            save_checkpoint(run, checkpoint)
    net.run_until(end)
    run.wall_spent += time.perf_counter() - wall
    run.cpu_spent += time.process_time() - cpu


def _finish(run: _Run) -> dict[str, float]:
    """Fetch every record from a random live node; the run's flat metrics."""
    wall, cpu = time.perf_counter(), time.process_time()
    net, rng, hours = run.net, run.rng, run.hours
    after = _replication_totals(net)
    gets = [
        (net.start_lookup(rng.choice(net.alive), key, kind="get"), value) for key, value in run.keys
    ]
    net.wait([op for op, _ in gets])
    found = sum(op.value == value for op, value in gets)
    replicas = [float(len(net.holders(key))) for key, _ in run.keys]
    spent = {name: after[name] - run.before[name] for name in after}
    return {
        "puts_ok": run.puts_ok,
        "found": found,
        "replicas_median": median(replicas),
        "replicas_p1": percentile(replicas, 1),
        "replicas_min": min(replicas),
        "republish_lookups_per_h": spent["round_lookups"] / hours,
        "republish_stores_per_h": spent["round_stores"] / hours,
        "handoff_stores_per_h": spent["handoff_stores"] / hours,
        "stores_sent_per_h": spent["stores_sent"] / hours,
        "departures": (run.lifetimes.departures if run.lifetimes else 0)
        + sum(e.count for e in run.events[: run.next_event]),
        "messages": net.stats()["delivered"],
        "messages_lost": net.stats()["lost"],
        "wall_s": run.wall_spent + time.perf_counter() - wall,
        "cpu_s": run.cpu_spent + time.process_time() - cpu,
    }


def run_one(
    *,
    nodes: int,
    records: int,
    hours: float,
    churn: float,
    seed: int,
    join_interval: float,
    mass: float = 0.0,
    loss: float = DEFAULT_LOSS,
    progress: bool = False,
    checkpoint: Path | None = None,
    checkpoint_every: int = 1,
    branch_to: Path | None = None,
) -> dict[str, float]:
    """One simulated run; returns its flat metrics (without the scenario suffix).

    ``churn`` is the hourly churn of the lifetime model (0: none), ``mass`` the
    fraction leaving at once half-way (0: none).

    With ``checkpoint``, the run is saved there every ``checkpoint_every``
    simulated hours of the churn phase (:func:`resume` takes it up again).
    With ``branch_to``, the run is also saved there half-way, where a mass
    departure would happen: :func:`run_branch` finishes that copy as the
    mass-departure run.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    run = _start(
        nodes=nodes,
        records=records,
        hours=hours,
        churn=churn,
        seed=seed,
        join_interval=join_interval,
        mass=mass,
        loss=loss,
    )
    run.wall_spent = time.perf_counter() - wall
    run.cpu_spent = time.process_time() - cpu
    branch = None if branch_to is None else (hours * _HOUR / 2, branch_to)
    _advance(run, progress=progress, checkpoint=checkpoint, every=checkpoint_every, branch=branch)
    return _finish(run)


def run_branch(
    path: Path,
    *,
    mass: float,
    progress: bool = False,
    checkpoint: Path | None = None,
    checkpoint_every: int = 1,
) -> dict[str, float]:
    """The mass-departure run, taken up from a churn run's half-way state at ``path``
    (``run_one(branch_to=path)``): ``mass`` of the nodes leave now, then the churn
    goes on to the end.

    Until the departure a mass run *is* the churn run of the same hourly churn
    and seed (same seeds, same events in the same order), so it starts from that
    run's state instead of simulating the first half again: same figures as
    ``run_one(mass=mass)``, for half its CPU.  ``wall_s`` and ``cpu_s`` include
    the shared first half (what the run costs alone); ``wall_s_own`` and
    ``cpu_s_own`` are what the branch itself took.
    """
    run = load_checkpoint(path)
    shared_wall, shared_cpu = run.wall_spent, run.cpu_spent
    run.mass = mass
    run.events = ChurnSchedule.kill_fraction(mass, run.nodes, at=run.hours * _HOUR / 2).events
    run.next_event = 0
    _advance(run, progress=progress, checkpoint=checkpoint, every=checkpoint_every)
    metrics = _finish(run)
    metrics["wall_s_own"] = metrics["wall_s"] - shared_wall
    metrics["cpu_s_own"] = metrics["cpu_s"] - shared_cpu
    return metrics


def resume(
    path: Path,
    *,
    progress: bool = False,
    checkpoint: Path | None = None,
    checkpoint_every: int = 1,
) -> tuple[_Run, dict[str, float]]:
    """Take up the run saved at ``path`` and finish it: (its parameters, metrics)."""
    run = load_checkpoint(path)
    _advance(run, progress=progress, checkpoint=checkpoint, every=checkpoint_every)
    return run, _finish(run)


def _call(job: Callable[[], dict[str, float]]) -> dict[str, float]:
    """Run ``job`` (in a worker process)."""
    return job()


def _scenario(run: _Run) -> str:
    if run.mass:
        return f"mass{round(run.mass * 100)}"
    return f"churn{round(run.churn * 100)}"


def _checkpoint_path(path: Path | None, scenario: str, runs: int) -> Path | None:
    if path is None or runs == 1:
        return path
    return path.with_name(f"{path.stem}-{scenario}{path.suffix}")


def _add(result: BenchResult, scenario: str, records: int, metrics: dict[str, float]) -> None:
    """One run's metrics, suffixed with its scenario; the success rates with their
    trial counts and 95 % lower bounds."""
    result.add_rate(f"put_success_{scenario}", int(metrics["puts_ok"]), records)
    result.add_rate(
        f"retrievable_{scenario}", int(metrics["found"]), records, target=_TARGETS.get(scenario)
    )
    for name, value in metrics.items():
        if name not in ("puts_ok", "found"):
            result.add(f"{name}_{scenario}", value)


def _run_scenarios(
    args: argparse.Namespace, tmp: Path, notes: list[str]
) -> tuple[list[tuple[str, float, float]], list[dict[str, float]]]:
    """Every scenario's metrics: ([(scenario, hourly churn, mass)], [metrics]).

    The mass-departure run branches off the churn run of the same hourly churn
    at the departure (:func:`run_branch`) when there is one; otherwise it runs
    from the start."""
    runs = [(f"churn{round(c * 100)}", c, 0.0) for c in args.churn]
    if args.mass > 0:
        runs.append((f"mass{round(args.mass * 100)}", args.mass_churn, args.mass))
    common: dict[str, Any] = {
        "progress": args.progress,
        "checkpoint_every": args.checkpoint_every,
    }
    branch_path = tmp / "branch.ckpt"
    parent = next(
        (i for i, (_, churn, mass) in enumerate(runs) if mass == 0 and churn == args.mass_churn),
        None,
    )
    if args.core == "compiled":
        parent = None  # a branch is a pickled run: the compiled classes cannot be pickled
    jobs: list[Callable[[], dict[str, float]]] = []
    for i, (scenario, churn, mass) in enumerate(runs):
        checkpoint = _checkpoint_path(args.checkpoint, scenario, len(runs))
        if mass > 0 and parent is not None:
            jobs.append(
                functools.partial(
                    run_branch, branch_path, mass=mass, checkpoint=checkpoint, **common
                )
            )
            notes.append(
                f"{scenario} branched off {runs[parent][0]}'s state at the departure "
                "(identical until then); its wall_s and cpu_s include that shared half"
            )
            continue
        jobs.append(
            functools.partial(
                run_one,
                nodes=args.nodes,
                records=args.records,
                hours=args.hours,
                churn=churn,
                seed=args.seed,
                join_interval=args.join_interval,
                mass=mass,
                loss=args.loss,
                checkpoint=checkpoint,
                branch_to=branch_path if i == parent and args.mass > 0 else None,
                **common,
            )
        )
    if args.jobs <= 1 or len(jobs) == 1:
        return runs, [job() for job in jobs]
    # One process per scenario (the simulation is single-threaded): the scenarios
    # run side by side; each measures its own wall and CPU time.  A branch starts
    # once its parent has saved the state it starts from.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
        futures: list[Future[dict[str, float]] | None] = [None] * len(jobs)
        for i, job in enumerate(jobs):
            if not (parent is not None and runs[i][2] > 0):
                futures[i] = pool.submit(_call, job)
        for i, job in enumerate(jobs):
            if futures[i] is None:
                parent_future = futures[parent] if parent is not None else None
                while not branch_path.exists():
                    assert parent_future is not None
                    if parent_future.done():
                        parent_future.result()  # raises what stopped it
                        raise RuntimeError("the churn run ended without saving its branch")
                    wait([parent_future], timeout=1.0)
                futures[i] = pool.submit(_call, job)
        outcomes = [future.result() for future in futures if future is not None]
    notes.append(f"{len(jobs)} scenarios in {min(args.jobs, len(jobs))} processes")
    return runs, outcomes


#: The scenario every compiled run first checks against the pure-Python core:
#: small, but with churn, loss, handoff, republish rounds and gets.
_REFERENCE_NODES, _REFERENCE_RECORDS, _REFERENCE_HOURS, _REFERENCE_CHURN = 120, 30, 2.0, 0.5


def reference_metrics(args: argparse.Namespace) -> dict[str, float]:
    """The reference scenario's figures (times left out): identical for a seed,
    whichever core runs it, if the compiled core decides as the Python one."""
    metrics = run_one(
        nodes=_REFERENCE_NODES,
        records=_REFERENCE_RECORDS,
        hours=_REFERENCE_HOURS,
        churn=_REFERENCE_CHURN,
        seed=args.seed,
        join_interval=args.join_interval,
        loss=args.loss,
    )
    return {k: v for k, v in metrics.items() if k not in ("wall_s", "cpu_s")}


def check_core(args: argparse.Namespace, result: BenchResult) -> None:
    """Make this process run the core ``args.core`` asks for.

    ``python``: nothing to do.  ``compiled``, in the pure-Python process: build
    (or find) the compiled copy, run the reference scenario, and replace this
    process with one importing the copy (``_compiled.reexec``); in that process:
    run the reference scenario again and refuse to go on unless its figures are
    the pure-Python ones."""
    if args.core == "python":
        result.add("core_compiled", 0)
        return
    if args.checkpoint is not None or args.resume is not None:
        raise SystemExit(
            "durability: --checkpoint and --resume need --core python "
            "(the compiled core's classes cannot be pickled)"
        )
    if not _compiled.running_compiled():
        argv = getattr(args, "argv", None)
        if argv is None:
            raise SystemExit(
                "durability: the compiled core re-runs the command line; run it through "
                "qdht_bench.cli.main (qdht-bench durability), or pass --core python"
            )
        cache = args.core_cache if args.core_cache is not None else _compiled.default_cache()
        try:
            copy, spent = _compiled.build(cache)
        except RuntimeError as exc:
            raise SystemExit(f"durability: {exc}") from exc
        reference = reference_metrics(args)
        _compiled.reexec(
            copy,
            list(argv),
            {
                _compiled.REFERENCE_ENV: json.dumps(reference),
                _compiled.BUILD_ENV: f"{spent:.1f}",
            },
        )
    expected = json.loads(os.environ.get(_compiled.REFERENCE_ENV, "null"))
    got = reference_metrics(args)
    if expected != got:
        differ = sorted(k for k in got if expected is None or expected.get(k) != got[k])
        raise SystemExit(
            "durability: the compiled core's reference run differs from the pure-Python "
            f"core's in {differ}; run with --core python"
        )
    result.add("core_compiled", 1)
    result.add("core_build_s", float(os.environ.get(_compiled.BUILD_ENV, "0")))
    result.notes.append(
        "DHT core compiled with mypyc (same source); a reference run "
        f"({_REFERENCE_NODES} nodes, {_REFERENCE_HOURS:g} h, churn "
        f"{_REFERENCE_CHURN:g}) gave the pure-Python core's figures exactly"
    )


def run(args: argparse.Namespace) -> BenchResult:
    result = BenchResult("durability")
    check_core(args, result)
    if args.resume is not None:
        saved, metrics = resume(
            args.resume,
            progress=args.progress,
            checkpoint=args.resume,
            checkpoint_every=args.checkpoint_every,
        )
        result.add("nodes", saved.nodes)
        result.add("records", saved.records)
        result.add("hours", saved.hours)
        _add(result, _scenario(saved), saved.records, metrics)
        result.notes.append(f"resumed from {args.resume}")
    else:
        result.add("nodes", args.nodes)
        result.add("records", args.records)
        result.add("hours", args.hours)
        result.add("loss", args.loss)
        with tempfile.TemporaryDirectory(prefix="qdht-durability-") as tmp:
            runs, outcomes = _run_scenarios(args, Path(tmp), result.notes)
        for (scenario, _, _), metrics in zip(runs, outcomes, strict=True):
            _add(result, scenario, args.records, metrics)
    result.notes.append(
        "core level (CoreNetwork, simulated time, sessions not simulated); immutable records "
        "with exp after the run: holders' replication only, no publisher re-puts; churn: "
        "Weibull (shape 0.5) sessions, every departure replaced at once (Stutzbach & Rejaie, "
        f"IMC 2006); mass{round(args.mass * 100) if args.resume is None else ''}: that "
        "fraction leaves at once half-way, not replaced"
    )
    return result
