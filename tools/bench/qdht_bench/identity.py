"""``qdht-bench identity``: costs of the crypto primitives and of identity operations.

Times, on one core with the selected crypto backend (median of ``--runs``
batches of ``--count`` operations each): X-Wing key expansion from a seed,
encapsulation and decapsulation; raw ML-KEM-768 keygen/encaps/decaps through
the backend; ML-DSA-65 key expansion, signing and verification;
ChaCha20-Poly1305 on 1 KiB; the puzzle check; full certificate verification;
and ``--mints`` identity mints at the default puzzle difficulty (their mean
is what the difficulty was tuned on: about one second).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Final

from qdht.crypto import aead, mldsa, xwing
from qdht.crypto.backend import get_backend
from qdht.crypto.hashes import sha3_256
from qdht.identity import (
    DEFAULT_PUZZLE_DIFFICULTY,
    Identity,
    mint_nonce,
    puzzle_ok,
    verify_certificate,
)
from qdht_bench._common import BenchResult, Target, median

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION: Final = "X-Wing, ML-DSA-65, AEAD, puzzle and certificate costs (µs per operation)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=200, help="operations per batch")
    parser.add_argument("--runs", type=int, default=5, help="batches (median reported)")
    parser.add_argument(
        "--mints", type=int, default=5, help="identities minted at the default difficulty"
    )


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
    result = BenchResult("identity")
    backend = get_backend()
    result.notes.append(f"backend: {backend.name}")

    key = xwing.XWingPrivateKey.generate()
    pk = key.public_key_bytes()
    _, ct = xwing.encapsulate(pk)
    seed = os.urandom(32)
    result.add(
        "xwing_keygen_us", _time_us(lambda: xwing.XWingPrivateKey.from_seed(seed), count, runs)
    )
    result.add(
        "xwing_encap_us", _time_us(lambda: xwing.encapsulate(pk), count, runs), Target("<=", 300)
    )
    result.add(
        "xwing_decap_us", _time_us(lambda: key.decapsulate(ct), count, runs), Target("<=", 300)
    )

    mlkem_key = backend.mlkem768_from_seed(os.urandom(64))
    mlkem_pk = mlkem_key.public_bytes()
    _, mlkem_ct = backend.mlkem768_encapsulate(mlkem_pk)
    seed64 = os.urandom(64)
    result.add(
        "mlkem768_keygen_us", _time_us(lambda: backend.mlkem768_from_seed(seed64), count, runs)
    )
    result.add(
        "mlkem768_encap_us", _time_us(lambda: backend.mlkem768_encapsulate(mlkem_pk), count, runs)
    )
    result.add("mlkem768_decap_us", _time_us(lambda: mlkem_key.decapsulate(mlkem_ct), count, runs))

    signer = mldsa.MLDSAPrivateKey.generate()
    spk = signer.public_key_bytes()
    message = os.urandom(1024)
    signature = signer.sign(message, b"qdht/v1/bench")
    result.add(
        "mldsa65_keygen_us",
        _time_us(lambda: mldsa.MLDSAPrivateKey.from_seed(seed[:32]), count, runs),
    )
    result.add(
        "mldsa65_sign_us",
        _time_us(lambda: signer.sign(message, b"qdht/v1/bench"), count, runs),
        Target("<=", 3000),
    )
    result.add(
        "mldsa65_verify_us",
        _time_us(lambda: mldsa.verify(spk, message, signature, b"qdht/v1/bench"), count, runs),
        Target("<=", 1000),
    )

    box = aead.ChaChaPoly(os.urandom(32))
    kib = os.urandom(1024)
    result.add(
        "chachapoly_1kib_encrypt_us", _time_us(lambda: box.encrypt(1, b"", kib), count * 10, runs)
    )

    identity = Identity.generate(8)
    cert = identity.certificate(now=1_750_000_000)
    result.add(
        "puzzle_verify_us",
        _time_us(lambda: puzzle_ok(identity.node_id, 8), count * 10, runs),
        Target("<=", 20),
    )
    result.add(
        "certificate_verify_us",
        _time_us(lambda: verify_certificate(cert, now=1_750_000_000, difficulty=8), count, runs),
    )

    mhash = sha3_256(spk)
    tries = 4096
    start = time.perf_counter()
    for _ in range(runs):
        mint_nonce(pk, mhash, 12)  # ~4096 tries each
    result.add("puzzle_try_us", (time.perf_counter() - start) / (runs * tries) * 1e6)
    mint_s = []
    for _ in range(args.mints):
        start = time.perf_counter()
        mint_nonce(pk, mhash, DEFAULT_PUZZLE_DIFFICULTY)
        mint_s.append(time.perf_counter() - start)
    if mint_s:
        result.add("mint_default_difficulty_mean_s", statistics.fmean(mint_s), Target("<=", 3.0))
    result.notes.append(f"default puzzle difficulty: {DEFAULT_PUZZLE_DIFFICULTY} bits")
    return result
