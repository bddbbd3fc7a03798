"""The iterative Kademlia lookup as a sans-IO state machine (DESIGN §4 "DHT").

The driver asks :meth:`Lookup.next_requests` whom to query, sends FIND_NODE
(or FIND_VALUE) to each, and feeds back what happened: :meth:`Lookup.on_nodes`
for an answer with contacts, :meth:`Lookup.on_value` for a (validated) value,
:meth:`Lookup.on_failure` for a timeout or error.  After every input it calls
``next_requests`` again, so up to ``alpha`` requests per path stay in flight
at all times instead of moving in lock-step rounds.  :meth:`Lookup.get_timer`
says when a request turns "slow" and may justify one more request.

Termination: a path is done when the ``k`` closest candidates it has seen
(failed ones excluded) have all answered, or when it has nothing left to ask.
With ``disjoint_paths = d`` (S/Kademlia) the initial contacts are dealt to
``d`` paths, each path keeps its own candidate list, and a node queried by
one path is never queried by another; the results are merged.

Contacts learned from responses are *unverified*: the lookup queries them, but
only those that answer (over the driver's authenticated session) appear in
:attr:`Lookup.result`, which the driver may hand to the routing table.

Under attack (issue 6): ``priority(node_id)`` (the core passes its peers'
reputation) returns ``None`` for a banned peer, which is never queried
(counted ``banned``), or a score: among fresh candidates of one distance class
(same bit length of the XOR distance to the target) the higher score is
queried first.  :class:`ClusterDetector` flags targets near which a lookup saw
far more distinct IDs than the network size predicts (S/Kademlia's Sybil
signal).
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterable
from typing import Any, Final

import attrs

from qdht.dht._config import LookupConfig
from qdht.errors import ConfigError
from qdht.wire import NODE_ID_SIZE, Contact

__all__ = ["ClusterDetector", "Lookup", "LookupTrace", "PathTrace", "QueriedPeer"]

_FRESH: Final = 0
_IN_FLIGHT: Final = 1
_ANSWERED: Final = 2
_FAILED: Final = 3
_OUTCOMES: Final = {_IN_FLIGHT: "in-flight", _ANSWERED: "answered", _FAILED: "failed"}


@attrs.frozen
class PathTrace:
    """What one disjoint path did."""

    rpcs: int
    responses: int
    timeouts: int
    hops: int


@attrs.frozen
class QueriedPeer:
    """One node a lookup queried: what draws its path through the keyspace."""

    node_id: bytes
    #: 1 for the initial contacts, ``h + 1`` for a node learned from a hop-``h`` node.
    hop: int
    #: The disjoint path that owned it.
    path: int
    #: ``"answered"``, ``"failed"`` or ``"in-flight"``.
    outcome: str


@attrs.frozen
class LookupTrace:
    """The structured record of one lookup, for ``node.stats()`` and events.

    ``hops`` is the deepest hop of a node that answered: the initial contacts
    are hop 1, and a contact first learned from a hop-``h`` node is hop
    ``h + 1``; a FIND_VALUE that found its value reports the hop of the node that
    returned it.  ``closest_hops`` is the hop of the closest node that answered
    (the usual "path length" of a lookup).  ``duration`` runs from the start
    to completion (or to the last input while still running).
    """

    target: bytes
    find_value: bool
    done: bool
    found_value: bool
    hops: int
    closest_hops: int
    rpcs: int
    responses: int
    timeouts: int
    duration: float
    paths: tuple[PathTrace, ...]
    drops: dict[str, int]
    #: Every node queried, in hop order (bounded by the lookup's own limits).
    queried: tuple[QueriedPeer, ...] = ()


class _Candidate:
    __slots__ = ("contact", "dist", "hop", "order", "path", "score", "sent_at", "state")

    def __init__(self, contact: Contact, dist: int, hop: int, path: int, score: float) -> None:
        self.contact = contact
        self.dist = dist
        self.hop = hop
        self.path = path
        self.score = score
        self.state = _FRESH
        self.sent_at = 0.0
        #: Query order: distance class first, then the higher score.
        self.order = (dist.bit_length(), -score)


_QUERY_ORDER: Final = operator.attrgetter("order")
_DIST: Final = operator.attrgetter("dist")


class _Path:
    __slots__ = ("candidates", "done", "flying", "responses", "rpcs", "timeouts")

    def __init__(self) -> None:
        # Sorted by distance, nearest first.
        self.candidates: list[_Candidate] = []
        #: The candidates in flight (a handful: ``alpha`` and the slow extra), so
        #: that timers do not scan all candidates.
        self.flying: list[_Candidate] = []
        self.rpcs = 0
        self.responses = 0
        self.timeouts = 0
        self.done = False


class Lookup:
    """One iterative FIND_NODE / FIND_VALUE lookup for ``target``.

    ``initial`` are the starting contacts (normally the routing table's
    ``closest(target)``); ``exclude`` node IDs are never queried (the local
    node's own ID belongs there).  Time is always passed in.
    """

    def __init__(
        self,
        target: bytes,
        initial: Iterable[Contact],
        *,
        now: float,
        config: LookupConfig | None = None,
        find_value: bool = False,
        exclude: Collection[bytes] = (),
        priority: Callable[[bytes], float | None] | None = None,
    ) -> None:
        if type(target) is not bytes or len(target) != NODE_ID_SIZE:
            raise ConfigError(f"target must be {NODE_ID_SIZE} bytes")
        self._priority = priority
        self.target = target
        self.config = cfg = config if config is not None else LookupConfig()
        self.find_value = find_value
        self._t = int.from_bytes(target, "big")
        self._started = now
        self._last = now
        self._finished: float | None = None
        self._value: Any = None
        self._value_from: _Candidate | None = None
        self._paths = [_Path() for _ in range(cfg.disjoint_paths)]
        # Every node ID (as int) any path knows, with the candidate that holds it:
        # one owner per node keeps the paths disjoint.
        self._known: dict[int, _Candidate] = {}
        self._excluded = frozenset(int.from_bytes(x, "big") for x in exclude)
        self._drops: dict[str, int] = {}
        # get_timer()'s answer until the next input changes the state (the driver
        # asks after every message of every lookup it runs; each answer is a scan).
        self._timer: float | None = None
        self._timer_valid = False
        firsts = []
        for contact in initial:
            if not isinstance(contact, Contact):
                raise ConfigError("initial must hold qdht.wire.Contact objects")
            firsts.append(contact)
        firsts.sort(key=lambda c: int.from_bytes(c.node_id, "big") ^ self._t)
        for n, contact in enumerate(firsts):
            # Deal round-robin by distance so every path starts near the target.
            self._learn(contact, hop=1, path=n % cfg.disjoint_paths)
        self._update_done(now)

    # -- state -------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._finished is not None

    @property
    def value(self) -> Any:
        """The value a FIND_VALUE lookup found (``None`` if none)."""
        return self._value

    @property
    def result(self) -> list[Contact]:
        """The k closest nodes that answered, nearest first, merged over paths."""
        answered = [c for c in self._known.values() if c.state == _ANSWERED]
        answered.sort(key=lambda c: c.dist)
        return [c.contact for c in answered[: self.config.k]]

    def seen_within(self, radius: int) -> int:
        """Distinct node IDs this lookup learned of within XOR distance ``radius``
        of the target (queried or not; candidates dropped for space not counted)."""
        return sum(1 for c in self._known.values() if c.dist <= radius)

    @property
    def in_flight(self) -> list[Contact]:
        """Contacts queried and not yet reported on."""
        return [c.contact for c in self._known.values() if c.state == _IN_FLIGHT]

    def path_of(self, node_id: bytes) -> int | None:
        """The disjoint path that owns ``node_id`` (``None`` if never seen).

        A node belongs to the first path that learned of it; only that path
        may query it.
        """
        cand = self._known.get(_id_int(node_id))
        return None if cand is None else cand.path

    @property
    def trace(self) -> LookupTrace:
        answered = [c for c in self._known.values() if c.state == _ANSWERED]
        path_hops = [0] * len(self._paths)
        for c in answered:
            path_hops[c.path] = max(path_hops[c.path], c.hop)
        hops = self._value_from.hop if self._value_from is not None else max(path_hops, default=0)
        end = self._finished if self._finished is not None else self._last
        nearest = min(answered, key=lambda c: c.dist, default=None)
        return LookupTrace(
            target=self.target,
            find_value=self.find_value,
            done=self.done,
            found_value=self._value_from is not None,
            hops=hops,
            closest_hops=0 if nearest is None else nearest.hop,
            rpcs=sum(p.rpcs for p in self._paths),
            responses=sum(p.responses for p in self._paths),
            timeouts=sum(p.timeouts for p in self._paths),
            duration=end - self._started,
            paths=tuple(
                PathTrace(p.rpcs, p.responses, p.timeouts, h)
                for p, h in zip(self._paths, path_hops, strict=True)
            ),
            drops=dict(self._drops),
            queried=tuple(
                QueriedPeer(c.contact.node_id, c.hop, c.path, _OUTCOMES[c.state])
                for c in sorted(self._known.values(), key=lambda c: c.hop)
                if c.state != _FRESH
            ),
        )

    # -- driving -------------------------------------------------------------------

    def next_requests(self, now: float) -> list[Contact]:
        """Contacts to query now; each is marked in flight until reported on.

        Per path, at most ``alpha`` requests that are not slow are in flight, and
        at most ``alpha + max_slow_extra`` in all.
        """
        self._timer_valid = False
        self._last = max(self._last, now)
        if self._finished is not None:
            return []
        cfg = self.config
        out: list[Contact] = []
        for path in self._paths:
            if path.done:
                continue
            fresh = self._fresh_in_window(path)
            if not fresh:
                continue
            if self._priority is not None:
                fresh.sort(key=_QUERY_ORDER)
            slow = self._slow_count(path, now)
            budget = min(
                cfg.alpha - (len(path.flying) - slow),
                cfg.alpha + cfg.max_slow_extra - len(path.flying),
            )
            for cand in fresh[: max(0, budget)]:
                cand.state = _IN_FLIGHT
                cand.sent_at = now
                path.flying.append(cand)
                path.rpcs += 1
                out.append(cand.contact)
        return out

    def get_timer(self) -> float | None:
        """When the next in-flight request becomes slow; call ``next_requests`` then.

        ``None`` when no timer is needed.  The driver still owns the per-request
        timeouts (``RoutingTable.timeout_for``) and reports them with
        :meth:`on_failure`.
        """
        if self._timer_valid:
            return self._timer
        slow_after = self.config.slow_after
        if self._finished is not None or slow_after is None:
            return None
        # Requests already slow at the latest input were accounted for then.
        # Only paths with requests in flight can have any (``flying`` holds them).
        last = self._last
        times = [
            c.sent_at + slow_after
            for path in self._paths
            if path.flying and not path.done
            for c in path.flying
            if c.sent_at + slow_after > last
        ]
        self._timer = min(times, default=None)
        self._timer_valid = True
        return self._timer

    def on_nodes(self, from_id: bytes, contacts: Iterable[object], now: float) -> None:
        """``from_id`` answered with ``contacts`` (unverified, may be junk)."""
        self._timer_valid = False
        self._last = max(self._last, now)
        cand = self._responder(from_id)
        if cand is None:
            return
        path = self._paths[cand.path]
        self._answered(cand, path)
        taken = 0
        for contact in contacts:
            if taken >= self.config.max_contacts_per_response:
                self._drop("too-many-contacts")
                break
            taken += 1
            if not isinstance(contact, Contact):
                self._drop("not-a-contact")
                continue
            self._learn(contact, hop=cand.hop + 1, path=cand.path)
        self._update_done(now)

    def on_value(self, from_id: bytes, value: Any, now: float) -> None:
        """``from_id`` returned a value the caller has validated; the lookup ends.

        Report a value that fails validation with :meth:`on_failure` instead.
        """
        self._timer_valid = False
        self._last = max(self._last, now)
        cand = self._responder(from_id)
        if cand is None:
            return
        if not self.find_value:
            self._drop("unexpected-value")
            return
        self._answered(cand, self._paths[cand.path])
        self._value = value
        self._value_from = cand
        self._finished = now

    def on_failure(self, from_id: bytes, now: float) -> None:
        """The request to ``from_id`` timed out or failed."""
        self._timer_valid = False
        self._last = max(self._last, now)
        cand = self._known.get(_id_int(from_id))
        if cand is None or cand.state != _IN_FLIGHT:
            self._drop("unsolicited-failure")
            return
        path = self._paths[cand.path]
        cand.state = _FAILED
        path.flying.remove(cand)
        path.timeouts += 1
        self._update_done(now)

    # -- internals -------------------------------------------------------------------

    def _drop(self, reason: str) -> None:
        self._drops[reason] = self._drops.get(reason, 0) + 1

    def _responder(self, from_id: bytes) -> _Candidate | None:
        cand = self._known.get(_id_int(from_id))
        # A late answer after a reported timeout still counts: the node is alive.
        if cand is None or cand.state not in (_IN_FLIGHT, _FAILED):
            self._drop("unsolicited-response")
            return None
        if self._finished is not None:
            self._drop("after-done")
            return None
        return cand

    def _answered(self, cand: _Candidate, path: _Path) -> None:
        if cand.state == _IN_FLIGHT:
            path.flying.remove(cand)
        cand.state = _ANSWERED
        path.responses += 1

    def _learn(self, contact: Contact, *, hop: int, path: int) -> None:
        id_int = int.from_bytes(contact.node_id, "big")
        if id_int in self._known or id_int in self._excluded:
            return
        score = 0.0
        if self._priority is not None:
            given = self._priority(contact.node_id)
            if given is None:
                self._drop("banned")
                return
            score = given
        cand = _Candidate(contact, id_int ^ self._t, hop, path, score)
        candidates = self._paths[path].candidates
        lo = bisect_left(candidates, cand.dist, key=_DIST)
        if lo >= self.config.max_candidates:
            self._drop("candidates-full")
            return
        candidates.insert(lo, cand)
        self._known[id_int] = cand
        if len(candidates) > self.config.max_candidates:
            # Forget the farthest candidate not yet queried.
            for i in range(len(candidates) - 1, -1, -1):
                if candidates[i].state == _FRESH:
                    del self._known[candidates.pop(i).dist ^ self._t]
                    self._drop("candidates-full")
                    break

    def _fresh_in_window(self, path: _Path) -> list[_Candidate]:
        """The not yet queried candidates of the path's window: its ``window``
        (default k) closest candidates that have not failed."""
        room = self.config.window or self.config.k
        fresh = []
        for cand in path.candidates:
            state = cand.state
            if state != _FAILED:
                if state == _FRESH:
                    fresh.append(cand)
                room -= 1
                if not room:
                    break
        return fresh

    def _window_answered(self, path: _Path) -> bool:
        """Whether every candidate of the path's window (as in :meth:`_fresh_in_window`)
        answered."""
        room = self.config.window or self.config.k
        for cand in path.candidates:
            state = cand.state
            if state != _FAILED:
                if state != _ANSWERED:
                    return False
                room -= 1
                if not room:
                    break
        return True

    def _slow_count(self, path: _Path, now: float) -> int:
        slow_after = self.config.slow_after
        if slow_after is None or not path.flying:
            return 0
        return sum(1 for c in path.flying if c.sent_at + slow_after <= now)

    def _update_done(self, now: float) -> None:
        if self._finished is not None:
            return
        for path in self._paths:
            if path.done:
                continue
            if self._window_answered(path):
                path.done = True
        if all(path.done for path in self._paths):
            self._finished = now


def _id_int(node_id: bytes) -> int:
    if type(node_id) is not bytes or len(node_id) != NODE_ID_SIZE:
        raise ConfigError(f"node ID must be {NODE_ID_SIZE} bytes")
    return int.from_bytes(node_id, "big")


class ClusterDetector:
    """Flags lookup targets with far more IDs nearby than the network size predicts.

    Node IDs are uniform (they are hashes, and the puzzle makes choosing them
    expensive), so around any key the number of IDs within distance r is
    Poisson with mean ``n · r / 2^256``.  After a lookup, :meth:`observe`
    takes the radius where ``cluster_expected`` IDs are expected for the
    estimated network size ``n`` and counts the distinct IDs the lookup saw
    inside it; ``cluster_threshold`` or more is reported as suspicious: an
    eclipse of the key needs k IDs closer than the closest honest node.
    Bounded: counters plus the last ``keep`` suspicious keys.
    """

    __slots__ = ("_recent", "checked", "config", "keep", "suspicious")

    def __init__(self, config: LookupConfig | None = None, *, keep: int = 8) -> None:
        if type(keep) is not int or keep < 0:
            raise ConfigError(f"keep must be a non-negative integer, got {keep!r}")
        self.config = config if config is not None else LookupConfig()
        self.keep = keep
        self.checked = 0
        self.suspicious = 0
        self._recent: list[dict[str, Any]] = []

    def radius(self, network_size: float) -> int:
        """The XOR distance within which ``cluster_expected`` IDs are expected."""
        n = max(1.0, float(network_size))
        return int(self.config.cluster_expected / n * float(1 << 256))

    def observe(self, lookup: Lookup, network_size: float, now: float) -> bool:
        """Check a finished lookup; True (and recorded) if its target looks clustered."""
        self.checked += 1
        seen = lookup.seen_within(self.radius(network_size))
        if seen < self.config.cluster_threshold:
            return False
        self.suspicious += 1
        if self.keep:
            self._recent.append(
                {
                    "key": lookup.target.hex(),
                    "seen": seen,
                    "expected": self.config.cluster_expected,
                    "network_size": round(network_size),
                    "at": now,
                }
            )
            del self._recent[: -self.keep]
        return True

    def stats(self) -> dict[str, Any]:
        """Counters and the last few suspicious keys, for ``stats()["clusters"]``."""
        return {
            "checked": self.checked,
            "suspicious": self.suspicious,
            "recent": [dict(item) for item in self._recent],
        }
