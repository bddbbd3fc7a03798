"""Record validation and merge rules: the sans-IO heart of STORE and FIND_VALUE.

Implements ``protocol-spec/07-records.md`` §6 and §7.  Nothing here stores,
sends or reads a clock: ``now`` (seconds since the Unix epoch, because record
expiry times are absolute) is always an argument.

* :class:`RecordValidator` turns a decoded record and the key it was offered
  under into a :class:`ValidRecord`, or raises
  :class:`~qdht.errors.RecordRejectedError` with a machine-readable reason.
  It verifies each distinct signature once: verdicts are kept in a bounded
  LRU cache keyed by BLAKE2b of (public key, context, signature, signed bytes).
* :func:`accept` decides what a holder does with a valid record given what it
  already holds under that key: the sequence rules, compare-and-swap,
  tombstones and the equal-sequence tie-break.  :func:`accept_set_entry` does
  the same for one publisher's slot of a multi-publisher set.
* :func:`best_of` and :func:`merge_set` pick the winner among the answers of
  several holders and name the holders that need an entry correction.
* ``sign_*`` build records on the publisher's side; :func:`flood_guard` bounds
  how many stores one source address may make.
"""

from __future__ import annotations

import enum
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Final, Generic, TypeVar

import attrs

from qdht import validators
from qdht.crypto import mldsa
from qdht.crypto.hashes import blake2b, sha3_256
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.errors import ConfigError, InvalidSignatureError, RecordRejectedError
from qdht.ratelimit import TokenBuckets
from qdht.wire import (
    MAX_RECORD_TIME,
    MAX_SALT_SIZE,
    MAX_TOPIC_SIZE,
    AnyRecord,
    ImmutableRecord,
    MutableRecord,
    SetEntry,
    SignedRecord,
    Tombstone,
    owner_hash,
)

__all__ = [
    "DEFAULT_RECORD_LIMITS",
    "REJECT_REASONS",
    "WRITE_ONCE_PREFIX",
    "BestOf",
    "Decision",
    "Outcome",
    "OwnerKeyResolver",
    "RecordLimits",
    "RecordValidator",
    "SetMerge",
    "ValidRecord",
    "accept",
    "accept_set_entry",
    "best_of",
    "flood_guard",
    "make_immutable",
    "merge_set",
    "sign_mutable",
    "sign_set_entry",
    "sign_tombstone",
    "validate_record",
    "write_once",
]

#: Every reason a record can be refused for (07-records.md §6 and §7).
REJECT_REASONS: Final = frozenset(
    {
        "too-large",
        "key-mismatch",
        "expired",
        "expiry-too-far",
        "owner-mismatch",
        "owner-key-unknown",
        "bad-signature",
        "seq-regression",
        "seq-conflict",
        "cas-mismatch",
        "write-once",
        "kind-mismatch",
        "set-full",
        "flood",
    }
)

#: Salts of mutable records that can be written once (07-records.md §7.1 step 3a):
#: a holder never replaces a live one by a different record of the same key.
WRITE_ONCE_PREFIX: Final = b"qdht/v1/once/"


def write_once(record: ValidRecord) -> bool:
    """Whether ``record`` lives under a write-once key (a mutable record or tombstone
    whose salt starts with :data:`WRITE_ONCE_PREFIX`, 07-records.md §7.1)."""
    inner = record.record
    return isinstance(inner, MutableRecord | Tombstone) and inner.salt.startswith(WRITE_ONCE_PREFIX)


#: Looks up an owner's ML-DSA-65 public key by ``owner`` (its SHA3-256), from
#: identity certificates the caller has verified; None when unknown.
OwnerKeyResolver = Callable[[bytes], "bytes | None"]

H = TypeVar("H", bound=Hashable)

_DAY: Final = 86400


@attrs.frozen
class RecordLimits:
    """What a holder accepts (07-records.md §6.1); every limit has a named default."""

    #: Largest ``value`` of an immutable or mutable record, in bytes (64 KiB).
    max_value_size: int = attrs.field(default=65536, validator=validators.positive_int)
    #: Largest ``value`` of one set entry, in bytes.
    max_set_value_size: int = attrs.field(default=4096, validator=validators.positive_int)
    #: Entries (distinct publishers) one set may hold.
    max_set_entries: int = attrs.field(default=32, validator=validators.positive_int)
    #: Furthest ``exp`` may lie ahead of the holder's clock: 7 days.
    max_ttl: int = attrs.field(default=7 * _DAY, validator=validators.positive_int)
    #: Clock difference tolerated on top of ``max_ttl``, in seconds.
    clock_skew: int = attrs.field(default=300, validator=validators.non_negative_int)

    def __attrs_post_init__(self) -> None:
        if self.max_value_size > 65536:
            raise ConfigError("max_value_size must be at most 65536 (the wire limit)")
        if self.max_set_value_size > self.max_value_size:
            raise ConfigError("max_set_value_size must not exceed max_value_size")


DEFAULT_RECORD_LIMITS: Final = RecordLimits()


# ----------------------------------------------------------- valid records


@attrs.frozen
class ValidRecord:
    """A record that passed validation under ``key``, self-contained.

    ``record`` carries the owner's public key (``pk``) when it is signed,
    attached by the validator if it arrived without one, so a holder can
    return and replicate it as is (07-records.md §4).  ``digest`` is
    SHA3-256 of its signed bytes (its key, for an immutable record): two
    records with the same digest are the same record.
    """

    record: AnyRecord
    key: bytes
    digest: bytes

    @property
    def kind(self) -> str:
        """The record's ``type``."""
        return self.record.TYPE

    @property
    def seq(self) -> int:
        """The sequence number (0 for an immutable record)."""
        return 0 if isinstance(self.record, ImmutableRecord) else self.record.seq

    @property
    def expires(self) -> int:
        """``exp``, seconds since the Unix epoch."""
        return self.record.expires

    @property
    def owner(self) -> bytes | None:
        """SHA3-256 of the signer's public key (None for an immutable record)."""
        return None if isinstance(self.record, ImmutableRecord) else self.record.owner

    @property
    def deleted(self) -> bool:
        """Whether this is a tombstone: the key's value was deleted by its owner."""
        return isinstance(self.record, Tombstone)

    @property
    def value(self) -> bytes | None:
        """The record's value (None for a tombstone, which has none)."""
        return None if isinstance(self.record, Tombstone) else self.record.value

    def rank(self) -> tuple[int, int, bytes]:
        """Total order within one key (one publisher, for sets): higher wins (§7.1)."""
        return (self.seq, 1 if self.deleted else 0, self.digest)


# --------------------------------------------------------------- validator


class RecordValidator:
    """Validates records offered under a key; verifies each distinct signature once.

    ``cache_size`` bounds the verdict cache (a 32-byte key and the verdict per
    entry, least recently used evicted).  ``stats()`` counts verifications,
    cache hits and rejections by reason.
    """

    def __init__(
        self,
        limits: RecordLimits = DEFAULT_RECORD_LIMITS,
        *,
        cache_size: int = 4096,
        resolve_owner: OwnerKeyResolver | None = None,
    ) -> None:
        if type(cache_size) is not int or cache_size < 0:
            raise ConfigError(f"cache_size must be a non-negative integer, got {cache_size!r}")
        self.limits = limits
        self.cache_size = cache_size
        self._resolve_owner = resolve_owner
        self._verdicts: OrderedDict[bytes, str | None] = OrderedDict()
        self._verified = 0
        self._cache_hits = 0
        self.rejected: Counter[str] = Counter()

    def validate(
        self,
        record: AnyRecord,
        key: bytes,
        now: float,
        *,
        resolve_owner: OwnerKeyResolver | None = None,
    ) -> ValidRecord:
        """``record`` as a :class:`ValidRecord` under ``key`` at ``now``, or RecordRejectedError.

        The checks run cheapest first, in the order of 07-records.md §6.2, and
        the first failing one names the reason.
        """
        try:
            return self._validate(record, key, now, resolve_owner or self._resolve_owner)
        except RecordRejectedError as exc:
            self.rejected[exc.reason] += 1
            raise

    def _validate(
        self, record: AnyRecord, key: bytes, now: float, resolve: OwnerKeyResolver | None
    ) -> ValidRecord:
        limits = self.limits
        if isinstance(record, ImmutableRecord):
            derived = _check_common(record, key, now, limits, limits.max_value_size)
            return ValidRecord(record, key, derived)
        if not isinstance(record, (MutableRecord, Tombstone, SetEntry)):
            raise ConfigError(f"record must be a record object, got {type(record).__name__}")
        max_value = (
            limits.max_set_value_size if isinstance(record, SetEntry) else limits.max_value_size
        )
        _check_common(record, key, now, limits, max_value)
        public_key = record.public_key
        if public_key is None:
            public_key = resolve(record.owner) if resolve is not None else None
            if public_key is None:
                raise RecordRejectedError(
                    "owner-key-unknown", "no pk in the record and no certificate for its owner"
                )
            record = attrs.evolve(record, public_key=public_key)
        signed = record.signed_bytes()
        problem = self._check_owner_signature(public_key, record, signed)
        if problem is not None:
            raise RecordRejectedError(problem, f"context {record.CONTEXT.decode()}")
        return ValidRecord(record, key, sha3_256(signed))

    def _check_owner_signature(
        self, public_key: bytes, record: SignedRecord, signed: bytes
    ) -> str | None:
        """Checks 6 and 7 of §6.2 (None: both pass), through the verdict cache.

        The cache key covers pk, context, signature and signed bytes (the
        context length-prefixed, so the concatenation is unambiguous); it is
        a local cache key, not a protocol value, so it uses BLAKE2b, which is
        three times faster than SHA3-256 over these ~6 KB.
        """
        ctx = record.CONTEXT
        cache_key = blake2b(
            public_key, bytes([len(ctx)]), ctx, record.signature, signed, digest_size=32
        )
        if cache_key in self._verdicts:
            self._verdicts.move_to_end(cache_key)
            self._cache_hits += 1
            return self._verdicts[cache_key]
        verdict: str | None = None
        if owner_hash(public_key) != record.owner:
            verdict = "owner-mismatch"
        else:
            self._verified += 1
            try:
                mldsa.verify(public_key, signed, record.signature, ctx)
            except InvalidSignatureError:
                verdict = "bad-signature"
        if self.cache_size:
            self._verdicts[cache_key] = verdict
            if len(self._verdicts) > self.cache_size:
                self._verdicts.popitem(last=False)
        return verdict

    def stats(self) -> dict[str, Any]:
        """Signature verifications made, verdict-cache hits, rejections by reason."""
        return {
            "verified": self._verified,
            "cache_hits": self._cache_hits,
            "cache_entries": len(self._verdicts),
            "rejected": dict(self.rejected),
        }


def _check_common(
    record: AnyRecord, key: bytes, now: float, limits: RecordLimits, max_value: int
) -> bytes:
    """Checks 1 to 4 of 07-records.md §6.2; returns the derived key."""
    value = getattr(record, "value", b"")
    if len(value) > max_value:
        raise RecordRejectedError("too-large", f"value of {len(value)} bytes, limit {max_value}")
    derived = record.key()
    if derived != key:
        raise RecordRejectedError("key-mismatch", "the key is not derived from the record")
    if record.expires <= now:
        raise RecordRejectedError("expired", f"exp {record.expires} <= now {int(now)}")
    if record.expires > now + limits.max_ttl + limits.clock_skew:
        raise RecordRejectedError(
            "expiry-too-far", f"exp {record.expires} beyond now + {limits.max_ttl} s"
        )
    return derived


def validate_record(
    record: AnyRecord,
    key: bytes,
    now: float,
    *,
    limits: RecordLimits = DEFAULT_RECORD_LIMITS,
    resolve_owner: OwnerKeyResolver | None = None,
) -> ValidRecord:
    """One-shot :meth:`RecordValidator.validate` without a verdict cache."""
    return RecordValidator(limits, cache_size=0).validate(
        record, key, now, resolve_owner=resolve_owner
    )


# -------------------------------------------------------------- merge rules


class Outcome(enum.Enum):
    """What a holder does with a valid incoming record (07-records.md §7)."""

    #: Nothing (live) was held under the key: keep the incoming record.
    STORE = "store"
    #: The incoming record wins over the held one and replaces it.
    REPLACE = "replace"
    #: The incoming record is the one already held: nothing changes.
    UNCHANGED = "unchanged"
    #: The held record wins; the incoming one is refused with ``reason``.
    REJECT = "reject"


@attrs.frozen
class Decision:
    """The outcome of :func:`accept`, and the record the slot holds afterwards."""

    outcome: Outcome
    #: What the holder keeps under the key (None: nothing).
    record: ValidRecord | None
    #: Why the incoming record was refused (only for REJECT).
    reason: str | None = None

    @property
    def accepted(self) -> bool:
        """Whether the incoming record is now what the holder keeps."""
        return self.outcome in (Outcome.STORE, Outcome.REPLACE)


def _family(record: ValidRecord) -> str:
    return "mutable" if isinstance(record.record, (MutableRecord, Tombstone)) else record.kind


def accept(
    existing: ValidRecord | None, incoming: ValidRecord, now: float, *, cas: int | None = None
) -> Decision:
    """Whether ``incoming`` replaces ``existing`` under one key (07-records.md §7.1).

    ``cas`` is the compare-and-swap precondition of the publisher's STORE:
    the sequence number the publisher expects the holder to hold.  It is
    checked only when the holder holds a live record.  An expired
    ``existing`` counts as nothing.
    """
    if existing is not None and existing.key != incoming.key:
        raise ConfigError("existing and incoming records must have the same key")
    if existing is not None and existing.expires <= now:
        existing = None
    if existing is None:
        return Decision(Outcome.STORE, incoming)
    if _family(existing) != _family(incoming):
        return Decision(Outcome.REJECT, existing, "kind-mismatch")
    if isinstance(incoming.record, ImmutableRecord):
        # Same key, same value: a later expiry refreshes the record.
        if incoming.expires > existing.expires:
            return Decision(Outcome.REPLACE, incoming)
        return Decision(Outcome.UNCHANGED, existing)
    if isinstance(incoming.record, SetEntry) and existing.owner != incoming.owner:
        raise ConfigError("set entries of different publishers are different slots")
    if write_once(existing) and incoming.digest != existing.digest:
        # Whoever holds the key's signing key may write once; the first write stays.
        return Decision(Outcome.REJECT, existing, "write-once")
    if incoming.seq < existing.seq:
        return Decision(Outcome.REJECT, existing, "seq-regression")
    if cas is not None and existing.seq != cas:
        return Decision(Outcome.REJECT, existing, "cas-mismatch")
    if incoming.digest == existing.digest:
        return Decision(Outcome.UNCHANGED, existing)
    if incoming.rank() > existing.rank():
        return Decision(Outcome.REPLACE, incoming)
    return Decision(Outcome.REJECT, existing, "seq-conflict")


def accept_set_entry(
    entries: Mapping[bytes, ValidRecord],
    incoming: ValidRecord,
    now: float,
    *,
    cas: int | None = None,
    limits: RecordLimits = DEFAULT_RECORD_LIMITS,
) -> Decision:
    """:func:`accept` for one publisher's slot of a set (07-records.md §7.2).

    ``entries`` maps each publisher's ``owner`` to the entry held for it.  A
    new publisher is refused with ``set-full`` when the set already holds
    ``limits.max_set_entries`` live entries: good entries are never evicted.
    """
    if not isinstance(incoming.record, SetEntry) or incoming.owner is None:
        raise ConfigError("incoming must be a set entry")
    existing = entries.get(incoming.owner)
    if existing is None or existing.expires <= now:
        live = sum(1 for entry in entries.values() if entry.expires > now)
        if live >= limits.max_set_entries:
            return Decision(Outcome.REJECT, None, "set-full")
        return Decision(Outcome.STORE, incoming)
    return accept(existing, incoming, now, cas=cas)


# ---------------------------------------------------------- get-side merge


@attrs.frozen
class BestOf(Generic[H]):
    """The winner among holders' answers, and who needs an entry correction (§7.3)."""

    #: The highest-ranked live record (None if no holder returned one).
    winner: ValidRecord | None
    #: Holders that returned a lower-ranked record: push ``winner`` to them.
    stale: tuple[H, ...]


def best_of(answers: Iterable[tuple[H, ValidRecord]], now: float) -> BestOf[H]:
    """Pick the winning record of one key from several holders' validated answers.

    Expired answers are ignored; holders whose answer ranks below the winner
    (an older sequence, or the losing side of an equal-sequence conflict)
    are listed in ``stale``, in the order given.  Immutable records of one
    key are all equal, so they never need correcting.
    """
    live = [(holder, record) for holder, record in answers if record.expires > now]
    if any(isinstance(record.record, SetEntry) for _, record in live):
        raise ConfigError("set entries are merged per publisher: use merge_set")
    if not live:
        return BestOf(None, ())
    keys = {record.key for _, record in live}
    if len(keys) != 1:
        raise ConfigError("best_of needs answers for one key")
    winner = max((record for _, record in live), key=_order)
    stale = tuple(holder for holder, record in live if _order(record) < _order(winner))
    return BestOf(winner, stale)


def _order(record: ValidRecord) -> tuple[int, int, bytes]:
    if isinstance(record.record, ImmutableRecord):
        return (0, 0, b"")
    return record.rank()


@attrs.frozen
class SetMerge(Generic[H]):
    """The union of several holders' set entries, and what each holder lacks (§7.3)."""

    #: The winning entry per publisher, ordered by ``owner``.
    entries: tuple[ValidRecord, ...]
    #: Holder → the winning entries it lacks or holds an older version of.
    corrections: dict[H, tuple[ValidRecord, ...]]


def merge_set(answers: Iterable[tuple[H, Sequence[ValidRecord]]], now: float) -> SetMerge[H]:
    """Merge the live set entries several holders returned for one set key."""
    held: list[tuple[H, dict[bytes, ValidRecord]]] = []
    best: dict[bytes, ValidRecord] = {}
    for holder, entries in answers:
        mine: dict[bytes, ValidRecord] = {}
        for entry in entries:
            if not isinstance(entry.record, SetEntry) or entry.owner is None:
                raise ConfigError("merge_set needs set entries")
            if entry.expires <= now:
                continue
            previous = mine.get(entry.owner)
            if previous is None or entry.rank() > previous.rank():
                mine[entry.owner] = entry
            top = best.get(entry.owner)
            if top is None or entry.rank() > top.rank():
                best[entry.owner] = entry
        held.append((holder, mine))
    corrections: dict[H, tuple[ValidRecord, ...]] = {}
    for holder, mine in held:
        missing = tuple(
            best[owner]
            for owner in sorted(best)
            if owner not in mine or mine[owner].rank() < best[owner].rank()
        )
        if missing:
            corrections[holder] = missing
    return SetMerge(tuple(best[owner] for owner in sorted(best)), corrections)


# ------------------------------------------------------------- publishing

_NO_SIGNATURE: Final = bytes(mldsa.SIGNATURE_SIZE)


def _check_expiry(expires: int) -> None:
    if type(expires) is not int or not 0 <= expires <= MAX_RECORD_TIME:
        raise ConfigError(f"expires must be an integer in 0..{MAX_RECORD_TIME}")


def make_immutable(value: bytes, expires: int) -> ImmutableRecord:
    """An immutable record of ``value`` (its key: :func:`qdht.wire.immutable_key`)."""
    _check_expiry(expires)
    return ImmutableRecord(value, expires)


def _sign(key: MLDSAPrivateKey, unsigned: SignedRecord, include_public_key: bool) -> Any:
    signature = key.sign(unsigned.signed_bytes(), unsigned.CONTEXT)
    public_key = unsigned.public_key if include_public_key else None
    return attrs.evolve(unsigned, signature=signature, public_key=public_key)


def sign_mutable(
    key: MLDSAPrivateKey,
    *,
    salt: bytes,
    seq: int,
    value: bytes,
    expires: int,
    include_public_key: bool = True,
) -> MutableRecord:
    """A mutable record under (owner of ``key``, ``salt``), signed by ``key``.

    Leave ``include_public_key`` on unless every receiver is known to hold
    the owner's certificate (07-records.md §4).
    """
    _check_salt(salt)
    _check_expiry(expires)
    pk = key.public_key_bytes()
    unsigned = MutableRecord(owner_hash(pk), salt, seq, value, expires, _NO_SIGNATURE, pk)
    record: MutableRecord = _sign(key, unsigned, include_public_key)
    return record


def sign_tombstone(
    key: MLDSAPrivateKey,
    *,
    salt: bytes,
    seq: int,
    expires: int,
    include_public_key: bool = True,
) -> Tombstone:
    """A tombstone deleting the mutable record under (owner of ``key``, ``salt``) at ``seq``.

    ``expires`` MUST be no earlier than the expiry of any record it deletes
    (07-records.md §5.3), or an old copy could be accepted again once the
    tombstone has gone.
    """
    _check_salt(salt)
    _check_expiry(expires)
    pk = key.public_key_bytes()
    unsigned = Tombstone(owner_hash(pk), salt, seq, expires, _NO_SIGNATURE, pk)
    record: Tombstone = _sign(key, unsigned, include_public_key)
    return record


def sign_set_entry(
    key: MLDSAPrivateKey,
    *,
    topic: bytes,
    seq: int,
    value: bytes,
    expires: int,
    include_public_key: bool = True,
) -> SetEntry:
    """The entry of ``key``'s owner in the multi-publisher set ``topic``."""
    if type(topic) is not bytes or not 1 <= len(topic) <= MAX_TOPIC_SIZE:
        raise ConfigError(f"topic must be 1..{MAX_TOPIC_SIZE} bytes")
    _check_expiry(expires)
    pk = key.public_key_bytes()
    unsigned = SetEntry(topic, owner_hash(pk), seq, value, expires, _NO_SIGNATURE, pk)
    record: SetEntry = _sign(key, unsigned, include_public_key)
    return record


def _check_salt(salt: bytes) -> None:
    if type(salt) is not bytes or len(salt) > MAX_SALT_SIZE:
        raise ConfigError(f"salt must be at most {MAX_SALT_SIZE} bytes")


# ------------------------------------------------------------ flood guard


def flood_guard(
    *, rate: float = 10.0, burst: int = 50, max_sources: int = 10_000
) -> TokenBuckets[H]:
    """Bounds the STOREs one source may make (§6.3): a token bucket per source.

    Each source earns ``rate`` stores per second up to ``burst``; a store
    without a token is refused with reason ``flood`` before any signature is
    checked.  At most ``max_sources`` buckets are kept.
    """
    return TokenBuckets(rate=rate, burst=burst, max_keys=max_sources)
