"""Tunables of the DHT core: routing table, lookups, requests, reputation,
records, replication and the record store's quotas (DESIGN §4 "DHT").

All are frozen attrs values with documented defaults; the node-level
configuration embeds them.  Every limit that bounds memory is named here.
The modules that use them re-export them (``ReplicationConfig`` from
``_replication``, ``StoreLimits`` from ``_recordstore``); keeping the
config classes apart from the code that runs per message also lets that
code be compiled with mypyc (``qdht-bench durability``), which takes
``attrs.field`` defaults in a compiled module for class attributes.
"""

from __future__ import annotations

from typing import Final

import attrs

from qdht import validators
from qdht.errors import ConfigError

__all__ = [
    "LookupConfig",
    "RecordConfig",
    "ReplicationConfig",
    "ReputationConfig",
    "RoutingConfig",
    "RpcConfig",
    "StoreLimits",
]

_MiB: Final = 1024 * 1024


@attrs.frozen
class RoutingConfig:
    """Parameters of the Kademlia routing table (``qdht.dht.RoutingTable``)."""

    #: Bucket size: the number of contacts per bucket (Kademlia's k).
    k: int = attrs.field(default=20, validator=validators.positive_int)
    #: Verified contacts remembered per bucket as replacements for entries that stop
    #: answering (most recently seen kept).
    replacement_size: int = attrs.field(default=4, validator=validators.non_negative_int)
    #: Consecutive missed replies after which an entry is evicted even when no
    #: replacement is waiting.  Several misses are tolerated on purpose: evicting on
    #: the first miss makes tables collapse under churn and packet loss.
    max_failures: int = attrs.field(default=5, validator=validators.positive_int)
    #: Consecutive missed replies after which an entry is replaced when its bucket
    #: holds a verified replacement (ping-before-evict: a ping that goes unanswered
    #: counts as one miss).
    replace_after_failures: int = attrs.field(default=2, validator=validators.positive_int)
    #: A full bucket asks to ping its least recently seen entry only when that entry
    #: has not been heard from for this long (seconds) or has missed a reply.
    stale_after: float = attrs.field(default=900.0, validator=validators.positive)
    #: After asking for a ping, do not ask again for the same bucket for this long
    #: (seconds) unless the ping's outcome was reported.
    ping_interval: float = attrs.field(default=30.0, validator=validators.positive)
    #: A bucket none of whose contacts answered for this long (seconds) is refreshed
    #: with a lookup for a random ID in its range.
    refresh_interval: float = attrs.field(default=3600.0, validator=validators.positive)
    #: Most entries of one bucket from one IP prefix (/24 IPv4, /48 IPv6).
    max_per_prefix_bucket: int = attrs.field(default=2, validator=validators.positive_int)
    #: Most entries of the whole table from one IP prefix (/24 IPv4, /48 IPv6).
    max_per_prefix_table: int = attrs.field(default=10, validator=validators.positive_int)
    #: Loopback addresses (127.0.0.0/8, ::1) are exempt from the prefix limits, so a
    #: test network on one host works.  Set to False to apply the limits to them.
    exempt_loopback: bool = True
    #: Request timeout (seconds) for a peer without round-trip measurements
    #: (RFC 6298 §2.1 uses 1 s).
    initial_timeout: float = attrs.field(default=1.0, validator=validators.positive)
    #: Lower clamp of the per-peer timeout (seconds).
    min_timeout: float = attrs.field(default=0.2, validator=validators.positive)
    #: Upper clamp of the per-peer timeout, backoff included (seconds).
    max_timeout: float = attrs.field(default=5.0, validator=validators.positive)
    #: The network's static puzzle difficulty (03-identity.md §4): a peer whose node
    #: ID does not solve it never enters the table (counted as ``bad-puzzle``).  The
    #: session layer checks it at the handshake already; the table checks again so
    #: that no other way in (snapshots, a driver without sessions) skips it.  0
    #: disables the check; a node sets its ``Config.puzzle_difficulty`` here.
    puzzle_difficulty: int = attrs.field(default=0, validator=validators.non_negative_int)
    #: Outbound first: until the table holds this many peers that answered *our*
    #: requests, a peer known only from its own unsolicited requests is not added
    #: (it is answered, and asked to prove itself with a PING back at the rate
    #: below).  0 admits unsolicited requesters at once (plain Kademlia).  The
    #: threshold is at most ``k``: a network smaller than ``outbound_first`` + 1
    #: nodes (a ``k`` = 5 demo of 20) could never reach it, and every requester
    #: would stay out of the table for good.
    outbound_first: int = attrs.field(default=20, validator=validators.non_negative_int)
    #: While the table is still filling (``outbound_first``), PINGs back to
    #: unsolicited requesters: this many at once ...
    inbound_check_burst: int = attrs.field(default=20, validator=validators.positive_int)
    #: ... then one per this many seconds.
    inbound_check_interval: float = attrs.field(default=10.0, validator=validators.positive)
    #: A random-walk lookup (a uniformly random target) this often (seconds), so the
    #: table keeps learning nodes outside its own neighbourhood; ``None`` disables.
    #: Hourly, like the idle-bucket refresh (``02-dht-rpc.md`` §8): every 15 minutes
    #: doubled the DHT's traffic at 30 % hourly churn and kept no record better.
    random_walk_interval: float | None = attrs.field(
        default=3600.0, validator=validators.optional(validators.positive)
    )
    #: A full bucket replaces an entry whose reputation score is below this at once
    #: when a fresh verified peer arrives (lowest score first).
    evict_below_score: float = attrs.field(default=-10.0, validator=validators.number)

    def __attrs_post_init__(self) -> None:
        if self.puzzle_difficulty > 64:
            raise ConfigError("puzzle_difficulty must be at most 64")
        if self.min_timeout > self.max_timeout:
            raise ConfigError("min_timeout must not exceed max_timeout")
        if not self.min_timeout <= self.initial_timeout <= self.max_timeout:
            raise ConfigError("initial_timeout must lie between min_timeout and max_timeout")
        if self.replace_after_failures > self.max_failures:
            raise ConfigError("replace_after_failures must not exceed max_failures")
        if self.max_per_prefix_bucket > self.max_per_prefix_table:
            raise ConfigError("max_per_prefix_bucket must not exceed max_per_prefix_table")


@attrs.frozen
class LookupConfig:
    """Parameters of one iterative lookup (``qdht.dht.Lookup``)."""

    #: The lookup ends when the k closest nodes seen (failed ones excluded) answered.
    k: int = attrs.field(default=20, validator=validators.positive_int)
    #: Requests kept in flight per path (not lock-step rounds).
    alpha: int = attrs.field(default=3, validator=validators.positive_int)
    #: Disjoint paths (S/Kademlia); 1 is plain Kademlia.  A node queried by one path
    #: is never queried by another.
    disjoint_paths: int = attrs.field(default=1, validator=validators.positive_int)
    #: A request unanswered for this long (seconds) is "slow": it stops counting
    #: against ``alpha`` (up to ``max_slow_extra`` extra requests per path), the way
    #: Mainline DHT implementations keep lookups moving past slow peers.  ``None``
    #: disables this.  The caller still reports the request's timeout with
    #: ``on_failure`` when its per-peer timeout expires.
    slow_after: float | None = attrs.field(
        default=1.0, validator=validators.optional(validators.positive)
    )
    #: Extra requests per path allowed beyond ``alpha`` while requests are slow.
    max_slow_extra: int = attrs.field(default=1, validator=validators.non_negative_int)
    #: Most contacts taken from one response; the rest are dropped and counted.
    max_contacts_per_response: int = attrs.field(default=20, validator=validators.positive_int)
    #: Most candidates remembered per path; the farthest unqueried ones are
    #: forgotten first.
    max_candidates: int = attrs.field(default=200, validator=validators.positive_int)
    #: A path ends when this many of its closest candidates (failed ones excluded)
    #: have answered; ``None`` means k.  Larger windows cost RPCs and resist
    #: misrouting: liars that answer with each other fill a k-sized window with
    #: themselves, and a wider one reaches past them to honest nodes.
    window: int | None = attrs.field(
        default=None, validator=validators.optional(validators.positive_int)
    )
    #: How many of the closest candidates a put's lookup hears from before it
    #: ends, over all its paths (each path's window is at least ``window``):
    #: ``None`` means 2k.  A put decides where a record lives until it expires,
    #: for every get that follows.  With 30 % misrouting nodes (liars that
    #: answer with each other) in ``qdht-bench adversarial``'s 1,000-node
    #: simulation, a k-sized window stored 26 of 480 updates at misrouters
    #: only (lost to honest getters, and honest holders kept serving the old
    #: version); with 2k, none of 480.  It costs a d = 1 put about k more
    #: FIND_NODEs; with d >= 2 paths the windows already cover 2k.  The put
    #: still stores at the k closest.
    put_window: int | None = attrs.field(
        default=None, validator=validators.optional(validators.positive_int)
    )
    #: A refresh lookup (an idle bucket's, the join's, the random walk) ends when
    #: this many of the closest nodes it found have answered.  Refreshing is
    #: there to meet nodes on the way, not to find the k closest to a random
    #: ID: ending at the closest 5 sent a quarter fewer of the DHT's messages
    #: at 30 % hourly churn with every record kept, and no walk, narrow or
    #: k-wide, measurably repaired an eclipsed table (``qdht-bench walk``;
    #: ``02-dht-rpc.md`` §8).
    refresh_window: int = attrs.field(default=5, validator=validators.positive_int)
    #: ID clustering check (S/Kademlia's Sybil signal): a lookup that saw at least
    #: ``cluster_threshold`` distinct IDs within the distance of its target where
    #: ``cluster_expected`` IDs are expected for the estimated network size is
    #: reported as suspicious.  With 2.5 expected the chance of 20 or more is about
    #: 1e-11, while k IDs that all lie closer than the closest honest node (what an
    #: eclipse of the key needs) fall inside that distance.
    cluster_expected: float = attrs.field(default=2.5, validator=validators.positive)
    #: See ``cluster_expected``.
    cluster_threshold: int = attrs.field(default=20, validator=validators.positive_int)

    def __attrs_post_init__(self) -> None:
        if self.max_candidates < max(self.k, self.window or 0, self.refresh_window):
            raise ConfigError("max_candidates must be at least k, window and refresh_window")

    def for_put(self) -> LookupConfig:
        """This configuration with each path's window wide enough for a put
        (``put_window`` over all paths)."""
        put = self.put_window or 2 * self.k
        per_path = min(-(-put // self.disjoint_paths), self.max_candidates)
        if per_path <= (self.window or self.k):
            return self
        return attrs.evolve(self, window=per_path)

    def for_refresh(self) -> LookupConfig:
        """This configuration with the narrow window of a refresh lookup."""
        return attrs.evolve(self, window=self.refresh_window)


@attrs.frozen
class ReputationConfig:
    """Per-peer reputation (``qdht.dht.Reputation``): score changes, bans, memory.

    A score starts at 0, rises by ``answered`` per answered request up to
    ``max_score``, falls by the penalty of each offence, and decays toward 0
    with ``half_life``.  At ``ban_below`` or lower the peer is banned for
    ``ban_duration`` seconds, doubled for each earlier ban (up to ``max_ban``).
    """

    #: Peers remembered (least recently updated forgotten first).
    max_peers: int = attrs.field(default=4096, validator=validators.positive_int)
    #: A peer never banned whose score has decayed to within this of 0 is
    #: forgotten (a forgotten peer *is* one at 0): memory follows the peers
    #: dealt with lately, not every peer ever seen (under churn, thousands).
    neutral: float = attrs.field(default=0.05, validator=validators.non_negative)
    answered: float = attrs.field(default=1.0, validator=validators.number)
    max_score: float = attrs.field(default=20.0, validator=validators.number)
    #: Penalties (positive numbers, subtracted) by kind of offence.
    timeout: float = attrs.field(default=1.0, validator=validators.number)
    invalid_message: float = attrs.field(default=10.0, validator=validators.number)
    forged_record: float = attrs.field(default=50.0, validator=validators.number)
    stale_record: float = attrs.field(default=10.0, validator=validators.number)
    flood: float = attrs.field(default=5.0, validator=validators.number)
    #: Scores decay toward 0 with this half-life (seconds): old offences are forgiven.
    half_life: float = attrs.field(default=1800.0, validator=validators.positive)
    ban_below: float = attrs.field(default=-100.0, validator=validators.number)
    ban_duration: float = attrs.field(default=600.0, validator=validators.positive)
    max_ban: float = attrs.field(default=86400.0, validator=validators.positive)
    #: Most recent bans listed in ``stats()``.
    recent_bans: int = attrs.field(default=8, validator=validators.non_negative_int)

    def __attrs_post_init__(self) -> None:
        if not self.ban_below < 0:
            raise ConfigError("ban_below must be negative")
        if self.ban_duration > self.max_ban:
            raise ConfigError("ban_duration must not exceed max_ban")


@attrs.frozen
class RpcConfig:
    """Limits of RPC handling in :class:`DhtCore` (every one bounds memory or work)."""

    #: Requests this node keeps outstanding at once; more fail at once ("pending-full").
    max_pending: int = attrs.field(default=4096, validator=validators.positive)
    #: Lookups (find_node, get, put, refresh) running at once.
    max_lookups: int = attrs.field(default=256, validator=validators.positive)
    #: Requests per second accepted from one peer (token bucket rate) ...
    rate_limit: float = attrs.field(default=50.0, validator=validators.positive)
    #: ... and the bucket's size: the burst a peer may send at once.
    rate_burst: int = attrs.field(default=200, validator=validators.positive)
    #: Peers whose token buckets are remembered (least recently seen forgotten).
    rate_limit_peers: int = attrs.field(default=4096, validator=validators.positive)
    #: Requests per second accepted from one source IP address, whatever node
    #: IDs it uses (several nodes behind one NAT share it) ...
    rate_limit_per_address: float = attrs.field(default=200.0, validator=validators.positive)
    #: ... and that bucket's burst.
    rate_burst_per_address: int = attrs.field(default=400, validator=validators.positive)
    #: Requests per second accepted from everyone together: a cap on the CPU that
    #: serving others may take, reached only by many identities at once ...
    rate_limit_global: float = attrs.field(default=2000.0, validator=validators.positive)
    #: ... and its burst.
    rate_burst_global: int = attrs.field(default=4000, validator=validators.positive)
    #: Timed-out requests remembered so that a late answer still counts as a sign
    #: of life (the routing table and the lookup use it).
    late_responses: int = attrs.field(default=1024, validator=validators.positive)
    #: ... for at most this long after their timeout (seconds): an answer later
    #: still is no sign of a peer we could use (most never come: the peer left).
    late_window: float = attrs.field(default=60.0, validator=validators.positive)
    #: Bucket-refresh lookups started per timer tick (the rest wait an interval).
    max_refresh_lookups: int = attrs.field(default=4, validator=validators.positive)
    #: A request to a peer without a session yet waits this many times the
    #: peer's usual timeout (at most ``RoutingConfig.max_timeout``): the
    #: handshake's two round trips (~7 KB in fragments) come first.  Scaled,
    #: not fixed, so that a dead contact costs a lookup little on a fast network.
    first_contact_factor: float = attrs.field(default=3.0, validator=validators.positive)
    #: A bulk request waits this many times the peer's usual timeout (at most
    #: ``RoutingConfig.max_timeout``): a STORE carries up to 72 KB in dozens of
    #: fragments, and the holder verifies an ML-DSA signature before it
    #: answers; a page of a set (FIND_VALUE with ``have``) is answered with up
    #: to 72 KB.  The RTT samples come mostly from small requests.
    bulk_timeout_factor: float = attrs.field(default=3.0, validator=validators.positive)
    #: User lookups (duration, hops, RPCs) kept for the percentiles of ``stats()``
    #: (12 bytes each, allocated as lookups complete).
    latency_samples: int = attrs.field(default=512, validator=validators.positive)


@attrs.frozen
class RecordConfig:
    """How :class:`DhtCore` stores, serves, gets and puts records (07-records.md)."""

    #: A get of a mutable key or a set stops once this many holders answered with
    #: valid records (or when the lookup converged on the k closest that
    #: answered, if fewer hold it).  Any one holder with the newest version is
    #: enough for it to win (07-records.md §7.3), but holders that all agree
    #: may all be stale: with 5, a get returned a superseded version whenever
    #: the first five holders to answer replayed it (``qdht-bench
    #: adversarial``, 30 % ``stale`` adversaries: about one get in 400).  The
    #: default, k, reads every holder among the k closest, so a stale answer
    #: needs all k of them to collude.  Lower it to trade that for RPCs.
    get_quorum: int = attrs.field(default=20, validator=validators.positive_int)
    #: Keys whose last put's holders this node remembers (the least recently put
    #: forgotten first; up to 2k holders each, about 0.4 KB a key): a put of a
    #: new version of such a key (mutable, tombstone, set entry) also goes to
    #: them (07-records.md §10.2), so holders of the old version its lookup did
    #: not reach are not left serving it.  0: only the lookup's k closest.
    update_holders: int = attrs.field(default=1024, validator=validators.non_negative_int)
    #: Lifetime of an immutable record made by :meth:`DhtCore.start_put` (24 h).
    immutable_ttl: int = attrs.field(default=86_400, validator=validators.positive_int)
    #: STOREs accepted per second from one source address (07-records.md §6.3) ...
    store_rate: float = attrs.field(default=10.0, validator=validators.positive)
    #: ... in bursts of at most this many ...
    store_burst: int = attrs.field(default=50, validator=validators.positive_int)
    #: ... for at most this many source addresses remembered.
    store_sources: int = attrs.field(default=10_000, validator=validators.positive_int)
    #: STOREs accepted per second from all sources together (each may cost an
    #: ML-DSA verification, ~0.2 ms, and a write) ...
    store_rate_global: float = attrs.field(default=500.0, validator=validators.positive)
    #: ... in bursts of at most this many.
    store_burst_global: int = attrs.field(default=1000, validator=validators.positive_int)
    #: Signature verdicts remembered (07-records.md §6.2), shared by STORE,
    #: FIND_VALUE answers and gets.
    verdict_cache: int = attrs.field(default=4096, validator=validators.positive_int)
    #: Expired records are deleted when the earliest held one expires, at most
    #: one sweep per this many seconds (expiries close together go in one); an
    #: expired record is never served in between: every answer is re-validated.
    expire_interval: float = attrs.field(default=60.0, validator=validators.positive)
    #: Entry-correction STOREs one get may send (07-records.md §7.3).
    max_corrections: int = attrs.field(default=32, validator=validators.positive_int)
    #: Further pages a get asks of one holder of a set whose answer said
    #: ``more`` (02-dht-rpc.md §4.2); 0 reads one answer per holder.  4 reads
    #: the default 32-entry set even when only 7 entries fit an answer.
    max_set_pages: int = attrs.field(default=4, validator=validators.non_negative_int)


@attrs.frozen
class ReplicationConfig:
    """Tunables of replication (07-records.md §10); every queue and table is bounded."""

    #: Holders re-replicate the records they store this often (seconds; Kademlia: 1 h).
    republish_interval: float = attrs.field(default=3600.0, validator=validators.positive)
    #: Each round comes ``republish_interval`` times a factor drawn from
    #: [1 - jitter, 1 + jitter], so that holders' rounds drift apart.
    republish_jitter: float = attrs.field(default=0.1, validator=validators.fraction)
    #: A key received in a STORE (from its publisher, a handoff or another
    #: holder's round) this long before a round is skipped by it, as a fraction
    #: of ``republish_interval`` (Kademlia: the whole interval).  A holder's own
    #: republishing does not count: the earliest round keeps the key alive.
    skip_fraction: float = attrs.field(default=1.0, validator=validators.unit_interval)
    #: A holder that finds itself outside a key's k closest hands the record to
    #: them and then leaves the key out of its rounds for this long (seconds).
    outside_pause: float = attrs.field(default=6 * 3600.0, validator=validators.positive)
    #: ... having stored it at this many of the k closest, the nearest (not all
    #: k: they hold it and republish it to one another; at 30 % hourly churn,
    #: storing at all k made four fifths of all republish STOREs, nearly all
    #: to nodes that held the record already).
    outside_stores: int = attrs.field(default=3, validator=validators.positive_int)
    #: A round settles a key lying within about ``outside_reach`` · k nodes of
    #: us (by the size estimate) without a region lookup when the routing
    #: table already knows k answering peers nearer to it than we are: the
    #: table holds most of that neighbourhood, and a lookup could only find
    #: more nodes nearer still.  0: every key waits for its region lookup.
    outside_reach: float = attrs.field(default=4.0, validator=validators.non_negative)
    #: Expected nodes in one republish region: small enough that one lookup
    #: to the region's midpoint finds the k closest of every key in it.
    region_nodes: int = attrs.field(default=8, validator=validators.positive_int)
    #: Keys taken from the store per region and page (a denser region is cut).
    max_keys_per_region: int = attrs.field(default=1024, validator=validators.positive_int)
    #: Keys a round may plan in all; the rest wait for the next round.
    max_keys_per_round: int = attrs.field(default=100_000, validator=validators.positive_int)
    #: Republish lookups running at once.
    max_lookups: int = attrs.field(default=4, validator=validators.positive_int)
    #: Only holders that rank among this many of the key's nearest holders we
    #: know hand a record to a newcomer (the rest leave it to them).
    handoff_senders: int = attrs.field(default=3, validator=validators.positive_int)
    #: Keys handed to one newcomer per routing-table event (more wait for the round).
    max_handoff_keys: int = attrs.field(default=256, validator=validators.positive_int)
    #: A peer re-added within this long (seconds) is not handed records again.
    handoff_cooldown: float = attrs.field(default=600.0, validator=validators.positive)
    #: Peers whose last handoff time is remembered (least recently added forgotten).
    max_handoff_peers: int = attrs.field(default=4096, validator=validators.positive_int)
    #: STOREs per second sent to one destination once its burst is spent ...
    store_rate: float = attrs.field(default=5.0, validator=validators.positive)
    #: ... and the burst: half of a receiver's default flood guard (10/s, 50).
    store_burst: int = attrs.field(default=25, validator=validators.positive_int)
    #: STOREs per second sent to all destinations together once the total burst
    #: is spent (a publisher's batch or a round must not flood its own uplink
    #: and receive queue with answers) ...
    total_store_rate: float = attrs.field(default=200.0, validator=validators.positive)
    #: ... and that burst.
    total_store_burst: int = attrs.field(default=100, validator=validators.positive_int)
    #: STOREs queued in all; beyond it they are dropped and counted.
    max_queued_stores: int = attrs.field(default=20_000, validator=validators.positive_int)
    #: STOREs queued for one destination.
    max_queued_per_peer: int = attrs.field(default=2048, validator=validators.positive_int)
    #: Keys whose last replication time is remembered (oldest forgotten:
    #: forgetting only costs one extra republish).
    max_tracked_keys: int = attrs.field(default=200_000, validator=validators.positive_int)
    #: Lifetime of a path-cache copy next to the closest holder (seconds).
    cache_ttl: float = attrs.field(default=3600.0, validator=validators.positive)
    #: Copies whose lifetime would be shorter are not made.
    min_cache_ttl: float = attrs.field(default=60.0, validator=validators.positive)
    #: Republish rounds whose counters ``stats()`` keeps.
    round_history: int = attrs.field(default=24, validator=validators.positive_int)

    def __attrs_post_init__(self) -> None:
        if self.min_cache_ttl > self.cache_ttl:
            raise ConfigError("min_cache_ttl must not exceed cache_ttl")


@attrs.frozen
class StoreLimits:
    """Byte quotas of a record store; every one bounds memory or disk.

    The defaults suit a node on a small server: 256 MiB in all, of which at
    most 32 MiB of cached entries; one publisher (owner key) may fill 8 MiB
    (over a hundred records of the 64 KiB maximum) and one source address
    16 MiB (a node that legitimately replicates many publishers' records to
    us), so a flood from one address or one key stops at a small share of
    the store.  A quota above ``max_bytes`` is bounded by it.
    """

    #: All entries, stored and cached, in bytes of canonical CBOR.
    max_bytes: int = attrs.field(default=256 * _MiB, validator=validators.positive_int)
    #: Cached entries (LRU-evicted), in bytes; part of ``max_bytes``.
    max_cached_bytes: int = attrs.field(default=32 * _MiB, validator=validators.positive_int)
    #: Stored entries signed by one owner, in bytes.
    max_bytes_per_publisher: int = attrs.field(default=8 * _MiB, validator=validators.positive_int)
    #: Stored entries put by one source address, in bytes.
    max_bytes_per_source: int = attrs.field(default=16 * _MiB, validator=validators.positive_int)
