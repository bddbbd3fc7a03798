"""``qdht-bench records-store``: what holding records costs, in memory and in SQLite.

On one core, with immutable records of ``--value-size`` bytes (1 KiB by
default), already validated (validation is ``records-validate``'s business):

* ``sqlite_writes_per_s``: acknowledged puts into a fresh
  :class:`SqliteRecordStore` in a temporary directory (WAL,
  ``synchronous=NORMAL``), each put saved alone (one transaction per put, so
  each survives the process being killed once saved), median of ``--runs``
  batches of ``--count``; ``sqlite_group_writes_per_s`` the same saved in
  groups of 64 (the node's store task commits what accumulated while the
  previous save ran); ``sqlite_loop_put_us`` what one put costs the event
  loop (memory and journal; the save runs in a worker thread);
  ``sqlite_full_writes_per_s`` as ``sqlite_writes_per_s`` with
  ``synchronous=FULL`` (an fsync per put: survives power loss; depends
  entirely on the disk under the temporary directory);
* ``sqlite_reads_per_s``: :meth:`get` of every key of the last batch;
* ``memory_puts_per_s`` and ``memory_reads_per_s`` for :class:`MemoryRecordStore`;
* ``memory_bytes_per_record``: Python heap (tracemalloc) per record held by
  a memory store, value included, and ``memory_overhead_per_record`` the
  same minus the value size;
* ``republish_page_ms``: one :meth:`keys_for_republish` page (1,024 keys from
  a random point) of a memory store holding ``--index-count`` keys, as a
  republish round pages through keyspace regions; the baseline
  ``sort_keys_ms`` sorts the same keys once (what every page cost before the
  store kept a key index), and ``republish_page_vs_sort`` is their ratio.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Final

from qdht.dht import (
    MemoryRecordStore,
    RecordStore,
    SqliteRecordStore,
    ValidRecord,
    make_immutable,
    validate_record,
)
from qdht_bench._common import BenchResult, Target, median

__all__ = [
    "DESCRIPTION",
    "add_arguments",
    "memory_bytes_per_record",
    "run",
    "sqlite_writes_per_s",
]

DESCRIPTION: Final = "record store puts/gets per second (SQLite WAL, memory) and bytes per record"

NOW: Final = 1_750_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=2000, help="puts per batch")
    parser.add_argument("--runs", type=int, default=5, help="batches (median reported)")
    parser.add_argument("--value-size", type=int, default=1024, help="bytes per value")
    parser.add_argument(
        "--full-count", type=int, default=200, help="puts per batch with synchronous=FULL"
    )
    parser.add_argument(
        "--index-count", type=int, default=100_000, help="keys held for republish_page_ms"
    )


def _records(count: int, size: int, salt: int) -> list[ValidRecord]:
    records = []
    for n in range(count):
        value = salt.to_bytes(4, "big") + n.to_bytes(4, "big") + bytes(max(0, size - 8))
        record = make_immutable(value, NOW + 86400)
        records.append(validate_record(record, record.key(), NOW))
    return records


def _rate(store: RecordStore, records: list[ValidRecord], batch: int = 1) -> float:
    """Acknowledged puts per second: each put is saved (``save``, what the node
    waits for before it answers STORED) alone, or in groups of ``batch``."""
    start = time.perf_counter()
    for i, record in enumerate(records, start=1):
        store.put(record, source="bench", cached=False, now=NOW)
        if i % batch == 0:
            store.save()
    store.save()
    return len(records) / (time.perf_counter() - start)


def _loop_put_us(store: RecordStore, records: list[ValidRecord]) -> float:
    """What a put costs the node's event loop: the put alone (the save runs in a
    worker thread), in microseconds."""
    start = time.perf_counter()
    for record in records:
        store.put(record, source="bench", cached=False, now=NOW)
    elapsed = time.perf_counter() - start
    store.save()
    return elapsed / len(records) * 1e6


def _read_rate(store: RecordStore, records: list[ValidRecord]) -> float:
    start = time.perf_counter()
    for record in records:
        if not store.get(record.key):
            raise AssertionError("a stored record is missing")
    return len(records) / (time.perf_counter() - start)


def _sqlite_rates(
    records_of: Callable[[int], list[ValidRecord]],
    runs: int,
    synchronous: str,
    batch: int = 1,
    measure: Callable[[RecordStore, list[ValidRecord]], float] | None = None,
) -> tuple[list[float], list[float]]:
    """Per run on a fresh store: (the write measure, reads per second)."""
    writes, reads = [], []
    for run in range(runs):
        records = records_of(run)
        with tempfile.TemporaryDirectory(prefix="qdht-bench-") as tmp:
            store = SqliteRecordStore(
                Path(tmp) / "records.db",
                synchronous="FULL" if synchronous == "FULL" else "NORMAL",
            )
            try:
                if measure is None:
                    writes.append(_rate(store, records, batch))
                else:
                    writes.append(measure(store, records))
                reads.append(_read_rate(store, records))
            finally:
                store.close()
    return writes, reads


def memory_bytes_per_record(count: int, size: int) -> float:
    """Python heap per record held by a :class:`MemoryRecordStore` (tracemalloc)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        store = MemoryRecordStore()
        records = _records(count, size, 300)
        for record in records:
            store.put(record, source="bench", cached=False, now=NOW)
        held = tracemalloc.get_traced_memory()[0] - before
        del records
        after = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    store.close()
    return min(held, after) / count


def republish_page_ms(count: int, runs: int) -> tuple[float, float]:
    """(one 1,024-key republish page, sorting every key once), median ms, of a
    memory store holding ``count`` small records."""
    store = MemoryRecordStore()
    for record in _records(count, 16, 400):
        store.put(record, source="bench", cached=False, now=NOW)
    rng = random.Random(1)
    pages, sorts = [], []
    store.keys_for_republish(limit=1)  # the first page after puts merges them in
    for _ in range(max(runs, 5) * 4):
        low = rng.randbytes(32)
        start = time.perf_counter()
        store.keys_for_republish(low, limit=1024)
        pages.append((time.perf_counter() - start) * 1000)
    keys = list(store._keys)
    for _ in range(max(runs, 3)):
        start = time.perf_counter()
        sorted(keys)
        sorts.append((time.perf_counter() - start) * 1000)
    store.close()
    return median(pages), median(sorts)


def sqlite_writes_per_s(count: int, size: int, runs: int) -> float:
    """Median acknowledged puts per second into a fresh SQLite store (WAL, NORMAL)."""
    writes, _ = _sqlite_rates(lambda run: _records(count, size, run), runs, "NORMAL")
    return median(writes)


def run(args: argparse.Namespace) -> BenchResult:
    count, runs, size = args.count, args.runs, args.value_size
    result = BenchResult("records-store")

    writes, reads = _sqlite_rates(lambda run: _records(count, size, run), runs, "NORMAL")
    result.add("sqlite_writes_per_s", median(writes), Target(">=", 5000))
    result.add("sqlite_reads_per_s", median(reads))
    grouped, _ = _sqlite_rates(lambda run: _records(count, size, run), runs, "NORMAL", 64)
    result.add("sqlite_group_writes_per_s", median(grouped))
    loop, _ = _sqlite_rates(
        lambda run: _records(count, size, run), runs, "NORMAL", measure=_loop_put_us
    )
    result.add("sqlite_loop_put_us", median(loop))
    full, _ = _sqlite_rates(
        lambda run: _records(args.full_count, size, 100 + run), max(1, runs // 2), "FULL"
    )
    result.add("sqlite_full_writes_per_s", median(full))

    puts, gets = [], []
    for run_number in range(runs):
        records = _records(count, size, 200 + run_number)
        store = MemoryRecordStore()
        puts.append(_rate(store, records))
        gets.append(_read_rate(store, records))
        store.close()
    result.add("memory_puts_per_s", median(puts))
    result.add("memory_reads_per_s", median(gets))

    per_record = memory_bytes_per_record(count, size)
    result.add("memory_bytes_per_record", per_record)
    result.add("memory_overhead_per_record", per_record - size)
    page, sort = republish_page_ms(args.index_count, runs)
    result.add("republish_page_ms", page)
    result.add("sort_keys_ms", sort)
    result.add("republish_page_vs_sort", page / sort)
    result.notes.append(
        f"{count} puts x {runs} runs of {size}-byte immutable records; "
        "SQLite in a temporary directory, one transaction per put"
    )
    return result
