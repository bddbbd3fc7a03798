"""Test vectors for group messaging (``protocol-spec/12-groups.md``).

Public keys are real (X-Wing and ML-DSA-65 keys expanded from fixed seeds);
signatures, ciphertexts, digests and secrets are fixed filler bytes derived
from labels with SHA3-256.  These files therefore check the *encoding* of
every group message (field names, sizes, operands, closed maps); the
cryptographic checks are tested against RFC 9420's official vectors and by
the group state tests (12 §10), since ML-DSA-65 and HPKE are randomized.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final

import cbor2

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.messaging import LeafKey
from qdht.wire import (
    Commit,
    CommitSlot,
    GroupInfo,
    GroupMessage,
    GroupSecrets,
    KeyPackage,
    LeafNode,
    Proposal,
    SealedSecret,
    Welcome,
    WireMessage,
    encode,
)
from qdht_lint.vectors._common import Case, Valid, vector_file
from qdht_lint.vectors._dht import _common_invalid

__all__ = ["vector_files"]

SPEC: Final = "12-groups.md"
NOTE: Final = (
    "Keys are real; signatures, ciphertexts, digests and secrets are filler: "
    "these vectors check the encoding only (12-groups.md §10)."
)


def _bytes(label: str, size: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha3_256(f"qdht/vectors/groups/{label}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


def _canon(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


GROUP: Final = b"book club"
SIG: Final = _bytes("sig", 3309)


def _leaf(name: str) -> LeafNode:
    enc = LeafKey(_bytes(f"{name}/enc", 32)).public_key_bytes()
    vk = MLDSAPrivateKey.from_seed(_bytes(f"{name}/vk", 32)).public_key_bytes()
    return LeafNode(enc, vk, name.encode(), SIG)


def _key_package(name: str) -> KeyPackage:
    init = LeafKey(_bytes(f"{name}/init", 32)).public_key_bytes()
    return KeyPackage(_leaf(name), init, SIG)


#: Longest value of the fields whose size is a range, not fixed.
_RANGED: Final = {"group": 32, "id": 64, "ct": 65536, "secrets": 256, "info": 65536}


def _field_cases(base: dict[str, Any], optional: frozenset[str] = frozenset()) -> list[Case]:
    """Per field: missing, a byte string one byte longer, the wrong kind of value."""
    cases: list[Case] = []
    for name, value in base.items():
        if name == "type":
            continue
        if name not in optional:
            without = {k: v for k, v in base.items() if k != name}
            cases.append((f"{name} missing", ["missing-field"], _canon(without), "missing-field"))
        if type(value) is bytes:
            huge = dict(base, **{name: bytes(max(len(value), _RANGED.get(name, 0)) + 1)})
            cases.append((f"{name} oversized", ["oversize-field"], _canon(huge), "field-size"))
            as_text = dict(base, **{name: "x"})
            cases.append((f"{name} is text", ["wrong-field-type"], _canon(as_text), "field-type"))
        elif type(value) is int:
            negative = dict(base, **{name: -1})
            cases.append((f"{name} negative", ["wrong-field-type"], _canon(negative), "field-type"))
    return cases


def _file(rule: str, valid: Sequence[tuple[str, WireMessage]], extra: list[Case]) -> dict[str, Any]:
    base = valid[0][1].to_cbor()
    valids: list[Valid] = [(comment, [], encode(msg)) for comment, msg in valid]
    invalid = _common_invalid(base) + _field_cases(base) + extra
    return vector_file(rule, SPEC, valids, invalid, head={"note": NOTE})


def _leaf_file() -> dict[str, Any]:
    return _file("grp-leaf", [("alice's leaf", _leaf("alice")), ("bob's leaf", _leaf("bob"))], [])


def _key_package_file() -> dict[str, Any]:
    kp = _key_package("carol")
    base = kp.to_cbor()
    extra: list[Case] = [
        (
            "leaf is not a leaf map",
            ["wrong-field-type"],
            _canon(dict(base, leaf=b"\0" * 32)),
            "not-a-map",
        ),
    ]
    return _file("grp-key_package", [("carol's key package", kp)], extra)


def _proposals() -> list[tuple[str, Proposal]]:
    return [
        ("remove leaf 2", Proposal(GROUP, 7, 0, "remove", SIG, removed=2)),
        ("add carol", Proposal(GROUP, 7, 1, "add", SIG, key_package=_key_package("carol"))),
        ("update bob's leaf", Proposal(GROUP, 7, 1, "update", SIG, leaf=_leaf("bob2"))),
    ]


def _proposal_file() -> dict[str, Any]:
    valid = _proposals()
    base = valid[0][1].to_cbor()
    extra: list[Case] = [
        ("unknown op", ["wrong-field-value"], _canon(dict(base, op="merge")), "field-value"),
        (
            "remove without its operand",
            ["missing-field"],
            _canon({k: v for k, v in base.items() if k != "removed"}),
            "missing-field",
        ),
        (
            "remove carrying a second operand",
            ["unknown-field"],
            _canon(dict(base, leaf=_leaf("bob2").to_cbor())),
            "unknown-field",
        ),
        ("leaf index 1024", ["wrong-field-value"], _canon(dict(base, removed=1024)), "field-value"),
    ]
    return _file("grp-proposal", valid, extra)


def _commit(proposals: tuple[Proposal, ...], receivers: int) -> Commit:
    secrets = tuple((i, _bytes(f"sealed/{i}", 32)) for i in range(1, receivers + 1))
    return Commit(GROUP, 7, 0, proposals, _leaf("alice2"), secrets, SIG, _bytes("tag", 32))


def _commit_file() -> dict[str, Any]:
    remove = _proposals()[0][1]
    valid: list[tuple[str, WireMessage]] = [
        ("an update-only commit to two receivers", _commit((), 2)),
        ("a commit removing leaf 2", _commit((remove,), 1)),
    ]
    base = valid[0][1].to_cbor()
    extra: list[Case] = [
        (
            "secret reference with an extra field",
            ["wrong-field-type"],
            _canon(dict(base, secrets=[{"to": 1, "h": _bytes("x", 32), "x": 0}])),
            "unknown-field",
        ),
        (
            "secret digest of 31 bytes",
            ["undersize-field"],
            _canon(dict(base, secrets=[{"to": 1, "h": _bytes("x", 31)}])),
            "field-size",
        ),
    ]
    return _file("grp-commit", valid, extra)


def _simple_files() -> dict[str, dict[str, Any]]:
    sealed = SealedSecret(1, _bytes("kem", 1120), _bytes("ct", 48))
    slot = CommitSlot(
        MLDSAPrivateKey.from_seed(_bytes("slot", 32)).public_key_bytes(),
        _bytes("nonce", 12),
        _bytes("commit ct", 20000),
        SIG,
    )
    secrets = GroupSecrets(_bytes("joiner", 32))
    roster = (_bytes("leaf/0", 32), bytes(32), _bytes("leaf/2", 32))
    info = GroupInfo(GROUP, 8, roster, _bytes("cth", 32), _bytes("tag", 32), 0, SIG)
    welcome = Welcome(
        _bytes("kp ref", 32), _bytes("kem", 1120), _bytes("gs", 92), _bytes("gi", 500)
    )
    message = GroupMessage(_bytes("epoch id", 32), _bytes("sd", 28), _bytes("msg", 5439))
    return {
        "grp-sealed": _file("grp-sealed", [("to leaf 1", sealed)], []),
        "grp-commit_slot": _file("grp-commit_slot", [("a 20000-byte commit", slot)], []),
        "grp-group_secrets": _file("grp-group_secrets", [("joiner secret", secrets)], []),
        "grp-group_info": _file(
            "grp-group_info",
            [("three leaves, one blank", info)],
            [
                (
                    "roster entry of 16 bytes",
                    ["undersize-field"],
                    _canon(dict(info.to_cbor(), roster=[_bytes("r", 16)])),
                    "field-size",
                ),
                (
                    "empty roster",
                    ["undersize-field"],
                    _canon(dict(info.to_cbor(), roster=[])),
                    "field-size",
                ),
            ],
        ),
        "grp-welcome": _file("grp-welcome", [("one joiner", welcome)], []),
        "grp-group_message": _file(
            "grp-group_message", [("a 2048-byte padded message", message)], []
        ),
    }


def vector_files() -> dict[str, dict[str, Any]]:
    """Every group vector file: relative path → JSON object."""
    files = {
        "grp-leaf": _leaf_file(),
        "grp-key_package": _key_package_file(),
        "grp-proposal": _proposal_file(),
        "grp-commit": _commit_file(),
        **_simple_files(),
    }
    return {f"groups/{rule}.json": content for rule, content in files.items()}
