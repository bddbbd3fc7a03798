"""``qdht-bench records-validate``: what signing and validating records costs.

Times, on one core (median of ``--runs`` batches of ``--count`` operations):
signing a mutable record (ML-DSA-65, 1 KiB value); validating it cold (a
validator without a verdict cache: decode checks, key binding, owner hash,
signature); validating it again through a warm verdict cache (a republish
or replica of a record already seen); validating a record without ``pk``
whose key is resolved from a certificate; validating an immutable record
(64 KiB value: one SHA3-256); deciding a merge (:func:`accept`); decoding a
mutable record from bytes; and the largest encoded sizes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Final

import attrs

from qdht.crypto import mldsa
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import (
    RecordValidator,
    accept,
    make_immutable,
    sign_mutable,
    validate_record,
)
from qdht.wire import RECORD_TYPES, decode, encode, owner_hash
from qdht_bench._common import BenchResult, Target, median

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION: Final = "record signing, validation (cold and cached), merge and decode (µs)"

NOW: Final = 1_750_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=200, help="operations per batch")
    parser.add_argument("--runs", type=int, default=5, help="batches (median reported)")


def _time_us(fn: Callable[[], object], count: int, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        samples.append((time.perf_counter() - start) / count * 1e6)
    return median(samples)


def run(args: argparse.Namespace) -> BenchResult:
    count, runs = args.count, args.runs
    result = BenchResult("records-validate")
    key = MLDSAPrivateKey.from_seed(bytes(range(32)))
    pk = key.public_key_bytes()
    value = bytes(1024)

    def sign() -> object:
        return sign_mutable(key, salt=b"bench", seq=1, value=value, expires=NOW + 3600)

    result.add("sign_mutable_1k_us", _time_us(sign, max(1, count // 4), runs))

    record = sign_mutable(key, salt=b"bench", seq=1, value=value, expires=NOW + 3600)
    record_key = record.key()
    signed = record.signed_bytes()
    # The floor of a cold validation, measured alongside it (the machine may be shared).
    result.add(
        "mldsa_verify_us",
        _time_us(lambda: mldsa.verify(pk, signed, record.signature, record.CONTEXT), count, runs),
    )
    result.add(
        "validate_cold_us",
        _time_us(lambda: validate_record(record, record_key, NOW), count, runs),
        Target("<=", 500),
    )
    warm = RecordValidator()
    warm.validate(record, record_key, NOW)
    result.add(
        "validate_cached_us",
        _time_us(lambda: warm.validate(record, record_key, NOW), count, runs),
        Target("<=", 50),
    )
    bare = attrs.evolve(record, public_key=None)
    keys = {owner_hash(pk): pk}
    result.add(
        "validate_resolved_pk_cached_us",
        _time_us(lambda: warm.validate(bare, record_key, NOW, resolve_owner=keys.get), count, runs),
    )

    big = make_immutable(bytes(65536), NOW + 3600)
    big_key = big.key()
    result.add(
        "validate_immutable_64k_us",
        _time_us(lambda: validate_record(big, big_key, NOW), count, runs),
    )

    old = warm.validate(record, record_key, NOW)
    new = warm.validate(
        sign_mutable(key, salt=b"bench", seq=2, value=value, expires=NOW + 3600), record_key, NOW
    )
    result.add("accept_us", _time_us(lambda: accept(new, old, NOW), count * 10, runs))

    data = encode(record)
    result.add(
        "decode_mutable_1k_us",
        _time_us(lambda: decode(data, expect=RECORD_TYPES), count, runs),
    )
    result.add("mutable_overhead_with_pk_bytes", float(len(data) - len(value)))
    result.add("mutable_overhead_without_pk_bytes", float(len(encode(bare)) - len(value)))
    result.notes.append(
        "cold = no verdict cache; cached = RecordValidator's LRU of signature verdicts"
    )
    return result
