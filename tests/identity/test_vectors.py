"""The identity vectors of protocol-spec/vectors/identity, replayed through qdht.identity.

The wire-level cases (decoding, reasons, CDDL) are checked for every area by
tests/wire/test_spec.py; this file checks the semantic cases and the fixed
keys, and fuzzes the identity decoders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdht.crypto.hashes import sha3_256
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.crypto.xwing import XWingPrivateKey
from qdht.errors import DecodeError, IdentityError, PuzzleError, WrongPassphraseError
from qdht.identity import (
    EncryptedKeyFile,
    IdentityCertificate,
    KeyFile,
    Revocation,
    SuccessorStatement,
    compute_node_id,
    puzzle_ok,
    unseal,
    verify_certificate,
    verify_revocation,
    verify_successor,
)
from qdht.wire import decode, dumps_canonical, encode

VECTORS = Path(__file__).resolve().parents[2] / "protocol-spec" / "vectors" / "identity"


def _load(rule: str) -> dict[str, Any]:
    content: dict[str, Any] = json.loads((VECTORS / f"{rule}.json").read_text(encoding="utf-8"))
    return content


def _semantic(rule: str) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{rule}#{case['tcId']}", case) for case in _load(rule)["semantic"]]


def _error_class(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, PuzzleError):
        return "puzzle"
    if isinstance(exc, WrongPassphraseError):
        return "passphrase"
    for needle, name in (
        ("signature", "signature"),
        ("expired", "expired"),
        ("not yet valid", "not-yet-valid"),
        ("lifetime", "validity"),
        ("not_after", "validity"),
    ):
        if needle in text:
            return name
    return f"unexpected: {text}"


def _check(case: dict[str, Any], rule: str) -> None:
    message = decode(bytes.fromhex(case["cbor"]))
    error: str | None = None
    try:
        if rule == "identity-cert":
            assert isinstance(message, IdentityCertificate)
            verify_certificate(message, now=case["now"], difficulty=case["difficulty"])
        elif rule == "identity-successor":
            assert isinstance(message, SuccessorStatement)
            verify_successor(message)
        elif rule == "identity-revocation":
            assert isinstance(message, Revocation)
            verify_revocation(message)
        else:
            assert isinstance(message, EncryptedKeyFile)
            plain = unseal(message, _load(rule)["passphrase"])
            assert encode(plain).hex() == _load(rule)["plaintext"]
    except (IdentityError, WrongPassphraseError) as exc:
        error = _error_class(exc)
    assert error == case.get("error")


SEMANTIC_RULES = [
    "identity-cert",
    "identity-successor",
    "identity-revocation",
    "identity-keyfile_sealed",
]
SEMANTIC = [(name, rule, case) for rule in SEMANTIC_RULES for name, case in _semantic(rule)]


@pytest.mark.parametrize(("name", "rule", "case"), SEMANTIC, ids=[s[0] for s in SEMANTIC])
def test_semantic_vector(name: str, rule: str, case: dict[str, Any]) -> None:
    _check(case, rule)


def test_every_semantic_file_has_valid_and_invalid_cases() -> None:
    for rule in SEMANTIC_RULES:
        results = {case["result"] for _, case in _semantic(rule)}
        assert results == {"valid", "invalid"}, rule


def test_vector_keys_reproduce_node_ids() -> None:
    content = _load("identity-cert")
    for key in content["keys"]:
        xwing = XWingPrivateKey.from_seed(bytes.fromhex(key["xwing_seed"]))
        mldsa = MLDSAPrivateKey.from_seed(bytes.fromhex(key["mldsa_seed"]))
        node_id = compute_node_id(
            xwing.public_key_bytes(),
            sha3_256(mldsa.public_key_bytes()),
            bytes.fromhex(key["nonce"]),
        )
        assert node_id.hex() == key["node_id"]
        assert puzzle_ok(node_id, content["difficulty"])


def test_vector_key_file_matches_its_keys() -> None:
    content = _load("identity-keyfile")
    key_file = decode(bytes.fromhex(content["tests"][0]["cbor"]))
    assert isinstance(key_file, KeyFile)
    assert key_file.xwing_seed.hex() == content["keys"][0]["xwing_seed"]


# ------------------------------------------------------------------- fuzzing

IDENTITY_CLASSES = (IdentityCertificate, SuccessorStatement, Revocation, KeyFile, EncryptedKeyFile)
VALID_MAPS = [
    cbor2.loads(bytes.fromhex(test["cbor"]))
    for rule in (*SEMANTIC_RULES, "identity-keyfile")
    for test in _load(rule)["tests"][:1]
]

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64 - 1),
    st.binary(max_size=40),
    st.text(max_size=10),
    st.sampled_from([bytes(1216), bytes(1952), bytes(3309), bytes(8), bytes(32), bytes(16)]),
)


@given(st.sampled_from(VALID_MAPS), st.data())
def test_mutated_identity_maps_never_crash_the_decoder(
    base: dict[str, Any], data: st.DataObject
) -> None:
    mutated = dict(base)
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from([*base, "extra"]))
        if data.draw(st.booleans()):
            mutated.pop(key, None)
        else:
            mutated[key] = data.draw(_values)
    encoded = dumps_canonical(mutated)
    try:
        message = decode(encoded, expect=IDENTITY_CLASSES)
    except DecodeError:
        return
    assert encode(message) == encoded


@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    try:
        message = decode(data, expect=IDENTITY_CLASSES)
    except DecodeError:
        return
    assert encode(message) == data


@given(st.sampled_from(VALID_MAPS), st.integers(min_value=0), st.integers(0, 255))
def test_corrupted_encodings_never_crash_the_decoder(
    base: dict[str, Any], index: int, byte: int
) -> None:
    encoded = bytearray(dumps_canonical(base))
    encoded[index % len(encoded)] = byte
    try:
        message = decode(bytes(encoded), expect=IDENTITY_CLASSES)
    except DecodeError:
        return
    assert encode(message) == bytes(encoded)
