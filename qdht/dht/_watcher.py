"""The watcher side of watching keys (``protocol-spec/08-watch.md`` §3): which holders
this node subscribed at for each key, renewals, rounds, and what NOTIFYs reported.

The holder side (:class:`~qdht.dht.WatchRegistry`) is in :mod:`qdht.dht._watch`.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any, Final

import attrs

from qdht import validators
from qdht.dht._events import WatchUpdate
from qdht.dht._records import ValidRecord, write_once
from qdht.dht._watch import Validate, _ttl, record_slot
from qdht.errors import ConfigError, NodeStateError, RecordRejectedError
from qdht.wire import MAX_WATCH_TTL, AnyRecord, Contact, SetEntry, Tombstone

__all__ = ["MAX_EXCLUDED", "NotifyResult", "RoundPlan", "WatchConfig", "WatchSubscriptions"]


MAX_EXCLUDED: Final = 32


@attrs.frozen
class WatchConfig:
    """How this node watches keys (08-watch.md §3.3)."""

    #: Closest nodes (found by a FIND_NODE lookup) to subscribe at per key.
    #: Each accepts STOREs and notifies on its own; more holders cost one
    #: notification each per change.
    holders: int = attrs.field(default=8, validator=validators.positive_int)
    #: Subscription lifetime asked for, in seconds (holders may grant less).
    ttl: int = attrs.field(default=MAX_WATCH_TTL, validator=_ttl)
    #: Fraction of the granted lifetime after which the watcher renews (and
    #: looks the closest set up again).
    renew_after: float = attrs.field(default=0.75, validator=validators.positive)
    #: First delay before looking for replacement holders after a loss; doubles
    #: up to ``max_retry_delay`` while too few holders are subscribed.
    retry_delay: float = attrs.field(default=5.0, validator=validators.positive)
    max_retry_delay: float = attrs.field(default=300.0, validator=validators.positive)
    #: Keys this node watches at once.
    max_watched_keys: int = attrs.field(default=256, validator=validators.positive_int)

    def __attrs_post_init__(self) -> None:
        if not self.renew_after < 1:
            raise ConfigError("renew_after must be below 1 (renew before the subscription ends)")


_DEFAULT_CONFIG: Final = WatchConfig()


class _Holder:
    __slots__ = ("active", "contact", "renew_at")

    def __init__(self, contact: Contact) -> None:
        self.contact = contact
        self.active = False
        self.renew_at = float("inf")


class _Reported:
    """The record last reported for one slot, and whether its expiry was reported."""

    __slots__ = ("expired", "record")

    def __init__(self, record: ValidRecord) -> None:
        self.record = record
        self.expired = False


class _Watched:
    __slots__ = (
        "backoff",
        "excluded",
        "holders",
        "key",
        "looking",
        "refs",
        "reported",
        "retry_at",
        "round_at",
        "seen_once",
    )

    def __init__(self, key: bytes, now: float, retry_delay: float) -> None:
        self.key = key
        self.refs = 1
        self.holders: dict[bytes, _Holder] = {}
        self.reported: dict[bytes, _Reported] = {}
        self.round_at = now
        self.looking = False
        self.backoff = retry_delay
        #: When the pending retry round is due (None: none pending).
        self.retry_at: float | None = None
        #: Holders not to subscribe at, until when: forever (inf) after an
        #: invalid record, one subscription lifetime after a refusal (a holder
        #: with no room; the next closest take its place).  At most
        #: ``MAX_EXCLUDED``, oldest forgotten first.
        self.excluded: dict[bytes, float] = {}
        #: Digests reported under a write-once key (competing writes, 08 §4).
        self.seen_once: set[bytes] = set()


@attrs.frozen
class RoundPlan:
    """What a watch round sends: ``watch`` (contact, ``since``) and unwatch (ttl 0)."""

    watch: tuple[tuple[Contact, int | None], ...]
    unwatch: tuple[Contact, ...]


@attrs.frozen
class NotifyResult:
    """How a watcher takes a notification.

    ``answer`` is ``"notified"``, ``"stop"`` (not watched / not our holder:
    answer ``notified`` with ``stop``) or ``"invalid"`` (the record failed
    validation: answer ``error`` ``invalid-value``; ``unwatch`` names the
    holder to drop).  ``updates`` are what to report.
    """

    answer: str
    updates: tuple[WatchUpdate, ...] = ()
    reason: str | None = None
    unwatch: Contact | None = None


class WatchSubscriptions:
    """The watcher's side (08-watch.md §3.3, §4.2): keys, holders, what was reported.

    The core runs it: :meth:`rounds_due` names keys that need a FIND_NODE
    lookup now (a new watch, a renewal, a lost holder), :meth:`round` turns
    the lookup's result into WATCH requests, :meth:`watch_answered` /
    :meth:`watch_failed` record each holder's answer, :meth:`on_notify`
    validates and deduplicates notifications, and :meth:`handle_timer`
    reports the local expiry of reported records.
    """

    __slots__ = (
        "_expiries",
        "_watched",
        "config",
        "drops",
        "duplicates",
        "reported",
        "rounds",
        "unix_offset",
    )

    def __init__(self, config: WatchConfig | None = None, *, unix_offset: float = 0.0) -> None:
        self.config = config if config is not None else _DEFAULT_CONFIG
        self.unix_offset = unix_offset
        self._watched: dict[bytes, _Watched] = {}
        # (when (monotonic), key, slot, digest) of reported records, checked lazily.
        self._expiries: list[tuple[float, bytes, bytes, bytes]] = []
        self.drops: dict[str, int] = {}
        self.reported = 0
        self.duplicates = 0
        self.rounds = 0

    def __contains__(self, key: object) -> bool:
        return key in self._watched

    def keys(self) -> list[bytes]:
        """The keys watched."""
        return list(self._watched)

    def holders(self, key: bytes) -> list[bytes]:
        """Node IDs of the holders ``key`` is subscribed at (acknowledged ones)."""
        watched = self._watched.get(key)
        if watched is None:
            return []
        return [node_id for node_id, h in watched.holders.items() if h.active]

    # ------------------------------------------------------------ starting, stopping

    def add(self, key: bytes, now: float) -> bool:
        """Watch ``key`` (reference-counted); True if it was not watched yet."""
        watched = self._watched.get(key)
        if watched is not None:
            watched.refs += 1
            return False
        if len(self._watched) >= self.config.max_watched_keys:
            raise NodeStateError(
                f"{len(self._watched)} keys watched already (WatchConfig.max_watched_keys)"
            )
        self._watched[key] = _Watched(key, now, self.config.retry_delay)
        return True

    def remove(self, key: bytes) -> list[Contact]:
        """Drop one reference to ``key``; when none is left, the holders to unwatch."""
        watched = self._watched.get(key)
        if watched is None:
            return []
        watched.refs -= 1
        if watched.refs > 0:
            return []
        del self._watched[key]
        return [h.contact for h in watched.holders.values()]

    def reported_records(self, key: bytes) -> list[ValidRecord]:
        """The live records last reported for ``key`` (for a late local subscriber)."""
        watched = self._watched.get(key)
        if watched is None:
            return []
        return [r.record for r in watched.reported.values() if not r.expired]

    # ------------------------------------------------------------ rounds

    def rounds_due(self, now: float) -> list[bytes]:
        """Keys whose round (lookup, then watch) is due; each is marked as looking."""
        due = []
        for watched in self._watched.values():
            if not watched.looking and watched.round_at <= now:
                watched.looking = True
                due.append(watched.key)
        return due

    def round_failed(self, key: bytes, now: float) -> None:
        """The round's lookup could not start or found nobody: try again later."""
        watched = self._watched.get(key)
        if watched is None:
            return
        watched.looking = False
        watched.retry_at = None
        self._schedule(watched, now, retry=True)

    def round(self, key: bytes, closest: Sequence[Contact], now: float) -> RoundPlan:
        """The lookup for ``key`` found ``closest`` (nearest first): whom to (un)watch.

        Every one of the ``holders`` closest gets a WATCH (a renewal for those
        already subscribed, a new subscription for the others); holders that
        fell out of that set are unwatched.  Holders that sent this key an
        invalid record are skipped: the next closest take their place.
        """
        watched = self._watched.get(key)
        if watched is None:
            return RoundPlan((), ())
        watched.looking = False
        watched.retry_at = None
        self.rounds += 1
        if not closest:
            self._schedule(watched, now, retry=True)
            return RoundPlan((), ())
        excluded = watched.excluded
        usable = [c for c in closest if excluded.get(c.node_id, now) <= now]
        target = {c.node_id: c for c in usable[: self.config.holders]}
        unwatch = tuple(
            h.contact for node_id, h in watched.holders.items() if node_id not in target
        )
        for contact in unwatch:
            del watched.holders[contact.node_id]
        since = self._since(watched)
        plan = []
        for node_id, contact in target.items():
            holder = watched.holders.get(node_id)
            if holder is None:
                holder = watched.holders[node_id] = _Holder(contact)
            plan.append((contact, since))
        # Each answer sets the next round: a WATCHING at that holder's renewal
        # time, a failure at a retry.  Should every answer go missing, the
        # subscriptions would have ended by then anyway.
        watched.round_at = now + self.config.ttl * self.config.renew_after
        return RoundPlan(tuple(plan), unwatch)

    def _since(self, watched: _Watched) -> int | None:
        reported = [r.record for r in watched.reported.values()]
        if not reported or isinstance(reported[0].record, SetEntry):
            return None
        return max(r.seq for r in reported)

    def watch_answered(self, key: bytes, holder_id: bytes, ttl: int, now: float) -> None:
        """``holder_id`` answered WATCHING with ``ttl`` (0: it ended the subscription)."""
        watched = self._watched.get(key)
        holder = watched.holders.get(holder_id) if watched is not None else None
        if watched is None or holder is None:
            return
        if ttl <= 0:
            self.watch_failed(key, holder_id, now, refused=True)
            return
        holder.active = True
        holder.renew_at = now + ttl * self.config.renew_after
        if all(h.active for h in watched.holders.values()):
            watched.backoff = self.config.retry_delay
        self._schedule(watched, now)

    def watch_failed(
        self, key: bytes, holder_id: bytes, now: float, *, refused: bool = False
    ) -> None:
        """A WATCH to ``holder_id`` timed out, or was ``refused`` (an ``error``).

        The holder is lost; a refusing one is skipped for one subscription
        lifetime, so the next closest node takes its place (a popular key's
        closest holders may be full).
        """
        watched = self._watched.get(key)
        if watched is None or watched.holders.pop(holder_id, None) is None:
            return
        if refused:
            self._exclude(watched, holder_id, now + self.config.ttl)
        self._schedule(watched, now)

    def _exclude(self, watched: _Watched, holder_id: bytes, until: float) -> None:
        excluded = watched.excluded
        excluded.pop(holder_id, None)
        excluded[holder_id] = until
        if len(excluded) > MAX_EXCLUDED:
            del excluded[next(iter(excluded))]

    def _schedule(self, watched: _Watched, now: float, *, retry: bool = False) -> None:
        """Next round: the earliest renewal, or a retry while holders are missing.

        A retry waits ``backoff`` seconds, which doubles with every retry
        scheduled (up to ``max_retry_delay``) and resets once every holder of
        a round answered.  One retry is pending at a time: losing a second
        holder does not push it back.
        """
        renewals = [h.renew_at for h in watched.holders.values() if h.active]
        at = min(renewals) if renewals else float("inf")
        if retry or len(watched.holders) < self.config.holders:
            if watched.retry_at is None:
                watched.retry_at = now + watched.backoff
                watched.backoff = min(watched.backoff * 2, self.config.max_retry_delay)
            at = min(at, watched.retry_at)
        watched.round_at = at

    # ------------------------------------------------------------ notifications

    def on_notify(
        self,
        holder_id: bytes,
        key: bytes,
        record: AnyRecord | None,
        now: float,
        validate: Validate,
    ) -> NotifyResult:
        """A NOTIFY from ``holder_id``: validate, deduplicate, report (08-watch.md §4.2)."""
        watched = self._watched.get(key)
        if watched is None or holder_id not in watched.holders:
            self._drop("notify-not-watching")
            return NotifyResult("stop")
        if record is None:
            # A holder's expiry hint: the local clock decides (§4.2, 4.).
            self._drop("notify-expiry-hint")
            return NotifyResult("notified")
        try:
            valid = validate(record, key)
        except RecordRejectedError as exc:
            self._drop(f"notify-{exc.reason}")
            holder = watched.holders.pop(holder_id)
            self._exclude(watched, holder_id, float("inf"))
            self._schedule(watched, now)
            return NotifyResult("invalid", reason=exc.reason, unwatch=holder.contact)
        return NotifyResult("notified", tuple(self._offer(watched, valid)))

    def local_record(self, key: bytes, record: ValidRecord) -> list[WatchUpdate]:
        """This node itself accepted (or holds) ``record`` under a watched key."""
        watched = self._watched.get(key)
        if watched is None:
            return []
        return self._offer(watched, record)

    def _offer(self, watched: _Watched, valid: ValidRecord) -> list[WatchUpdate]:
        slot = record_slot(valid)
        held = watched.reported.get(slot)
        if held is not None:
            if valid.digest == held.record.digest:
                if valid.expires > held.record.expires:
                    # The same record, refreshed (an immutable re-put): extend our copy,
                    # and report it again only if its expiry was already reported.
                    revived = held.expired
                    held.record = valid
                    held.expired = False
                    self._track(watched.key, slot, valid)
                    if revived:
                        self.reported += 1
                        return [WatchUpdate(watched.key, "update", valid)]
                self.duplicates += 1
                return []
            if not valid.rank() > held.record.rank():
                if write_once(valid) and valid.digest not in watched.seen_once:
                    # Holders keep the first write of a write-once key, so a lower
                    # rank is a competing write, not an old version: report it once.
                    watched.seen_once.add(valid.digest)
                    self.reported += 1
                    return [WatchUpdate(watched.key, "update", valid)]
                self.duplicates += 1
                return []
        if write_once(valid):
            watched.seen_once.add(valid.digest)
        watched.reported[slot] = _Reported(valid)
        self._track(watched.key, slot, valid)
        self.reported += 1
        return [WatchUpdate(watched.key, "deleted" if valid.deleted else "update", valid)]

    def _track(self, key: bytes, slot: bytes, valid: ValidRecord) -> None:
        heapq.heappush(self._expiries, (valid.expires - self.unix_offset, key, slot, valid.digest))

    # ------------------------------------------------------------ timers

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` next has work: a round due or a reported record expiring."""
        expiries = self._expiries
        if not expiries and not self._watched:
            return None  # most nodes watch nothing: the driver asks after every message
        when = [w.round_at for w in self._watched.values() if not w.looking]
        while expiries and not self._live_expiry(expiries[0]):
            heapq.heappop(expiries)
        if expiries:
            when.append(expiries[0][0])
        return min(when) if when else None

    def _live_expiry(self, entry: tuple[float, bytes, bytes, bytes]) -> bool:
        when, key, slot, digest = entry
        watched = self._watched.get(key)
        held = watched.reported.get(slot) if watched is not None else None
        return (
            held is not None
            and not held.expired
            and held.record.digest == digest
            and held.record.expires - self.unix_offset == when
        )

    def handle_timer(self, now: float) -> list[WatchUpdate]:
        """Report the records whose ``exp`` passed on our own clock (08-watch.md §4.2, 4.)."""
        updates = []
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            entry = heapq.heappop(expiries)
            if not self._live_expiry(entry):
                continue
            _, key, slot, _ = entry
            held = self._watched[key].reported[slot]
            held.expired = True
            if not isinstance(held.record.record, Tombstone):
                # A tombstone's expiry is no news: the key stays deleted.
                self.reported += 1
                updates.append(WatchUpdate(key, "expired", held.record))
        return updates

    # ------------------------------------------------------------ bookkeeping

    def _drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def stats(self) -> dict[str, Any]:
        """Keys watched, holders subscribed, updates reported, duplicates, drops by reason."""
        return {
            "keys": len(self._watched),
            "holders": sum(
                1 for w in self._watched.values() for h in w.holders.values() if h.active
            ),
            "rounds": self.rounds,
            "reported": self.reported,
            "duplicates": self.duplicates,
            "drops": dict(self.drops),
        }
