"""SecAgg+: secure aggregation with dropout tolerance, sans-IO (14-training.md §5).

Bonawitz et al. (CCS 2017) on the sparse graph of Bell et al. (CCS 2020):
each device masks its quantised update with one self mask and one pairwise
mask per graph neighbour; pairwise masks cancel in the sum, and the secrets
behind the masks are Shamir-shared among the neighbours so the coordinator
can remove the masks of devices that drop out.  The coordinator learns the
sum of the surviving devices' updates and nothing else, as long as it
follows the protocol and fewer than ``t`` of any device's neighbours
collude with it (the semi-honest model of both papers).

X-Wing is a KEM, not a Diffie-Hellman: a shared secret is fixed by the
encapsulator's randomness, which the other side cannot recompute.  So for
each neighbour pair u < v, u encapsulates to v's masking key and *escrows*
the resulting pairwise seed with the coordinator, encrypted under a key
derived from u's masking secret.  Whichever of the two drops out, its
Shamir-shared masking secret recovers the seed: v's by decapsulating the
ciphertext the coordinator relayed, u's by opening the escrow.  Shares
travel encrypted under a second, never-shared X-Wing key per device (the
channel key), as Bonawitz et al. keep the c and s keys apart.

Each stage is a method that takes the coordinator's message and returns
the device's answer (or None after a drop, counted in ``stats()``); the
coordinator is fed whatever arrives and asked for its messages when it
closes a stage (at its deadline or when all have answered).
"""

from __future__ import annotations

import collections
import math
import os
import struct
from collections.abc import Callable
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from qdht.crypto import xwing
from qdht.crypto.aead import ChaChaPoly
from qdht.crypto.hashes import hkdf_sha3_256, sha3_256, shake256
from qdht.errors import ConfigError, CryptoError
from qdht.models.training._shamir import (
    consistent,
    reconstruct,
    share_from_bytes,
    share_to_bytes,
    split,
)
from qdht.models.training._trainer import Params
from qdht.wire import (
    SecAggForward,
    SecAggKeys,
    SecAggMasked,
    SecAggNeighbours,
    SecAggReveal,
    SecAggSetup,
    SecAggShares,
    SecAggSubmitted,
    SecAggUnlinked,
    SecAggUnmask,
)

__all__ = [
    "SecAggCoordinator",
    "SecAggDevice",
    "default_neighbours",
    "graph_neighbours",
    "quantize_for_sum",
]

_MODULUS: Final = 2**32
_U16: Final = struct.Struct(">H")
_LABEL: Final = b"qdht/v1/secagg/"


def default_neighbours(n: int) -> tuple[int, int]:
    """SecAgg+ sizes for a cohort of ``n``: k ~ 4 log2 n neighbours (even, at most 24), t = k/3 + 1.

    Bell et al. size k for the dropout rate and t for the fraction of
    colluding neighbours tolerated; with these a device's secrets stay
    recoverable, with probability about 1 - 10^-4 per device, when 30 % of
    the cohort drops out, and reconstructing one needs t neighbours.  24 keeps
    ``secagg-neighbours`` within the 72 KiB message limit.
    """
    k = min(n - 1, 2 * math.ceil(2 * math.log2(max(n, 2))), 24)
    return k, max(2, math.ceil(k / 3) + 1)


def graph_neighbours(setup: SecAggSetup, index: int) -> tuple[int, ...]:
    """The SecAgg+ graph: a ring in a pseudorandom order, k/2 neighbours each side.

    The order sorts indices by SHA3-256(graph ‖ index); with k = n - 1 the
    graph is complete (the original SecAgg).
    """
    n = len(setup.ids)
    if setup.k >= n - 1:
        return tuple(i for i in range(1, n + 1) if i != index)
    order = sorted(range(1, n + 1), key=lambda i: sha3_256(setup.graph, _U16.pack(i)))
    pos = order.index(index)
    half = setup.k // 2
    around = {order[(pos + d) % n] for d in range(-half, half + 1) if d}
    if setup.k % 2:
        around.add(order[(pos + half + 1) % n])
    return tuple(sorted(around))


def _kdf(ikm: bytes, round_id: bytes, what: bytes, *indices: int) -> bytes:
    info = _LABEL + what + b"".join(_U16.pack(i) for i in indices)
    return hkdf_sha3_256(ikm, salt=round_id, info=info, length=32)


def _prg(seed: bytes, size: int) -> NDArray[np.uint32]:
    return np.frombuffer(shake256(seed, 4 * size), dtype="<u4").astype(np.uint32)


def quantize_for_sum(
    update: Params, setup: SecAggSetup, rng: np.random.Generator
) -> NDArray[np.uint32]:
    """``update`` clipped to ±range and stochastically rounded to 0..2^bits - 1."""
    c = setup.range / 1e6
    levels = (1 << setup.bits) - 1
    scaled = (np.clip(update, -c, c) + c) / (2 * c) * levels
    floor = np.floor(scaled)
    return (floor + (rng.random(update.size) < scaled - floor)).astype(np.uint32)


def _dequantize_sum(total: NDArray[np.uint32], count: int, setup: SecAggSetup) -> Params:
    c = setup.range / 1e6
    levels = (1 << setup.bits) - 1
    return np.asarray(total, dtype=np.float64) * (2 * c / levels) - count * c


class _Stats:
    def __init__(self) -> None:
        self.drops: collections.Counter[str] = collections.Counter()

    def stats(self) -> dict[str, Any]:
        return {"drops": dict(self.drops)}


class SecAggDevice(_Stats):
    """One device's side of a SecAgg+ round."""

    def __init__(
        self,
        setup: SecAggSetup,
        node_id: bytes,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        super().__init__()
        if node_id not in setup.ids:
            raise ConfigError("this node is not in the SecAgg cohort")
        self.setup = setup
        self.index = setup.ids.index(node_id) + 1
        self.neighbours = graph_neighbours(setup, self.index)
        self._random = random_bytes
        self._channel = xwing.XWingPrivateKey(random_bytes(32))
        self._s_seed = random_bytes(32)
        self._s = xwing.XWingPrivateKey(self._s_seed)
        self._b = random_bytes(32)
        self._pair_seeds: dict[int, bytes] = {}
        self._held: dict[int, tuple[bytes, bytes]] = {}  # neighbour -> (b-share, s-share)
        self._in_sum: tuple[int, ...] = ()
        self.stage = "keys"

    def _ad(self, src: int, dst: int) -> bytes:
        return self.setup.round_id + _U16.pack(src) + _U16.pack(dst)

    def keys(self) -> SecAggKeys:
        """Stage 1: advertise the channel and masking public keys."""
        self.stage = "share"
        return SecAggKeys(
            self.setup.round_id,
            self.index,
            self._channel.public_key_bytes(),
            self._s.public_key_bytes(),
        )

    def share(self, msg: SecAggNeighbours) -> SecAggShares | None:
        """Stage 2: shares of both secrets to each neighbour; masking ciphertexts upward."""
        if self.stage != "share" or msg.round_id != self.setup.round_id:
            self.drops["secagg-wrong-stage"] += 1
            return None
        keys = {i: (cpk, spk) for i, cpk, spk in msg.keys}
        if len(keys) != len(msg.keys) or not set(keys) <= set(self.neighbours):
            self.drops["secagg-bad-neighbours"] += 1
            return None
        if len(keys) < self.setup.t:
            self.drops["secagg-too-few-neighbours"] += 1
            self.stage = "aborted"
            return None
        xs = sorted(keys)
        b_shares = split(int.from_bytes(self._b, "big"), self.setup.t, xs, self._random)
        s_shares = split(int.from_bytes(self._s_seed, "big"), self.setup.t, xs, self._random)
        escrow = ChaChaPoly(_kdf(self._s_seed, self.setup.round_id, b"escrow", self.index))
        boxes, masks = [], []
        try:
            for v in xs:
                cpk, spk = keys[v]
                ss, ct = xwing.encapsulate(cpk)
                box = ChaChaPoly(_kdf(ss, self.setup.round_id, b"channel", self.index, v)).encrypt(
                    0,
                    self._ad(self.index, v),
                    share_to_bytes(b_shares[v]) + share_to_bytes(s_shares[v]),
                )
                boxes.append((v, ct, box))
                if v > self.index:
                    ss_m, ct_m = xwing.encapsulate(spk)
                    seed = _kdf(ss_m, self.setup.round_id, b"mask", self.index, v)
                    self._pair_seeds[v] = seed
                    masks.append((v, ct_m, escrow.encrypt(v, self._ad(self.index, v), seed)))
        except CryptoError:
            self.drops["secagg-bad-key"] += 1
            self.stage = "aborted"
            return None
        self.stage = "masked"
        return SecAggShares(self.setup.round_id, self.index, tuple(boxes), tuple(masks))

    def masked_input(
        self, msg: SecAggForward, update: Params, rng: np.random.Generator
    ) -> SecAggMasked | None:
        """Stage 3: open the neighbours' boxes, then send the masked quantised update."""
        if self.stage != "masked" or msg.round_id != self.setup.round_id:
            self.drops["secagg-wrong-stage"] += 1
            return None
        if update.shape != (self.setup.size,):
            raise ConfigError(f"update must have shape ({self.setup.size},)")
        mask_cts = dict(msg.masks)
        in_sum = []
        for v, ct, box in msg.boxes:
            if v not in self.neighbours or v in self._held:
                self.drops["secagg-bad-forward"] += 1
                continue
            try:
                key = _kdf(
                    self._channel.decapsulate(ct), self.setup.round_id, b"channel", v, self.index
                )
                plain = ChaChaPoly(key).decrypt(0, self._ad(v, self.index), box)
                if v < self.index:
                    ss_m = self._s.decapsulate(mask_cts[v])
                    self._pair_seeds[v] = _kdf(ss_m, self.setup.round_id, b"mask", v, self.index)
            except (CryptoError, KeyError):
                self.drops["secagg-bad-box"] += 1
                continue
            self._held[v] = (plain[: len(plain) // 2], plain[len(plain) // 2 :])
            in_sum.append(v)
        if len(in_sum) < self.setup.t:
            self.drops["secagg-too-few-neighbours"] += 1
            self.stage = "aborted"
            return None
        y = quantize_for_sum(update, self.setup, rng)
        y += _prg(_kdf(self._b, self.setup.round_id, b"self", self.index), self.setup.size)
        for v in in_sum:
            pad = _prg(self._pair_seeds[v], self.setup.size)
            y = y + pad if self.index < v else y - pad  # uint32 arithmetic wraps mod 2^32
        self._in_sum = tuple(in_sum)
        self.stage = "reveal"
        return SecAggMasked(self.setup.round_id, self.index, y.astype("<u4").tobytes())

    def reveal(self, msg: SecAggUnmask) -> SecAggReveal | None:
        """Stage 4: b-shares of neighbours in the sum, s-shares of those who dropped; never both."""
        if self.stage != "reveal" or msg.round_id != self.setup.round_id:
            self.drops["secagg-wrong-stage"] += 1
            return None
        alive, dropped = set(msg.alive), set(msg.dropped)
        if alive & dropped or len(alive) < self.setup.t:
            self.drops["secagg-bad-unmask"] += 1
            self.stage = "aborted"
            return None
        self.stage = "done"  # one answer per round: a second request cannot get the other share
        b = tuple((v, self._held[v][0]) for v in self._in_sum if v in alive)
        s = tuple((v, self._held[v][1]) for v in self._in_sum if v in dropped)
        return SecAggReveal(self.setup.round_id, self.index, b, s)


class SecAggCoordinator(_Stats):
    """The coordinator's side: relays, then recovers the sum of the surviving updates."""

    def __init__(self, setup: SecAggSetup) -> None:
        super().__init__()
        self.setup = setup
        n = len(setup.ids)
        self._graph = {i: set(graph_neighbours(setup, i)) for i in range(1, n + 1)}
        self.keys: dict[int, SecAggKeys] = {}
        self.shares: dict[int, SecAggShares] = {}
        self.masked: dict[int, NDArray[np.uint32]] = {}
        #: Unlinked inputs (§9.5): only their running sum mod 2^32 and their
        #: number are kept, never which vector came when.
        self.unlinked_sum = np.zeros(setup.size, dtype=np.uint32)
        self.unlinked_count = 0
        #: Cohort indices whose signed claim says their unlinked input is sent.
        self.claimed: set[int] = set()
        self.reveals: dict[int, SecAggReveal] = {}
        self.stage = "keys"
        self.failure: str | None = None

    # -- receiving --------------------------------------------------------

    def receive(self, msg: object) -> None:
        """Take one device message; anything out of place is dropped and counted."""
        expected: tuple[type, ...] = {
            "keys": (SecAggKeys,),
            "shares": (SecAggShares,),
            "masked": (SecAggMasked, SecAggUnlinked, SecAggSubmitted),
            "reveal": (SecAggReveal,),
        }.get(self.stage, ())
        if type(msg) not in expected:
            self.drops["secagg-wrong-stage"] += 1
            return
        assert isinstance(
            msg,
            SecAggKeys
            | SecAggShares
            | SecAggMasked
            | SecAggUnlinked
            | SecAggSubmitted
            | SecAggReveal,
        )
        if msg.round_id != self.setup.round_id:
            self.drops["wrong-round"] += 1
            return
        if isinstance(msg, SecAggUnlinked):
            self._receive_unlinked(msg)
            return
        if not 1 <= msg.index <= len(self.setup.ids):
            self.drops["secagg-unknown-index"] += 1
            return
        if isinstance(msg, SecAggKeys):
            self._receive_keys(msg)
        elif isinstance(msg, SecAggShares):
            self._receive_shares(msg)
        elif isinstance(msg, SecAggMasked):
            self._receive_masked(msg)
        elif isinstance(msg, SecAggSubmitted):
            self._receive_claim(msg)
        else:
            self._receive_reveal(msg)

    def _receive_keys(self, msg: SecAggKeys) -> None:
        if msg.index in self.keys:
            self.drops["secagg-duplicate"] += 1
            return
        self.keys[msg.index] = msg

    def _receive_shares(self, msg: SecAggShares) -> None:
        u = msg.index
        if u not in self.keys or u in self.shares:
            self.drops["secagg-unexpected"] += 1
            return
        advertised = self._graph[u] & set(self.keys)
        boxes_to = [v for v, _, _ in msg.boxes]
        masks_to = [v for v, _, _ in msg.masks]
        if sorted(boxes_to) != sorted(advertised) or sorted(masks_to) != sorted(
            v for v in advertised if v > u
        ):
            self.drops["secagg-bad-shares"] += 1
            return
        self.shares[u] = msg

    def _receive_masked(self, msg: SecAggMasked) -> None:
        if msg.index not in self.shares or msg.index in self.masked or msg.index in self.claimed:
            self.drops["secagg-unexpected"] += 1
            return
        if len(msg.y) != 4 * self.setup.size:
            self.drops["wrong-shape"] += 1
            return
        self.masked[msg.index] = np.frombuffer(msg.y, dtype="<u4").astype(np.uint32)

    def _receive_unlinked(self, msg: SecAggUnlinked) -> None:
        """An anonymous masked input: added to the sum, its arrival forgotten (§9.5)."""
        if len(msg.y) != 4 * self.setup.size:
            self.drops["wrong-shape"] += 1
            return
        if self.unlinked_count >= len(self.setup.ids):  # more than the cohort can send
            self.drops["secagg-unlinked-excess"] += 1
            return
        self.unlinked_sum += np.frombuffer(msg.y, dtype="<u4").astype(np.uint32)
        self.unlinked_count += 1

    def _receive_claim(self, msg: SecAggSubmitted) -> None:
        u = msg.index
        if u not in self.shares or u in self.masked or u in self.claimed:
            self.drops["secagg-unexpected"] += 1
            return
        self.claimed.add(u)

    def _receive_reveal(self, msg: SecAggReveal) -> None:
        if msg.index not in self._unmask.alive or msg.index in self.reveals:
            self.drops["secagg-unexpected"] += 1
            return
        self.reveals[msg.index] = msg

    # -- stages -------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        self.failure = reason
        self.stage = "failed"

    def close_keys(self) -> dict[int, SecAggNeighbours]:
        """End stage 1: each advertising device's neighbour keys (empty if too few came)."""
        self.stage = "shares"
        if len(self.keys) < self.setup.t + 1:
            self._fail("too-few-devices")
            return {}
        return {
            u: SecAggNeighbours(
                self.setup.round_id,
                tuple(
                    (v, self.keys[v].cpk, self.keys[v].spk)
                    for v in sorted(self._graph[u] & set(self.keys))
                ),
            )
            for u in sorted(self.keys)
        }

    def close_shares(self) -> dict[int, SecAggForward]:
        """End stage 2: what each device that shared receives from its neighbours."""
        self.stage = "masked"
        out = {}
        for u in sorted(self.shares):
            boxes: list[tuple[int, bytes, bytes]] = []
            masks: list[tuple[int, bytes]] = []
            for v in sorted(self._graph[u] & set(self.shares)):
                sent = self.shares[v]
                boxes.extend((v, ct, box) for to, ct, box in sent.boxes if to == u)
                masks.extend((v, ct) for to, ct, _ in sent.masks if to == u)
            out[u] = SecAggForward(self.setup.round_id, tuple(boxes), tuple(masks))
        return out

    def close_masked(self) -> SecAggUnmask | None:
        """End stage 3: who is in the sum and who dropped (None: round failed)."""
        self.stage = "reveal"
        in_sum = set(self.masked) | self.claimed
        alive = tuple(sorted(in_sum))
        dropped = tuple(sorted(set(self.shares) - in_sum))
        if self.unlinked_count != len(self.claimed):  # an injected or a lost unlinked input
            self._fail("unlinked-mismatch")
            return None
        if len(alive) < self.setup.t:
            self._fail("too-few-devices")
            return None
        self._unmask = SecAggUnmask(self.setup.round_id, alive, dropped)
        return self._unmask

    def result(self) -> tuple[Params, int] | None:
        """End stage 4: (sum of the alive devices' updates, their number), or None on failure."""
        if self.stage != "reveal":
            return None
        self.stage = "done"
        alive, dropped = self._unmask.alive, self._unmask.dropped
        b_shares: dict[int, dict[int, int]] = collections.defaultdict(dict)
        s_shares: dict[int, dict[int, int]] = collections.defaultdict(dict)
        for holder, reveal in self.reveals.items():
            for pairs, target, allowed in (
                (reveal.b, b_shares, alive),
                (reveal.s, s_shares, dropped),
            ):
                for of, raw in pairs:
                    value = share_from_bytes(raw)
                    if of not in allowed or of not in self._graph[holder] or value is None:
                        self.drops["secagg-bad-reveal"] += 1
                        continue
                    target[of][holder] = value
        size, round_id = self.setup.size, self.setup.round_id
        total = self.unlinked_sum.copy()
        for y in self.masked.values():
            total += y
        for shares in (*b_shares.values(), *s_shares.values()):
            if not consistent(shares, self.setup.t):
                self._fail("inconsistent-shares")
                return None
        for u in alive:
            if len(b_shares[u]) < self.setup.t:
                self._fail("unrecoverable")
                return None
            b = reconstruct(b_shares[u]).to_bytes(66, "big")[-32:]
            total -= _prg(_kdf(b, round_id, b"self", u), size)
        for u in dropped:
            if len(s_shares[u]) < self.setup.t:
                self._fail("unrecoverable")
                return None
            secret = reconstruct(s_shares[u])
            if secret >= 2**256:
                self._fail("unrecoverable")
                return None
            seed_u = secret.to_bytes(32, "big")
            key = xwing.XWingPrivateKey(seed_u)
            escrow = ChaChaPoly(_kdf(seed_u, round_id, b"escrow", u))
            try:
                for v in sorted(self._graph[u] & set(alive)):
                    if v < u:  # v encapsulated to u's masking key and added the pad
                        ct = next(ct for to, ct, _ in self.shares[v].masks if to == u)
                        seed = _kdf(key.decapsulate(ct), round_id, b"mask", v, u)
                        total -= _prg(seed, size)
                    else:  # u encapsulated and escrowed; v subtracted the pad
                        box = next(e for to, _, e in self.shares[u].masks if to == v)
                        ad = round_id + _U16.pack(u) + _U16.pack(v)
                        total += _prg(escrow.decrypt(v, ad, box), size)
            except CryptoError:
                self._fail("unrecoverable")
                return None
        if int(total.max(initial=0)) > len(alive) * ((1 << self.setup.bits) - 1):
            # each input is at most 2^bits - 1 per value: a replaced or corrupted input
            self._fail("bad-sum")
            return None
        return _dequantize_sum(total, len(alive), self.setup), len(alive)
