"""Training rounds: coordinator and device state machines, sans-IO (14-training.md §2-§4).

A round is announced by its coordinator in a signed ``round_announce``;
every device decides *by itself* whether it takes part, with probability q,
from a hash of the round id and its node id (Poisson sampling, which the
privacy accounting assumes; anyone can check a device's claim).  The round
id is derived from the coordinator, the task and the round number, so the
coordinator cannot grind it to choose the cohort.  Sampled devices train
locally and send a ``round_update``; at the deadline the coordinator
aggregates what arrived, or abandons the round if fewer than the minimum
came, so a round never hangs and a missing device never blocks it.

Remote input never raises: it is dropped and counted under a reason in
``stats()["drops"]``, and never touches the global model.  Local misuse
(a round the privacy budget cannot pay for, a model of the wrong size)
raises.
"""

from __future__ import annotations

import collections
import math
import os
import struct
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs
import numpy as np
from numpy.typing import NDArray

from qdht.crypto import mldsa
from qdht.crypto.hashes import sha3_256
from qdht.errors import ConfigError, DecodeError, InvalidSignatureError
from qdht.models.training._aggregate import Aggregator, aggregator_by_name
from qdht.models.training._compress import QuantizedUpdate, SparseUpdate, TopK, quantize
from qdht.models.training._privacy import (
    PrivacyBudget,
    clip_update,
    distributed_noise_std,
    dp_fedavg,
    gaussian_noise,
)
from qdht.models.training._secagg import SecAggCoordinator, SecAggDevice, default_neighbours
from qdht.models.training._trainer import Params, Trainer, TrainingConfig, check_params
from qdht.wire import (
    MAX_UPDATE_VALUES,
    ROUND_ANNOUNCE_CONTEXT,
    RoundAnnounce,
    RoundUpdate,
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
    decode,
    encode,
)

__all__ = [
    "RoundCoordinator",
    "RoundDevice",
    "RoundParams",
    "RoundResult",
    "is_sampled",
    "model_hash",
    "round_id",
]

_Q_ONE: Final = 2**32
#: Share of coordinates a ``topk`` update keeps (14-training.md §6.2).
TOPK_FRACTION: Final = 0.1


def round_id(coordinator: bytes, task: bytes, number: int) -> bytes:
    """SHA3-256("qdht/v1/fl-round" ‖ coordinator ‖ task ‖ u32 number) (§2.2)."""
    return sha3_256(b"qdht/v1/fl-round", coordinator, task, struct.pack(">I", number))


def is_sampled(rid: bytes, node_id: bytes, q: int) -> bool:
    """Whether ``node_id`` takes part in round ``rid`` at probability q/2^32 (§2.3)."""
    draw = int.from_bytes(sha3_256(b"qdht/v1/fl-sample", rid, node_id)[:4], "big")
    return draw < q


def model_hash(params: Params) -> bytes:
    """SHA3-256 of the model's float32 little-endian parameters (§2.1, ``model``)."""
    return sha3_256(np.asarray(params, dtype="<f4").tobytes())


@attrs.frozen
class RoundParams:
    """What the coordinator announces each round, in natural units."""

    epochs: int = 5
    lr: float = 0.1
    batch: int = 10
    clip: float = 0.0  # 0: no clipping, no DP
    noise: float = 0.0  # noise multiplier z
    q: float = 1.0
    duration: float = 60.0  # seconds from announcement to deadline
    min_participants: int = 1
    aggregator: str = "fedavg"
    compression: str = "none"
    secagg: bool = False
    server_lr: float = 1.0
    max_weight: int = 10_000
    #: Byzantine updates tolerated: trimmed mean's b and Krum's f.
    byzantine: int = 1
    #: SecAgg+ quantisation: values clipped to +-secagg_range, 2^secagg_bits levels.
    secagg_range: float = 4.0
    secagg_bits: int = 16

    def __attrs_post_init__(self) -> None:
        TrainingConfig(self.epochs, self.lr, self.batch)
        if not 0 < self.q <= 1 or self.clip < 0 or self.noise < 0:
            raise ConfigError("need 0 < q <= 1, clip >= 0 and noise >= 0")
        if self.noise > 0 and self.clip == 0:
            raise ConfigError("DP noise needs a clipping bound (clip > 0)")
        if self.duration <= 0 or self.min_participants < 1:
            raise ConfigError("duration must be positive and min_participants at least 1")
        aggregator_by_name(self.aggregator)
        if self.compression not in ("none", "q8", "topk"):
            raise ConfigError(f"unknown compression {self.compression!r}")
        if self.secagg and (self.aggregator != "fedavg" or self.compression != "none"):
            raise ConfigError("SecAgg sums updates: it needs aggregator fedavg, compression none")

    @property
    def clip_micro(self) -> int:
        """S as announced (micro-units); the coordinator clips and accounts with this."""
        return round(self.clip * 1e6)

    @property
    def noise_milli(self) -> int:
        """z as announced (milli-units); devices and the accountant use exactly this."""
        return round(self.noise * 1e3)

    @property
    def q32(self) -> int:
        return max(1, min(_Q_ONE, round(self.q * _Q_ONE)))

    @property
    def dp(self) -> bool:
        """DP-FedAvg (clip, fixed denominator, noise z; z = 0 gives epsilon = inf)."""
        return self.clip > 0


@attrs.frozen
class RoundResult:
    """How a round ended: the new model (or the old one, if abandoned)."""

    number: int
    model: Params
    participants: int
    abandoned: bool
    reason: str = ""
    epsilon: float = 0.0


def _decode_update(update: RoundUpdate) -> Params:
    if update.enc == "none":
        values = np.frombuffer(update.data, dtype="<f4")
        return values.astype(np.float64)
    if update.enc == "q8":
        assert update.lo is not None
        assert update.hi is not None
        lo = float(np.frombuffer(update.lo, dtype="<f4")[0])
        hi = float(np.frombuffer(update.hi, dtype="<f4")[0])
        return QuantizedUpdate(update.size, lo, hi, update.data).decode()
    assert update.idx is not None
    idx = np.frombuffer(update.idx, dtype="<u4")
    if idx.size and (int(idx.max()) >= update.size or np.any(np.diff(idx.astype(np.int64)) <= 0)):
        raise ConfigError("top-k positions must increase and stay below size")
    return SparseUpdate(update.size, update.idx, update.data).decode()


class RoundCoordinator:
    """The master node's side of training rounds, one round at a time."""

    def __init__(
        self,
        *,
        signing_key: mldsa.MLDSAPrivateKey,
        node_id: bytes,
        task: bytes,
        model: Params,
        params: RoundParams,
        population: int,
        budget: PrivacyBudget | None = None,
        rng: np.random.Generator | None = None,
        enrolled: Sequence[bytes] = (),
    ) -> None:
        if params.secagg and len(enrolled) != population:
            raise ConfigError("SecAgg rounds need the enrolled devices' node ids (population)")
        if population < 1:
            raise ConfigError("population (K, the number of enrolled devices) must be positive")
        if params.dp and budget is None:
            raise ConfigError("a DP-FedAvg round (clip > 0) needs a PrivacyBudget")
        self.key = signing_key
        self.node_id = node_id
        self.task = task
        size = model.shape[0] if getattr(model, "ndim", 0) == 1 else -1
        self.model = check_params(model, size, "model")
        if not 1 <= self.model.size <= MAX_UPDATE_VALUES:
            raise ConfigError(f"models above {MAX_UPDATE_VALUES} values need chunked updates")
        self.params = params
        self.population = population
        self.budget = budget
        self.rng = rng or np.random.default_rng()
        robust = {"trimmed-mean": {"b": params.byzantine}, "krum": {"f": params.byzantine}}
        self.aggregator: Aggregator = aggregator_by_name(
            params.aggregator, **robust.get(params.aggregator, {})
        )
        self.number = -1
        self.announcement: RoundAnnounce | None = None
        self._deadline: float | None = None
        self._updates: dict[bytes, tuple[Params, int]] = {}
        self.drops: collections.Counter[str] = collections.Counter()
        self.history: list[RoundResult] = []
        self.enrolled = tuple(enrolled)
        self.secagg: SecAggCoordinator | None = None
        self._stages: list[float] = []
        self._outbox: list[tuple[bytes, bytes]] = []

    def stats(self) -> dict[str, Any]:
        return {
            "rounds": len(self.history),
            "abandoned": sum(r.abandoned for r in self.history),
            "abandoned_reasons": dict(
                collections.Counter(r.reason for r in self.history if r.abandoned)
            ),
            "epsilon": self.budget.spent if self.budget else 0.0,
            "drops": dict(self.drops)
            | (self.secagg.stats()["drops"] if self.secagg is not None else {}),
        }

    def messages_to_send(self) -> list[tuple[bytes, bytes]]:
        """(node id, encoded message) pairs to deliver now (SecAgg rounds)."""
        out, self._outbox = self._outbox, []
        return out

    def start_round(self, now: float, *, wall_clock: int) -> RoundAnnounce:
        """Announce the next round; PrivacyBudgetExceededError if it cannot be paid for.

        ``wall_clock`` is the Unix time the deadline is written against;
        ``now`` the monotonic time the core's timer uses.
        """
        if self._deadline is not None:
            raise ConfigError("a round is still open: call handle_timer at its deadline")
        p = self.params
        if p.dp:
            assert self.budget is not None
            self.budget.check(p.q32 / _Q_ONE, p.noise_milli / 1e3)  # fails closed: raises
        self.number += 1
        unsigned = RoundAnnounce(
            self.node_id,
            self.task,
            self.number,
            model_hash(self.model),
            self.model.size,
            p.epochs,
            round(p.lr * 1e6),
            p.batch,
            p.clip_micro,
            p.noise_milli,
            p.q32,
            wall_clock + math.ceil(p.duration),
            p.min_participants,
            p.aggregator,
            p.compression,
            p.secagg,
        )
        sig = self.key.sign(unsigned.signed_bytes(), ROUND_ANNOUNCE_CONTEXT)
        self.announcement = attrs.evolve(unsigned, sig=sig)
        self._deadline = now + p.duration
        self._updates = {}
        self.secagg = None
        if p.secagg:
            self._start_secagg(now)
        return self.announcement

    def _start_secagg(self, now: float) -> None:
        p = self.params
        rid = round_id(self.node_id, self.task, self.number)
        cohort = tuple(n for n in self.enrolled if is_sampled(rid, n, p.q32))
        self._stages = [now + p.duration * i / 4 for i in (1, 2, 3)]
        if len(cohort) < 3:
            return  # abandoned at the deadline: too few to aggregate securely
        k, t = default_neighbours(len(cohort))
        setup = SecAggSetup(
            rid,
            cohort,
            k,
            t,
            p.secagg_bits,
            round(p.secagg_range * 1e6),
            self.model.size,
            sha3_256(b"qdht/v1/fl-graph", rid),
        )
        self.secagg = SecAggCoordinator(setup)
        wire = encode(setup)
        self._outbox.extend((node, wire) for node in cohort)

    def receive_secagg(self, data: bytes, now: float) -> None:
        """Take one device's SecAgg message (keys, shares, masked input, reveal)."""
        try:
            msg = decode(
                data,
                expect=(
                    SecAggKeys,
                    SecAggShares,
                    SecAggMasked,
                    SecAggUnlinked,
                    SecAggSubmitted,
                    SecAggReveal,
                ),
            )
        except DecodeError:
            self.drops["decode-error"] += 1
            return
        if self.secagg is None or self._deadline is None:
            self.drops["no-open-round"] += 1
            return
        self.secagg.receive(msg)

    def _advance_secagg(self, now: float) -> None:
        """Close the SecAgg stages whose time has come (a quarter of the round each)."""
        agg = self.secagg
        while self._stages and now >= self._stages[0]:
            self._stages.pop(0)
            if agg is None or agg.stage == "failed":
                continue
            ids = agg.setup.ids
            if agg.stage == "keys":
                batch: dict[int, Any] = dict(agg.close_keys())
            elif agg.stage == "shares":
                batch = dict(agg.close_shares())
            else:
                unmask = agg.close_masked()
                batch = dict.fromkeys(unmask.alive, unmask) if unmask is not None else {}
            self._outbox.extend((ids[i - 1], encode(m)) for i, m in batch.items())

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must be called next (a SecAgg stage or the deadline)."""
        return self._stages[0] if self._stages else self._deadline

    def receive_update(self, data: bytes, now: float) -> None:
        """Take one device's encoded update; bad input is dropped with a reason."""
        try:
            msg = decode(data, expect=(RoundUpdate,))
        except DecodeError:
            self.drops["decode-error"] += 1
            return
        assert isinstance(msg, RoundUpdate)
        reason = self._check(msg, now)
        if reason is not None:
            self.drops[reason] += 1
            return
        update = self._value(msg)
        if isinstance(update, str):
            self.drops[update] += 1
            return
        self._updates[msg.node] = (update, min(msg.n, self.params.max_weight))

    def _check(self, msg: RoundUpdate, now: float) -> str | None:
        a = self.announcement
        if a is None or self._deadline is None:
            return "no-open-round"
        if msg.round_id != round_id(self.node_id, self.task, self.number):
            return "wrong-round"
        if now > self._deadline:
            return "late"
        if not is_sampled(msg.round_id, msg.node, a.q):
            return "not-sampled"
        if msg.node in self._updates:
            return "duplicate"
        if msg.size != self.model.size:
            return "wrong-shape"
        return None

    def _value(self, msg: RoundUpdate) -> Params | str:
        try:
            update = _decode_update(msg)
        except ConfigError:
            return "bad-sparse-update"
        if not np.all(np.isfinite(update)):
            return "non-finite"
        clip = self.params.clip_micro / 1e6
        if clip > 0:
            slack = 1e-3 * clip
            if msg.enc == "q8":  # quantising a clipped update may lengthen it by a step per value
                slack += math.sqrt(msg.size) * float(np.ptp(update) or 0.0) / 255
            if float(np.linalg.norm(update)) > clip + slack:
                return "unclipped"
            update, _ = clip_update(update, clip)  # exact bound for the DP sensitivity
        return update

    def handle_timer(self, now: float) -> RoundResult | None:
        """At the deadline: aggregate and publish, or abandon below the minimum."""
        self._advance_secagg(now)
        if self._deadline is None or now < self._deadline:
            return None
        self._deadline = None
        p = self.params
        if p.secagg:
            return self._finish_secagg()
        updates = list(self._updates.values())
        if len(updates) < p.min_participants:
            return self._abandon(len(updates), "too-few-participants")
        vectors = [u for u, _ in updates]
        if p.dp:
            assert self.budget is not None
            step = dp_fedavg(
                vectors,
                expected_clients=p.q32 / _Q_ONE * self.population,
                clip=p.clip_micro / 1e6,
                noise_multiplier=p.noise_milli / 1e3,
                rng=self.rng,
            )
            epsilon = self.budget.spend(p.q32 / _Q_ONE, p.noise_milli / 1e3)
        else:
            step = self.aggregator.aggregate(vectors, [n for _, n in updates])
            epsilon = self.budget.spent if self.budget else 0.0
        return self._publish(step, len(updates), epsilon)

    def _publish(self, step: Params, participants: int, epsilon: float) -> RoundResult:
        self.model = self.model + self.params.server_lr * step
        result = RoundResult(self.number, self.model, participants, False, "", epsilon)
        self.history.append(result)
        return result

    def _abandon(self, participants: int, reason: str) -> RoundResult:
        epsilon = self.budget.spent if self.budget else 0.0
        result = RoundResult(self.number, self.model, participants, True, reason, epsilon)
        self.history.append(result)
        return result

    def _finish_secagg(self) -> RoundResult:
        """The sum from SecAgg: DP-FedAvg over q*K (noise came from the devices) or the mean."""
        p = self.params
        agg = self.secagg
        outcome = agg.result() if agg is not None else None
        if outcome is None:
            reason = (agg.failure if agg is not None else None) or "too-few-devices"
            return self._abandon(0, f"secagg-{reason}")
        total, count = outcome
        if count < p.min_participants:
            return self._abandon(count, "too-few-participants")
        if p.dp:
            assert self.budget is not None
            step = total / (p.q32 / _Q_ONE * self.population)
            epsilon = self.budget.spend(p.q32 / _Q_ONE, p.noise_milli / 1e3)
            return self._publish(step, count, epsilon)
        return self._publish(total / count, count, self.budget.spent if self.budget else 0.0)


class RoundDevice:
    """A device's side: check an announcement, decide to join, train, answer."""

    def __init__(
        self,
        *,
        node_id: bytes,
        coordinator_id: bytes,
        coordinator_key: bytes,
        trainer: Trainer,
        x: NDArray[np.floating],
        y: NDArray[np.integer],
        rng: np.random.Generator | None = None,
        error_feedback: bool = True,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.random_bytes = random_bytes
        self.node_id = node_id
        self.coordinator_id = coordinator_id
        self.error_feedback = error_feedback
        self.coordinator_key = coordinator_key
        self.trainer = trainer
        self.x, self.y = x, y
        trainer.validate(trainer.init_params(np.random.default_rng(0)), x, y)
        self.rng = rng or np.random.default_rng()
        self.last_round = -1
        self.topk: TopK | None = None
        self.drops: collections.Counter[str] = collections.Counter()
        self._secagg: SecAggDevice | None = None
        self._pending: tuple[RoundAnnounce, Params] | None = None

    def stats(self) -> dict[str, Any]:
        return {"last_round": self.last_round, "drops": dict(self.drops)}

    def receive_announcement(self, data: bytes, wall_clock: float) -> RoundAnnounce | None:
        """The announcement if it is genuine, current and this device is sampled; else None."""
        try:
            msg = decode(data, expect=(RoundAnnounce,))
        except DecodeError:
            self.drops["decode-error"] += 1
            return None
        assert isinstance(msg, RoundAnnounce)
        if msg.coordinator != self.coordinator_id:
            self.drops["unknown-coordinator"] += 1
            return None
        try:
            mldsa.verify(self.coordinator_key, msg.signed_bytes(), msg.sig, ROUND_ANNOUNCE_CONTEXT)
        except InvalidSignatureError:
            self.drops["bad-signature"] += 1
            return None
        if msg.round <= self.last_round:
            self.drops["replayed"] += 1
            return None
        if wall_clock >= msg.deadline:
            self.drops["expired"] += 1
            return None
        if msg.size != self.trainer.num_params:
            self.drops["wrong-model"] += 1
            return None
        self.last_round = msg.round
        if not is_sampled(round_id(msg.coordinator, msg.task, msg.round), self.node_id, msg.q):
            return None
        return msg

    def train(self, announce: RoundAnnounce, model: Params) -> bytes:
        """Train on local data from ``model`` and return the encoded ``round_update``."""
        if model_hash(model) != announce.model:
            raise ConfigError("the model does not match the announcement's hash")
        config = TrainingConfig(announce.epochs, announce.lr / 1e6, announce.batch)
        trained = self.trainer.fit(model, self.x, self.y, config, self.rng)
        delta = trained - model
        if announce.clip:
            delta, _ = clip_update(delta, announce.clip / 1e6)
        rid = round_id(announce.coordinator, announce.task, announce.round)
        return encode(self._encode(rid, delta, announce.compression))

    def prepare_secagg(self, announce: RoundAnnounce, model: Params) -> None:
        """Train for a SecAgg round; the update waits for the coordinator's SecAgg setup.

        With DP the device adds its share of the noise, N(0, (zS)^2/min)
        (14-training.md §5.6): the coordinator only ever sees the sum.
        """
        if model_hash(model) != announce.model:
            raise ConfigError("the model does not match the announcement's hash")
        config = TrainingConfig(announce.epochs, announce.lr / 1e6, announce.batch)
        delta = self.trainer.fit(model, self.x, self.y, config, self.rng) - model
        if announce.clip:
            clip = announce.clip / 1e6
            delta, _ = clip_update(delta, clip)
            std = distributed_noise_std(announce.noise / 1e3, clip, announce.min_participants)
            delta = delta + gaussian_noise(delta.size, std, self.rng)
        self._pending = (announce, delta)
        self._secagg = None

    def receive_secagg(self, data: bytes) -> bytes | None:
        """Answer one SecAgg message from the coordinator (None: nothing to send)."""
        try:
            msg = decode(data, expect=(SecAggSetup, SecAggNeighbours, SecAggForward, SecAggUnmask))
        except DecodeError:
            self.drops["decode-error"] += 1
            return None
        if self._pending is None:
            self.drops["no-open-round"] += 1
            return None
        announce, update = self._pending
        if isinstance(msg, SecAggSetup):
            rid = round_id(announce.coordinator, announce.task, announce.round)
            if msg.round_id != rid or self.node_id not in msg.ids or msg.size != update.size:
                self.drops["secagg-bad-setup"] += 1
                return None
            self._secagg = SecAggDevice(msg, self.node_id, random_bytes=self.random_bytes)
            return encode(self._secagg.keys())
        if self._secagg is None:
            self.drops["secagg-wrong-stage"] += 1
            return None
        if isinstance(msg, SecAggNeighbours):
            out: Any = self._secagg.share(msg)
        elif isinstance(msg, SecAggForward):
            out = self._secagg.masked_input(msg, update, self.rng)
        else:
            assert isinstance(msg, SecAggUnmask)
            out = self._secagg.reveal(msg)
        for reason, count in self._secagg.stats()["drops"].items():
            self.drops[reason] = count
        return encode(out) if out is not None else None

    def _encode(self, rid: bytes, delta: Params, compression: str) -> RoundUpdate:
        n, size = len(self.y), delta.size
        if compression == "q8":
            q = quantize(delta, self.rng)
            lo, hi = np.float32(q.lo).tobytes(), np.float32(q.hi).tobytes()
            return RoundUpdate(rid, self.node_id, n, size, "q8", q.codes, lo=lo, hi=hi)
        if compression == "topk":
            if self.topk is None:
                self.topk = TopK(TOPK_FRACTION, error_feedback=self.error_feedback)
            sparse = self.topk.compress(delta)
            return RoundUpdate(
                rid, self.node_id, n, size, "topk", sparse.values, idx=sparse.indices
            )
        return RoundUpdate(rid, self.node_id, n, size, "none", delta.astype("<f4").tobytes())
