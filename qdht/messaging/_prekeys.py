"""Prekey records and the owner's prekey pool (11-messaging.md §2).

A user publishes one :class:`~qdht.wire._messaging.PrekeyRecord`, signed with
its ML-DSA-65 key under its own context.  :func:`check_prekey_record` is what
a sender runs on a record it fetched; :class:`PrekeyStore` is the owner's
sans-IO state: the signed prekey rotated weekly (with its X25519 ratchet key
and intro-box name), up to 48 one-time prekeys refilled as they are used, and
the replay cache of first messages, kept until their signed prekey is deleted.

Times are Unix seconds passed in as ``now``: records carry absolute expiry.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any, Final, Protocol

import attrs
from cryptography.hazmat.primitives.asymmetric import x25519

from qdht.crypto import mldsa
from qdht.crypto.hashes import sha3_256
from qdht.crypto.xwing import XWingPrivateKey
from qdht.errors import ConfigError, DecodeError, InvalidSignatureError
from qdht.wire import (
    MAX_ONE_TIME_PREKEYS,
    MLDSA_SIGNATURE_SIZE,
    OneTimePrekey,
    PrekeyRecord,
    decode,
    dumps_canonical,
    loads_canonical,
)

__all__ = [
    "MAX_CLOCK_SKEW",
    "MAX_RECORD_LIFETIME",
    "SIGNED_PREKEY_KEEP",
    "SIGNED_PREKEY_LIFETIME",
    "PrekeyStore",
    "SignedPrekey",
    "Signer",
    "check_prekey_record",
    "parse_prekey_record",
]

DAY: Final = 86400
#: A signed prekey is replaced after a week (§2.2).
SIGNED_PREKEY_LIFETIME: Final = 7 * DAY
#: A replaced signed prekey still opens late first messages for another week, then is deleted.
SIGNED_PREKEY_KEEP: Final = 14 * DAY
#: ``exp - issued`` of a record: a week and a day of slack for republishing.
MAX_RECORD_LIFETIME: Final = 8 * DAY
#: How far in the future ``issued`` may lie.
MAX_CLOCK_SKEW: Final = 300

Rng = Callable[[int], bytes]


class Signer(Protocol):
    """What signs a user's prekeys and first messages: an ML-DSA-65 private key."""

    def public_key_bytes(self) -> bytes: ...

    def sign(self, message: bytes, context: bytes) -> bytes: ...


def check_prekey_record(record: PrekeyRecord, *, now: float, signer: bytes) -> str | None:
    """None if ``record`` may be used at ``now``, else the reason it is refused (§2.3).

    ``signer`` is the contact's ML-DSA-65 public key (from its certificate);
    a record whose ``owner`` is not its hash is refused.
    """
    if record.owner != sha3_256(signer):
        return "prekeys-signer"
    if record.exp <= now:
        return "prekeys-expired"
    if record.issued > now + MAX_CLOCK_SKEW:
        return "prekeys-future"
    if record.exp - record.issued > MAX_RECORD_LIFETIME:
        return "prekeys-lifetime"
    try:
        mldsa.verify(signer, record.signed_bytes(), record.sig, PrekeyRecord.CONTEXT)
    except InvalidSignatureError:
        return "prekeys-signature"
    return None


def parse_prekey_record(data: bytes, *, now: float, signer: bytes) -> PrekeyRecord | str:
    """The verified record in ``data``, or the reason it is refused (``decode`` or §2.3)."""
    try:
        record = decode(data, expect=(PrekeyRecord,))
    except DecodeError:
        return "prekeys-decode"
    assert isinstance(record, PrekeyRecord)
    reason = check_prekey_record(record, now=now, signer=signer)
    return reason if reason is not None else record


@attrs.define
class SignedPrekey:
    """One signed prekey's secrets: X-Wing seed, X25519 ratchet key, intro name, replay cache."""

    id: int
    seed: bytes
    ratchet: bytes
    intro: bytes
    created: float
    #: SHA3-256 of each accepted first message's ciphertexts (§3.5).
    seen: set[bytes] = attrs.field(factory=set)
    _key: XWingPrivateKey | None = attrs.field(default=None, init=False, repr=False, eq=False)

    @property
    def key(self) -> XWingPrivateKey:
        if self._key is None:
            self._key = XWingPrivateKey.from_seed(self.seed)
        return self._key

    def ratchet_public(self) -> bytes:
        private = x25519.X25519PrivateKey.from_private_bytes(self.ratchet)
        return private.public_key().public_bytes_raw()


class PrekeyStore:
    """The owner's prekeys and replay state (11-messaging.md §2.2, §3.5), sans-IO.

    Call :meth:`rotate` and :meth:`refill` from a timer and publish
    :meth:`record` whenever :attr:`dirty` is set.  First contact
    (:mod:`qdht.messaging._first_contact`) takes keys out with
    :meth:`signed_prekey` and :meth:`claim_one_time`.
    """

    def __init__(
        self,
        mldsa_key: Signer,
        identity_key: XWingPrivateKey,
        *,
        one_time_target: int = MAX_ONE_TIME_PREKEYS,
        rng: Rng = os.urandom,
    ) -> None:
        if type(one_time_target) is not int or not 0 <= one_time_target <= MAX_ONE_TIME_PREKEYS:
            raise ConfigError(f"one_time_target must be in 0..{MAX_ONE_TIME_PREKEYS}")
        self.mldsa_key = mldsa_key
        self.identity_key = identity_key
        self.one_time_target = one_time_target
        self.rng = rng
        self.signed: dict[int, SignedPrekey] = {}
        self.one_time: dict[int, bytes] = {}
        self._one_time_keys: dict[int, XWingPrivateKey] = {}
        #: IDs are never reused: every ID below this was handed out once.
        self.next_id = 1
        self.current_id: int | None = None
        self.dirty = True
        self.drops: Counter[str] = Counter()

    # ------------------------------------------------------------ lifecycle

    def _new_id(self) -> int:
        ident = self.next_id
        if ident > 2**32 - 1:
            raise ConfigError("prekey IDs exhausted; generate a new messaging identity")
        self.next_id += 1
        return ident

    def rotate(self, now: float) -> bool:
        """Make a new signed prekey if the current one is a week old; delete old ones.

        Returns whether the record changed.  Deleting a signed prekey deletes
        its replay cache with it: its first messages no longer decrypt.
        """
        changed = False
        current = self.signed.get(self.current_id) if self.current_id is not None else None
        if current is None or now - current.created >= SIGNED_PREKEY_LIFETIME:
            spk = SignedPrekey(self._new_id(), self.rng(32), self.rng(32), self.rng(32), float(now))
            self.signed[spk.id] = spk
            self.current_id = spk.id
            changed = True
        for ident, spk in list(self.signed.items()):
            if ident != self.current_id and now - spk.created >= SIGNED_PREKEY_KEEP:
                del self.signed[ident]
        self.dirty |= changed
        return changed

    def refill(self) -> int:
        """Top the one-time prekeys up to the target; the number added."""
        added = 0
        while len(self.one_time) < self.one_time_target:
            self.one_time[self._new_id()] = self.rng(32)
            added += 1
        self.dirty |= added > 0
        return added

    def record(self, now: float) -> PrekeyRecord:
        """The signed record to publish now (clears :attr:`dirty`)."""
        current = self.current_spk()
        opks = tuple(
            OneTimePrekey(ident, self._one_time_key(ident).public_key_bytes())
            for ident in sorted(self.one_time)
        )
        issued = int(now)
        unsigned = PrekeyRecord(
            sha3_256(self.mldsa_key.public_key_bytes()),
            self.identity_key.public_key_bytes(),
            current.id,
            current.key.public_key_bytes(),
            current.ratchet_public(),
            current.intro,
            opks,
            issued,
            min(int(current.created) + SIGNED_PREKEY_LIFETIME + DAY, issued + MAX_RECORD_LIFETIME),
            bytes(MLDSA_SIGNATURE_SIZE),
        )
        sig = self.mldsa_key.sign(unsigned.signed_bytes(), PrekeyRecord.CONTEXT)
        self.dirty = False
        return attrs.evolve(unsigned, sig=sig)

    # ------------------------------------------------------------ lookups

    def current_spk(self) -> SignedPrekey:
        if self.current_id is None:
            raise ConfigError("no signed prekey yet: call rotate(now) first")
        return self.signed[self.current_id]

    def signed_prekey(self, ident: int) -> SignedPrekey | None:
        return self.signed.get(ident)

    def _one_time_key(self, ident: int) -> XWingPrivateKey:
        key = self._one_time_keys.get(ident)
        if key is None:
            key = self._one_time_keys[ident] = XWingPrivateKey.from_seed(self.one_time[ident])
        return key

    def one_time_key(self, ident: int) -> XWingPrivateKey | str:
        """The one-time prekey ``ident`` (still held), or why it cannot be used."""
        if ident in self.one_time:
            return self._one_time_key(ident)
        return "opk-reused" if ident < self.next_id else "opk-unknown"

    def claim_one_time(self, ident: int) -> None:
        """Delete one-time prekey ``ident``'s secret: it opened a first message (§3.5)."""
        self.one_time.pop(ident, None)
        self._one_time_keys.pop(ident, None)
        self.dirty = True

    def stats(self) -> dict[str, Any]:
        return {
            "signed_prekeys": len(self.signed),
            "one_time_prekeys": len(self.one_time),
            "drops": dict(self.drops),
        }

    # ------------------------------------------------------------ persistence

    def to_bytes(self) -> bytes:
        """The secret state as deterministic CBOR (for atomic persistence by the node)."""
        return dumps_canonical(
            {
                "v": 1,
                "next_id": self.next_id,
                "current": self.current_id,
                "one_time": [[ident, seed] for ident, seed in sorted(self.one_time.items())],
                "signed": [
                    [s.id, s.seed, s.ratchet, s.intro, int(s.created), sorted(s.seen)]
                    for s in self.signed.values()
                ],
            }
        )

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        mldsa_key: Signer,
        identity_key: XWingPrivateKey,
        *,
        one_time_target: int = MAX_ONE_TIME_PREKEYS,
        rng: Rng = os.urandom,
    ) -> PrekeyStore:
        """Restore a store written by :meth:`to_bytes`."""
        store = cls(mldsa_key, identity_key, one_time_target=one_time_target, rng=rng)
        try:
            obj = loads_canonical(data)
            if obj["v"] != 1:
                raise ConfigError("unknown prekey store version")
            store.next_id = obj["next_id"]
            store.current_id = obj["current"]
            store.one_time = {ident: seed for ident, seed in obj["one_time"]}  # noqa: C416
            for ident, seed, ratchet, intro, created, seen in obj["signed"]:
                store.signed[ident] = SignedPrekey(
                    ident, seed, ratchet, intro, float(created), set(seen)
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a prekey store: {exc}") from None
        store.dirty = False
        return store
