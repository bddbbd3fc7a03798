"""In-memory drivers of the training cores, for the demo, the benchmark and the tests.

Every message goes through :func:`qdht.wire.encode` and :func:`qdht.wire.decode`,
so the byte counts are real and the wire classes are exercised; nothing here
sleeps or touches a socket.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

import attrs
import numpy as np
from numpy.typing import NDArray

from qdht.crypto.hashes import sha3_256
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.models.training._data import Dataset
from qdht.models.training._privacy import PrivacyBudget
from qdht.models.training._round import (
    RoundCoordinator,
    RoundDevice,
    RoundParams,
    RoundResult,
    is_sampled,
)
from qdht.models.training._secagg import SecAggCoordinator, SecAggDevice, default_neighbours
from qdht.models.training._trainer import Params, Trainer
from qdht.wire import SecAggSetup, WireMessage, decode, encode

__all__ = [
    "FederatedRun",
    "SecAggRun",
    "run_federated",
    "simulate_secagg",
]

M = TypeVar("M", bound=WireMessage)


@attrs.frozen
class SecAggRun:
    """What one simulated SecAgg+ round produced, and what it cost."""

    result: tuple[Params, int] | None
    coordinator: SecAggCoordinator
    devices: dict[int, SecAggDevice]
    sent: dict[int, int]  # bytes each device sent
    received: dict[int, int]  # bytes each device received
    device_seconds: dict[int, float]  # CPU time of each device's steps
    coordinator_seconds: float
    #: Every message the coordinator saw, in order: what a curious coordinator knows.
    transcript: list[WireMessage]


def simulate_secagg(
    updates: Sequence[Params],
    *,
    drop: Mapping[int, str] | None = None,
    k: int | None = None,
    t: int | None = None,
    bits: int = 16,
    clip_range: float = 8.0,
    seed: int = 0,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> SecAggRun:
    """Run one SecAgg+ round over ``updates``; ``drop[index]`` names the stage a device skips.

    A stage is ``"keys"``, ``"share"``, ``"masked"`` or ``"reveal"``; the device
    goes silent from that stage on.
    """
    n = len(updates)
    default_k, default_t = default_neighbours(n)
    ids = tuple(
        sha3_256(b"qdht/sim/node", seed.to_bytes(4, "big"), i.to_bytes(4, "big")) for i in range(n)
    )
    setup = SecAggSetup(
        sha3_256(b"qdht/sim/round", seed.to_bytes(4, "big")),
        ids,
        k if k is not None else default_k,
        t if t is not None else default_t,
        bits,
        round(clip_range * 1e6),
        int(updates[0].shape[0]),
        sha3_256(b"qdht/sim/graph", seed.to_bytes(4, "big")),
    )
    drop = dict(drop or {})
    stages = ("keys", "share", "masked", "reveal")
    rng = np.random.default_rng(seed)
    coordinator = SecAggCoordinator(setup)
    devices = {i + 1: SecAggDevice(setup, ids[i], random_bytes=random_bytes) for i in range(n)}
    sent: dict[int, int] = collections.Counter()
    received: dict[int, int] = collections.Counter()
    transcript: list[WireMessage] = []
    cpu: dict[int, float] = collections.defaultdict(float)

    def timed(index: int, step: Callable[..., Any], *args: Any) -> Any:
        start = time.process_time()
        out = step(*args)
        cpu[index] += time.process_time() - start
        return out

    def alive(index: int, stage: str) -> bool:
        gone = drop.get(index)
        return gone is None or stages.index(stage) < stages.index(gone)

    def up(index: int, msg: WireMessage | None) -> None:
        if msg is None:
            return
        data = encode(msg)
        sent[index] += len(data)
        parsed = decode(data)
        transcript.append(parsed)
        timed(0, coordinator.receive, parsed)

    def down(index: int, msg: M) -> M:
        data = encode(msg)
        received[index] += len(data)
        parsed: Any = decode(data, expect=(type(msg),))
        return parsed  # type: ignore[no-any-return]

    for i, device in devices.items():
        received[i] += len(encode(setup))
        if alive(i, "keys"):
            up(i, timed(i, device.keys))
    for i, msg in (timed(0, coordinator.close_keys) or {}).items():
        if alive(i, "share"):
            up(i, timed(i, devices[i].share, down(i, msg)))
    for i, fwd in (timed(0, coordinator.close_shares) or {}).items():
        if alive(i, "masked"):
            up(i, timed(i, devices[i].masked_input, down(i, fwd), updates[i - 1], rng))
    unmask = timed(0, coordinator.close_masked)
    if unmask is not None:
        for i in unmask.alive:
            if alive(i, "reveal"):
                up(i, timed(i, devices[i].reveal, down(i, unmask)))
    result = timed(0, coordinator.result)
    coordinator_cpu = cpu.pop(0, 0.0)  # index 0 is no device: the coordinator's account
    return SecAggRun(
        result,
        coordinator,
        devices,
        dict(sent),
        dict(received),
        dict(cpu),
        coordinator_cpu,
        transcript,
    )


# --------------------------------------------------------------- federated runs


class _Attacker(RoundDevice):
    """A device that sends ``scale`` times its honest update (fl-notes §3: -10x)."""

    scale = -10.0

    def _encode(self, rid: bytes, delta: Params, compression: str) -> Any:
        return super()._encode(rid, self.scale * delta, compression)


@attrs.frozen
class FederatedRun:
    """Per-round outcome of a simulated federation."""

    accuracy: list[float]
    epsilon: list[float]
    participants: list[int]
    model: Params
    stats: dict[str, Any]


def run_federated(
    data: Dataset,
    trainer: Trainer,
    parts: Sequence[NDArray[np.int64]],
    params: RoundParams,
    rounds: int,
    *,
    seed: int = 0,
    attackers: int = 0,
    error_feedback: bool = True,
    epsilon_budget: float = float("inf"),
    delta: float = 1e-5,
    dropout: float = 0.0,
    progress: Callable[[int, float, float], None] | None = None,
) -> FederatedRun:
    """``rounds`` rounds of the real coordinator and device cores over ``parts`` of ``data``.

    Devices ``0 .. attackers - 1`` send -10 times their update.  The driver
    skips devices that a round does not sample (they would only verify the
    announcement and stop), which keeps populations of 1000+ devices cheap.
    In SecAgg rounds a ``dropout`` share of the cohort goes silent, each at a
    random SecAgg stage.
    """
    tag = seed.to_bytes(4, "big")
    key = MLDSAPrivateKey.from_seed(sha3_256(b"qdht/sim/coordinator-key", tag))
    coordinator_id = sha3_256(b"qdht/sim/coordinator", tag)
    devices = [
        (_Attacker if i < attackers else RoundDevice)(
            node_id=sha3_256(b"qdht/sim/device", tag, i.to_bytes(4, "big")),
            coordinator_id=coordinator_id,
            coordinator_key=key.public_key_bytes(),
            trainer=trainer,
            x=data.x_train[part],
            y=data.y_train[part],
            rng=np.random.default_rng([seed, i]),
            error_feedback=error_feedback,
        )
        for i, part in enumerate(parts)
    ]
    budget = PrivacyBudget(epsilon_budget, delta) if params.dp else None
    coordinator = RoundCoordinator(
        signing_key=key,
        node_id=coordinator_id,
        task=sha3_256(b"qdht/sim/task", tag),
        model=trainer.init_params(np.random.default_rng(seed)),
        params=params,
        population=len(devices),
        budget=budget,
        rng=np.random.default_rng([seed, 2**20]),
        enrolled=[d.node_id for d in devices] if params.secagg else (),
    )
    by_id = {d.node_id: d for d in devices}
    drop_rng = np.random.default_rng([seed, 2**21])
    accuracy, epsilon, participants = [], [], []
    now = 0.0
    for number in range(rounds):
        announce = coordinator.start_round(now, wall_clock=1_800_000_000 + int(now))
        wire = encode(announce)
        rid = sha3_256(
            b"qdht/v1/fl-round", coordinator_id, announce.task, number.to_bytes(4, "big")
        )
        for device in devices:
            if not is_sampled(rid, device.node_id, announce.q):
                continue
            accepted = device.receive_announcement(wire, 1_800_000_000 + now)
            if accepted is None:
                continue
            if params.secagg:
                device.prepare_secagg(accepted, coordinator.model)
            else:
                coordinator.receive_update(device.train(accepted, coordinator.model), now + 1)
        if params.secagg:
            result = _secagg_round(coordinator, by_id, dropout, drop_rng)
        else:
            result = coordinator.handle_timer(now + params.duration)
        assert result is not None
        accuracy.append(trainer.accuracy(coordinator.model, data.x_test, data.y_test))
        epsilon.append(result.epsilon)
        participants.append(result.participants)
        if progress is not None:
            progress(number, accuracy[-1], epsilon[-1])
        now += params.duration + 1
    return FederatedRun(accuracy, epsilon, participants, coordinator.model, coordinator.stats())


_SILENT_FROM: Final = ("secagg_neighbours", "secagg_forward", "secagg_unmask")


def _secagg_round(
    coordinator: RoundCoordinator,
    devices: Mapping[bytes, RoundDevice],
    dropout: float,
    rng: np.random.Generator,
) -> RoundResult | None:
    """Relay a SecAgg round's messages stage by stage until the coordinator's deadline."""
    silent: dict[bytes, int] = {}  # node -> first stage (index in _SILENT_FROM) it ignores
    while True:
        for node, data in coordinator.messages_to_send():
            kind = decode(data).TYPE
            if kind == "secagg_setup" and rng.random() < dropout:
                silent[node] = int(rng.integers(len(_SILENT_FROM)))
            if kind in _SILENT_FROM and _SILENT_FROM.index(kind) >= silent.get(node, 99):
                continue
            reply = devices[node].receive_secagg(data)
            if reply is not None:
                coordinator.receive_secagg(reply, 0.0)
        timer = coordinator.get_timer()
        if timer is None:
            return None
        result = coordinator.handle_timer(timer)
        if result is not None:
            return result
