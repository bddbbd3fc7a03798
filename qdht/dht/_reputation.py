"""Per-peer reputation: scores from behaviour, bans for repeated offences, sans-IO.

DESIGN §3: forged, replayed or malformed input is "held against the sender's
reputation".  The DHT core reports what a peer did:

* :meth:`Reputation.answered` for an answered request,
* :meth:`Reputation.offence` with a kind from :data:`OFFENCES` (``"timeout"``,
  ``"invalid-message"``, ``"forged-record"``, ``"stale-record"``, ``"flood"``),
* :meth:`Reputation.answered_late` for an answer that came after its timeout,
  which takes that timeout back: a slow answer (a 72 KB set page from a busy
  holder) is no misbehaviour, and the answer's RTT sample already makes the
  peer's next timeout longer.  A peer that stalls lookups by answering late
  gains nothing from it: lookups move on from slow requests in parallel.

and asks :meth:`Reputation.score` (lookups query low scores last within a
distance class, the routing table replaces low scores first) and
:meth:`Reputation.banned` (the core drops a banned peer's messages, counted).

Scores decay toward 0 with a half-life, so that an honest peer that timed out
during an outage is forgiven; a ban lasts ``ban_duration`` and doubles with
every earlier ban of the same peer.  Memory is bounded: at most
``max_peers`` peers are remembered, the least recently updated forgotten
first (a forgotten peer starts again at 0), and a peer never banned is
forgotten once its score has decayed back to 0 (within ``neutral``).  An attacker needs that many
puzzle-solving identities to flush a ban out, and a banned peer that keeps
sending keeps its entry fresh.
"""

from __future__ import annotations

from collections import OrderedDict
from math import exp
from typing import Any, Final

from qdht.dht._config import ReputationConfig
from qdht.errors import ConfigError

__all__ = ["OFFENCES", "Reputation"]

#: Kinds of offence the core may report, mapped to the ``ReputationConfig`` penalty.
OFFENCES: Final = {
    "timeout": "timeout",
    "invalid-message": "invalid_message",
    "forged-record": "forged_record",
    "stale-record": "stale_record",
    "flood": "flood",
}

_LN2: Final = 0.6931471805599453


class _Peer:
    __slots__ = ("banned_until", "bans", "score", "updated")

    def __init__(self, now: float) -> None:
        self.score = 0.0
        self.updated = now
        self.banned_until = 0.0
        self.bans = 0


class Reputation:
    """Scores and bans of the peers this node dealt with; time is passed in."""

    __slots__ = ("_counts", "_low", "_low_mark", "_offences", "_peers", "_recent", "config")

    def __init__(self, config: ReputationConfig | None = None) -> None:
        self.config = config if config is not None else ReputationConfig()
        self._peers: OrderedDict[bytes, _Peer] = OrderedDict()
        # The peers whose stored score is below ``_low_mark`` (<= 0): decay only moves
        # a score toward 0, so nobody else can score below it, and "is anyone scored
        # that low?" (:meth:`any_below`) costs nothing when nobody misbehaved much.
        self._low_mark = 0.0
        self._low: set[bytes] = set()
        self._offences: dict[str, int] = {}
        self._counts = {"answered": 0, "bans": 0, "forgotten": 0, "dropped": 0}
        # (node ID hex prefix, kind of the banning offence, until), newest last.
        self._recent: list[tuple[str, str, float]] = []

    def __len__(self) -> int:
        return len(self._peers)

    # -- reports ---------------------------------------------------------------

    def answered(self, node_id: bytes, now: float) -> None:
        """``node_id`` answered a request of ours."""
        peer = self._peer(node_id, now)
        peer.score = min(self.config.max_score, peer.score + self.config.answered)
        self._counts["answered"] += 1
        self._signed(node_id, peer)

    def answered_late(self, node_id: bytes, now: float) -> None:
        """``node_id`` answered a request of ours after it had timed out: the
        ``"timeout"`` offence it was charged for it is taken back (a ban it
        started stands).  The core counts these as ``late_responses``."""
        peer = self._peer(node_id, now)
        peer.score = min(self.config.max_score, peer.score + float(self.config.timeout))
        self._signed(node_id, peer)

    def offence(self, node_id: bytes, kind: str, now: float) -> bool:
        """``node_id`` did ``kind`` (one of :data:`OFFENCES`); True if it is now banned.

        Returns True only for the offence that starts a ban, so the caller
        removes the peer from its routing table once.
        """
        attr = OFFENCES.get(kind)
        if attr is None:
            raise ConfigError(f"kind must be one of {sorted(OFFENCES)}, got {kind!r}")
        cfg = self.config
        self._offences[kind] = self._offences.get(kind, 0) + 1
        peer = self._peer(node_id, now)
        peer.score = max(peer.score - float(getattr(cfg, attr)), 2 * cfg.ban_below)
        self._signed(node_id, peer)
        if peer.score > cfg.ban_below or peer.banned_until > now:
            return False
        duration = min(cfg.max_ban, cfg.ban_duration * 2.0**peer.bans)
        peer.bans += 1
        peer.banned_until = now + duration
        # Serving the ban is the penalty: afterwards the peer starts over.
        peer.score = 0.0
        self._low.discard(node_id)
        self._counts["bans"] += 1
        if cfg.recent_bans:
            self._recent.append((node_id.hex()[:16], kind, peer.banned_until))
            del self._recent[: -cfg.recent_bans]
        return True

    def dropped(self) -> None:
        """Count one message of a banned peer dropped by the core."""
        self._counts["dropped"] += 1

    # -- queries ---------------------------------------------------------------

    def score(self, node_id: bytes, now: float) -> float:
        """The peer's current score (0 for a peer never seen or forgotten)."""
        peer = self._peers.get(node_id)
        if peer is None:
            return 0.0
        return self._decayed(peer, now)

    def any_below(self, threshold: float) -> bool:
        """False only if no peer scores below ``threshold`` (True: some may)."""
        if threshold > 0:
            return True  # a positive score decays below a positive threshold
        if threshold != self._low_mark:
            self._low_mark = threshold
            self._low = {n for n, p in self._peers.items() if p.score < threshold}
        return bool(self._low)

    def priority(self, node_id: bytes, now: float) -> float | None:
        """None if ``node_id`` is serving a ban at ``now``, else its score (one lookup
        for both: a lookup asks this of every contact it learns)."""
        peer = self._peers.get(node_id)
        if peer is None:
            return 0.0
        if peer.banned_until > now:
            return None
        return self._decayed(peer, now)

    def banned(self, node_id: bytes, now: float) -> bool:
        """Whether ``node_id`` is serving a ban at ``now``."""
        peer = self._peers.get(node_id)
        return peer is not None and peer.banned_until > now

    def ban_ends(self, node_id: bytes) -> float:
        """When the ban of ``node_id`` ends (0.0: it was never banned, or is forgotten)."""
        peer = self._peers.get(node_id)
        return 0.0 if peer is None else peer.banned_until

    def stats(self, now: float | None = None) -> dict[str, Any]:
        """Counters for ``node.stats()["reputation"]`` (``now``: the latest report's time)."""
        if now is None:
            now = max((p.updated for p in self._peers.values()), default=0.0)
        banned = sum(1 for p in self._peers.values() if p.banned_until > now)
        low = sum(1 for p in self._peers.values() if self._decayed(p, now) < 0)
        return {
            "peers": len(self._peers),
            "banned": banned,
            "negative": low,
            **self._counts,
            "offences": dict(self._offences),
            "recent_bans": [
                {"node_id": who, "offence": kind, "until": until}
                for who, kind, until in self._recent
            ],
        }

    # -- internals ---------------------------------------------------------------

    def _decayed(self, peer: _Peer, now: float) -> float:
        age = now - peer.updated
        if age <= 0 or peer.score == 0.0:
            return peer.score
        return peer.score * exp(-_LN2 * age / self.config.half_life)

    def _signed(self, node_id: bytes, peer: _Peer) -> None:
        if peer.score < self._low_mark:
            self._low.add(node_id)
        else:
            self._low.discard(node_id)

    def _peer(self, node_id: bytes, now: float) -> _Peer:
        peers = self._peers
        peer = peers.pop(node_id, None)
        if peer is None:
            peer = _Peer(now)
        else:
            peer.score = self._decayed(peer, now)
            peer.updated = max(peer.updated, now)
        peers[node_id] = peer
        if len(peers) > self.config.max_peers:
            self._low.discard(peers.popitem(last=False)[0])
            self._counts["forgotten"] += 1
        # Forget up to two of the least recently updated that are back to neutral.
        neutral = self.config.neutral
        for _ in range(2):
            oldest = next(iter(peers))
            old = peers[oldest]
            if old is peer or old.bans or abs(self._decayed(old, now)) > neutral:
                break
            del peers[oldest]
            self._low.discard(oldest)
            self._counts["forgotten"] += 1
        return peer
