"""Test vectors for DHT records (``protocol-spec/07-records.md``).

Owner keys come from fixed seeds (SHA3-256 of labels).  ML-DSA-65 signing is
hedged (randomized), so, as for the identity vectors, each file pins the
signatures it uses in its ``signatures`` list and the generator reuses a
pinned signature whenever it still verifies over the same bytes, key and
context.

Each file has the wire-level ``tests`` (valid and invalid encodings, the
latter with their DecodeError reason) and two semantic lists, replayed by
``tests/records/test_vectors.py``:

* ``semantic``: a record offered under ``key`` at ``now``, validated by the
  rules of 07-records.md §6 with the file's ``limits`` (a case may override
  some in its own ``limits``); ``owner_known`` says whether the validator may
  resolve owners' keys from the file's ``keys`` (as from certificates it
  holds).  ``result`` and, when invalid, the rejection ``reason``.
* ``merge``: an ``incoming`` record against what the holder holds
  (``existing``, or ``entries`` for a set), both valid, with an optional
  ``cas``; the ``outcome`` of 07-records.md §7 (``store``, ``replace``,
  ``unchanged``, ``reject``) and, for ``reject``, the ``reason``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

import attrs
import cbor2

from qdht.crypto import mldsa
from qdht.crypto.hashes import sha3_256
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import DEFAULT_RECORD_LIMITS
from qdht.errors import InvalidSignatureError
from qdht.wire import (
    ImmutableRecord,
    MutableRecord,
    SetEntry,
    SignedRecord,
    Tombstone,
    encode,
    owner_hash,
)
from qdht_lint._cddl import default_spec_dir
from qdht_lint.vectors._common import Case, Valid, vector_file
from qdht_lint.vectors._dht import _common_invalid

__all__ = ["vector_files"]

SPEC: Final = "07-records.md"
NOW: Final = 1_750_000_000
DAY: Final = 86400
HOUR: Final = 3600

_PLACEHOLDER: Final = bytes(mldsa.SIGNATURE_SIZE)


def _bytes(label: str, size: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha3_256(f"qdht/vectors/records/{label}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


def _canon(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


def _flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


class _Owner:
    """A fixed ML-DSA-65 owner key."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seed = _bytes(f"{name}/mldsa-seed", 32)
        self.key = MLDSAPrivateKey.from_seed(self.seed)
        self.public = self.key.public_key_bytes()
        self.owner = owner_hash(self.public)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "mldsa_seed": self.seed.hex(), "owner": self.owner.hex()}


_OWNERS: list[_Owner] = []


def _owners() -> tuple[_Owner, _Owner]:
    if not _OWNERS:
        _OWNERS.extend([_Owner("alice"), _Owner("bob")])
    return _OWNERS[0], _OWNERS[1]


class _Signer:
    """Signs with pinned signatures (see the module docstring)."""

    def __init__(self, rule: str) -> None:
        self.pinned: dict[tuple[str, str, str], str] = {}
        self.used: list[dict[str, str]] = []
        path = default_spec_dir() / "vectors" / "records" / f"{rule}.json"
        if path.is_file():
            for entry in json.loads(path.read_text(encoding="utf-8")).get("signatures", []):
                self.pinned[(entry["key"], entry["context"], entry["message_sha3"])] = entry[
                    "signature"
                ]

    def sign(self, owner: _Owner, message: bytes, context: bytes, *, variant: str = "") -> bytes:
        """``owner``'s signature; a ``variant`` pins a second signature of the same bytes."""
        key = (owner.name + variant, context.decode(), sha3_256(message).hex())
        signature: bytes | None = None
        if key in self.pinned:
            candidate = bytes.fromhex(self.pinned[key])
            try:
                mldsa.verify(owner.public, message, candidate, context)
                signature = candidate
            except InvalidSignatureError:  # a stale pin is simply replaced
                signature = None
        if signature is None:
            signature = owner.key.sign(message, context)
            self.pinned[key] = signature.hex()  # the same bytes reuse it within this run
        entry = {
            "key": key[0],
            "context": key[1],
            "message_sha3": key[2],
            "signature": signature.hex(),
        }
        if entry not in self.used:
            self.used.append(entry)
        return signature

    def seal(
        self,
        unsigned: SignedRecord,
        owner: _Owner,
        *,
        context: bytes | None = None,
        with_pk: bool = True,
    ) -> Any:
        """``unsigned`` signed by ``owner`` (under its own context unless told otherwise)."""
        signature = self.sign(owner, unsigned.signed_bytes(), context or unsigned.CONTEXT)
        return attrs.evolve(
            unsigned, signature=signature, public_key=unsigned.public_key if with_pk else None
        )


def _mutable(
    signer: _Signer,
    owner: _Owner,
    *,
    salt: bytes = b"profile",
    seq: int = 1,
    value: bytes = b"hello",
    exp: int = NOW + DAY,
    **kw: Any,
) -> MutableRecord:
    unsigned = MutableRecord(owner.owner, salt, seq, value, exp, _PLACEHOLDER, owner.public)
    record: MutableRecord = signer.seal(unsigned, owner, **kw)
    return record


def _tombstone(
    signer: _Signer,
    owner: _Owner,
    *,
    salt: bytes = b"profile",
    seq: int = 3,
    exp: int = NOW + 2 * DAY,
    **kw: Any,
) -> Tombstone:
    unsigned = Tombstone(owner.owner, salt, seq, exp, _PLACEHOLDER, owner.public)
    record: Tombstone = signer.seal(unsigned, owner, **kw)
    return record


def _entry(
    signer: _Signer,
    owner: _Owner,
    *,
    topic: bytes = b"mix-nodes",
    seq: int = 1,
    value: bytes = b"descriptor",
    exp: int = NOW + DAY,
    **kw: Any,
) -> SetEntry:
    unsigned = SetEntry(topic, owner.owner, seq, value, exp, _PLACEHOLDER, owner.public)
    record: SetEntry = signer.seal(unsigned, owner, **kw)
    return record


def _file(rule: str, valid: list[Valid], invalid: list[Case], **extra: Any) -> dict[str, Any]:
    return vector_file(rule, SPEC, valid, invalid, head={"limits": _limits()}, **extra)


def _limits() -> dict[str, int]:
    return attrs.asdict(DEFAULT_RECORD_LIMITS)


def _semantic(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Number the cases and fill in the defaults (now = NOW, owner unknown)."""
    out = []
    for number, case in enumerate(cases, start=1):
        full: dict[str, Any] = {"tcId": number, "comment": case.pop("comment")}
        record = case.pop("record")
        full["cbor"] = encode(record).hex()
        full["key"] = case.pop("key", record.key()).hex()
        full["now"] = case.pop("now", NOW)
        full["owner_known"] = case.pop("owner_known", False)
        if "limits" in case:
            full["limits"] = case.pop("limits")
        reason = case.pop("reason", None)
        full["result"] = "valid" if reason is None else "invalid"
        if reason is not None:
            full["reason"] = reason
        assert not case, case
        out.append(full)
    return out


def _merge(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for number, case in enumerate(cases, start=1):
        full: dict[str, Any] = {"tcId": number, "comment": case.pop("comment")}
        if "entries" in case:
            full["entries"] = [encode(record).hex() for record in case.pop("entries")]
        else:
            existing = case.pop("existing")
            full["existing"] = None if existing is None else encode(existing).hex()
        incoming = case.pop("incoming")
        full["incoming"] = encode(incoming).hex()
        full["key"] = incoming.key().hex()
        full["now"] = case.pop("now", NOW)
        if "cas" in case:
            full["cas"] = case.pop("cas")
        if "limits" in case:
            full["limits"] = case.pop("limits")
        full["outcome"] = case.pop("outcome")
        if "reason" in case:
            full["reason"] = case.pop("reason")
        assert not case, case
        out.append(full)
    return out


def _field_cases(base: dict[str, Any], fields: dict[str, tuple[int, ...]]) -> list[Case]:
    """Size, kind and presence faults for byte-string fields (name → sizes to try)."""
    cases: list[Case] = []
    for name, sizes in fields.items():
        value = base.get(name, b"x")
        for size in sizes:
            flag = "oversize-field" if size > len(value) else "undersize-field"
            faulty = (value * (size // max(len(value), 1) + 1))[:size] if value else bytes(size)
            cases.append(
                (
                    f"{name} of {size} bytes",
                    [flag],
                    _canon(dict(base, **{name: faulty})),
                    "field-size",
                )
            )
        cases.append(
            (
                f"{name} is text",
                ["wrong-field-type"],
                _canon(dict(base, **{name: "x"})),
                "field-type",
            )
        )
    return cases


def _missing(base: dict[str, Any], names: tuple[str, ...]) -> list[Case]:
    return [
        (
            f"{name} missing",
            ["missing-field"],
            _canon({k: v for k, v in base.items() if k != name}),
            "missing-field",
        )
        for name in names
    ]


def _uint_cases(base: dict[str, Any]) -> list[Case]:
    cases: list[Case] = [
        ("exp beyond 2^40-1", ["field-value"], _canon(dict(base, exp=2**40)), "field-value"),
        ("exp negative", ["wrong-field-type"], _canon(dict(base, exp=-1)), "field-type"),
        ("exp is text", ["wrong-field-type"], _canon(dict(base, exp="soon")), "field-type"),
    ]
    if "seq" in base:
        cases += [
            ("seq negative", ["wrong-field-type"], _canon(dict(base, seq=-1)), "field-type"),
            ("seq is bytes", ["wrong-field-type"], _canon(dict(base, seq=b"\x01")), "field-type"),
        ]
    return cases


def _pk_null(base: dict[str, Any]) -> list[Case]:
    return [("pk is null", ["wrong-field-type"], _canon(dict(base, pk=None)), "field-type")]


# ------------------------------------------------------------------- files


def _immutables() -> dict[str, Any]:
    record = ImmutableRecord(b"hello, qdht", NOW + DAY)
    base = record.to_cbor()
    biggest = ImmutableRecord(_bytes("big", 65536), NOW + HOUR)
    valid: list[tuple[str, list[str], bytes]] = [
        ("an 11-byte value, expiring in a day", [], encode(record)),
        ("empty value", [], encode(ImmutableRecord(b"", NOW + HOUR))),
        ("65536-byte value (the largest)", [], encode(biggest)),
    ]
    invalid = _common_invalid(base)
    invalid += [
        (
            "65537-byte value",
            ["oversize-field"],
            _canon(dict(base, value=_bytes("big", 65537))),
            "field-size",
        ),
        ("value is text", ["wrong-field-type"], _canon(dict(base, value="hi")), "field-type"),
    ]
    invalid += _missing(base, ("value", "exp"))
    invalid += _uint_cases(base)
    other = ImmutableRecord(b"another value", NOW + DAY)
    semantic = _semantic(
        [
            {"comment": "valid under immutable_key(value)", "record": record},
            {
                "comment": "offered under the key of another value",
                "record": record,
                "key": other.key(),
                "reason": "key-mismatch",
            },
            {
                "comment": "expired at exp",
                "record": record,
                "now": NOW + DAY,
                "reason": "expired",
            },
            {
                "comment": "valid one second before exp",
                "record": record,
                "now": NOW + DAY - 1,
            },
            {
                "comment": "exp 7 days + 301 s ahead: beyond max_ttl + clock_skew",
                "record": ImmutableRecord(b"x", NOW + 7 * DAY + 301),
                "reason": "expiry-too-far",
            },
            {
                "comment": "exp exactly max_ttl + clock_skew ahead",
                "record": ImmutableRecord(b"x", NOW + 7 * DAY + 300),
            },
            {
                "comment": "value over a holder's lower max_value_size",
                "record": ImmutableRecord(bytes(1025), NOW + DAY),
                "limits": {"max_value_size": 1024, "max_set_value_size": 1024},
                "reason": "too-large",
            },
        ]
    )
    later = ImmutableRecord(record.value, NOW + 2 * DAY)
    merge = _merge(
        [
            {"comment": "nothing held", "existing": None, "incoming": record, "outcome": "store"},
            {
                "comment": "same value, later exp: refresh",
                "existing": record,
                "incoming": later,
                "outcome": "replace",
            },
            {
                "comment": "same value, earlier exp: kept as is",
                "existing": later,
                "incoming": record,
                "outcome": "unchanged",
            },
        ]
    )
    return _file(
        "records-immutable",
        valid,
        invalid,
        key_prefix="qdht/v1/immutable",
        semantic=semantic,
        merge=merge,
    )


def _mutables() -> dict[str, Any]:
    alice, bob = _owners()
    signer = _Signer("records-mutable")
    record = _mutable(signer, alice)
    base = record.to_cbor()
    no_pk = _mutable(signer, alice, with_pk=False)
    valid: list[tuple[str, list[str], bytes]] = [
        ("alice's profile at seq 1, pk attached", [], encode(record)),
        ("the same record without pk", [], encode(no_pk)),
        (
            "empty salt, empty value, seq 0",
            [],
            encode(_mutable(signer, alice, salt=b"", seq=0, value=b"")),
        ),
        (
            "64-byte salt, seq 2^64-1",
            [],
            encode(_mutable(signer, bob, salt=_bytes("salt", 64), seq=2**64 - 1)),
        ),
    ]
    # Faults other than pk's are shown on the record without pk: smaller files.
    small = no_pk.to_cbor()
    invalid = _common_invalid(small)
    invalid += _field_cases(base, {"pk": (1951, 1953)})
    invalid += _field_cases(
        small, {"owner": (31, 33), "sig": (3308, 3310), "salt": (65,), "value": (65537,)}
    )
    invalid += _missing(small, ("owner", "salt", "seq", "value", "exp", "sig"))
    invalid += _uint_cases(small) + _pk_null(base)

    seq2 = _mutable(signer, alice, seq=2, value=b"hello again")
    other_salt = _mutable(signer, alice, salt=b"other")
    semantic = _semantic(
        [
            {"comment": "valid, pk attached", "record": record},
            {
                "comment": "valid without pk: the holder knows alice's certificate",
                "record": no_pk,
                "owner_known": True,
            },
            {
                "comment": "without pk and no certificate for the owner",
                "record": no_pk,
                "reason": "owner-key-unknown",
            },
            {
                "comment": "signature with one bit flipped",
                "record": attrs.evolve(record, signature=_flip(record.signature, 10)),
                "reason": "bad-signature",
            },
            {
                "comment": "value changed after signing",
                "record": attrs.evolve(record, value=b"HELLO"),
                "reason": "bad-signature",
            },
            {
                "comment": "seq raised after signing",
                "record": attrs.evolve(record, seq=9),
                "reason": "bad-signature",
            },
            {
                "comment": "exp extended after signing",
                "record": attrs.evolve(record, expires=NOW + 2 * DAY),
                "reason": "bad-signature",
            },
            {
                "comment": "signed with the tombstone context",
                "record": _mutable(signer, alice, context=Tombstone.CONTEXT),
                "reason": "bad-signature",
            },
            {
                "comment": "signed by bob, alice's owner and pk",
                "record": attrs.evolve(
                    record,
                    signature=signer.sign(bob, record.signed_bytes(), MutableRecord.CONTEXT),
                ),
                "reason": "bad-signature",
            },
            {
                "comment": "bob's pk on alice's record: the key does not match its owner",
                "record": attrs.evolve(record, public_key=bob.public),
                "reason": "owner-mismatch",
            },
            {
                "comment": "offered under the key of another salt",
                "record": record,
                "key": other_salt.key(),
                "reason": "key-mismatch",
            },
            {
                "comment": "offered under the immutable key of its value",
                "record": record,
                "key": ImmutableRecord(record.value, 0).key(),
                "reason": "key-mismatch",
            },
            {"comment": "expired", "record": record, "now": NOW + DAY, "reason": "expired"},
            {
                "comment": "exp too far ahead (signed)",
                "record": _mutable(signer, alice, exp=NOW + 30 * DAY),
                "reason": "expiry-too-far",
            },
            {
                "comment": "value over a holder's lower max_value_size",
                "record": _mutable(signer, alice, value=bytes(2048)),
                "limits": {"max_value_size": 1024, "max_set_value_size": 1024},
                "reason": "too-large",
            },
        ]
    )
    twin = _mutable(signer, alice, seq=2, value=b"a different value at seq 2")
    low, high = sorted((seq2, twin), key=lambda r: sha3_256(r.signed_bytes()))
    resigned = attrs.evolve(
        seq2,
        signature=signer.sign(
            alice, seq2.signed_bytes(), MutableRecord.CONTEXT, variant="/resigned"
        ),
    )
    if resigned.signature == seq2.signature:  # pragma: no cover - hedged signing
        raise RuntimeError("ML-DSA signing repeated a signature")
    merge = _merge(
        [
            {"comment": "nothing held", "existing": None, "incoming": record, "outcome": "store"},
            {
                "comment": "seq 2 replaces seq 1",
                "existing": record,
                "incoming": seq2,
                "outcome": "replace",
            },
            {
                "comment": "a republish of seq 1 loses to the held seq 2",
                "existing": seq2,
                "incoming": record,
                "outcome": "reject",
                "reason": "seq-regression",
            },
            {
                "comment": "the same record again",
                "existing": seq2,
                "incoming": seq2,
                "outcome": "unchanged",
            },
            {
                "comment": "the same record without pk",
                "existing": seq2,
                "incoming": attrs.evolve(seq2, public_key=None),
                "outcome": "unchanged",
            },
            {
                "comment": "the same body re-signed (another hedged signature)",
                "existing": seq2,
                "incoming": resigned,
                "outcome": "unchanged",
            },
            {
                "comment": "equal seq, different value, higher digest: replaces",
                "existing": low,
                "incoming": high,
                "outcome": "replace",
            },
            {
                "comment": "equal seq, different value, lower digest: refused",
                "existing": high,
                "incoming": low,
                "outcome": "reject",
                "reason": "seq-conflict",
            },
            {
                "comment": "cas 1 matches the held seq 1",
                "existing": record,
                "incoming": seq2,
                "cas": 1,
                "outcome": "replace",
            },
            {
                "comment": "cas 0 does not match the held seq 1",
                "existing": record,
                "incoming": seq2,
                "cas": 0,
                "outcome": "reject",
                "reason": "cas-mismatch",
            },
            {
                "comment": "cas with nothing held: stored (the holder cannot judge)",
                "existing": None,
                "incoming": seq2,
                "cas": 1,
                "outcome": "store",
            },
            {
                "comment": "the held record has expired: a lower seq is stored",
                "existing": seq2,
                "incoming": _mutable(signer, alice, exp=NOW + 2 * DAY),
                "now": NOW + DAY,
                "outcome": "store",
            },
            {
                "comment": "write-once salt: a second, higher-seq write is refused (07 §7.1 3a)",
                "existing": _mutable(signer, alice, salt=b"qdht/v1/once/slot", value=b"first"),
                "incoming": _mutable(
                    signer, alice, salt=b"qdht/v1/once/slot", seq=2, value=b"second"
                ),
                "outcome": "reject",
                "reason": "write-once",
            },
            {
                "comment": "write-once salt: the same record again is unchanged",
                "existing": _mutable(signer, alice, salt=b"qdht/v1/once/slot", value=b"first"),
                "incoming": _mutable(signer, alice, salt=b"qdht/v1/once/slot", value=b"first"),
                "outcome": "unchanged",
            },
        ]
    )
    return _file(
        "records-mutable",
        valid,
        invalid,
        context=MutableRecord.CONTEXT.decode(),
        key_prefix="qdht/v1/mutable",
        keys=[alice.describe(), bob.describe()],
        semantic=semantic,
        merge=merge,
        signatures=signer.used,
    )


def _tombstones() -> dict[str, Any]:
    alice, bob = _owners()
    signer = _Signer("records-tombstone")
    tomb = _tombstone(signer, alice)
    base = tomb.to_cbor()
    valid: list[tuple[str, list[str], bytes]] = [
        ("alice deletes her profile at seq 3", [], encode(tomb)),
        ("without pk", [], encode(_tombstone(signer, alice, with_pk=False))),
    ]
    small = _tombstone(signer, alice, with_pk=False).to_cbor()
    invalid = _common_invalid(small)
    invalid += _field_cases(base, {"pk": (1953,)})
    invalid += _field_cases(small, {"owner": (33,), "sig": (3308,), "salt": (65,)})
    invalid += _missing(small, ("owner", "salt", "seq", "exp", "sig"))
    invalid += _uint_cases(small) + _pk_null(base)
    invalid.append(
        ("a value field", ["unknown-field"], _canon(dict(small, value=b"")), "unknown-field")
    )
    semantic = _semantic(
        [
            {"comment": "valid", "record": tomb},
            {
                "comment": "signed with the mutable-record context",
                "record": _tombstone(signer, alice, context=MutableRecord.CONTEXT),
                "reason": "bad-signature",
            },
            {
                "comment": "seq changed after signing",
                "record": attrs.evolve(tomb, seq=4),
                "reason": "bad-signature",
            },
            {
                "comment": "bob's pk",
                "record": attrs.evolve(tomb, public_key=bob.public),
                "reason": "owner-mismatch",
            },
            {
                "comment": "expired",
                "record": tomb,
                "now": NOW + 2 * DAY,
                "reason": "expired",
            },
        ]
    )
    seq2 = _mutable(signer, alice, seq=2)
    seq3 = _mutable(signer, alice, seq=3)
    seq4 = _mutable(signer, alice, seq=4, value=b"back again")
    merge = _merge(
        [
            {
                "comment": "tombstone at seq 3 deletes the mutable record at seq 2",
                "existing": seq2,
                "incoming": tomb,
                "outcome": "replace",
            },
            {
                "comment": "a republish of seq 2 after the deletion is refused",
                "existing": tomb,
                "incoming": seq2,
                "outcome": "reject",
                "reason": "seq-regression",
            },
            {
                "comment": "equal seq: the tombstone wins over the mutable record",
                "existing": seq3,
                "incoming": tomb,
                "outcome": "replace",
            },
            {
                "comment": "equal seq: a mutable record does not undo the tombstone",
                "existing": tomb,
                "incoming": seq3,
                "outcome": "reject",
                "reason": "seq-conflict",
            },
            {
                "comment": "the owner re-creates the record at seq 4",
                "existing": tomb,
                "incoming": seq4,
                "outcome": "replace",
            },
        ]
    )
    return _file(
        "records-tombstone",
        valid,
        invalid,
        context=Tombstone.CONTEXT.decode(),
        key_prefix="qdht/v1/mutable",
        keys=[alice.describe(), bob.describe()],
        semantic=semantic,
        merge=merge,
        signatures=signer.used,
    )


def _set_entries() -> dict[str, Any]:
    alice, bob = _owners()
    signer = _Signer("records-set_entry")
    entry = _entry(signer, alice)
    base = entry.to_cbor()
    valid: list[tuple[str, list[str], bytes]] = [
        ("alice's entry in the set mix-nodes", [], encode(entry)),
        ("bob's entry, without pk", [], encode(_entry(signer, bob, with_pk=False))),
        ("64-byte topic", [], encode(_entry(signer, bob, topic=_bytes("topic", 64)))),
    ]
    small = _entry(signer, alice, with_pk=False).to_cbor()
    invalid = _common_invalid(small)
    invalid += _field_cases(base, {"pk": (1951,)})
    invalid += _field_cases(
        small, {"topic": (0, 65), "owner": (31,), "sig": (3310,), "value": (65537,)}
    )
    invalid += _missing(small, ("topic", "owner", "seq", "value", "exp", "sig"))
    invalid += _uint_cases(small) + _pk_null(base)
    semantic = _semantic(
        [
            {"comment": "valid", "record": entry},
            {
                "comment": "offered under another topic's key",
                "record": entry,
                "key": _entry(signer, alice, topic=b"mailbox").key(),
                "reason": "key-mismatch",
            },
            {
                "comment": "4097-byte value: over max_set_value_size",
                "record": _entry(signer, alice, value=bytes(4097)),
                "reason": "too-large",
            },
            {
                "comment": "topic changed after signing",
                "record": attrs.evolve(entry, topic=b"mailbox"),
                "key": attrs.evolve(entry, topic=b"mailbox").key(),
                "reason": "bad-signature",
            },
            {
                "comment": "signed with the mutable-record context",
                "record": _entry(signer, alice, context=MutableRecord.CONTEXT),
                "reason": "bad-signature",
            },
            {
                "comment": "bob's pk on alice's entry",
                "record": attrs.evolve(entry, public_key=bob.public),
                "reason": "owner-mismatch",
            },
        ]
    )
    bob1 = _entry(signer, bob, value=b"bob's descriptor")
    alice2 = _entry(signer, alice, seq=2, value=b"descriptor v2")
    carol = _Owner("carol")
    carol1 = _entry(signer, carol, value=b"carol's descriptor")
    short_bob = _entry(signer, bob, value=b"bob's descriptor", exp=NOW + HOUR)
    two = {"max_set_entries": 2}
    merge = _merge(
        [
            {
                "comment": "first entry of an empty set",
                "entries": [],
                "incoming": entry,
                "outcome": "store",
            },
            {
                "comment": "a second publisher",
                "entries": [entry],
                "incoming": bob1,
                "outcome": "store",
            },
            {
                "comment": "alice updates her entry in a full set",
                "entries": [entry, bob1],
                "incoming": alice2,
                "limits": two,
                "outcome": "replace",
            },
            {
                "comment": "a third publisher when the set holds max_set_entries = 2",
                "entries": [entry, bob1],
                "incoming": carol1,
                "limits": two,
                "outcome": "reject",
                "reason": "set-full",
            },
            {
                "comment": "a third publisher once bob's entry has expired",
                "entries": [entry, short_bob],
                "incoming": carol1,
                "limits": two,
                "now": NOW + HOUR,
                "outcome": "store",
            },
            {
                "comment": "alice republishes seq 1 over her seq 2",
                "entries": [alice2, bob1],
                "incoming": entry,
                "outcome": "reject",
                "reason": "seq-regression",
            },
            {
                "comment": "alice's cas 0 does not match her held seq 1",
                "entries": [entry, bob1],
                "incoming": alice2,
                "cas": 0,
                "outcome": "reject",
                "reason": "cas-mismatch",
            },
        ]
    )
    return _file(
        "records-set_entry",
        valid,
        invalid,
        context=SetEntry.CONTEXT.decode(),
        key_prefix="qdht/v1/set",
        keys=[alice.describe(), bob.describe(), carol.describe()],
        semantic=semantic,
        merge=merge,
        signatures=signer.used,
    )


def vector_files() -> dict[str, dict[str, Any]]:
    """``records/<rule>.json`` for every record rule."""
    files = {
        "records-immutable": _immutables(),
        "records-mutable": _mutables(),
        "records-tombstone": _tombstones(),
        "records-set_entry": _set_entries(),
    }
    return {f"records/{rule}.json": content for rule, content in files.items()}
