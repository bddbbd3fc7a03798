"""``qdht-bench mix``: KEM-Sphinx per-hop and creation cost, side by side with sphinxmix.

Measured in one run, interleaved so that machine load falls on both alike:

* ``hop_us``: one hop of a 3-hop packet (:func:`qdht.mixnet.unwrap`: X-Wing
  decapsulation, HKDF, MAC, header stream, LIONESS) plus its replay tag: the
  work ``sphinxmix``'s ``sphinx_process`` does (it too returns the tag and
  leaves the replay check to its caller);
* ``hop_decap_us`` and ``hop_lioness_us``: its two largest parts alone (the
  X-Wing decapsulation, the LIONESS decryption of the payload block);
* ``mix_receive_us``: the whole mix role per packet (rate limit, replay filter
  lookup and insert, unwrap, delay queue), and packets per second per core
  from it;
* creation of a packet and of a reply block at 3 and 5 hops;
* ``sphinxmix`` 0.0.7 (Danezis, PyPI; Sphinx over NIST P-224, AES-CTR,
  its SHA-256/AES "LIONESS"), 5-hop header as its default, with the body
  size of our payload (6839 bytes: a qdht packet always has room for a reply
  block) for the ratio targets, and with a 2 KiB body for reference (``_2k``).

Times are process CPU time; each figure is the median over ``--samples``
batches of ``--batch`` calls, the figures' batches in a shuffled order each
round.  ``--tries`` replays and as many tampered
packets (a random bit flipped anywhere) are pushed through a 3-mix path:
``replays_accepted`` and ``tampered_accepted`` must be 0.  One epoch key's
replay filter is filled to its capacity and probed with ``--replay-probes``
fresh tags: its memory and measured false-positive rate.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import random
import time
from collections.abc import Callable
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from qdht.crypto import xwing
from qdht.mixnet import (
    KIND_MESSAGE,
    Deliver,
    Drop,
    Forward,
    Geometry,
    MixnetConfig,
    MixRole,
    PathHop,
    ReplayFilter,
    create_packet,
    create_surb,
    derive_hop_keys,
    encode_payload,
    replay_tag,
    unwrap,
)
from qdht.mixnet import lioness as lioness
from qdht_bench._common import BenchResult, Target, median

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION: Final = "mix packets: per-hop and creation cost vs sphinxmix, replay/tamper tries"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=int, default=40, help="timed batches per figure")
    parser.add_argument("--batch", type=int, default=10, help="calls per timed batch")
    parser.add_argument("--tries", type=int, default=100_000, help="replays and tamperings")
    parser.add_argument(
        "--replay-probes", type=int, default=200_000, help="fresh tags probed in a full filter"
    )
    parser.add_argument("--profile", action="store_true", help="print a cProfile of a hop")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="time each step of a hop alone, ours and sphinxmix's, in the same run",
    )


def _seed(label: str) -> bytes:
    return hashlib.shake_256(f"qdht/bench/mix/{label}".encode()).digest(32)


def _timed(fn: Callable[[], Any], batch: int) -> float:
    """Microseconds per call of one batch."""
    start = time.process_time()
    for _ in range(batch):
        fn()
    return (time.process_time() - start) / batch * 1e6


class _Ours:
    def __init__(self, hops: int) -> None:
        self.geometry = Geometry(hops=hops)
        self.keys = [xwing.XWingPrivateKey.from_seed(_seed(f"mix-{i}")) for i in range(hops)]
        self.path = [
            PathHop(_seed(f"node-{i}"), k.public_key_bytes(), 5) for i, k in enumerate(self.keys)
        ]
        self.payload = encode_payload(self.geometry, KIND_MESSAGE, b"bench")
        self.packets = [self.create() for _ in range(64)]
        self._next = 0

    def create(self) -> bytes:
        return create_packet(self.geometry, self.path, self.path[-1].node_id, self.payload)

    def surb(self) -> object:
        return create_surb(self.geometry, self.path, _seed("client"))

    def decap(self) -> object:
        """The hop's X-Wing decapsulation alone."""
        return self.keys[0].decapsulate(self.packets[0][2 : 2 + xwing.CIPHERTEXT_SIZE])

    def lioness(self) -> object:
        """The hop's LIONESS decryption of the payload block alone."""
        block = self.packets[0][self.geometry.header_size :]
        return lioness.decrypt(bytes(128), bytes(48), block)

    def hop(self) -> object:
        packet = self.packets[self._next % len(self.packets)]
        self._next += 1
        replay_tag(self.geometry, packet)
        return unwrap(self.geometry, self.keys[0], packet)


class _Sphinxmix:
    def __init__(self, body_len: int) -> None:
        from petlib.bn import Bn  # noqa: F401  (sphinxmix needs petlib)
        from sphinxmix.SphinxClient import Nenc, create_forward_message, create_surb
        from sphinxmix.SphinxNode import sphinx_process
        from sphinxmix.SphinxParams import SphinxParams

        self.params = SphinxParams(body_len=body_len)
        group = self.params.group
        self.secrets = [group.gensecret() for _ in range(5)]
        self.publics = [group.expon(group.g, [x]) for x in self.secrets]
        self.routing = [Nenc(bytes([i])) for i in range(5)]
        self._forward = create_forward_message
        self._surb = create_surb
        self._process = sphinx_process
        self.messages = [self.create() for _ in range(64)]
        self._next = 0

    def create(self) -> Any:
        return self._forward(self.params, self.routing, self.publics, b"dest", b"bench")

    def surb(self) -> Any:
        return self._surb(self.params, self.routing, self.publics, b"dest")

    def hop(self) -> Any:
        header, delta = self.messages[self._next % len(self.messages)]
        self._next += 1
        return self._process(self.params, self.secrets[0], header, delta)


def _chacha20(key: bytes, iv: bytes, *data: bytes | memoryview) -> None:
    stream = Cipher(algorithms.ChaCha20(key, bytes(4) + iv), None).encryptor()
    for part in data:
        stream.update(part)


def _our_steps(ours: _Ours) -> list[tuple[str, Callable[[], Any]]]:
    """Each step of ``ours.hop`` alone, on its first packet, from public APIs only.

    The X-Wing parts are rebuilt from the key's seed as the draft expands it
    (SHAKE256 → ML-KEM seed ‖ X25519 secret), so each primitive is called
    exactly as the X-Wing code calls it.
    """
    geometry, packet = ours.geometry, ours.packets[0]
    expanded = hashlib.shake_256(_seed("mix-0")).digest(96)
    kem = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
    dh = x25519.X25519PrivateKey.from_private_bytes(expanded[64:])
    pk_x = dh.public_key().public_bytes_raw()
    ct = packet[2 : 2 + xwing.CIPHERTEXT_SIZE]
    ct_m, ct_x = ct[:-32], ct[-32:]
    ss_m = kem.decapsulate(ct_m)
    ss_x = dh.exchange(x25519.X25519PublicKey.from_public_bytes(ct_x))
    shared = ours.keys[0].decapsulate(ct)
    keys = derive_hop_keys(geometry, shared)
    view = memoryview(packet)
    mac_at = geometry.header_size - 32
    right = view[geometry.header_size + 32 :]
    zero_slot = bytes(geometry.slot_size)
    k, iv = keys.payload_key, keys.payload_iv

    def combiner() -> bytes:
        parts = (ss_m, ss_x, ct_x, pk_x, xwing.XWING_LABEL)
        return hashlib.sha3_256(b"".join(parts)).digest()

    def blake2b_x2() -> None:
        for key in (k[96:128] + iv[36:48], k[32:64] + iv[12:24]):
            hashlib.blake2b(right, digest_size=32, key=key).digest()

    def chacha20_x2() -> None:
        _chacha20(k[64:96], iv[24:36], right)
        _chacha20(k[0:32], iv[0:12], right)

    return [
        ("mlkem768_decap", lambda: kem.decapsulate(ct_m)),
        ("x25519", lambda: dh.exchange(x25519.X25519PublicKey.from_public_bytes(ct_x))),
        ("xwing_combiner", combiner),
        ("hkdf", lambda: derive_hop_keys(geometry, shared)),
        ("header_mac", lambda: hmac.digest(keys.mac, view[:mac_at], "sha256")),
        (
            "header_chacha20",
            lambda: _chacha20(keys.header_key, keys.header_iv, view[2 + 1120 : mac_at], zero_slot),
        ),
        ("lioness_blake2b_x2", blake2b_x2),
        ("lioness_chacha20_x2", chacha20_x2),
        ("replay_tag", lambda: replay_tag(geometry, packet)),
    ]


def _their_steps(theirs: _Sphinxmix) -> list[tuple[str, Callable[[], Any]]]:
    """Each step of ``sphinxmix``'s ``sphinx_process``, alone, on its first message."""
    params, secret = theirs.params, theirs.secrets[0]
    group = params.group
    (alpha, beta, _), delta = theirs.messages[0]
    shared = group.expon(alpha, [secret])
    aes_s = params.get_aes_key(shared)
    blinding = params.hb(aes_s)
    beta_pad = beta + bytes(2 * params.max_len)

    def derive() -> None:  # every key it derives from the shared point, as it does
        params.get_aes_key(shared)
        params.hmu(aes_s), params.hrho(aes_s), params.htau(aes_s), params.hb(aes_s)
        params.hpi(aes_s), params.hpi(aes_s)

    return [
        ("p224_check", lambda: group.in_group(alpha)),
        ("p224_mult_x2", lambda: (group.expon(alpha, [secret]), group.expon(alpha, [blinding]))),
        ("key_derivation", derive),
        ("header_mac", lambda: params.mu(params.hmu(aes_s), beta)),
        ("header_aes_ctr", lambda: params.xor_rho(params.hrho(aes_s), beta_pad)),
        ("lioness", lambda: params.pii(params.hpi(aes_s), delta)),
    ]


def _breakdown(
    result: BenchResult, ours: _Ours, theirs: _Sphinxmix | None, samples: int, batch: int
) -> None:
    """Every step of each hop timed alone, interleaved; ``*_rest_us`` is the hop minus them."""
    sides = [("step", ours.hop, _our_steps(ours))]
    if theirs is not None:
        sides.append(("sphinxmix_step", theirs.hop, _their_steps(theirs)))
    jobs = [(f"{side}_{name}_us", fn) for side, _, steps in sides for name, fn in steps]
    jobs += [(f"{side}_hop_us", hop) for side, hop, _ in sides]
    for _, fn in jobs:
        fn()
    times: dict[str, list[float]] = {}
    order = random.Random(6)
    for _ in range(samples):
        for name, fn in order.sample(jobs, len(jobs)):
            times.setdefault(name, []).append(_timed(fn, batch))
    for side, _, steps in sides:
        med = {name: median(times[f"{side}_{name}_us"]) for name, _ in steps}
        hop = median(times[f"{side}_hop_us"])
        for name, value in med.items():
            result.add(f"{side}_{name}_us", value)
        result.add(f"{side}_rest_us", hop - sum(med.values()))
        result.add(f"{side}_hop_us", hop)


def _mix_receive(samples: int, batch: int) -> float:
    """Microseconds per packet through the whole mix role (fresh packets, no replays)."""
    config = MixnetConfig(decap_rate=1e9, decap_burst=10**9, max_queue=10**7)
    now = 1_750_000_000.0
    mix = MixRole(_seed("role"), config, now=now, random_source=random.Random(1))
    epoch = mix.keys.current
    geometry = config.geometry
    others = [xwing.XWingPrivateKey.from_seed(_seed(f"other-{i}")) for i in range(2)]
    path = [PathHop(mix.node_id, mix.keys.public_keys()[epoch], 5)] + [
        PathHop(_seed(f"o-{i}"), k.public_key_bytes(), 5) for i, k in enumerate(others)
    ]
    payload = encode_payload(geometry, KIND_MESSAGE, b"bench")
    packets = [
        create_packet(geometry, path, path[-1].node_id, payload) for _ in range(samples * batch)
    ]
    peer = _seed("peer")
    times = []
    for i in range(samples):
        chunk = packets[i * batch : (i + 1) * batch]
        start = time.process_time()
        for packet in chunk:
            mix.receive_packet(packet, peer, now)
        times.append((time.process_time() - start) / batch * 1e6)
    assert mix.stats()["mixed"] == samples * batch
    return median(times)


def _tries(count: int, rand: random.Random) -> tuple[int, int, dict[str, int]]:
    """(replays accepted, tampered accepted, drops by reason) over ``count`` of each."""
    config = MixnetConfig(decap_rate=1e9, decap_burst=10**9, max_queue=10**7)
    now = 1_750_000_000.0
    mixes = [
        MixRole(_seed(f"t-{i}"), config, now=now, random_source=random.Random(i)) for i in range(3)
    ]
    geometry = config.geometry
    epoch = mixes[0].keys.current
    path = [PathHop(m.node_id, m.keys.public_keys()[epoch], 0) for m in mixes]
    payload = encode_payload(geometry, KIND_MESSAGE, b"bench")
    peer = _seed("peer")
    # Replays: packets the first mix accepted, sent again (by other peers, later).
    accepted_once = []
    for _ in range(100):
        packet = create_packet(geometry, path, mixes[2].node_id, payload)
        mixes[0].receive_packet(packet, peer, now)
        accepted_once.append(packet)
    mixed_before = mixes[0].stats()["mixed"]
    for i in range(count):
        mixes[0].receive_packet(accepted_once[i % 100], _seed(f"peer-{i % 50}"), now + i * 1e-3)
    replays_accepted = mixes[0].stats()["mixed"] - mixed_before
    drops: dict[str, int] = {}
    # Tampering: one random bit of a valid packet flipped, walked along the path.
    keys = [m.keys.candidates()[0].key for m in mixes]
    bases = [create_packet(geometry, path, mixes[2].node_id, payload) for _ in range(20)]
    tampered_accepted = 0
    for i in range(count):
        data = bytearray(bases[i % len(bases)])
        bit = rand.randrange(len(data) * 8)
        data[bit // 8] ^= 1 << (bit % 8)
        packet = bytes(data)
        for key in keys:
            result = unwrap(geometry, key, packet)
            if isinstance(result, Forward):
                packet = result.packet
                continue
            if isinstance(result, Deliver):
                tampered_accepted += 1
            elif isinstance(result, Drop):
                drops[result.reason] = drops.get(result.reason, 0) + 1
            break
    return replays_accepted, tampered_accepted, drops


def _replay_filter(probes: int) -> tuple[float, float, float]:
    """(MB per epoch key, stated p, measured false-positive rate) of a filter filled to capacity."""
    config = MixnetConfig()
    store = ReplayFilter(config.replay_capacity, config.replay_fp_rate)
    for i in range(config.replay_capacity):
        store.add(hashlib.sha256(b"in %d" % i).digest())
    hits = sum(hashlib.sha256(b"out %d" % i).digest() in store for i in range(probes))
    return store.memory_bytes / 1e6, config.replay_fp_rate, hits / probes


def run(args: argparse.Namespace) -> BenchResult:
    result = BenchResult("mix")
    ours3, ours5 = _Ours(3), _Ours(5)
    try:
        # Same payload bytes per packet as ours (the target), and its 2 KiB body.
        theirs: _Sphinxmix | None = _Sphinxmix(ours3.geometry.payload_size)
        theirs_2k: _Sphinxmix | None = _Sphinxmix(2048)
    except ImportError:
        theirs = theirs_2k = None
        result.notes.append("sphinxmix is not installed (pip install 'qdht[bench]'): no baseline")
    figures: dict[str, list[float]] = {}
    jobs: list[tuple[str, Callable[[], Any]]] = [
        ("hop_us", ours3.hop),
        ("hop_5_us", ours5.hop),
        ("hop_decap_us", ours3.decap),
        ("hop_lioness_us", ours3.lioness),
        ("create_3_us", ours3.create),
        ("create_5_us", ours5.create),
        ("surb_3_us", ours3.surb),
    ]
    if theirs is not None and theirs_2k is not None:
        jobs += [
            ("sphinxmix_hop_us", theirs.hop),
            ("sphinxmix_create_us", theirs.create),
            ("sphinxmix_surb_us", theirs.surb),
            ("sphinxmix_2k_hop_us", theirs_2k.hop),
            ("sphinxmix_2k_create_us", theirs_2k.create),
        ]
    for _, fn in jobs:  # warm up
        fn()
    order = random.Random(5)
    for _ in range(args.samples):  # interleaved: load falls on every figure alike
        for name, fn in order.sample(jobs, len(jobs)):  # no figure always runs cache-cold
            figures.setdefault(name, []).append(_timed(fn, args.batch))
    med = {name: median(values) for name, values in figures.items()}
    receive = _mix_receive(args.samples, args.batch)
    result.add("hop_us", med["hop_us"])
    result.add("hop_5_us", med["hop_5_us"])
    result.add("hop_decap_us", med["hop_decap_us"])
    result.add("hop_lioness_us", med["hop_lioness_us"])
    result.add("mix_receive_us", receive)
    result.add("packets_per_s_per_core", 1e6 / receive)
    result.add("create_3_ms", med["create_3_us"] / 1000, Target("<=", 0.6))
    result.add("create_5_ms", med["create_5_us"] / 1000)
    result.add("surb_3_ms", med["surb_3_us"] / 1000)
    if theirs is not None:
        result.add("sphinxmix_hop_us", med["sphinxmix_hop_us"])
        result.add(
            "hop_ratio_vs_sphinxmix", med["hop_us"] / med["sphinxmix_hop_us"], Target("<=", 0.65)
        )
        result.add("sphinxmix_create_ms", med["sphinxmix_create_us"] / 1000)
        result.add("sphinxmix_surb_ms", med["sphinxmix_surb_us"] / 1000)
        result.add("create_ratio_vs_sphinxmix", med["create_3_us"] / med["sphinxmix_create_us"])
        result.add("sphinxmix_2k_hop_us", med["sphinxmix_2k_hop_us"])
        result.add("hop_ratio_vs_sphinxmix_2k", med["hop_us"] / med["sphinxmix_2k_hop_us"])
        result.add("sphinxmix_2k_create_ms", med["sphinxmix_2k_create_us"] / 1000)
        result.notes.append(
            f"sphinxmix: P-224, 5-hop header; body {ours3.geometry.payload_size} bytes (the "
            "payload every qdht packet carries: framing, room for a SURB, 2 KiB user data) "
            "for the targets, and 2048 bytes (_2k) for reference"
        )
    geometry = ours3.geometry
    result.add("packet_bytes", geometry.packet_size)
    result.add("header_bytes", geometry.header_size)
    result.add("surb_bytes", geometry.surb_size)
    if args.tries > 0:
        replays, tampered, drops = _tries(args.tries, random.Random(7))
        result.add("replay_tries", args.tries)
        result.add("replays_accepted", replays, Target("==", 0))
        result.add("tamper_tries", args.tries)
        result.add("tampered_accepted", tampered, Target("==", 0))
        result.notes.append(
            "tampered packets dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(drops.items()))
        )
    if args.replay_probes > 0:
        megabytes, stated, measured = _replay_filter(args.replay_probes)
        result.add("replay_filter_mb_per_epoch_key", megabytes)
        result.add("replay_fp_rate_stated", stated)
        result.add(
            "replay_fp_rate_measured_full",
            measured,
            Target("<=", 10 * stated + 3 / args.replay_probes),
        )
    replay = MixnetConfig()
    result.notes.append(
        f"{args.samples} batches of {args.batch} calls, process CPU time, interleaved; "
        f"replay filter per epoch key: {replay.replay_capacity:,} tags at "
        f"p={replay.replay_fp_rate:g}"
    )
    if args.breakdown:
        _breakdown(result, ours3, theirs, args.samples, args.batch)
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(300):
            ours3.hop()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return result
