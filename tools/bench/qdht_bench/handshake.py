"""``qdht-bench handshake``: CPU cost of one pqXX (both sides) and of one pqIK.

A handshake is run end to end through two :class:`SessionEndpoint` objects
in one process (fragmentation, mac1, biscuit, identity proof and key
confirmation included), timed with ``time.process_time``.  ``primitives`` is
the same run's cost of only the KEM, AEAD and hash operations a pqXX needs
(one ephemeral key expansion, three X-Wing encapsulations and decapsulations,
the AEAD and BLAKE2b/HMAC calls of the symmetric state, biscuit and mac1, and
the two node-ID computations of the identity proof), timed separately;
``handshake_overhead_ratio`` is their quotient.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import time
from typing import Final

from qdht.crypto import xwing
from qdht.crypto.aead import ChaChaPoly
from qdht.identity import Identity, compute_node_id, puzzle_ok
from qdht.session import SessionEndpoint
from qdht_bench._common import BenchResult, Target, median

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION: Final = "pqXX / pqIK handshake CPU cost vs the primitives it needs (ms)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=200, help="handshakes per pattern")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of pqXX")


def _handshake(a: Identity, b: Identity, ik: bool) -> float:
    ea, eb = SessionEndpoint(a), SessionEndpoint(b)
    static = b.xwing.public_key_bytes() if ik else None
    start = time.process_time()
    ea.connect("B", b.node_id, 0.0, responder_static=static)
    for _ in range(4):
        for data, _addr in ea.datagrams_to_send(0.0):
            eb.receive_datagram(data, "A", 0.0)
        for data, _addr in eb.datagrams_to_send(0.0):
            ea.receive_datagram(data, "B", 0.0)
    elapsed = time.process_time() - start
    if eb.stats()["sessions"] != 1:
        raise RuntimeError("handshake did not complete")
    return elapsed * 1000


def _primitives(a: Identity, b: Identity) -> float:
    """The KEM, AEAD and hash work of one pqXX, both sides, without the protocol glue."""
    start = time.process_time()
    e = xwing.XWingPrivateKey.from_seed(os.urandom(32))  # initiator ephemeral
    for recipient in (e, b.xwing, a.xwing):  # ekem, skem to R, skem to I
        _ss, ct = xwing.encapsulate(recipient.public_key_bytes())
        recipient.decapsulate(ct)
    key = ChaChaPoly(bytes(32))
    h = bytes(64)
    # Encrypted tokens and payloads (s, hellos, skem ciphertexts), the biscuit
    # seal/open and the cookie-free mac1 on ~10 fragments (compute and check).
    for size in (1216, 60, 1120, 1216, 60, 1120, 0, 200):
        ct = key.encrypt(0, h, bytes(size))
        key.decrypt(0, h, ct)
    mac_key = bytes(32)
    for _ in range(20):
        hashlib.blake2b(bytes(1100), key=mac_key, digest_size=16).digest()
    # MixHash over every token and payload, on both sides.
    for _ in range(2):
        for size in (14, 1216, 0, 1120, 1232, 76, 1136, 1232, 76, 1136, 16):
            h = hashlib.blake2b(h + bytes(size), digest_size=64).digest()
    for _ in range(8):  # MixKey x3 and Split per side: HKDF = 3 HMACs
        for _ in range(3):
            hmac.digest(h, h, "blake2b")
    # The identity proof: each side computes and checks the other's node ID.
    for ident in (a, b):
        node_id = compute_node_id(
            ident.xwing.public_key_bytes(), ident.mldsa_public_hash, ident.nonce
        )
        puzzle_ok(node_id, ident.difficulty)
    return (time.process_time() - start) * 1000


def run(args: argparse.Namespace) -> BenchResult:
    a = Identity.generate(difficulty=8)
    b = Identity.generate(difficulty=8)
    for _ in range(5):  # warm up
        _handshake(a, b, False)
    xx, prim, ik = [], [], []
    for _ in range(args.count):
        xx.append(_handshake(a, b, False))
        prim.append(_primitives(a, b))
        ik.append(_handshake(a, b, True))
    result = BenchResult("handshake")
    hs, pr = median(xx), median(prim)
    result.add("handshake_ms_median", hs, Target("<=", 1.0))
    result.add("primitives_ms_median", pr)
    result.add("handshake_overhead_ratio", hs / pr, Target("<=", 1.25))
    result.add("pqik_ms_median", median(ik))
    result.notes.append(f"{args.count} handshakes per pattern, process CPU time")
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(50):
            _handshake(a, b, False)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return result
