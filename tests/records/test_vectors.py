"""The record vectors of protocol-spec/vectors/records, replayed through qdht.dht._records.

The wire-level cases (decoding, reasons, CDDL) are checked for every area by
tests/wire/test_spec.py; this file replays the ``semantic`` (validation) and
``merge`` (holder decision) cases and checks the fixed keys.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import attrs
import pytest

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.dht import (
    REJECT_REASONS,
    Outcome,
    RecordLimits,
    ValidRecord,
    accept,
    accept_set_entry,
    validate_record,
)
from qdht.errors import RecordRejectedError
from qdht.wire import RECORD_TYPES, AnyRecord, ImmutableRecord, decode, owner_hash

VECTORS = Path(__file__).resolve().parents[2] / "protocol-spec" / "vectors" / "records"
RULES = ["records-immutable", "records-mutable", "records-tombstone", "records-set_entry"]


@cache
def _load(rule: str) -> dict[str, Any]:
    content: dict[str, Any] = json.loads((VECTORS / f"{rule}.json").read_text(encoding="utf-8"))
    return content


def _record(hex_data: str) -> AnyRecord:
    record = decode(bytes.fromhex(hex_data), expect=RECORD_TYPES)
    assert isinstance(record, RECORD_TYPES)
    return record


def _limits(content: dict[str, Any], case: dict[str, Any]) -> RecordLimits:
    return RecordLimits(**(content["limits"] | case.get("limits", {})))


def _resolver(content: dict[str, Any]) -> dict[bytes, bytes]:
    keys = {}
    for key in content.get("keys", []):
        public = MLDSAPrivateKey.from_seed(bytes.fromhex(key["mldsa_seed"])).public_key_bytes()
        keys[owner_hash(public)] = public
    return keys


def _validate(content: dict[str, Any], case: dict[str, Any], hex_data: str) -> ValidRecord:
    known = _resolver(content) if case.get("owner_known") else {}
    return validate_record(
        _record(hex_data),
        bytes.fromhex(case["key"]),
        case["now"],
        limits=_limits(content, case),
        resolve_owner=known.get,
    )


SEMANTIC = [
    (f"{rule}#{case['tcId']}", rule, case) for rule in RULES for case in _load(rule)["semantic"]
]
MERGE = [(f"{rule}#{case['tcId']}", rule, case) for rule in RULES for case in _load(rule)["merge"]]


@pytest.mark.parametrize(("name", "rule", "case"), SEMANTIC, ids=[s[0] for s in SEMANTIC])
def test_semantic_vector(name: str, rule: str, case: dict[str, Any]) -> None:
    content = _load(rule)
    reason: str | None = None
    try:
        valid = _validate(content, case, case["cbor"])
    except RecordRejectedError as exc:
        reason = exc.reason
    else:
        assert valid.key.hex() == case["key"]
        if valid.owner is not None:  # a valid signed record comes back self-contained
            record = valid.record
            assert not isinstance(record, ImmutableRecord)
            assert record.public_key is not None
    assert reason == case.get("reason")
    assert (reason is None) == (case["result"] == "valid")


@pytest.mark.parametrize(("name", "rule", "case"), MERGE, ids=[m[0] for m in MERGE])
def test_merge_vector(name: str, rule: str, case: dict[str, Any]) -> None:
    content = _load(rule)
    # A held record was valid when it was stored, which for one that has
    # expired since was before ``now``: validate it while it was live.
    case = dict(case, owner_known=True)  # merge cases hold valid records only
    incoming = _validate(content, case, case["incoming"])
    limits = _limits(content, case)
    if "entries" in case:
        entries = [_validate(content, _live_at(case, h), h) for h in case["entries"]]
        by_owner = {entry.owner: entry for entry in entries if entry.owner is not None}
        decision = accept_set_entry(
            by_owner, incoming, case["now"], cas=case.get("cas"), limits=limits
        )
    else:
        existing = (
            None
            if case["existing"] is None
            else _validate(content, _live_at(case, case["existing"]), case["existing"])
        )
        decision = accept(existing, incoming, case["now"], cas=case.get("cas"))
    assert decision.outcome is Outcome(case["outcome"])
    assert decision.reason == case.get("reason")
    if decision.accepted:
        assert decision.record == incoming


def _live_at(case: dict[str, Any], hex_data: str) -> dict[str, Any]:
    """The case with ``now`` moved to just before the record expires, if it has."""
    expires = _record(hex_data).expires
    return dict(case, now=min(case["now"], expires - 1))


def test_every_file_has_valid_and_invalid_semantic_cases() -> None:
    for rule in RULES:
        results = {case["result"] for case in _load(rule)["semantic"]}
        assert results == {"valid", "invalid"}, rule


def test_vectors_cover_every_validation_and_merge_reason() -> None:
    seen = {case.get("reason") for _, _, case in SEMANTIC + MERGE} - {None}
    # ``flood`` is decided before a record is parsed: no record vector shows it.
    assert seen == REJECT_REASONS - {"flood", "kind-mismatch"}


def test_vector_owners_match_their_seeds() -> None:
    for rule in RULES[1:]:
        for key in _load(rule)["keys"]:
            public = MLDSAPrivateKey.from_seed(bytes.fromhex(key["mldsa_seed"])).public_key_bytes()
            assert owner_hash(public).hex() == key["owner"]


def test_vector_limits_are_the_defaults() -> None:
    for rule in RULES:
        assert _load(rule)["limits"] == attrs.asdict(RecordLimits())
