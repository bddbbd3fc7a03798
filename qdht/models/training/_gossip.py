"""Gossip learning: training without a coordinator, sans-IO (14-training.md §8).

Hegedűs, Danner and Jelasity (DAIS 2019; JPDC 2021): every node keeps a
model and its age (how many updates it has seen).  Once per period a node
sends its model to one neighbour chosen at random (in qdht: a DHT
neighbour).  A node that receives a model merges it with its own, weighting
each by its age, trains the merged model for one pass over its local data,
and keeps it, with age max(a, b) + 1.  No node ever sees anyone's data or
gradient; models spread and improve like an epidemic.

Received models are refused (and counted) when they are for another task,
of the wrong size, or not finite; a refused model never touches the local one.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from qdht.errors import ConfigError, DecodeError
from qdht.models.training._trainer import Params, Trainer, TrainingConfig
from qdht.wire import GossipModel, decode, encode

__all__ = ["GossipLearner"]

MAX_AGE: Final = 2**32 - 1


class GossipLearner:
    """One node of gossip learning over a fixed set of neighbours."""

    def __init__(
        self,
        *,
        task: bytes,
        trainer: Trainer,
        x: NDArray[np.floating],
        y: NDArray[np.integer],
        neighbours: Sequence[bytes],
        period: float,
        now: float,
        config: TrainingConfig | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        if not neighbours:
            raise ConfigError("gossip learning needs at least one neighbour")
        if period <= 0:
            raise ConfigError("period must be positive")
        self.task = task
        self.trainer = trainer
        self.x, self.y = x, y
        self.neighbours = list(neighbours)
        self.period = period
        self.config = config or TrainingConfig(epochs=1)
        self.rng = rng or np.random.default_rng()
        self.model: Params = trainer.validate(trainer.init_params(self.rng), x, y)
        self.age = 0
        # Start at a random point in the first period, so nodes do not send in lockstep.
        self._next = now + float(self.rng.random()) * period
        self.drops: collections.Counter[str] = collections.Counter()
        self.merged = 0

    def stats(self) -> dict[str, Any]:
        return {"age": self.age, "merged": self.merged, "drops": dict(self.drops)}

    def get_timer(self) -> float:
        """When :meth:`handle_timer` must be called next."""
        return self._next

    def handle_timer(self, now: float) -> list[tuple[bytes, bytes]]:
        """(neighbour, encoded ``gossip_model``) to send now, if the period is up."""
        if now < self._next:
            return []
        self._next = now + self.period
        peer = self.neighbours[int(self.rng.integers(len(self.neighbours)))]
        message = GossipModel(self.task, self.age, self.model.astype("<f4").tobytes())
        return [(peer, encode(message))]

    def receive(self, data: bytes, now: float) -> None:
        """Merge a neighbour's model into ours and train on it (bad input is dropped)."""
        try:
            msg = decode(data, expect=(GossipModel,))
        except DecodeError:
            self.drops["decode-error"] += 1
            return
        assert isinstance(msg, GossipModel)
        if msg.task != self.task:
            self.drops["wrong-task"] += 1
            return
        theirs = np.frombuffer(msg.params, dtype="<f4").astype(np.float64)
        if theirs.size != self.model.size:
            self.drops["wrong-shape"] += 1
            return
        if not np.all(np.isfinite(theirs)):
            self.drops["non-finite"] += 1
            return
        total = self.age + msg.age
        merged = (
            (self.age * self.model + msg.age * theirs) / total
            if total
            else (self.model + theirs) / 2
        )
        self.model = self.trainer.fit(merged, self.x, self.y, self.config, self.rng)
        self.age = min(max(self.age, msg.age) + 1, MAX_AGE)
        self.merged += 1
