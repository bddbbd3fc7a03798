"""Mix keys per epoch, each with its own replay filter (10-mixnet.md §6, §8.1).

Epoch ``e`` covers Unix time ``[e·period, (e+1)·period)``.  A mix holds the
keys of the previous, current and next epoch: the next is published ahead
so that clients with a slightly fast clock can build packets for it, the
previous so that packets in flight across the boundary still unwrap.  A key
older than that is erased together with its replay filter: a replay of a
packet for an erased key cannot verify under any key the mix still holds.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

from qdht.crypto import xwing
from qdht.mixnet._replay import ReplayFilter

__all__ = ["EpochKey", "MixKeyring", "epoch_of"]


def epoch_of(now: float, period: float) -> int:
    """The epoch that contains Unix time ``now``."""
    return math.floor(now / period)


class EpochKey:
    """One epoch's mix key and the replay tags it has accepted."""

    __slots__ = ("epoch", "key", "replays")

    def __init__(self, epoch: int, key: xwing.XWingPrivateKey, replays: ReplayFilter) -> None:
        self.epoch = epoch
        self.key = key
        self.replays = replays


class MixKeyring:
    """The previous, current and next epoch keys of a mix."""

    def __init__(
        self,
        period: float,
        replay_capacity: int,
        replay_fp_rate: float,
        *,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.period = period
        self._capacity = replay_capacity
        self._fp_rate = replay_fp_rate
        self._rng = rng
        self._keys: dict[int, EpochKey] = {}
        self.current = -1

    def rotate(self, now: float) -> bool:
        """Bring the keys up to the epoch of ``now``; True if the set changed."""
        epoch = epoch_of(now, self.period)
        if epoch == self.current:
            return False
        self.current = epoch
        wanted = (epoch - 1, epoch, epoch + 1)
        for old in [e for e in self._keys if e not in wanted]:
            del self._keys[old]
        for e in wanted:
            if e not in self._keys and e >= epoch:
                key = xwing.XWingPrivateKey.from_seed(self._rng(xwing.SEED_SIZE))
                self._keys[e] = EpochKey(e, key, ReplayFilter(self._capacity, self._fp_rate))
        return True

    def next_rotation(self) -> float:
        """Unix time at which the next epoch begins."""
        return (self.current + 1) * self.period

    def candidates(self) -> list[EpochKey]:
        """The keys to try on a packet: current first, then next, then previous."""
        order = (self.current, self.current + 1, self.current - 1)
        return [self._keys[e] for e in order if e in self._keys]

    def public_keys(self) -> dict[int, bytes]:
        """Epoch → public key, for the mix's descriptor."""
        return {e: k.key.public_key_bytes() for e, k in sorted(self._keys.items())}

    def positions(self, tag: bytes) -> tuple[int, ...]:
        """``tag``'s filter positions (every epoch's filter has the same size)."""
        return next(iter(self._keys.values())).replays.positions(tag)

    def seen(self, positions: tuple[int, ...]) -> bool:
        """True if any held epoch key has accepted a packet with these tag positions."""
        return any(k.replays.has(positions) for k in self._keys.values())
