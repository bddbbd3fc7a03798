"""``qdht-bench fl``: federated training on the fixed protocol of fl-notes §3.

scikit-learn's digits (X/16, stratified 75/25 with seeds 0-4), softmax
regression (650 parameters, zero initialisation, L2 1e-4), client SGD with
lr 0.1, batch 10, 5 local epochs, K = 20 clients, 50 rounds.  Every
federated row runs the real round cores (signed announcements, Poisson
self-sampling with q = C, encoded updates, the coordinator's checks and
aggregation) in memory.  Accuracies are test accuracy after the last round,
mean and standard deviation over the seeds; ``gap`` rows are the mean
difference to the centralised baseline of the same run (SGD with the same
hyperparameters on all training data for 50 epochs).

Rows: FedAvg on IID, pathological shards (2 per client) and Dirichlet(0.5)
splits at C = 1.0 and 0.5; uplink 8-bit quantisation and top-10 % with and
without error feedback (IID, C = 1); mean, median, trimmed mean (b = 4) and
Krum (f = 4) without and with 4 of 20 clients sending -10x their update
(IID, C = 1); DP-FedAvg (S = 1, server lr 1, delta 1e-5, epsilon from
dp-accounting RDP) for K = 20 Dir(0.5) q = 0.5 R = 50 and for K = 1347 (one
example each) q = 0.05 R = 200, and the K = 20, z = 1 row again through
SecAgg+ (the devices add the noise) with 30 % of each cohort dropping out.
Last, SecAgg+ at 20 and 100 devices with 30 % dropping out (spread over its
stages): CPU time and bytes per device, with the bytes of a plain float32
update as the baseline.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Callable
from typing import Any, Final

import numpy as np

from qdht.models.training import (
    RoundParams,
    SoftmaxRegression,
    TrainingConfig,
    load_digits_split,
    run_federated,
    simulate_secagg,
    split_dirichlet,
    split_iid,
    split_shards,
)
from qdht.wire import RoundUpdate, encode
from qdht_bench._common import BenchResult, Target, median

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION: Final = "federated training on digits (fl-notes §3): accuracy, epsilon, SecAgg cost"

K: Final = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=5, help="data splits / seeds (0..N-1)")
    parser.add_argument("--rounds", type=int, default=50, help="rounds (K = 1347 runs 4x as many)")
    parser.add_argument(
        "--quick", action="store_true", help="1 seed, 10 rounds: a smoke run in seconds"
    )


def _splitter(name: str) -> Callable[[np.ndarray, np.random.Generator], list[np.ndarray]]:
    if name == "iid":
        return lambda y, rng: split_iid(len(y), K, rng)
    if name == "shards":
        return lambda y, rng: split_shards(y, K, rng)
    return lambda y, rng: split_dirichlet(y, K, rng, 0.5)


def _centralised(seed: int, epochs: int) -> float:
    data = load_digits_split(seed)
    trainer = SoftmaxRegression(64, 10)
    params = trainer.fit(
        trainer.init_params(np.random.default_rng(seed)),
        data.x_train,
        data.y_train,
        TrainingConfig(epochs=epochs),
        np.random.default_rng(seed),
    )
    return trainer.accuracy(params, data.x_test, data.y_test)


def _federated(seed: int, split: str, params: RoundParams, rounds: int, **kw: Any) -> Any:
    data = load_digits_split(seed)
    if split == "one-each":
        parts = [np.array([i]) for i in range(len(data.y_train))]
    else:
        parts = _splitter(split)(data.y_train, np.random.default_rng(seed))
    return run_federated(data, SoftmaxRegression(64, 10), parts, params, rounds, seed=seed, **kw)


def _secagg(result: BenchResult, n: int) -> None:
    rng = np.random.default_rng(n)
    updates = [rng.normal(0, 0.05, 650) for _ in range(n)]
    chosen = random.Random(n).sample(range(1, n + 1), round(0.3 * n))
    stages = ("share", "masked", "reveal")
    drop = {index: stages[i % 3] for i, index in enumerate(chosen)}
    start = time.perf_counter()
    run = simulate_secagg(updates, drop=drop, seed=n)
    wall = time.perf_counter() - start
    assert run.result is not None, run.coordinator.failure
    survivors = [i for i in range(1, n + 1) if i not in drop]
    plain = len(encode(RoundUpdate(bytes(32), bytes(32), 1, 650, "none", bytes(2600))))
    sent = median([run.sent[i] for i in survivors])
    got = median([run.received[i] for i in survivors])
    prefix = f"secagg.n{n}"
    result.add(f"{prefix}.k", run.coordinator.setup.k)
    result.add(f"{prefix}.t", run.coordinator.setup.t)
    result.add(
        f"{prefix}.device_cpu_ms_median", 1e3 * median([run.device_seconds[i] for i in survivors])
    )
    result.add(f"{prefix}.coordinator_cpu_ms", 1e3 * run.coordinator_seconds)
    result.add(f"{prefix}.wall_s", wall)
    result.add(f"{prefix}.device_sent_bytes_median", sent)
    result.add(f"{prefix}.device_received_bytes_median", got)
    result.add(f"{prefix}.sent_vs_plain_update", sent / plain)
    expected = sum(updates[i - 1] for i in range(1, n + 1) if drop.get(i) in (None, "reveal"))
    result.add(
        f"{prefix}.sum_max_error", float(np.abs(run.result[0] - expected).max()), Target("<", 0.01)
    )


def run(args: argparse.Namespace) -> BenchResult:
    seeds = 1 if args.quick else args.seeds
    rounds = 10 if args.quick else args.rounds
    result = BenchResult("fl")
    started = time.perf_counter()
    base: list[float] = []

    def row(
        name: str, values: list[float], target: Target | None = None, gap: Target | None = None
    ) -> None:
        mean = statistics.fmean(values)
        result.add(f"acc.{name}.mean", mean, target)
        result.add(f"acc.{name}.std", statistics.pstdev(values) if len(values) > 1 else 0.0)
        if base and name != "central":
            result.add(f"acc.{name}.gap_to_central", mean - statistics.fmean(base), gap)

    base = [_centralised(s, rounds) for s in range(seeds)]
    row("central", base)
    within_2 = Target(">=", -0.02)
    for split in ("iid", "shards", "dirichlet"):
        for c in (1.0, 0.5):
            accs = [
                _federated(s, split, RoundParams(q=c), rounds).accuracy[-1] for s in range(seeds)
            ]
            row(f"fedavg.{split}.C{c}", accs, gap=within_2 if split != "shards" else None)
    for name, compression, feedback in (
        ("q8", "q8", True),
        ("top10.ef", "topk", True),
        ("top10.no_ef", "topk", False),
    ):
        params = RoundParams(compression=compression)
        accs = [
            _federated(s, "iid", params, rounds, error_feedback=feedback).accuracy[-1]
            for s in range(seeds)
        ]
        row(f"compress.{name}", accs)
    for aggregator in ("fedavg", "median", "trimmed-mean", "krum"):
        params = RoundParams(aggregator=aggregator, byzantine=4)
        for attackers in (0, 4):
            accs = [
                _federated(s, "iid", params, rounds, attackers=attackers).accuracy[-1]
                for s in range(seeds)
            ]
            robust = attackers and aggregator in ("median", "trimmed-mean")
            row(
                f"robust.{aggregator}.attack{attackers}", accs, Target(">", 0.9) if robust else None
            )
    for population, split, q, dp_rounds, zs in (
        ("k20", "dirichlet", 0.5, rounds, (0.0, 0.5, 1.0, 2.0, 4.0)),
        ("k1347", "one-each", 0.05, 4 * rounds, (0.0, 0.7, 1.0, 2.0, 4.0)),
    ):
        for z in zs:
            params = RoundParams(clip=1.0, noise=z, q=q)
            runs = [_federated(s, split, params, dp_rounds) for s in range(seeds)]
            row(f"dp.{population}.z{z}", [r.accuracy[-1] for r in runs])
            epsilon = runs[0].epsilon[-1]
            result.add(
                f"dp.{population}.z{z}.epsilon", epsilon if math.isfinite(epsilon) else math.nan
            )
    # DP-FedAvg through SecAgg+: devices add the noise, 30 % of each cohort drop out.
    params = RoundParams(clip=1.0, noise=1.0, q=0.5, secagg=True, min_participants=5)
    runs = [_federated(s, "dirichlet", params, rounds, dropout=0.3) for s in range(seeds)]
    row("dp.k20.z1.0.secagg.dropout30", [r.accuracy[-1] for r in runs])
    result.add("dp.k20.z1.0.secagg.dropout30.epsilon", runs[0].epsilon[-1])
    for n in (20, 100):
        _secagg(result, n)
    result.add("runtime_s", time.perf_counter() - started)
    result.notes.append(
        f"{seeds} seed(s), {rounds} rounds (K=1347: {4 * rounds}); accuracy = test accuracy after "
        "the last round; gap = mean minus the centralised mean; epsilon at delta 1e-5 "
        "(n/a: z = 0, no finite epsilon)"
    )
    return result
