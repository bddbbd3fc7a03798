"""``qdht-bench anonymity``: sender entropy against a global passive observer.

A seeded, in-memory simulation with the mixnet's own path selection and
delays (:func:`qdht.mixnet.select_path`, :func:`qdht.mixnet.draw_delay_ms`,
:class:`qdht.mixnet.MixnetConfig`), no cryptography: the observer sees every
packet enter and leave every mix, and nothing else.  Each client sends its
Poisson streams (λ_P : λ_L : λ_D as configured, scaled to ``--rate`` packets
per second in all) along free-route paths of ``hops`` mixes.

**Metric** (Loopix §4.1.3, after Serjantov and Danezis): for a target packet
leaving its exit, the probability that each client sent it, and the entropy
of that distribution in bits.  It is computed exactly for exponential mixes
by following the target backwards in time: a mix holding ``n`` packets after
an arrival gives the arriving packet ``1/n`` of the target mass it holds
(memorylessness, Loopix Theorem 1; the reversed M/M/∞ pool is again one), and
mass reaching a first hop goes to the client that sent that packet.  A
corrupt mix knows its own input-output mapping, so mass passes through it
unmixed.  Reported: the median over ``--targets`` target packets after a
burn-in.

**Single mix**: one mix, every packet from its own sender, arrivals at rate λ,
exponential delays of rate μ: the entropy must match log2(e·λ/μ) within 0.1
bit for λ/μ ≥ 25 (Danezis PET'04).
"""

from __future__ import annotations

import argparse
import math
import random
from collections import defaultdict
from typing import Final

from qdht.mixnet import DirectoryView, MixnetConfig, draw_delay_ms, select_path
from qdht.wire import Address, Contact, MixEntry
from qdht_bench._common import BenchResult, Target, median

__all__ = ["DESCRIPTION", "add_arguments", "run", "sender_entropy", "simulate"]

DESCRIPTION: Final = "mixnet anonymity: sender entropy at 1k/10k clients, single mix, corrupt mixes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mixes", type=int, default=30)
    parser.add_argument("--rate", type=float, default=1.0, help="packets/s per client")
    parser.add_argument("--duration", type=float, default=3.0, help="simulated seconds")
    parser.add_argument("--targets", type=int, default=25, help="target packets per figure")
    parser.add_argument("--seed", type=int, default=1)


# One hop of one packet: (time, kind, packet, hop, mix); kind 0 departure, 1 arrival.
_Event = tuple[float, int, int, int, int]


class Trace:
    """What the global observer saw: every arrival and departure at every mix."""

    def __init__(self) -> None:
        self.events: list[_Event] = []
        self.sender: list[int] = []
        self.hops: list[int] = []
        self.exit_departure: dict[int, int] = {}
        self.before: list[int] = []

    def add_packet(self, sender: int, start: float, mixes: list[int], delays: list[float]) -> None:
        packet = len(self.sender)
        self.sender.append(sender)
        self.hops.append(len(mixes))
        now = start
        for hop, (mix, delay) in enumerate(zip(mixes, delays, strict=True)):
            self.events.append((now, 1, packet, hop, mix))
            now += delay
            self.events.append((now, 0, packet, hop, mix))

    def seal(self) -> None:
        """Order the events; count each mix's pool just before each event."""
        # At one instant a departure precedes the arrival it causes at the next hop.
        self.events.sort()
        pools: defaultdict[int, int] = defaultdict(int)
        self.before = []
        for index, (_, kind, packet, hop, mix) in enumerate(self.events):
            self.before.append(pools[mix])
            pools[mix] += 1 if kind == 1 else -1
            if kind == 0 and hop == self.hops[packet] - 1:
                self.exit_departure[packet] = index


def sender_entropy(trace: Trace, target: int, corrupt: frozenset[int] = frozenset()) -> float:
    """Entropy (bits) of who sent ``target``, as the global observer infers it."""
    events, before, sender = trace.events, trace.before, trace.sender
    start = trace.exit_departure[target]
    mass: defaultdict[int, float] = defaultdict(float)  # target mass pooled per honest mix
    carried: dict[int, float] = {}  # mass a packet carries back to its previous hop
    inside: dict[int, float] = {}  # mass of a packet inside a corrupt mix
    senders: defaultdict[int, float] = defaultdict(float)
    remaining = 1.0
    for index in range(start, -1, -1):
        _, kind, packet, hop, mix = events[index]
        if kind == 0:  # reversed: the packet enters the mix's pool
            m = 1.0 if index == start else carried.pop(packet, 0.0)
            if mix in corrupt:
                if m:
                    inside[packet] = m
            elif m:
                mass[mix] += m
            continue
        # reversed: the packet leaves the pool it entered at this arrival
        if mix in corrupt:
            share = inside.pop(packet, 0.0)
        else:
            pooled = mass.get(mix, 0.0)
            if not pooled:
                continue
            share = pooled / (before[index] + 1)
            mass[mix] = pooled - share
        if not share:
            continue
        if hop == 0:
            senders[sender[packet]] += share
            remaining -= share
            if remaining < 1e-9:
                break
        else:
            carried[packet] = share
    total = sum(senders.values())
    return -sum(p / total * math.log2(p / total) for p in senders.values() if p > 0)


def _directory(mixes: int) -> DirectoryView:
    entries = [
        MixEntry(
            Contact(i.to_bytes(32, "big"), (Address("udp", "192.0.2.1", 1000 + i),)),
            i % 3,
            bytes(1216),
        )
        for i in range(mixes)
    ]
    return DirectoryView(0, tuple(entries))


def simulate(
    clients: int,
    mixes: int,
    rate: float,
    duration: float,
    config: MixnetConfig,
    seed: int,
    *,
    stratified: bool = False,
) -> Trace:
    """Every packet of ``clients`` Poisson senders over ``duration`` seconds."""
    rng = random.Random(seed)
    view = _directory(mixes)
    index = {m.node_id: i for i, m in enumerate(view.mixes)}
    trace = Trace()
    for client in range(clients):
        t = rng.expovariate(rate)
        while t < duration:
            path = select_path(view, config, rng, stratified=stratified)
            assert path is not None
            trace.add_packet(
                client, t, [index[h.node_id] for h in path], [h.delay_ms / 1000 for h in path]
            )
            t += rng.expovariate(rate)
    trace.seal()
    return trace


def _targets(trace: Trace, count: int, after: float, rng: random.Random) -> list[int]:
    eligible = [p for p, i in trace.exit_departure.items() if trace.events[i][0] > after]
    return rng.sample(eligible, min(count, len(eligible)))


def _network_entropy(
    clients: int,
    args: argparse.Namespace,
    config: MixnetConfig,
    corrupt_fraction: float = 0.0,
    *,
    stratified: bool = False,
) -> float:
    trace = simulate(
        clients, args.mixes, args.rate, args.duration, config, args.seed, stratified=stratified
    )
    rng = random.Random(args.seed + clients)
    corrupt = frozenset(rng.sample(range(args.mixes), round(corrupt_fraction * args.mixes)))
    targets = _targets(trace, args.targets, after=args.duration / 2, rng=rng)
    return median([sender_entropy(trace, t, corrupt) for t in targets])


def _single_mix(ratio: float, config: MixnetConfig, seed: int, targets: int) -> float:
    """Entropy of one exponential mix at λ/μ = ``ratio``, every packet its own sender."""
    rng = random.Random(seed)
    lam = ratio / config.mean_delay
    duration = 800 * config.mean_delay  # about 800 independent pool states
    trace = Trace()
    t = rng.expovariate(lam)
    while t < duration:
        trace.add_packet(len(trace.sender), t, [0], [draw_delay_ms(config, rng) / 1000])
        t += rng.expovariate(lam)
    trace.seal()
    chosen = _targets(trace, targets, after=duration / 2, rng=rng)
    return sum(sender_entropy(trace, p) for p in chosen) / len(chosen)


def run(args: argparse.Namespace) -> BenchResult:
    config = MixnetConfig()
    result = BenchResult("anonymity")
    worst = 0.0
    for ratio in (25, 50, 100):
        measured = _single_mix(float(ratio), config, args.seed, max(args.targets * 16, 400))
        expected = math.log2(math.e * ratio)
        worst = max(worst, abs(measured - expected))
        result.add(f"single_mix_bits_ratio_{ratio}", measured)
        result.add(f"single_mix_analytic_bits_ratio_{ratio}", expected)
    result.add("single_mix_max_error_bits", worst, Target("<=", 0.1))
    result.add("entropy_bits_1k_clients", _network_entropy(1000, args, config), Target(">=", 7))
    result.add("entropy_bits_10k_clients", _network_entropy(10_000, args, config), Target(">=", 10))
    result.add(
        "entropy_bits_10k_clients_10pct_corrupt",
        _network_entropy(10_000, args, config, corrupt_fraction=0.1),
    )
    result.add(
        "entropy_bits_1k_clients_10pct_corrupt",
        _network_entropy(1000, args, config, corrupt_fraction=0.1),
    )
    result.add(
        "entropy_bits_10k_clients_stratified",
        _network_entropy(10_000, args, config, stratified=True),
    )
    result.notes.append(
        f"{args.mixes} mixes, {config.hops} hops free route (stratified: {config.hops} "
        f"layers of {args.mixes // config.hops}), mean delay "
        f"{config.mean_delay * 1000:g} ms/hop (drawn in whole ms), {args.rate:g} packets/s per "
        f"client, {args.duration:g} s simulated, median over {args.targets} targets after "
        f"{args.duration / 2:g} s burn-in; single mix: mean over targets"
    )
    return result
