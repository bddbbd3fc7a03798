"""Replication of stored records: handoff, republish sweeps, path caching (sans-IO).

Implements ``protocol-spec/07-records.md`` §10 (Kademlia §2.3 and §2.5, with
libp2p's sweep-by-keyspace-region republishing).  A :class:`Replicator`
belongs to one :class:`~qdht.dht.DhtCore`; it reads the core's routing table
and record store and tells the core what to do, never sending anything
itself:

* **Handoff.**  :meth:`Replicator.on_peer_added` is called when a verified
  peer enters the routing table.  The stored keys for which the newcomer now
  ranks among the k closest nodes we know are queued for it (a STORE each,
  without ``cas``), if we are among the ``handoff_senders`` holders nearest
  to the key that we know of: so a newcomer gets each record from a few
  holders, not from all k.
* **Republish rounds.**  Every ``republish_interval`` (first one at a random
  phase, so the holders of a key do not fire together) the replicator sweeps
  the keys it stores in order, grouped into keyspace *regions* (the keys
  sharing a prefix whose length comes from the estimated network size), and
  asks the core for one FIND_NODE lookup per region, to the region's
  midpoint (:meth:`Replicator.lookups_to_start`, answered with
  :meth:`Replicator.on_lookup_done`).  Each due key of the region is then
  queued for the k nodes closest to it among those the lookup found and
  our own routing table.  A key that reached us in a STORE within the
  interval is skipped (:meth:`Replicator.on_store_received`): the holder
  whose round comes first republishes for all of them, as in Kademlia §2.5.
  A holder that finds itself outside a key's k closest hands it to the
  nearest few of them and pauses that key for ``outside_pause``; for a key
  in its neighbourhood its own table can show that without the lookup
  (``outside_reach``).
* **Pacing.**  Queued STOREs leave through :meth:`Replicator.stores_due` at
  most ``store_rate`` per second to one destination after a burst of
  ``store_burst`` (below a receiver's default flood guard, 07 §6.3), and at
  most ``total_store_rate`` per second to all of them together after a burst
  of ``total_store_burst`` (so that a big batch does not overrun the sender's
  own queues with STOREs and their answers), from a bounded queue: what
  does not fit is dropped and counted, and the next round retries it.
* **Path caching.**  :meth:`Replicator.cache_target` picks, after a
  successful get, the closest node of the lookup path that did not return
  the record, and the lifetime of the cached copy: ``cache_ttl`` halved for
  every bit of XOR distance that node lies further from the key than the
  closest holder (each bit doubles the expected number of nodes between
  them), not cached below ``min_cache_ttl``.

* **A publisher's own records.**  :meth:`Replicator.publish` takes records a
  publisher stores again (07 §10.2; the node's schedule is
  ``qdht.node._published``): they are grouped by the same keyspace regions,
  one FIND_NODE lookup per region (shared with a sweep region of the same
  midpoint), and each record is queued for the k closest nodes to its key,
  through the same paced queue, as published (:meth:`Replicator.own_record`),
  not as held.  Only the owner can extend a record's life: the node signs
  or stamps the copy it hands in.

The queue holds keys, not records: when a STORE leaves, the core sends the
record it holds *then*, so a newer version received meanwhile goes out, and
a record the holder lost is not sent.  Records are never re-signed or given
a later expiry by a holder: republishing cannot outlive the publisher's
``exp`` nor resurrect an old sequence, which every receiver refuses (07 §7.1
rule 4).
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs

from qdht.dht._config import ReplicationConfig
from qdht.dht._routing import _SPACE, ID_BITS, RoutingTable, distance
from qdht.errors import ConfigError
from qdht.wire import NODE_ID_SIZE, Contact

if TYPE_CHECKING:
    from qdht.dht._records import ValidRecord
    from qdht.dht._recordstore import RecordStore

__all__ = [
    "RegionLookup",
    "ReplicationConfig",
    "Replicator",
    "cache_lifetime",
    "region_of",
]


# ----------------------------------------------------------------- keyspace


def region_bits(network_size: float, region_nodes: int) -> int:
    """Prefix length of a region expected to hold ``region_nodes`` nodes (0: everything)."""
    if network_size <= region_nodes:
        return 0
    return min(ID_BITS, math.floor(math.log2(network_size / region_nodes)))


def region_of(key: bytes, bits: int) -> tuple[bytes, bytes | None, bytes]:
    """The region of ``key``: the keys sharing its first ``bits`` bits.

    Returns ``(low, high, midpoint)``: the region is ``[low, high)`` in byte
    order (``high`` None: up to the end of the keyspace), and ``midpoint`` is
    the prefix followed by a one bit and zeros, the lookup target that is
    nearest, on average, to every key of the region.
    """
    if not 0 <= bits <= ID_BITS:
        raise ConfigError(f"bits must be in 0..{ID_BITS}, got {bits!r}")
    shift = ID_BITS - bits
    prefix = int.from_bytes(key, "big") >> shift
    low = prefix << shift
    high = (prefix + 1) << shift
    mid = low | (1 << (shift - 1)) if shift else low
    return (
        low.to_bytes(NODE_ID_SIZE, "big"),
        high.to_bytes(NODE_ID_SIZE, "big") if high < _SPACE else None,
        mid.to_bytes(NODE_ID_SIZE, "big"),
    )


def cache_lifetime(
    cache_node: bytes, nearest: bytes, key: bytes, *, base: float, minimum: float
) -> float | None:
    """The lifetime of a path-cache copy at ``cache_node`` (07 §10.4); None: do not cache.

    ``base`` halved once for every bit by which ``cache_node``'s XOR distance
    to ``key`` is longer than that of ``nearest`` (the closest node the
    lookup met): each bit doubles the expected number of nodes between the
    two, so the lifetime falls exponentially with that number's logarithm,
    i.e. in inverse proportion to the nodes in between.
    """
    steps = max(0, distance(cache_node, key).bit_length() - distance(nearest, key).bit_length())
    lifetime = base / (1 << min(steps, 62))
    return lifetime if lifetime >= minimum else None


# ----------------------------------------------------------------- outputs


@attrs.frozen
class RegionLookup:
    """Action: run a FIND_NODE lookup (kind ``"republish"``) for ``target``.

    Report its result with :meth:`Replicator.on_lookup_done` (or
    :meth:`Replicator.on_lookup_failed` when it could not start).
    """

    target: bytes
    keys: int


class _Region:
    __slots__ = ("keys", "own", "started", "target")

    def __init__(self, target: bytes, keys: list[bytes], own: list[bytes] | None = None) -> None:
        self.target = target
        self.keys = keys  # held keys of a sweep
        self.own = own if own is not None else []  # a publisher's own keys (07 §10.2)
        self.started = False


class _Round:
    __slots__ = (
        "cursor",
        "done",
        "force",
        "keys",
        "lookups",
        "outside",
        "skipped",
        "started_at",
        "stores",
    )

    def __init__(self, started_at: float, *, force: bool = False) -> None:
        self.started_at = started_at
        self.force = force  # republish every key, received lately or not
        self.cursor: bytes | None = b""  # None: the sweep reached the end
        self.keys = 0
        self.skipped = 0
        self.lookups = 0
        self.stores = 0
        self.outside = 0  # keys settled by the table alone (no lookup)
        self.done = False

    def summary(self, finished_at: float) -> dict[str, float]:
        return {
            "started_at": self.started_at,
            "finished_at": finished_at,
            "keys": self.keys,
            "skipped": self.skipped,
            "lookups": self.lookups,
            "stores": self.stores,
            "outside": self.outside,
        }


class _Peer:
    """Queued STOREs for one destination and its pacing state (GCRA)."""

    __slots__ = ("contact", "keys", "tat")

    def __init__(self, contact: Contact, now: float) -> None:
        self.contact = contact
        # key -> cache lifetime (None: a stored copy); insertion order = send order.
        self.keys: dict[bytes, float | None] = {}
        self.tat = now  # theoretical arrival time of the next STORE


#: Seconds before a region lookup that could not start (the core was at its
#: lookup limit) is tried again.
LOOKUP_RETRY: Final = 1.0

#: Store-queue reasons counted in ``stats()["drops"]``.
_QUEUE_FULL: Final = "queue-full"
_PEER_QUEUE_FULL: Final = "peer-queue-full"


class Replicator:
    """The replication state of one node (see the module docstring).

    ``routing`` and ``store`` are the node's own; ``k`` is the replication
    factor (the lookup's k).  ``rng(n)`` gives random bytes (the first
    round's phase and the rounds' jitter).
    """

    def __init__(
        self,
        local_id: bytes,
        *,
        routing: RoutingTable,
        store: RecordStore,
        k: int,
        now: float,
        config: ReplicationConfig | None = None,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if type(local_id) is not bytes or len(local_id) != NODE_ID_SIZE:
            raise ConfigError(f"local_id must be {NODE_ID_SIZE} bytes")
        if type(k) is not int or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        self.local_id = local_id
        self.routing = routing
        self.store = store
        self.k = k
        self.config = cfg = config if config is not None else ReplicationConfig()
        self._rng = rng
        self.next_round_at = now + self._uniform() * cfg.republish_interval
        self._round: _Round | None = None
        self._retry_at: float | None = None
        self._regions: dict[bytes, _Region] = {}  # target -> region, planned or running
        self._replicated: OrderedDict[bytes, float] = OrderedDict()
        self._handed: OrderedDict[bytes, float] = OrderedDict()
        self._peers: dict[bytes, _Peer] = {}
        self._queued = 0
        self._total_tat = now  # GCRA over every destination together
        # A publisher's own records: key -> (record, STOREs of it still queued);
        # the keys not yet planned into a region, ascending; and the records of
        # the STOREs the last stores_due released (for own_record).
        self._own: dict[bytes, tuple[ValidRecord, int]] = {}
        self._own_pending: list[bytes] = []
        self._own_out: dict[bytes, ValidRecord] = {}
        self._history: list[dict[str, float]] = []
        self.counts = {
            "rounds": 0,
            "round_lookups": 0,
            "round_stores": 0,
            "round_keys": 0,
            "round_skipped": 0,
            "round_outside": 0,
            "handoffs": 0,
            "handoff_stores": 0,
            "cache_stores": 0,
            "stores_sent": 0,
            "own_records": 0,
            "own_lookups": 0,
            "own_stores": 0,
        }
        self.drops: dict[str, int] = {}

    # ------------------------------------------------------------ inputs

    def on_store_received(self, key: bytes, now: float) -> None:
        """Someone stored ``key`` at us (a put, handoff or another holder's
        republish): this interval's round may skip it."""
        self._mark(key, now)

    def on_peer_added(self, contact: Contact, now: float) -> None:
        """``contact`` entered the routing table: hand it the records it should hold."""
        cfg = self.config
        node_id = contact.node_id
        last = self._handed.pop(node_id, None)
        if last is not None and now - last < cfg.handoff_cooldown:
            self._handed[node_id] = last
            return
        recent = self._handed
        recent[node_id] = now
        if len(recent) > cfg.max_handoff_peers:
            recent.popitem(last=False)
        for _ in range(2):  # forget the oldest whose cooldown is over
            oldest = next(iter(recent))
            if now - recent[oldest] < cfg.handoff_cooldown:
                break
            del recent[oldest]
        # The keys the newcomer can be among the k closest of lie in the region
        # around it that holds about k nodes (one bit wider, to be safe).
        # Only its order of magnitude matters here, and the bit of margin covers
        # the newcomer's own effect on it: no recomputing after every newcomer.
        size = self.routing.rough_size()
        bits = max(0, region_bits(size, self.k) - 1)
        low, high, _mid = region_of(node_id, bits)
        keys = self.store.keys_for_republish(low, high, limit=cfg.max_handoff_keys)
        handed = 0
        for key in keys:
            if self._should_hand(key, node_id) and self._enqueue(contact, key, None, now):
                handed += 1
        if handed:
            self.counts["handoffs"] += 1
            self.counts["handoff_stores"] += handed

    def _should_hand(self, key: bytes, newcomer: bytes) -> bool:
        """Whether ``newcomer`` ranks among the k closest to ``key`` we know, and we
        among the ``handoff_senders`` nearest holders other than it."""
        senders = self.config.handoff_senders
        if self.routing.count_closer(key, senders, exclude=newcomer) >= senders:
            # That many answering nodes are nearer than we are: we are not among
            # the nearest holders, whatever the rest of the table (no sorting).
            return False
        k = self.k
        t = int.from_bytes(key, "big")
        known = self.routing.closest(key, k + 1)
        # XOR distances to the key (IDs are distinct, so are their distances).
        dists = [int.from_bytes(c.node_id, "big") ^ t for c in known if c.node_id != newcomer][:k]
        own = int.from_bytes(self.local_id, "big") ^ t
        dists.append(own)
        dists.sort()
        del dists[k:]
        if len(dists) < k and self.routing.estimated_size() > k:
            return False  # our table is too thin to judge (we are joining ourselves)
        if len(dists) == k and int.from_bytes(newcomer, "big") ^ t >= dists[-1]:
            return False  # the newcomer is not among the k closest
        return own in dists[:senders]

    # ------------------------------------------------------------ rounds

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next run."""
        # During a round, completed region lookups drive the next ones; the
        # timer matters only when a lookup could not start.
        when = self.next_round_at if self._round is None else math.inf
        if self._retry_at is not None:
            when = min(when, self._retry_at)
        if self._queued:  # asked after every message: most of the time nothing waits
            earliest = min(self._send_time(p) for p in self._peers.values() if p.keys)
            when = min(when, max(earliest, self._total_send_time()))
        return None if when == math.inf else when

    def handle_timer(self, now: float) -> None:
        """Start a republish round when one is due."""
        if self._round is None and now >= self.next_round_at:
            self._round = _Round(now)
            cfg = self.config
            factor = 1 + cfg.republish_jitter * (2 * self._uniform() - 1)
            self.next_round_at = now + cfg.republish_interval * factor

    def start_round(self, now: float) -> None:
        """Start a round now that republishes every stored key, skipping none
        (a node back from a restart or suspension: its neighbours may have
        changed meanwhile).  No-op while a round runs."""
        if self._round is None:
            self._round = _Round(now, force=True)

    def lookups_to_start(self, now: float) -> list[RegionLookup]:
        """Region lookups the core should start now (FIND_NODE, kind ``"republish"``)."""
        self.handle_timer(now)
        out: list[RegionLookup] = []
        if self._retry_at is not None:
            if now < self._retry_at:
                return out
            self._retry_at = None
        while self._can_plan():
            region = self._plan_next(now)
            if region is None:
                break
            region.started = True
            if region.keys and self._round is not None:
                self._round.lookups += 1
            else:
                self.counts["own_lookups"] += 1
            out.append(RegionLookup(region.target, len(region.keys) + len(region.own)))
        self._maybe_finish(now)
        return out

    def on_lookup_done(self, target: bytes, contacts: Sequence[Contact], now: float) -> None:
        """The region lookup for ``target`` ended with ``contacts`` (nearest first)."""
        region = self._regions.pop(target, None)
        if region is None:
            self.drops["unknown-region"] = self.drops.get("unknown-region", 0) + 1
            return
        k = self.k
        local = self.local_id
        queued = 0
        found = {c.node_id: c for c in contacts}
        cfg = self.config
        for key in region.keys:
            # A STORE of the key that arrived while the lookup ran (another
            # holder's round came first) skips it now, as it would have at planning.
            if self._skips(key, now):
                continue
            # The lookup found the k closest to the region's midpoint; our own
            # table (verified peers, best known near us, where our keys lie)
            # fills in the nodes that are closer to this particular key.
            candidates = dict(found)
            for contact in self.routing.closest(key, k):
                candidates.setdefault(contact.node_id, contact)
            ranked = sorted([*candidates, local], key=lambda x: distance(x, key))
            inside = local in ranked[:k]
            # Outside the k closest, the record goes to the nearest few of them
            # only: the k closest republish to one another (their rounds), so
            # our copy matters only if all of them lost it, and then the few we
            # store at restore it to the others in their next round.
            for node_id in ranked[: k if inside else cfg.outside_stores]:
                if node_id != local and self._enqueue(candidates[node_id], key, None, now):
                    queued += 1
            if not inside:
                # No longer among the k closest: they have it now; leave the
                # key to their rounds for a while (we still serve our copy).
                self._mark(key, now + cfg.outside_pause)
        if self._round is not None:
            self._round.stores += queued
        for key in region.own:
            entry = self._own.get(key)
            if entry is None:
                continue
            record, count = entry
            candidates = dict(found)
            for contact in self.routing.closest(key, k):
                candidates.setdefault(contact.node_id, contact)
            ranked = sorted(candidates, key=lambda x: distance(x, key))
            for node_id in ranked[:k]:
                if self._enqueue(candidates[node_id], key, None, now):
                    count += 1
            self.counts["own_stores"] += count - entry[1]
            if count:
                self._own[key] = (record, count)
            else:
                del self._own[key]  # nobody to store it at (a network of one)
                self._count_drop("own-unplaced")
        self._maybe_finish(now)

    def on_lookup_failed(self, target: bytes, now: float) -> None:
        """The lookup for ``target`` could not start (too many lookups): retry later."""
        region = self._regions.get(target)
        if region is not None and region.started:
            region.started = False
            self._retry_at = now + LOOKUP_RETRY
            if region.keys and self._round is not None:
                self._round.lookups -= 1
            else:
                self.counts["own_lookups"] -= 1

    def _can_plan(self) -> bool:
        running = sum(1 for r in self._regions.values() if r.started)
        if running >= self.config.max_lookups:
            return False
        if any(not r.started for r in self._regions.values()) or self._own_pending:
            return True
        rnd = self._round
        return rnd is not None and rnd.cursor is not None

    def _plan_next(self, now: float) -> _Region | None:
        """The next region to look up: one waiting to restart, a region of a
        publisher's own records, or the next region of the sweep with keys due."""
        for region in self._regions.values():
            if not region.started:
                return region
        if self._own_pending:
            return self._plan_own()
        rnd = self._round
        if rnd is None:
            return None
        cfg = self.config
        store = self.store
        bits = region_bits(self.routing.estimated_size(), cfg.region_nodes)
        while rnd.cursor is not None and rnd.keys < cfg.max_keys_per_round:
            first = store.keys_for_republish(rnd.cursor, None, limit=1)
            if not first:
                rnd.cursor = None
                break
            low, high, mid = region_of(first[0], bits)
            start = max(low, rnd.cursor)
            keys = store.keys_for_republish(start, high, limit=cfg.max_keys_per_region)
            if len(keys) == cfg.max_keys_per_region:
                rnd.cursor = _after(keys[-1])  # a dense region: its next page next time
            else:
                rnd.cursor = high
            due = [key for key in keys if not self._skips(key, now)]
            room = cfg.max_keys_per_round - rnd.keys
            due = due[:room]
            rnd.keys += len(due)
            due = self._outside_by_table(due, rnd, now)
            if due and mid not in self._regions:
                region = _Region(mid, due)
                self._regions[mid] = region
                return region
            if due:  # a dense region's second page: look up again, it is cheap
                self._regions[mid].keys.extend(due)
        return None

    def _outside_by_table(self, keys: list[bytes], rnd: _Round, now: float) -> list[bytes]:
        """Settle the ``keys`` our own table already puts us outside the k closest
        of (k answering peers nearer to the key than we are, 07 §10.4): store each
        at the ``outside_stores`` nearest of them and pause it, without a region
        lookup, which could only find more nodes nearer still.  The rest, the
        keys a lookup must decide, are returned."""
        cfg = self.config
        if not cfg.outside_reach or rnd.force:
            return keys  # (a forced round: our table may be stale)
        k = self.k
        routing = self.routing
        # Our neighbourhood, about outside_reach · k nodes around us: the deepest
        # buckets know all of it (the size estimate's premise, 07 §10.5), the
        # next ones most of it.
        reach = cfg.outside_reach * k * _SPACE / routing.rough_size()
        rest: list[bytes] = []
        for key in keys:
            if distance(self.local_id, key) > reach or routing.count_closer(key, k) < k:
                rest.append(key)
                continue
            for contact in routing.closest(key, cfg.outside_stores):
                if self._enqueue(contact, key, None, now):
                    rnd.stores += 1
            rnd.outside += 1
            self._mark(key, now + cfg.outside_pause)
        return rest

    def _skips(self, key: bytes, now: float) -> bool:
        """Whether the running round skips ``key`` (counted): it came in a STORE
        within the last ``skip_fraction`` of the interval (07 §10.4)."""
        rnd = self._round
        if rnd is None or rnd.force:
            return False
        cfg = self.config
        last = self._replicated.get(key)
        if last is None or last <= now - cfg.skip_fraction * cfg.republish_interval:
            return False
        rnd.skipped += 1
        return True

    def _plan_own(self) -> _Region:
        """The region of the first pending own key, with every pending key in it."""
        pending = self._own_pending
        bits = region_bits(self.routing.estimated_size(), self.config.region_nodes)
        _low, high, mid = region_of(pending[0], bits)
        end = len(pending) if high is None else bisect_left(pending, high)
        own = pending[:end]
        del pending[:end]
        region = self._regions.get(mid)
        if region is None:
            region = self._regions[mid] = _Region(mid, [], own)
        else:
            region.own.extend(own)  # a sweep region of the same midpoint: one lookup for both
        return region

    # ------------------------------------------------------------ a publisher's own records

    def publish(self, records: Iterable[ValidRecord], now: float) -> int:
        """Store a publisher's own ``records`` again (07-records.md §10.2), by region.

        Each record replaces any earlier one of its key still waiting here and
        is queued, after its region's lookup, for the k closest nodes to its
        key; :meth:`lookups_to_start` plans the regions.  Returns how many
        records were taken: at most ``max_queued_stores / k`` wait at once
        (the rest are dropped and counted as ``own-full``, for the publisher's
        next turn).
        """
        taken = 0
        for record in records:
            key = record.key
            entry = self._own.get(key)
            if entry is None and self.own_room == 0:
                self._count_drop("own-full")
                continue
            self._own[key] = (record, 0 if entry is None else entry[1])
            i = bisect_left(self._own_pending, key)
            if i == len(self._own_pending) or self._own_pending[i] != key:
                insort(self._own_pending, key)
            taken += 1
        self.counts["own_records"] += taken
        return taken

    def own_record(self, key: bytes) -> ValidRecord | None:
        """The publisher's own record that a STORE of ``key`` released by the last
        :meth:`stores_due` carries (sent as published), or None: the held one."""
        return self._own_out.get(key)

    def _own_left(self, key: bytes) -> None:
        """One queued STORE of an own record left the queue (sent or dropped)."""
        entry = self._own.get(key)
        if entry is None:
            return
        record, count = entry
        if count > 1:
            self._own[key] = (record, count - 1)
        else:
            del self._own[key]  # its last STORE left

    def _maybe_finish(self, now: float) -> None:
        rnd = self._round
        if rnd is None or self._regions:
            return
        if rnd.cursor is not None and rnd.keys < self.config.max_keys_per_round:
            return  # the sweep goes on
        rnd.done = True
        self._round = None
        counts = self.counts
        counts["rounds"] += 1
        counts["round_lookups"] += rnd.lookups
        counts["round_stores"] += rnd.stores
        counts["round_keys"] += rnd.keys
        counts["round_skipped"] += rnd.skipped
        counts["round_outside"] += rnd.outside
        self._history.append(rnd.summary(now))
        del self._history[: -self.config.round_history]

    def _mark(self, key: bytes, now: float) -> None:
        replicated = self._replicated
        replicated.pop(key, None)
        replicated[key] = now
        if len(replicated) > self.config.max_tracked_keys:
            replicated.popitem(last=False)

    # ------------------------------------------------------------ path caching

    def cache_target(
        self,
        key: bytes,
        answered: Iterable[Contact],
        holders: Iterable[bytes],
    ) -> tuple[Contact, float] | None:
        """Where to cache a record a get found, and for how long (07 §10.4).

        ``answered`` are the nodes that answered the get's lookup, ``holders``
        the IDs of those that returned the record.  Returns the closest
        answering non-holder and the copy's lifetime, or None.
        """
        holder_ids = set(holders)
        if not holder_ids:
            return None
        nearest = min(holder_ids, key=lambda x: distance(x, key))
        candidates = [c for c in answered if c.node_id not in holder_ids]
        if not candidates:
            return None
        target = min(candidates, key=lambda c: distance(c.node_id, key))
        cfg = self.config
        lifetime = cache_lifetime(
            target.node_id, nearest, key, base=cfg.cache_ttl, minimum=cfg.min_cache_ttl
        )
        if lifetime is None:
            self.drops["cache-too-far"] = self.drops.get("cache-too-far", 0) + 1
            return None
        self.counts["cache_stores"] += 1
        return target, lifetime

    # ------------------------------------------------------------ the store queue

    def _enqueue(self, contact: Contact, key: bytes, cache: float | None, now: float) -> bool:
        cfg = self.config
        if contact.node_id == self.local_id:
            return False
        peer = self._peers.get(contact.node_id)
        if peer is None:
            peer = self._peers[contact.node_id] = _Peer(contact, now)
        if key in peer.keys:
            return False  # already on its way
        if self._queued >= cfg.max_queued_stores:
            self._count_drop(_QUEUE_FULL)
            return False
        if len(peer.keys) >= cfg.max_queued_per_peer:
            self._count_drop(_PEER_QUEUE_FULL)
            return False
        peer.keys[key] = cache
        self._queued += 1
        return True

    def _send_time(self, peer: _Peer) -> float:
        """When ``peer``'s next STORE may leave (GCRA: ``tat`` minus the burst allowance)."""
        cfg = self.config
        return peer.tat - (cfg.store_burst - 1) / cfg.store_rate

    def _total_send_time(self) -> float:
        cfg = self.config
        return self._total_tat - (cfg.total_store_burst - 1) / cfg.total_store_rate

    def stores_due(self, now: float) -> list[tuple[Contact, bytes]]:
        """STOREs to send now, paced per destination and in all: ``(contact, key)``.

        The core sends each record it holds under ``key`` (every entry, for a
        set), without ``cas``; nothing if it no longer holds the key.
        """
        self._own_out = {}
        out: list[tuple[Contact, bytes]] = []
        interval = 1.0 / self.config.store_rate
        total_interval = 1.0 / self.config.total_store_rate
        own = self._own
        for node_id in list(self._peers):
            peer = self._peers[node_id]
            while peer.keys and self._send_time(peer) <= now and self._total_send_time() <= now:
                key = next(iter(peer.keys))
                del peer.keys[key]
                self._queued -= 1
                peer.tat = max(peer.tat, now) + interval
                self._total_tat = max(self._total_tat, now) + total_interval
                out.append((peer.contact, key))
                entry = own.get(key)
                if entry is not None:
                    self._own_out[key] = entry[0]
                    self._own_left(key)
            if not peer.keys and peer.tat <= now:
                del self._peers[node_id]  # idle and fully recovered: forget it
        self.counts["stores_sent"] += len(out)
        return out

    def forget_peer(self, node_id: bytes) -> None:
        """``node_id`` is gone (left the table): drop what was queued for it."""
        peer = self._peers.pop(node_id, None)
        if peer is not None and peer.keys:
            self._queued -= len(peer.keys)
            self._count_drop("peer-gone", len(peer.keys))
            for key in peer.keys:
                if key in self._own:
                    self._own_left(key)

    def _count_drop(self, reason: str, n: int = 1) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + n

    # ------------------------------------------------------------ misc

    def _uniform(self) -> float:
        return int.from_bytes(self._rng(7), "big") / (1 << 56)

    @property
    def own_room(self) -> int:
        """How many more of a publisher's own records :meth:`publish` takes now."""
        return max(0, max(1, self.config.max_queued_stores // self.k) - len(self._own))

    @property
    def own_waiting(self) -> int:
        """A publisher's own records waiting for their region's lookup or STOREs."""
        return len(self._own)

    @property
    def queued(self) -> int:
        """STOREs waiting in the queue."""
        return self._queued

    def stats(self) -> dict[str, Any]:
        """Counters for ``stats()["replication"]``: rounds, lookups and STOREs spent,
        the last rounds, the queue, drops by reason."""
        return {
            **self.counts,
            "queued": self._queued,
            "own_waiting": len(self._own),
            "round_running": self._round is not None,
            "next_round_at": self.next_round_at,
            "tracked_keys": len(self._replicated),
            "network_size_estimate": self.routing.estimated_size(),
            "last_rounds": list(self._history),
            "drops": dict(self.drops),
        }


def _after(key: bytes) -> bytes:
    """The smallest byte string greater than ``key`` (to page on from it)."""
    return key + b"\x00"
