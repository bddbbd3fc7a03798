"""``qdht-bench models``: the model store without a network (13-models.md).

On one core, with a model of ``--size-mb`` MiB of float32 tensors (ten
tensors), published into a chunk store in a temporary directory:

* ``chunk_mb_per_s``: cutting and keying the arrays (:func:`chunk_arrays`,
  keys only), median of ``--runs``; the baseline ``sha3_mb_per_s`` hashes
  the same bytes with one SHA3-256 call, and ``chunk_vs_sha3`` is the ratio
  (what cutting and domain-separating the chunks costs over the hash itself);
* ``verify_mb_per_s``: the fetch planner receiving every chunk (key and
  length checked, planning included) into a store that keeps nothing, and
  ``verify_vs_sha3`` its ratio to the baseline;
* ``fetch_to_disk_mb_per_s``: the same into a real :class:`ChunkStore`
  (one file per chunk), and ``assemble_mb_per_s`` the final file from it;
* ``new_version_bytes_ratio``: bytes a fetcher holding version 1 receives
  for version 2, where 1 of the 10 tensors changed, over that tensor's size
  (target ≤ 1.2);
* ``naive_storage_per_byte`` and ``provider_storage_per_byte``: bytes stored
  across the network per model byte with k = 20 replication of every chunk
  and with provider records (3 seeds), both with ``--fetchers`` fetchers
  keeping a copy; ``provider_vs_naive`` their ratio;
* ``fetch_peak_mib_small`` and ``fetch_peak_mib_large``: Python heap peak
  (tracemalloc) of planner + store writer + assembly, for the model and for
  one ``--scale`` times larger, ``peak_large_vs_small`` their ratio, and
  ``peak_growth_bytes_per_chunk`` what the peak grows by per 64 KiB chunk:
  no chunk data is held beyond the one being handled, so what grows is the
  manifest and the planner's per-chunk bookkeeping (a few hundred bytes a
  chunk, under 1 % of the model: ``peak_fraction_of_model_large``).  Chunks
  are handed to the planner one at a time as they "arrive"; a network driver
  adds at most ``max_in_flight`` (16) chunks of 64 KiB in its receive
  buffers.  The defaults (24 MiB and 96 MiB) keep the run short; above
  about 120 MiB the manifest travels in pages (13-models.md §4.4).

Then, unless ``--no-network``, the loopback UDP figures of
:mod:`qdht_bench.models_net` (``net_*`` and ``session_mb_per_s``): a
``--net-size-mb`` (50) MiB model fetched over a ``--nodes`` (50) node network
from 1 and from 5 holders, against the session throughput measured in the same
run, and the peak heap of a network fetch.  ``--quick`` shrinks everything
(8 MiB models, 12 nodes) for a run of well under a minute.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.models import (
    ChunkStore,
    FetchLimits,
    ModelFetch,
    assemble,
    chunk_arrays,
    chunk_lengths,
    prepare_release,
    storage_cost,
)
from qdht.wire import ModelManifest
from qdht_bench._common import BenchResult, Target, median
from qdht_bench.models_net import network_fetch

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION: Final = (
    "model store: chunking/verification MB/s, bytes per new version, storage, memory"
)

NOW: Final = 1_750_000_000
MIB: Final = 2**20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mb", type=int, default=24, help="model size in MiB")
    parser.add_argument("--runs", type=int, default=3, help="runs per throughput (median)")
    parser.add_argument("--scale", type=int, default=4, help="large/small model for peak memory")
    parser.add_argument("--fetchers", type=int, default=0, help="fetchers keeping a copy")
    parser.add_argument("--nodes", type=int, default=50, help="loopback network size")
    parser.add_argument("--net-size-mb", type=int, default=50, help="network fetch model MiB")
    parser.add_argument("--seeds", type=int, default=4, help="holders besides the publisher")
    parser.add_argument("--no-network", action="store_true", help="skip the loopback network")
    parser.add_argument("--quick", action="store_true", help="small models and network")


def _model(size_mb: int, seed: int = 0) -> dict[str, np.ndarray[Any, Any]]:
    per_tensor = size_mb * MIB // 10 // 4
    rng = np.random.default_rng(seed)
    return {f"layer{i}": rng.standard_normal(per_tensor, np.float32) for i in range(10)}


def _publish(arrays: dict[str, Any], store: ChunkStore, version: int = 1) -> ModelManifest:
    key = MLDSAPrivateKey.from_seed(b"\x42" * 32)
    release = prepare_release(
        key, name="bench", version=version, source=arrays, store=store, expires=NOW + 3600
    )
    return release.manifest


class _NullStore:
    """A store that holds nothing (the planner's verification cost alone)."""

    def has(self, key: bytes) -> bool:
        return False

    def put(self, key: bytes, data: bytes | memoryview) -> None:
        return None


def _fetch(manifest: ModelManifest, source: ChunkStore, target: Any) -> ModelFetch[str]:
    """Fetch every missing chunk from ``source`` with instant answers from 5 holders."""
    fetch: ModelFetch[str] = ModelFetch(manifest, target, FetchLimits())
    for holder in ("h1", "h2", "h3", "h4", "h5"):
        fetch.add_holder(holder)
    while not fetch.complete:
        requests = fetch.next_requests(0.0)
        if not requests:
            raise RuntimeError("the fetch stalled")
        for request in requests:
            fetch.receive_chunk(request.holder, request.key, source.load(request.key), 0.0)
        while fetch.next_event() is not None:
            pass
    return fetch


def _mb_per_s(nbytes: int, runs: int, body: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        body()
        times.append(time.perf_counter() - start)
    return nbytes / MIB / median(times)


def _peak_mib(size_mb: int, tmp: Path) -> float:
    publisher = ChunkStore(tmp / f"pub-{size_mb}")
    manifest = _publish(_model(size_mb), publisher)
    tracemalloc.start()
    try:
        mine = ChunkStore(tmp / f"fetch-{size_mb}")
        _fetch(manifest, publisher, mine)
        assemble(manifest, mine, tmp / f"out-{size_mb}.safetensors")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / MIB


def run(args: argparse.Namespace) -> BenchResult:
    result = BenchResult("models")
    if getattr(args, "quick", False):
        args.size_mb, args.runs, args.scale = min(args.size_mb, 4), 1, 2
        args.nodes, args.net_size_mb = min(args.nodes, 12), min(args.net_size_mb, 8)
    arrays = _model(args.size_mb)
    nbytes = sum(a.nbytes for a in arrays.values())
    joined = b"".join(a.tobytes() for a in arrays.values())
    sha3 = _mb_per_s(nbytes, args.runs, lambda: hashlib.sha3_256(joined).digest())
    chunk = _mb_per_s(nbytes, args.runs, lambda: chunk_arrays(arrays))
    result.add("sha3_mb_per_s", sha3)
    result.add("chunk_mb_per_s", chunk)
    result.add("chunk_vs_sha3", chunk / sha3)

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        publisher = ChunkStore(tmp / "pub")
        manifest = _publish(arrays, publisher)
        verify = _mb_per_s(nbytes, args.runs, lambda: _fetch(manifest, publisher, _NullStore()))
        result.add("verify_mb_per_s", verify)
        result.add("verify_vs_sha3", verify / sha3)
        counter = iter(range(args.runs))
        to_disk = _mb_per_s(
            nbytes,
            args.runs,
            lambda: _fetch(manifest, publisher, ChunkStore(tmp / f"f{next(counter)}")),
        )
        result.add("fetch_to_disk_mb_per_s", to_disk)
        mine = ChunkStore(tmp / "f0")
        assembled = _mb_per_s(
            nbytes, args.runs, lambda: assemble(manifest, mine, tmp / "out.safetensors")
        )
        result.add("assemble_mb_per_s", assembled)

        changed = dict(arrays)
        changed["layer4"] = arrays["layer4"] + 1
        v2 = _publish(changed, publisher, version=2)
        fetch = _fetch(v2, publisher, mine)
        ratio = fetch.stats()["received_bytes"] / changed["layer4"].nbytes
        result.add("new_version_bytes_ratio", ratio, Target("<=", 1.2))

        lengths = [n for t in manifest.tensors for n in chunk_lengths(t.nbytes, 65536)]
        cost = storage_cost(lengths, k=20, seeds=3, fetchers=args.fetchers)
        result.add("naive_storage_per_byte", cost.naive_per_model_byte)
        result.add("provider_storage_per_byte", cost.provider_per_model_byte)
        result.add("provider_vs_naive", cost.provider_bytes / cost.naive_bytes)

        small = _peak_mib(args.size_mb, tmp)
        large = _peak_mib(args.size_mb * args.scale, tmp)
    result.add("model_mib_small", args.size_mb)
    result.add("fetch_peak_mib_small", small)
    result.add("model_mib_large", args.size_mb * args.scale)
    result.add("fetch_peak_mib_large", large)
    result.add("peak_large_vs_small", large / small)
    chunks = (args.size_mb * args.scale - args.size_mb) * MIB // 65536
    result.add("peak_growth_bytes_per_chunk", (large - small) * MIB / chunks)
    large_mib = args.size_mb * args.scale
    result.add("peak_fraction_of_model_large", large / large_mib, Target("<=", 0.01))
    if getattr(args, "no_network", False):
        result.notes.append("loopback network fetch skipped (--no-network)")
        return result
    figures = network_fetch(nodes=args.nodes, size_mb=args.net_size_mb, seeds=args.seeds)
    for name, value in figures.items():
        target = None
        if name == "net_5_holders_vs_session":
            target = Target(">=", 0.5)
        result.add(name, value, target)
    result.notes.append(
        f"network: {args.nodes} nodes on loopback UDP in one process (one core for every "
        f"node), {args.net_size_mb} MiB model, {args.seeds + 1} holders"
    )
    return result
