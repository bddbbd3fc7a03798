"""The Kademlia routing table, sans-IO (DESIGN §4 "DHT").

Layout: the standard Kademlia tree in its array form (as in BEP 5 and
libtorrent): bucket ``i`` holds the contacts whose IDs share exactly ``i``
leading bits with the local ID, and the last bucket holds everything sharing
at least ``len(buckets) - 1`` bits, the local ID's own range.  Only that last
bucket splits when it is full (the paper's rule "split the bucket whose range
contains the local ID"); the relaxed splitting of other buckets (paper §4.2)
is not done.

Only peers that proved their identity over an authenticated session enter the
table: the single way in is :meth:`RoutingTable.update_verified`, which the
node calls when a peer answered (or asked) over a completed handshake.  The
table never sends anything.  It reports what changed as events
(:class:`PeerAdded`, :class:`PeerRemoved`, :class:`PeerReplaced`) and what it
needs done as actions (:class:`PingNeeded`); the driver pings and reports the
outcome with :meth:`~RoutingTable.on_response` / :meth:`~RoutingTable.on_request_failed`.

Liveness tolerates packet loss and short outages: an entry is replaced by a
verified replacement after ``replace_after_failures`` consecutive misses and
evicted without replacement only after ``max_failures``.

Admission defences (issue 6, DESIGN §4 "DHT"):

* the static puzzle: a node ID that does not solve ``puzzle_difficulty`` is
  refused (``bad-puzzle``), whatever way it arrives;
* IP-prefix diversity: at most ``max_per_prefix_bucket`` entries of one /24
  (IPv4) or /48 (IPv6) per bucket and ``max_per_prefix_table`` per table;
* outbound first: a peer known only from its own unsolicited requests
  (``update_verified(..., inbound=True)``) is not added while fewer than
  ``min(outbound_first, k)`` entries answered requests of ours; it is asked to prove
  itself with a PING back (a :class:`PingNeeded` action, rate-limited), and
  enters when it answers, as an outbound peer;
* reputation: with :attr:`RoutingTable.score` set (the core sets it to its
  :class:`~qdht.dht.Reputation`), a full bucket replaces its lowest-scored
  entry below ``evict_below_score`` with a fresh verified peer first.
"""

from __future__ import annotations

import array
import os
import socket
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any, Final

import attrs

from qdht.dht._config import RoutingConfig
from qdht.dht._rtt import rtt_sample, timeout_from
from qdht.errors import ConfigError, DecodeError
from qdht.identity import puzzle_ok
from qdht.wire import NODE_ID_SIZE, Contact, FieldReader

__all__ = [
    "ID_BITS",
    "PeerAdded",
    "PeerRemoved",
    "PeerReplaced",
    "PingNeeded",
    "RoutingEvent",
    "RoutingTable",
    "bucket_index",
    "distance",
]

#: Bits in a node ID: the XOR metric's keyspace is 2**256.
ID_BITS: Final = 8 * NODE_ID_SIZE
_SPACE: Final = 1 << ID_BITS
#: Version of the :meth:`RoutingTable.to_snapshot` format.
SNAPSHOT_VERSION: Final = 1
#: Slots of the table's prefix counter (2 bytes each).
PREFIX_SLOTS: Final = 1024
#: Most entries a snapshot may hold (256 buckets of k = 20 is far above this).
MAX_SNAPSHOT_ENTRIES: Final = 100_000


def distance(a: bytes, b: bytes) -> int:
    """The Kademlia XOR distance between two node IDs, as an integer."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def bucket_index(local_id: bytes, node_id: bytes) -> int:
    """Shared prefix length of two IDs: the bucket ``node_id`` falls in, unsplit table.

    Returns ``ID_BITS`` for equal IDs.
    """
    return ID_BITS - distance(local_id, node_id).bit_length()


@attrs.frozen
class PeerAdded:
    """A verified peer entered the routing table."""

    contact: Contact


@attrs.frozen
class PeerRemoved:
    """A peer left the routing table; ``reason`` is ``"failures"`` or ``"removed"``."""

    contact: Contact
    reason: str


@attrs.frozen
class PeerReplaced:
    """A peer that stopped answering was replaced by one from the replacement cache."""

    removed: Contact
    added: Contact


@attrs.frozen
class PingNeeded:
    """Action: ping ``contact`` (ping-before-evict) and report the outcome.

    Its bucket is full and a verified replacement is waiting; report the
    answer with :meth:`RoutingTable.on_response` and silence with
    :meth:`RoutingTable.on_request_failed`.
    """

    contact: Contact


RoutingEvent = PeerAdded | PeerRemoved | PeerReplaced | PingNeeded


class _Entry:
    """One contact of the table: slotted, no per-entry dict.

    ``id_int`` is the ID's integer form (the contact may change, its ID
    never does), kept for ``closest()``, which sorts by it: 68 bytes per entry
    against an ``int.from_bytes`` per entry and lookup.
    """

    __slots__ = ("contact", "failures", "id_int", "last_seen", "outbound", "rttvar", "srtt")

    def __init__(self, contact: Contact, last_seen: float) -> None:
        self.contact = contact
        self.id_int = int.from_bytes(contact.node_id, "big")
        self.last_seen = last_seen
        self.failures = 0
        #: It answered a request of ours (not only sent us requests).
        self.outbound = False
        self.srtt: float | None = None
        self.rttvar: float | None = None


class _Bucket:
    """Entries ordered least recently seen first, plus the replacement cache."""

    __slots__ = ("entries", "last_active", "ping_at", "replacements")

    def __init__(self, now: float) -> None:
        self.entries: list[_Entry] = []
        # Most recently seen last.
        self.replacements: list[_Entry] = []
        self.last_active = now
        self.ping_at: float | None = None


def _find(entries: list[_Entry], node_id: bytes) -> int:
    for i, entry in enumerate(entries):
        if entry.contact.node_id == node_id:
            return i
    return -1


def _id_int(entry: _Entry) -> int:
    return entry.id_int


def _check_id(value: object, name: str) -> int:
    if type(value) is not bytes or len(value) != NODE_ID_SIZE:
        raise ConfigError(f"{name} must be {NODE_ID_SIZE} bytes")
    return int.from_bytes(value, "big")


class RoutingTable:
    """A node's Kademlia routing table: k-buckets over the 256-bit XOR metric.

    ``now`` is monotonic seconds, always passed in.  ``rng(n)`` returns ``n``
    random bytes (``os.urandom`` by default) and picks refresh targets.
    """

    def __init__(
        self,
        local_id: bytes,
        *,
        now: float,
        config: RoutingConfig | None = None,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._local = _check_id(local_id, "local_id")
        self.local_id = local_id
        self.config = config if config is not None else RoutingConfig()
        self._rng = rng
        self._buckets = [_Bucket(now)]
        #: Every entry (not replacements) by node ID: finding a peer costs a
        #: dict lookup, not a scan of its bucket (a node does it per message).
        self._index: dict[bytes, _Entry] = {}
        #: min(bucket.last_active) until a bucket holding it is touched (None:
        #: stale); next_refresh_time runs after every event a node handles.
        self._idle_since: float | None = now
        self._size = 0
        # Entries per IP prefix (replacements not counted), as a counting hash
        # table: a slot's count bounds any one prefix's count from above, and an
        # exact count (a scan) is taken only when the bound reaches a limit.
        # 2 KiB instead of a dict of prefixes (~16 KiB at 200 entries).
        self._prefix_slots = array.array("H", bytes(2 * PREFIX_SLOTS))
        self._drops: dict[str, int] = {}
        # RTT over every peer that answered: the timeout for peers without their own.
        self._net_srtt: float | None = None
        self._net_rttvar: float | None = None
        self._counts = {
            "added": 0,
            "removed": 0,
            "replaced": 0,
            "low-score-replaced": 0,
            "splits": 0,
            "pings": 0,
            "random_walks": 0,
        }
        # Entries that answered a request of ours (outbound first).
        self._outbound = 0
        # Token bucket of PINGs back to unsolicited requesters while filling.
        self._checks = float(self.config.inbound_check_burst)
        self._checks_at = now
        walk = self.config.random_walk_interval
        self._walk_at = float("inf") if walk is None else now + walk
        #: ``score(node_id, now)``: the peer's reputation (set by the core); entries
        #: scored below ``evict_below_score`` are replaced first in a full bucket.
        self.score: Callable[[bytes, float], float] | None = None
        #: ``any_below(threshold)``: False only if no peer scores below ``threshold``
        #: (set by the core with ``score``): then a full bucket has no entry to
        #: replace for its score, and its entries are not scored one by one.
        self.any_below: Callable[[float], bool] | None = None
        #: estimated_size() until the entries or their misses change (None: stale).
        self._estimate: float | None = None
        #: The estimate as last computed (rough_size()).
        self._rough: float | None = None
        #: The XOR distance within which a change of entries invalidates _estimate.
        self._estimate_reach = _SPACE

    # -- queries -----------------------------------------------------------------

    def __len__(self) -> int:
        return self._size

    def __contains__(self, node_id: object) -> bool:
        if type(node_id) is not bytes or len(node_id) != NODE_ID_SIZE:
            return False
        return node_id in self._index

    def __iter__(self) -> Iterator[Contact]:
        for bucket in self._buckets:
            for entry in bucket.entries:
                yield entry.contact

    @property
    def bucket_count(self) -> int:
        return len(self._buckets)

    def bucket_contacts(self, index: int) -> list[Contact]:
        """The contacts of bucket ``index``, least recently seen first."""
        return [entry.contact for entry in self._buckets[index].entries]

    def replacement_contacts(self, index: int) -> list[Contact]:
        """The replacement cache of bucket ``index``, most recently seen last."""
        return [entry.contact for entry in self._buckets[index].replacements]

    def closest(
        self, target: bytes, n: int | None = None, *, exclude: Collection[bytes] = ()
    ) -> list[Contact]:
        """The ``n`` (default k) contacts closest to ``target``, nearest first.

        Contacts that missed their last request are only used to fill up when
        too few answering ones exist.  Buckets are visited in order of distance
        from ``target``, so only the buckets that can hold the answer are sorted.
        """
        t = _check_id(target, "target")
        if n is None:
            n = self.config.k
        healthy: list[_Entry] = []
        questionable: list[_Entry] = []
        for group in self._groups_by_distance(t):
            if len(group) > 1:
                group.sort(key=lambda e: e.id_int ^ t)
            for entry in group:
                if exclude and entry.contact.node_id in exclude:
                    continue
                (questionable if entry.failures else healthy).append(entry)
            if len(healthy) >= n:
                break
        chosen = healthy[:n]
        if len(chosen) < n:
            chosen.extend(questionable[: n - len(chosen)])
        return [entry.contact for entry in chosen]

    def count_closer(self, target: bytes, limit: int, *, exclude: bytes | None = None) -> int:
        """How many entries without missed replies are closer to ``target`` than
        this node itself, not counting ``exclude``; counting stops at ``limit``.

        Without sorting anything: an entry of bucket ``i`` (above the last)
        differs from the local ID first at bit ``i``, so the whole bucket is
        closer to ``target`` than we are exactly when ``target`` differs from
        the local ID at that bit; only the last bucket is compared entry by entry.
        """
        t = _check_id(target, "target")
        x = t ^ self._local
        buckets = self._buckets
        last = len(buckets) - 1
        count = 0
        for i in range(last):
            if x >> (ID_BITS - 1 - i) & 1:
                for entry in buckets[i].entries:
                    if not entry.failures and entry.contact.node_id != exclude:
                        count += 1
                        if count >= limit:
                            return count
        for entry in buckets[last].entries:
            if not entry.failures and entry.id_int ^ t < x and entry.contact.node_id != exclude:
                count += 1
                if count >= limit:
                    return count
        return count

    def _groups_by_distance(self, t: int) -> Iterator[list[_Entry]]:
        """Entries in groups of strictly increasing distance from ``t``."""
        buckets = self._buckets
        last = len(buckets) - 1
        c = min(ID_BITS - (t ^ self._local).bit_length(), last)
        yield list(buckets[c].entries)
        if c < last:
            # Buckets deeper than c all share exactly c bits with t.
            yield [entry for bucket in buckets[c + 1 :] for entry in bucket.entries]
        for i in range(c - 1, -1, -1):
            if buckets[i].entries:
                yield list(buckets[i].entries)

    def rtt(self, node_id: bytes) -> float | None:
        """The smoothed RTT of ``node_id`` (None: not in the table, or never measured)."""
        entry = self._entry(node_id) if node_id in self else None
        return None if entry is None else entry.srtt

    def timeout_for(self, node_id: bytes) -> float:
        """The request timeout for a peer: RFC 6298 from its RTTs, backed off per miss.

        Peers without measurements of their own (most peers a lookup meets are
        not in the table) get the timeout of the RTT measured over all peers,
        or ``config.initial_timeout`` before any measurement.
        """
        cfg = self.config
        _check_id(node_id, "node_id")
        entry = self._entry(node_id)
        if entry is None or entry.srtt is None:
            srtt, rttvar, failures = self._net_srtt, self._net_rttvar, 0
            if entry is not None:
                failures = entry.failures
        else:
            srtt, rttvar, failures = entry.srtt, entry.rttvar, entry.failures
        return timeout_from(
            srtt,
            rttvar,
            failures,
            initial=cfg.initial_timeout,
            minimum=cfg.min_timeout,
            maximum=cfg.max_timeout,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle, recounting the prefix slots.

        A slot is ``hash(prefix) % PREFIX_SLOTS``, and ``hash`` of bytes is
        seeded per process (PYTHONHASHSEED): a table pickled in one process
        (a simulation checkpoint) has its counts in the wrong slots in the
        next, so they are counted again from the entries.
        """
        self.__dict__.update(state)
        self._index = {e.contact.node_id: e for b in self._buckets for e in b.entries}
        self._prefix_slots = array.array("H", bytes(2 * PREFIX_SLOTS))
        for bucket in self._buckets:
            for entry in bucket.entries:
                self._count_prefix(self._prefix(entry.contact), 1)

    def stats(self) -> dict[str, Any]:
        """Counters for ``node.stats()``: size, buckets, events, drops by reason."""
        return {
            "size": self._size,
            "outbound": self._outbound,
            "buckets": len(self._buckets),
            "replacements": sum(len(b.replacements) for b in self._buckets),
            "questionable": sum(1 for b in self._buckets for e in b.entries if e.failures),
            **self._counts,
            "drops": dict(self._drops),
        }

    # -- verified input ------------------------------------------------------------

    def update_verified(
        self, contact: Contact, now: float, rtt: float | None = None, *, inbound: bool = False
    ) -> list[RoutingEvent]:
        """Record that ``contact`` talked to us over an authenticated session.

        ``inbound`` is true when it only sent us a request (unsolicited), false
        when it answered a request of ours.  Known peers move to the tail of
        their bucket (most recently seen) with their miss count reset.  A new
        peer is added if its bucket has room (the local side's bucket splits
        when full); otherwise it waits in the bucket's replacement cache and, if
        the least recently seen entry looks stale, a :class:`PingNeeded` action
        asks the driver to check that entry.  A new peer whose ID does not solve
        the puzzle is refused; so is a new inbound peer while the table is
        still filling from outbound answers (outbound first), which is then
        answered with a :class:`PingNeeded` for it at a bounded rate.
        """
        if not isinstance(contact, Contact):
            raise ConfigError(f"contact must be a qdht.wire.Contact, got {type(contact).__name__}")
        id_int = int.from_bytes(contact.node_id, "big")
        if id_int == self._local:
            self._drop("self")
            return []
        bucket = self._bucket_for(id_int)
        i = self._position(bucket, contact.node_id)
        if i >= 0:
            entry = self._touch(bucket, i, now, rtt, outbound=not inbound)
            if entry.contact != contact:
                self._change_contact(bucket, entry, contact)
            return []
        cfg = self.config
        if cfg.puzzle_difficulty and not puzzle_ok(contact.node_id, cfg.puzzle_difficulty):
            self._drop("bad-puzzle")
            return []
        if inbound and self._outbound < min(cfg.outbound_first, cfg.k):
            self._drop("inbound-before-outbound")
            return self._inbound_check(contact, now)
        r = _find(bucket.replacements, contact.node_id)
        if r >= 0:
            entry = bucket.replacements.pop(r)
            entry.contact = contact
        else:
            entry = _Entry(contact, now)
        entry.last_seen = now
        entry.failures = 0
        entry.outbound = entry.outbound or not inbound
        if rtt is not None:
            self._sample(entry, rtt)
        return self._insert(entry, now)

    def _inbound_check(self, contact: Contact, now: float) -> list[RoutingEvent]:
        cfg = self.config
        self._checks = min(
            float(cfg.inbound_check_burst),
            self._checks + (now - self._checks_at) / cfg.inbound_check_interval,
        )
        self._checks_at = now
        if self._checks < 1.0:
            return []
        self._checks -= 1.0
        self._counts["pings"] += 1
        return [PingNeeded(contact)]

    @property
    def outbound_count(self) -> int:
        """Entries that answered a request of ours (see ``outbound_first``)."""
        return self._outbound

    def estimated_size(self) -> float:
        """The network size the table's neighbourhood suggests (this node included).

        With the m = min(k, size) nearest entries, the m-th nearest lies at XOR
        distance about m / n of the ID space: n ≈ m · 2^256 / distance.  The
        deepest buckets know the neighbourhood completely, so this is the best
        local estimate; an eclipse of the node's own neighbourhood inflates it.
        """
        if self._estimate is not None:
            return self._estimate
        m = min(self.config.k, self._size)
        if m == 0:
            return 1.0
        nearest = self.closest(self.local_id, m)
        far = distance(self.local_id, nearest[-1].node_id)
        self._estimate = self._rough = max(m + 1.0, m * float(1 << ID_BITS) / (far + 1))
        # Entries farther than the m-th nearest cannot change the estimate, as
        # long as the m nearest are m answering entries (closest() fills up
        # with entries that missed only when too few answering ones exist).
        index = self._index
        whole = m < self.config.k or any(index[c.node_id].failures for c in nearest)
        self._estimate_reach = _SPACE if whole else far
        return self._estimate

    def rough_size(self) -> float:
        """:meth:`estimated_size` as last computed, not recomputed after the entries
        changed since: for callers that need only its order of magnitude (one
        newcomer near us moves it by about 1/k), after every change."""
        rough = self._rough
        return self.estimated_size() if rough is None else rough

    def _stale_estimate(self, entry: _Entry) -> None:
        """``entry`` was added, removed, missed or answered after missing."""
        if entry.id_int ^ self._local <= self._estimate_reach:
            self._estimate = None

    def on_response(self, node_id: bytes, now: float, rtt: float | None = None) -> None:
        """A request to ``node_id`` was answered: reset its misses, feed its RTT.

        Answers from peers outside the table still feed the network-wide RTT
        that sets timeouts for peers without measurements of their own.
        """
        id_int = _check_id(node_id, "node_id")
        bucket = self._bucket_for(id_int)
        i = self._position(bucket, node_id)
        if i >= 0:
            self._touch(bucket, i, now, rtt, outbound=True)
            return
        r = _find(bucket.replacements, node_id)
        entry = None
        if r >= 0:
            entry = bucket.replacements.pop(r)
            bucket.replacements.append(entry)
            entry.last_seen = now
            entry.failures = 0
            entry.outbound = True
        if rtt is not None:
            self._sample(entry, rtt)

    def on_request_failed(self, node_id: bytes, now: float) -> list[RoutingEvent]:
        """A request to ``node_id`` timed out or failed: count a miss.

        After ``replace_after_failures`` consecutive misses the entry is replaced
        by the freshest fitting contact of its replacement cache; after
        ``max_failures`` it is evicted even without one.  A replacement that
        misses a request leaves the cache.
        """
        id_int = _check_id(node_id, "node_id")
        bucket = self._bucket_for(id_int)
        i = self._position(bucket, node_id)
        if i < 0:
            r = _find(bucket.replacements, node_id)
            if r >= 0:
                del bucket.replacements[r]
            return []
        entry = bucket.entries[i]
        entry.failures += 1
        self._stale_estimate(entry)  # closest() prefers entries without misses
        if i == 0:
            bucket.ping_at = None
        cfg = self.config
        if entry.failures >= cfg.max_failures or (
            entry.failures >= cfg.replace_after_failures and bucket.replacements
        ):
            return self._evict(bucket, i, "failures")
        return []

    def remove(self, node_id: bytes, now: float) -> list[RoutingEvent]:
        """Drop ``node_id`` from the table and replacement cache (e.g. misbehaviour)."""
        id_int = _check_id(node_id, "node_id")
        bucket = self._bucket_for(id_int)
        r = _find(bucket.replacements, node_id)
        if r >= 0:
            del bucket.replacements[r]
        i = self._position(bucket, node_id)
        if i < 0:
            return []
        return self._evict(bucket, i, "removed")

    # -- refresh --------------------------------------------------------------------

    def buckets_needing_refresh(self, now: float) -> list[bytes]:
        """Random lookup targets, one per bucket idle for ``refresh_interval``.

        Returning a target counts as refreshing its bucket (so each idle bucket
        is returned once per interval); the driver runs a lookup for each.
        A random walk's target, when one is due, comes last.
        """
        interval = self.config.refresh_interval
        targets = []
        for index, bucket in enumerate(self._buckets):
            if now >= bucket.last_active + interval:  # the sum next_refresh_time uses
                targets.append(self.random_id_in_bucket(index))
                self._active(bucket, now)
        walk = self.config.random_walk_interval
        if walk is not None and now >= self._walk_at:
            # A random walk: a uniformly random target, whatever the buckets' state.
            targets.append(self._rng(NODE_ID_SIZE))
            self._walk_at = now + walk
            self._counts["random_walks"] += 1
        return targets

    def next_refresh_time(self) -> float:
        """When :meth:`buckets_needing_refresh` will next return something
        (an idle bucket's refresh or the next random walk)."""
        idle = self._idle_since
        if idle is None:
            idle = self._idle_since = min(b.last_active for b in self._buckets)
        return min(idle + self.config.refresh_interval, self._walk_at)

    def _active(self, bucket: _Bucket, now: float) -> None:
        """``bucket`` was active at ``now``."""
        if bucket.last_active == self._idle_since:
            self._idle_since = None  # it may have been the idlest
        bucket.last_active = now

    def random_id_in_bucket(self, index: int) -> bytes:
        """A random node ID in bucket ``index``'s range (from the injected rng)."""
        last = len(self._buckets) - 1
        if not 0 <= index <= last:
            raise ConfigError(f"index must be in 0..{last}, got {index}")
        r = int.from_bytes(self._rng(NODE_ID_SIZE), "big")
        high = ((1 << index) - 1) << (ID_BITS - index)
        value = self._local & high
        if index < last:
            bit = 1 << (ID_BITS - 1 - index)
            value |= (~self._local & bit) | (r & (bit - 1))
        else:
            value |= r & ((1 << (ID_BITS - index)) - 1)
        return value.to_bytes(NODE_ID_SIZE, "big")

    # -- persistence ------------------------------------------------------------------

    def to_snapshot(self, now: float) -> dict[str, Any]:
        """The table as plain CBOR-able data (ages, not clock readings, so it
        survives a restart): entries and replacements with their RTT state."""
        entries: list[dict[str, Any]] = []
        replacements: list[dict[str, Any]] = []
        for bucket in self._buckets:
            entries.extend(_entry_to_cbor(e, now) for e in bucket.entries)
            replacements.extend(_entry_to_cbor(e, now) for e in bucket.replacements)
        return {
            "version": SNAPSHOT_VERSION,
            "local_id": self.local_id,
            "buckets": len(self._buckets),
            "entries": entries,
            "replacements": replacements,
        }

    @classmethod
    def from_snapshot(
        cls,
        data: Any,
        *,
        now: float,
        local_id: bytes | None = None,
        config: RoutingConfig | None = None,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> RoutingTable:
        """Rebuild a table from :meth:`to_snapshot` data; raise ``DecodeError`` if malformed.

        Restored entries count one miss each: they answered before the restart
        but not yet since, so they are used after fresh contacts and are replaced
        first.  Limits and splitting apply as for new peers.  With ``local_id``
        (the node's current ID) a table saved under another ID is re-bucketed
        around the new one.
        """
        reader = FieldReader(data, "$")
        version = reader.uint("version")
        if version != SNAPSHOT_VERSION:
            raise DecodeError("field-value", "$.version", f"unsupported version {version}")
        saved_id = reader.bytes_("local_id", size=NODE_ID_SIZE)
        buckets = reader.uint("buckets", min_value=1, max_value=ID_BITS)
        entries = reader.array("entries", _entry_from_cbor, max_len=MAX_SNAPSHOT_ENTRIES)
        replacements = reader.array("replacements", _entry_from_cbor, max_len=MAX_SNAPSHOT_ENTRIES)
        reader.finish()
        if local_id is None:
            local_id = saved_id
        table = cls(local_id, now=now, config=config, rng=rng)
        if local_id == saved_id:
            # Same bucket layout as before, whatever order the entries come back in.
            for _ in range(buckets - 1):
                table._split_last(now)
        table._restore(replacements, now, replacement=True)
        table._restore(entries, now, replacement=False)
        return table

    def _restore(self, items: Iterable[_Restored], now: float, *, replacement: bool) -> None:
        for contact, age, failures, srtt, rttvar in sorted(items, key=lambda x: -x[1]):
            id_int = int.from_bytes(contact.node_id, "big")
            if id_int == self._local or self._entry(contact.node_id) is not None:
                continue
            difficulty = self.config.puzzle_difficulty
            if difficulty and not puzzle_ok(contact.node_id, difficulty):
                self._drop("bad-puzzle")
                continue
            entry = _Entry(contact, now - age)
            entry.failures = max(failures, 1)
            entry.srtt, entry.rttvar = srtt, rttvar
            if replacement:
                bucket = self._bucket_for(id_int)
                r = _find(bucket.replacements, contact.node_id)
                if r >= 0:
                    del bucket.replacements[r]
                self._add_replacement(bucket, entry)
            else:
                self._insert(entry, now, restoring=True)

    # -- internals ---------------------------------------------------------------------

    def _drop(self, reason: str) -> None:
        self._drops[reason] = self._drops.get(reason, 0) + 1

    def _bucket_for(self, id_int: int) -> _Bucket:
        last = len(self._buckets) - 1
        return self._buckets[min(ID_BITS - (id_int ^ self._local).bit_length(), last)]

    def _entry(self, node_id: bytes) -> _Entry | None:
        return self._index.get(node_id)

    def _position(self, bucket: _Bucket, node_id: bytes) -> int:
        """Where ``node_id``'s entry is in ``bucket`` (its own bucket), or -1."""
        entry = self._index.get(node_id)
        return -1 if entry is None else bucket.entries.index(entry)

    def _touch(
        self, bucket: _Bucket, i: int, now: float, rtt: float | None, *, outbound: bool
    ) -> _Entry:
        """The entry at ``i`` answered: move it to the tail, reset misses, feed RTT."""
        entry = bucket.entries.pop(i)
        if outbound and not entry.outbound:
            entry.outbound = True
            self._outbound += 1
        bucket.entries.append(entry)
        if i == 0 or entry.failures:
            bucket.ping_at = None
        if entry.failures:
            self._stale_estimate(entry)
        entry.last_seen = now
        entry.failures = 0
        self._active(bucket, now)
        if rtt is not None:
            self._sample(entry, rtt)
        return entry

    def _sample(self, entry: _Entry | None, rtt: float) -> None:
        if not rtt >= 0:
            raise ConfigError(f"rtt must be a non-negative number of seconds, got {rtt!r}")
        self._net_srtt, self._net_rttvar = rtt_sample(self._net_srtt, self._net_rttvar, rtt)
        if entry is not None:
            entry.srtt, entry.rttvar = rtt_sample(entry.srtt, entry.rttvar, rtt)

    def _prefix(self, contact: Contact) -> bytes | None:
        """The contact's /24 (IPv4) or /48 (IPv6) as a key; None if exempt."""
        return _prefix_key(contact.address.host, self.config.exempt_loopback)

    def _prefix_allowed(
        self, bucket: _Bucket, prefix: bytes | None, *, ignore: _Entry | None = None
    ) -> str | None:
        """The drop reason if one more entry from ``prefix`` breaks a limit."""
        if prefix is None:
            return None
        cfg = self.config
        bound = self._prefix_slots[hash(prefix) % PREFIX_SLOTS]
        if bound == 0:
            return None
        if bound >= cfg.max_per_prefix_table:
            in_table = sum(
                1
                for b in self._buckets
                for e in b.entries
                if e is not ignore and self._prefix(e.contact) == prefix
            )
            if in_table >= cfg.max_per_prefix_table:
                return "prefix-limit-table"
        in_bucket = sum(
            1 for e in bucket.entries if e is not ignore and self._prefix(e.contact) == prefix
        )
        if in_bucket >= cfg.max_per_prefix_bucket:
            return "prefix-limit-bucket"
        return None

    def _count_prefix(self, prefix: bytes | None, delta: int) -> None:
        if prefix is None:
            return
        self._prefix_slots[hash(prefix) % PREFIX_SLOTS] += delta

    def _change_contact(self, bucket: _Bucket, entry: _Entry, contact: Contact) -> None:
        """A known peer now answers at other addresses (it proved its identity)."""
        old, new = self._prefix(entry.contact), self._prefix(contact)
        if old != new:
            reason = self._prefix_allowed(bucket, new, ignore=entry)
            if reason is not None:
                self._drop(reason)
                return
            self._count_prefix(old, -1)
            self._count_prefix(new, +1)
        entry.contact = contact

    def _split_last(self, now: float) -> None:
        old = self._buckets[-1]
        depth = len(self._buckets) - 1
        new = _Bucket(now)
        new.last_active = old.last_active
        bit = 1 << (ID_BITS - 1 - depth)
        stay: list[_Entry] = []
        for entry in old.entries:
            (new.entries if (_id_int(entry) ^ self._local) & bit == 0 else stay).append(entry)
        old.entries = stay
        stay_r: list[_Entry] = []
        for entry in old.replacements:
            (new.replacements if (_id_int(entry) ^ self._local) & bit == 0 else stay_r).append(
                entry
            )
        old.replacements = stay_r
        old.ping_at = None
        self._buckets.append(new)
        self._counts["splits"] += 1

    def _insert(self, entry: _Entry, now: float, *, restoring: bool = False) -> list[RoutingEvent]:
        cfg = self.config
        id_int = _id_int(entry)
        bucket = self._bucket_for(id_int)
        while (
            len(bucket.entries) >= cfg.k
            and bucket is self._buckets[-1]
            and len(self._buckets) < ID_BITS
        ):
            self._split_last(now)
            bucket = self._bucket_for(id_int)
        if not restoring:
            self._active(bucket, now)
        prefix = self._prefix(entry.contact)
        if len(bucket.entries) < cfg.k:
            reason = self._prefix_allowed(bucket, prefix)
            if reason is not None:
                self._drop(reason)
                return []
            self._place(bucket, entry, prefix)
            self._counts["added"] += 1
            return [PeerAdded(entry.contact)]
        # Full and not splittable.  A fresh verified peer takes the place of the
        # worst-scored entry below evict_below_score, or else of an entry that
        # already missed enough replies to be replaceable.
        score = self.score
        if (
            score is not None
            and not restoring
            and (self.any_below is None or self.any_below(cfg.evict_below_score))
        ):
            worst, worst_score = -1, cfg.evict_below_score
            for i, old in enumerate(bucket.entries):
                value = score(old.contact.node_id, now)
                if value < worst_score and self._prefix_allowed(bucket, prefix, ignore=old) is None:
                    worst, worst_score = i, value
            if worst >= 0:
                removed = self._remove_at(bucket, worst)
                self._place(bucket, entry, prefix)
                self._counts["replaced"] += 1
                self._counts["low-score-replaced"] += 1
                return [PeerReplaced(removed.contact, entry.contact)]
        for i, old in enumerate(bucket.entries):
            if old.failures >= cfg.replace_after_failures and (
                self._prefix_allowed(bucket, prefix, ignore=old) is None
            ):
                removed = self._remove_at(bucket, i)
                self._place(bucket, entry, prefix)
                self._counts["replaced"] += 1
                return [PeerReplaced(removed.contact, entry.contact)]
        if not self._add_replacement(bucket, entry):
            return []
        head = bucket.entries[0]
        if restoring or not (head.failures or now - head.last_seen >= cfg.stale_after):
            return []
        if bucket.ping_at is not None and now - bucket.ping_at < cfg.ping_interval:
            return []
        bucket.ping_at = now
        self._counts["pings"] += 1
        return [PingNeeded(head.contact)]

    def _add_replacement(self, bucket: _Bucket, entry: _Entry) -> bool:
        cfg = self.config
        if cfg.replacement_size == 0:
            self._drop("bucket-full")
            return False
        prefix = self._prefix(entry.contact)
        if prefix is not None:
            same = [
                i for i, e in enumerate(bucket.replacements) if self._prefix(e.contact) == prefix
            ]
            if len(same) >= cfg.max_per_prefix_bucket:
                # Keep the freshest few from one prefix: drop that prefix's oldest.
                del bucket.replacements[same[0]]
        bucket.replacements.append(entry)
        if len(bucket.replacements) > cfg.replacement_size:
            del bucket.replacements[0]
            self._drop("replacement-overflow")
        return True

    def _place(self, bucket: _Bucket, entry: _Entry, prefix: bytes | None) -> None:
        """Insert keeping least-recently-seen-first order."""
        entries = bucket.entries
        i = len(entries)
        while i > 0 and entries[i - 1].last_seen > entry.last_seen:
            i -= 1
        entries.insert(i, entry)
        self._index[entry.contact.node_id] = entry
        self._count_prefix(prefix, +1)
        self._size += 1
        self._stale_estimate(entry)
        self._outbound += entry.outbound

    def _remove_at(self, bucket: _Bucket, i: int) -> _Entry:
        entry = bucket.entries.pop(i)
        del self._index[entry.contact.node_id]
        self._count_prefix(self._prefix(entry.contact), -1)
        self._size -= 1
        self._stale_estimate(entry)
        self._outbound -= entry.outbound
        if i == 0:
            bucket.ping_at = None
        return entry

    def _evict(self, bucket: _Bucket, i: int, reason: str) -> list[RoutingEvent]:
        removed = self._remove_at(bucket, i)
        # Promote the freshest replacement that fits the prefix limits.
        for r in range(len(bucket.replacements) - 1, -1, -1):
            candidate = bucket.replacements[r]
            prefix = self._prefix(candidate.contact)
            if self._prefix_allowed(bucket, prefix) is None:
                del bucket.replacements[r]
                self._place(bucket, candidate, prefix)
                self._counts["replaced"] += 1
                return [PeerReplaced(removed.contact, candidate.contact)]
        self._counts["removed"] += 1
        return [PeerRemoved(removed.contact, reason)]


def _prefix_key(host: str, exempt_loopback: bool) -> bytes | None:
    """The /24 (IPv4) or /48 (IPv6) of a canonical IP literal, as a dict key.

    Computed on demand (``inet_pton`` is cheap) rather than stored per entry,
    to keep entries small.  IPv4-mapped IPv6 counts as IPv4.
    """
    if ":" not in host:
        if exempt_loopback and host.startswith("127."):
            return None
        return socket.inet_pton(socket.AF_INET, host)[:3]
    packed = socket.inet_pton(socket.AF_INET6, host)
    if packed[:12] == _V4_MAPPED:
        if exempt_loopback and packed[12] == 127:
            return None
        return packed[12:15]
    if exempt_loopback and packed == _V6_LOOPBACK:
        return None
    return packed[:6]


_V4_MAPPED: Final = bytes(10) + b"\xff\xff"
_V6_LOOPBACK: Final = bytes(15) + b"\x01"


_Restored = tuple[Contact, float, int, float | None, float | None]


def _entry_to_cbor(entry: _Entry, now: float) -> dict[str, Any]:
    item: dict[str, Any] = {
        "contact": entry.contact.to_cbor(),
        "age_ms": max(0, round((now - entry.last_seen) * 1000)),
        "failures": entry.failures,
    }
    if entry.srtt is not None and entry.rttvar is not None:
        item["srtt_us"] = round(entry.srtt * 1e6)
        item["rttvar_us"] = round(entry.rttvar * 1e6)
    return item


def _entry_from_cbor(obj: Any, path: str) -> _Restored:
    reader = FieldReader(obj, path)
    contact = reader.nested("contact", Contact.from_cbor)
    age_ms = reader.uint("age_ms")
    failures = reader.uint("failures", max_value=2**16)
    srtt_us = reader.uint("srtt_us", optional=True, max_value=2**40)
    rttvar_us = reader.uint("rttvar_us", optional=True, max_value=2**40)
    reader.finish()
    if (srtt_us is None) != (rttvar_us is None):
        raise DecodeError("missing-field", path, "srtt_us and rttvar_us go together")
    srtt = None if srtt_us is None else srtt_us / 1e6
    rttvar = None if rttvar_us is None else rttvar_us / 1e6
    return contact, age_ms / 1000, failures, srtt, rttvar
