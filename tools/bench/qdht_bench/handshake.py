"""``qdht-bench handshake``: CPU cost of one pqXX (both sides) and of one pqIK.

A handshake is run end to end between two long-lived :class:`SessionEndpoint`
objects in one process (fragmentation, mac1, biscuit, identity proof, rate
limits and key confirmation included), timed with ``time.process_time``, as a
running node does it: the endpoints are made once, simulated time advances one
second per handshake (so the responder's cookie and biscuit secrets rotate
every ``secret_rotation`` seconds, and that cost is counted where it falls),
and the session is closed, untimed, before the next one.  ``primitives`` is
the same run's cost of only the KEM, AEAD and hash operations that pqXX does,
replayed in the same order with inputs of the same sizes through the same
library functions, timed separately (:func:`_primitives` lists them);
``handshake_overhead_ratio`` is their quotient: what the protocol logic adds.

``handshake_fresh_ms_median`` is, for comparison, one pqXX between two
endpoints made for it (their construction not timed, but every per-secret
setup falls on the handshake): the figure this benchmark reported before.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from typing import Final

from qdht.crypto import xwing
from qdht.crypto.aead import TAG_SIZE, ChaChaPoly
from qdht.crypto.hashes import hkdf_blake2b
from qdht.identity import Identity, compute_node_id, puzzle_ok
from qdht.session import BISCUIT_SIZE, HS_OVERHEAD, KEEPALIVE_FRAME, SessionConfig, SessionEndpoint
from qdht.wire import MAC_SIZE, Hello, dumps_canonical
from qdht_bench._common import BenchResult, Target, median

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION: Final = "pqXX / pqIK handshake CPU cost vs the primitives it needs (ms)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=200, help="handshakes per pattern")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of pqXX")


class _Pair:
    """Two long-lived endpoints and a simulated clock: one handshake per second."""

    def __init__(self, a: Identity, b: Identity) -> None:
        self.a, self.b = a, b
        self.ea, self.eb = SessionEndpoint(a), SessionEndpoint(b)
        self.now = 0.0

    def handshake(self, ik: bool) -> float:
        """CPU milliseconds of one complete handshake, both sides."""
        ea, eb, b = self.ea, self.eb, self.b
        self.now += 1.0
        now = self.now
        static = b.xwing.public_key_bytes() if ik else None
        start = time.process_time()
        ea.connect("B", b.node_id, now, responder_static=static)
        for _ in range(4):
            for data, _addr in ea.datagrams_to_send(now):
                eb.receive_datagram(data, "A", now)
            for data, _addr in eb.datagrams_to_send(now):
                ea.receive_datagram(data, "B", now)
        elapsed = time.process_time() - start
        if eb.stats()["sessions"] != 1:
            raise RuntimeError(f"handshake did not complete: {dict(eb.drops)}")
        ea.close(b.node_id, now)
        for data, _addr in ea.datagrams_to_send(now):
            eb.receive_datagram(data, "A", now)
        eb.close(self.a.node_id, now)
        eb.datagrams_to_send(now)
        while ea.next_event() is not None or eb.next_event() is not None:
            pass
        return elapsed * 1000


def _fresh_handshake(a: Identity, b: Identity) -> float:
    """One pqXX between two endpoints made for it (the old measurement)."""
    pair = _Pair(a, b)
    return pair.handshake(False)


def _sizes(a: Identity) -> tuple[int, list[int], int]:
    """(hello size, fragment MAC input sizes of the four messages, msg3 body size)."""
    hello = len(dumps_canonical(Hello(1, a.mldsa_public_hash, a.nonce).to_cbor()))
    ct, pk = xwing.CIPHERTEXT_SIZE, xwing.PUBLIC_KEY_SIZE
    bodies = [
        pk,  # -> e (no key yet, so no tag)
        BISCUIT_SIZE + ct + pk + hello + 2 * TAG_SIZE,  # <- ekem, s
        BISCUIT_SIZE + ct + pk + hello + 3 * TAG_SIZE,  # -> skem, s
        ct + TAG_SIZE + TAG_SIZE,  # <- skem, empty payload
    ]
    chunk = SessionConfig().datagram_size - HS_OVERHEAD
    macs = []
    for body in bodies:
        for offset in range(0, body, chunk):
            macs.append(18 + min(chunk, body - offset))  # prefix 16, index, count
    return hello, macs, bodies[2]


def _primitives(a: Identity, b: Identity) -> float:
    """The KEM, AEAD and hash work of one pqXX, both sides, without the protocol glue.

    Per handshake (04-handshake.md), with the sizes pqXX uses:

    * X-Wing: one ephemeral key expansion, three encapsulations (ekem, skem to
      the responder, skem to the initiator) and the three decapsulations;
    * AEAD: one key setup for each of the 11 keys a side uses (three handshake
      keys per side, the responder's again from its biscuit, two transport
      keys per side) and nine encrypt/decrypt pairs: s twice, the hello twice,
      the skem ciphertexts twice, msg4's empty payload, the biscuit and the
      key-confirming keepalive;
    * BLAKE2b: MixHash over every token and payload (11 per side), the mac1
      of every fragment (computed and checked), the biscuit replay digest;
      HMAC-BLAKE2b HKDF for three MixKeys and the Split per side;
    * SHA3-256: each side computes and checks the other's node ID.
    """
    hello, macs, msg3 = _sizes(a)
    ct, pk = xwing.CIPHERTEXT_SIZE, xwing.PUBLIC_KEY_SIZE
    start = time.process_time()
    e = xwing.XWingPrivateKey.from_seed(os.urandom(32))  # initiator ephemeral
    for recipient in (e, b.xwing, a.xwing):  # ekem, skem to R, skem to I
        _ss, kem_ct = xwing.encapsulate(recipient.public_key_bytes())
        recipient.decapsulate(kem_ct)
    h = bytes(64)
    secret = os.urandom(32)  # both sides of each AEAD operation share its key
    keys = [ChaChaPoly(secret) for _ in range(11)]
    for size in (pk, hello, 200, ct, pk, hello, ct, 0, len(KEEPALIVE_FRAME)):
        sealed = keys[0].encrypt(0, h, bytes(size))
        keys[1].decrypt(0, h, sealed)
    mac_key = bytes(32)
    for size in macs:
        for _ in range(2):
            hashlib.blake2b(bytes(size), key=mac_key, digest_size=MAC_SIZE).digest()
    hashlib.blake2b(bytes(msg3), digest_size=16).digest()
    # MixHash inputs in order (14: the prologue), then msg3's hello, msg4's ct and payload.
    hashed = (14, pk, 0, ct, pk + TAG_SIZE, hello + TAG_SIZE, ct + TAG_SIZE, pk + TAG_SIZE)
    for _ in range(2):
        for size in (*hashed, hello + TAG_SIZE, ct + TAG_SIZE, TAG_SIZE):
            h = hashlib.blake2b(h + bytes(size)).digest()
    for ikm in (h[:32],) * 6 + (b"",) * 2:  # MixKey(shared secret) x3, Split: per side
        hkdf_blake2b(h, ikm, 2)
    for ident in (a, b):
        node_id = compute_node_id(
            ident.xwing.public_key_bytes(), ident.mldsa_public_hash, ident.nonce
        )
        puzzle_ok(node_id, ident.difficulty)
    return (time.process_time() - start) * 1000


def run(args: argparse.Namespace) -> BenchResult:
    a = Identity.generate(difficulty=8)
    b = Identity.generate(difficulty=8)
    pair = _Pair(a, b)
    for _ in range(5):  # warm up
        pair.handshake(False)
    xx, prim, ik, fresh = [], [], [], []
    for _ in range(args.count):
        xx.append(pair.handshake(False))
        prim.append(_primitives(a, b))
        ik.append(pair.handshake(True))
        fresh.append(_fresh_handshake(a, b))
    result = BenchResult("handshake")
    hs, pr = median(xx), median(prim)
    result.add("handshake_ms_median", hs, Target("<=", 1.0))
    result.add("primitives_ms_median", pr)
    result.add("handshake_overhead_ratio", hs / pr, Target("<=", 1.25))
    result.add("pqik_ms_median", median(ik))
    result.add("handshake_fresh_ms_median", median(fresh))
    result.notes.append(
        f"{args.count} handshakes per pattern, process CPU time, long-lived endpoints "
        "(fresh: endpoints made per handshake)"
    )
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(50):
            pair.handshake(False)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return result
