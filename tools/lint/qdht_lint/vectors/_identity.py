"""Test vectors for identity objects (``protocol-spec/03-identity.md``).

Every key comes from fixed seeds (SHA3-256 of labels) and every puzzle nonce is
the first counter value that solves the puzzle, so keys, node IDs and
encodings are the same on every run.  ML-DSA-65 signing in ``cryptography``
is hedged (randomized, FIPS 204 §3.4) and cannot be made deterministic, so
each file pins the signatures it uses in its ``signatures`` list: the
generator reuses a pinned signature whenever it still verifies over the same
bytes, key and context, and signs afresh only when the signed bytes change.

Each file has the wire-level ``tests`` (valid and invalid encodings, the
latter with their DecodeError reason) and a ``semantic`` list: encodings that
decode, checked with the given ``now`` and ``difficulty`` by the verification
rules of 03-identity.md, with ``result`` and, when invalid, the ``error``
class (``expired``, ``not-yet-valid``, ``validity``, ``puzzle``,
``signature``, ``passphrase``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

import cbor2

from qdht.crypto import mldsa
from qdht.crypto.hashes import sha3_256
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.crypto.xwing import XWingPrivateKey
from qdht.errors import InvalidSignatureError
from qdht.identity import (
    CERTIFICATE_CONTEXT,
    NONCE_SIZE,
    REVOCATION_CONTEXT,
    SUCCESSOR_ACCEPT_CONTEXT,
    SUCCESSOR_CONTEXT,
    compute_node_id,
    puzzle_ok,
    seal,
)
from qdht.wire import (
    IdentityCertificate,
    KeyFile,
    Revocation,
    SuccessorStatement,
    encode,
)
from qdht_lint._cddl import default_spec_dir
from qdht_lint.vectors._common import Case, Valid, vector_file
from qdht_lint.vectors._dht import _common_invalid

__all__ = ["vector_files"]

SPEC: Final = "03-identity.md"
#: Puzzle difficulty of the vectors (small, so that anyone can re-mint quickly).
DIFFICULTY: Final = 8
NOW: Final = 1_750_000_000
DAY: Final = 86400
PASSPHRASE: Final = "correct horse battery staple"


def _bytes(label: str, size: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha3_256(f"qdht/vectors/identity/{label}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


def _canon(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


class _Node:
    """A fixed identity: seeds, expanded keys and the first solving nonce."""

    def __init__(self, name: str, *, xwing_label: str | None = None) -> None:
        self.name = name
        self.xwing_seed = _bytes(xwing_label or f"{name}/xwing-seed", 32)
        self.mldsa_seed = _bytes(f"{name}/mldsa-seed", 32)
        self.xwing = XWingPrivateKey.from_seed(self.xwing_seed)
        self.mldsa = MLDSAPrivateKey.from_seed(self.mldsa_seed)
        self.xwing_public = self.xwing.public_key_bytes()
        self.mldsa_public = self.mldsa.public_key_bytes()
        mhash = sha3_256(self.mldsa_public)
        counter = 0
        while True:
            nonce = counter.to_bytes(NONCE_SIZE, "little")
            node_id = compute_node_id(self.xwing_public, mhash, nonce)
            if puzzle_ok(node_id, DIFFICULTY):
                break
            counter += 1
        self.nonce, self.node_id = nonce, node_id

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "xwing_seed": self.xwing_seed.hex(),
            "mldsa_seed": self.mldsa_seed.hex(),
            "nonce": self.nonce.hex(),
            "node_id": self.node_id.hex(),
        }


class _Signer:
    """Signs with pinned signatures (see the module docstring)."""

    def __init__(self, rule: str) -> None:
        self.pinned: dict[tuple[str, str, str], str] = {}
        self.used: list[dict[str, str]] = []
        path = default_spec_dir() / "vectors" / "identity" / f"{rule}.json"
        if path.is_file():
            for entry in json.loads(path.read_text(encoding="utf-8")).get("signatures", []):
                key = (entry["key"], entry["context"], entry["message_sha3"])
                self.pinned[key] = entry["signature"]

    def sign(self, node: _Node, message: bytes, context: bytes) -> bytes:
        key = (node.name, context.decode(), sha3_256(message).hex())
        signature: bytes | None = None
        if key in self.pinned:
            candidate = bytes.fromhex(self.pinned[key])
            try:
                mldsa.verify(node.mldsa_public, message, candidate, context)
                signature = candidate
            except InvalidSignatureError:  # a stale pin is simply replaced
                signature = None
        if signature is None:
            signature = node.mldsa.sign(message, context)
        entry = {
            "key": key[0],
            "context": key[1],
            "message_sha3": key[2],
            "signature": signature.hex(),
        }
        if entry not in self.used:
            self.used.append(entry)
        return signature


class _Rotated(_Node):
    """Alice after an X-Wing rotation: a new X-Wing seed, the same ML-DSA key."""

    def __init__(self) -> None:
        super().__init__("alice", xwing_label="alice/xwing-seed-rotated")


_NODES: list[_Node] = []


def _nodes() -> tuple[_Node, _Node, _Node]:
    """Alice, Bob, and Alice after rotation (computed once: minting is not free)."""
    if not _NODES:
        _NODES.extend([_Node("alice"), _Node("bob"), _Rotated()])
    return _NODES[0], _NODES[1], _NODES[2]


_PLACEHOLDER = bytes(3309)


def _cert(
    signer: _Signer,
    node: _Node,
    *,
    serial: int,
    nbf: int,
    naf: int,
    context: bytes = CERTIFICATE_CONTEXT,
    by: _Node | None = None,
) -> IdentityCertificate:
    unsigned = IdentityCertificate(
        node.xwing_public, node.mldsa_public, node.nonce, serial, nbf, naf, _PLACEHOLDER
    )
    signature = signer.sign(by or node, unsigned.signed_bytes(), context)
    return IdentityCertificate(
        node.xwing_public, node.mldsa_public, node.nonce, serial, nbf, naf, signature
    )


def _flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


def _file(rule: str, valid: list[Valid], invalid: list[Case], **extra: Any) -> dict[str, Any]:
    return vector_file(rule, SPEC, valid, invalid, **extra)


def _semantic(cases: list[tuple[str, bytes, int, int, str | None]]) -> list[dict[str, Any]]:
    out = []
    for number, (comment, data, now, difficulty, error) in enumerate(cases, start=1):
        case: dict[str, Any] = {
            "tcId": number,
            "comment": comment,
            "cbor": data.hex(),
            "now": now,
            "difficulty": difficulty,
            "result": "valid" if error is None else "invalid",
        }
        if error is not None:
            case["error"] = error
        out.append(case)
    return out


def _field_cases(base: dict[str, Any], fields: dict[str, tuple[int, ...]]) -> list[Case]:
    """Size and kind faults for the byte-string fields of ``base`` (name → sizes to try)."""
    cases: list[Case] = []
    for name, sizes in fields.items():
        value = base[name]
        for size in sizes:
            flag = "oversize-field" if size > len(value) else "undersize-field"
            faulty = (value * 2)[:size] if size > len(value) else value[:size]
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
        missing = {k: v for k, v in base.items() if k != name}
        cases.append((f"{name} missing", ["missing-field"], _canon(missing), "missing-field"))
    return cases


def _version_cases(base: dict[str, Any]) -> list[Case]:
    return [
        ("version 2", ["field-value"], _canon(dict(base, v=2)), "field-value"),
        ("version 0", ["field-value"], _canon(dict(base, v=0)), "field-value"),
        (
            "version missing",
            ["missing-field"],
            _canon({k: v for k, v in base.items() if k != "v"}),
            "missing-field",
        ),
    ]


def _certificates() -> dict[str, Any]:
    alice, bob, rotated = _nodes()
    signer = _Signer("identity-cert")
    cert = _cert(signer, alice, serial=NOW, nbf=NOW, naf=NOW + 30 * DAY)
    rotated_cert = _cert(signer, rotated, serial=NOW + DAY, nbf=NOW + DAY, naf=NOW + 31 * DAY)
    bob_cert = _cert(signer, bob, serial=0, nbf=0, naf=400 * DAY)
    base = cert.to_cbor()
    valid: list[tuple[str, list[str], bytes]] = [
        ("alice's certificate", [], encode(cert)),
        (
            "alice after rotating her X-Wing key: same ML-DSA key, higher serial",
            [],
            encode(rotated_cert),
        ),
        ("bob: serial 0, valid from the epoch for 400 days", [], encode(bob_cert)),
    ]
    invalid = _common_invalid(base)
    invalid += _field_cases(
        base, {"xwing": (1215, 1217), "mldsa": (1951, 1953), "nonce": (7, 9), "sig": (3308, 3310)}
    )
    invalid += _version_cases(base)
    invalid += [
        ("serial negative", ["wrong-field-type"], _canon(dict(base, serial=-1)), "field-type"),
        ("naf beyond 2^40-1", ["field-value"], _canon(dict(base, naf=2**40)), "field-value"),
        ("nbf is text", ["wrong-field-type"], _canon(dict(base, nbf="2025")), "field-type"),
        (
            "naf missing",
            ["missing-field"],
            _canon({k: v for k, v in base.items() if k != "naf"}),
            "missing-field",
        ),
    ]
    semantic = _semantic(
        [
            ("valid at not_before", encode(cert), NOW, DIFFICULTY, None),
            (
                "valid one second before not_after",
                encode(cert),
                NOW + 30 * DAY - 1,
                DIFFICULTY,
                None,
            ),
            ("rotated certificate", encode(rotated_cert), NOW + DAY, DIFFICULTY, None),
            ("expired at not_after", encode(cert), NOW + 30 * DAY, DIFFICULTY, "expired"),
            (
                "not yet valid (more than 300 s early)",
                encode(cert),
                NOW - 301,
                DIFFICULTY,
                "not-yet-valid",
            ),
            ("puzzle below the network difficulty", encode(cert), NOW, 40, "puzzle"),
            (
                "signature with one bit flipped",
                encode(_replace(cert, signature=_flip(cert.signature, 10))),
                NOW,
                DIFFICULTY,
                "signature",
            ),
            (
                "serial changed after signing",
                encode(_replace(cert, serial=NOW + 1)),
                NOW,
                DIFFICULTY,
                "signature",
            ),
            (
                "signed by bob's key",
                encode(_cert(signer, alice, serial=NOW, nbf=NOW, naf=NOW + 30 * DAY, by=bob)),
                NOW,
                DIFFICULTY,
                "signature",
            ),
            (
                "signed with the revocation context",
                encode(
                    _cert(
                        signer,
                        alice,
                        serial=NOW,
                        nbf=NOW,
                        naf=NOW + 30 * DAY,
                        context=REVOCATION_CONTEXT,
                    )
                ),
                NOW,
                DIFFICULTY,
                "signature",
            ),
            (
                "not_after not after not_before (signed)",
                encode(_cert(signer, alice, serial=NOW, nbf=NOW, naf=NOW)),
                NOW,
                DIFFICULTY,
                "validity",
            ),
            (
                "lifetime of 401 days (signed)",
                encode(_cert(signer, alice, serial=NOW, nbf=NOW, naf=NOW + 401 * DAY)),
                NOW,
                DIFFICULTY,
                "validity",
            ),
        ]
    )
    return _file(
        "identity-cert",
        valid,
        invalid,
        difficulty=DIFFICULTY,
        context=CERTIFICATE_CONTEXT.decode(),
        keys=[alice.describe(), rotated.describe() | {"name": "alice-rotated"}, bob.describe()],
        semantic=semantic,
        signatures=signer.used,
    )


def _replace(obj: Any, **changes: Any) -> Any:
    import attrs

    return attrs.evolve(obj, **changes)


def _successors() -> dict[str, Any]:
    alice, bob, _ = _nodes()
    signer = _Signer("identity-successor")

    def make(
        old: _Node, new: _Node, issued: int, grace: int, by_new: _Node | None = None
    ) -> SuccessorStatement:
        unsigned = SuccessorStatement(
            old.mldsa_public, new.mldsa_public, issued, grace, _PLACEHOLDER, _PLACEHOLDER
        )
        body = unsigned.signed_bytes()
        return SuccessorStatement(
            old.mldsa_public,
            new.mldsa_public,
            issued,
            grace,
            signer.sign(old, body, SUCCESSOR_CONTEXT),
            signer.sign(by_new or new, body, SUCCESSOR_ACCEPT_CONTEXT),
        )

    statement = make(alice, bob, NOW, 14 * DAY)
    base = statement.to_cbor()
    valid: list[tuple[str, list[str], bytes]] = [
        ("alice hands over to bob, 14 days grace", [], encode(statement)),
        ("no grace period", [], encode(make(alice, bob, NOW, 0))),
    ]
    invalid = _common_invalid(base)
    invalid += _field_cases(
        base, {"old": (1951,), "new": (1953,), "sig_old": (3308,), "sig_new": (3310,)}
    )
    invalid += _version_cases(base)
    invalid += [
        (
            "grace over 90 days",
            ["field-value"],
            _canon(dict(base, grace=90 * DAY + 1)),
            "field-value",
        )
    ]
    semantic = _semantic(
        [
            ("both signatures valid", encode(statement), NOW, DIFFICULTY, None),
            (
                "grace changed after signing",
                encode(_replace(statement, grace=30 * DAY)),
                NOW,
                DIFFICULTY,
                "signature",
            ),
            (
                "new key did not accept (sig_new by alice)",
                encode(make(alice, bob, NOW, DAY, by_new=alice)),
                NOW,
                DIFFICULTY,
                "signature",
            ),
            (
                "sig_old and sig_new swapped",
                encode(
                    _replace(
                        statement,
                        signature_old=statement.signature_new,
                        signature_new=statement.signature_old,
                    )
                ),
                NOW,
                DIFFICULTY,
                "signature",
            ),
        ]
    )
    return _file(
        "identity-successor",
        valid,
        invalid,
        contexts=[SUCCESSOR_CONTEXT.decode(), SUCCESSOR_ACCEPT_CONTEXT.decode()],
        keys=[alice.describe(), bob.describe()],
        semantic=semantic,
        signatures=signer.used,
    )


def _revocations() -> dict[str, Any]:
    alice, bob, _ = _nodes()
    signer = _Signer("identity-revocation")

    def make(node: _Node, serial: int | None, reason: str, by: _Node | None = None) -> Revocation:
        unsigned = Revocation(node.mldsa_public, NOW, _PLACEHOLDER, serial, reason)
        return Revocation(
            node.mldsa_public,
            NOW,
            signer.sign(by or node, unsigned.signed_bytes(), REVOCATION_CONTEXT),
            serial,
            reason,
        )

    whole = make(alice, None, "key compromise")
    upto = make(alice, NOW, "")
    base = whole.to_cbor()
    valid: list[tuple[str, list[str], bytes]] = [
        ("alice revokes her ML-DSA key", [], encode(whole)),
        ("alice revokes her certificates with serial <= NOW", [], encode(upto)),
        ("128-byte reason", [], encode(make(bob, None, "r" * 128))),
    ]
    invalid = _common_invalid(base)
    invalid += _field_cases(base, {"mldsa": (1953,), "sig": (3308,)})
    invalid += _version_cases(base)
    invalid += [
        ("129-byte reason", ["oversize-field"], _canon(dict(base, reason="r" * 129)), "field-size"),
        ("reason is bytes", ["wrong-field-type"], _canon(dict(base, reason=b"")), "field-type"),
        ("serial is null", ["wrong-field-type"], _canon(dict(base, serial=None)), "field-type"),
    ]
    semantic = _semantic(
        [
            ("whole-key revocation", encode(whole), NOW, DIFFICULTY, None),
            ("serial revocation", encode(upto), NOW, DIFFICULTY, None),
            (
                "signed by bob for alice's key",
                encode(make(alice, None, "", by=bob)),
                NOW,
                DIFFICULTY,
                "signature",
            ),
            (
                "serial added after signing",
                encode(_replace(whole, serial=5)),
                NOW,
                DIFFICULTY,
                "signature",
            ),
        ]
    )
    return _file(
        "identity-revocation",
        valid,
        invalid,
        context=REVOCATION_CONTEXT.decode(),
        keys=[alice.describe(), bob.describe()],
        semantic=semantic,
        signatures=signer.used,
    )


def _key_files() -> tuple[dict[str, Any], dict[str, Any]]:
    alice, bob, _ = _nodes()
    plain = KeyFile(alice.xwing_seed, alice.mldsa_seed, alice.nonce, DIFFICULTY)
    base = plain.to_cbor()
    valid: list[tuple[str, list[str], bytes]] = [
        ("alice's key file", [], encode(plain)),
        (
            "bob's key file",
            [],
            encode(KeyFile(bob.xwing_seed, bob.mldsa_seed, bob.nonce, DIFFICULTY)),
        ),
    ]
    invalid = _common_invalid(base)
    invalid += _field_cases(base, {"xwing_seed": (31, 33), "mldsa_seed": (64,), "nonce": (9,)})
    invalid += _version_cases(base)
    invalid += [
        ("difficulty 65", ["field-value"], _canon(dict(base, difficulty=65)), "field-value")
    ]
    keyfile = _file("identity-keyfile", valid, invalid, keys=[alice.describe(), bob.describe()])

    sealed = seal(plain, PASSPHRASE, log_n=10, salt=_bytes("salt", 16))
    sbase = sealed.to_cbor()
    svalid: list[tuple[str, list[str], bytes]] = [
        ("alice's key file sealed with N=2^10, r=8, p=1", [], encode(sealed))
    ]
    sinvalid = _common_invalid(sbase)
    sinvalid += _field_cases(sbase, {"salt": (15, 17)})
    sinvalid += _version_cases(sbase)
    sinvalid += [
        ("kdf argon2id", ["field-value"], _canon(dict(sbase, kdf="argon2id")), "field-value"),
        ("log_n 21", ["field-value"], _canon(dict(sbase, log_n=21)), "field-value"),
        ("log_n 9", ["field-value"], _canon(dict(sbase, log_n=9)), "field-value"),
        ("r 0", ["field-value"], _canon(dict(sbase, r=0)), "field-value"),
        ("p 5", ["field-value"], _canon(dict(sbase, p=5)), "field-value"),
        (
            "ct of 16 bytes (tag only)",
            ["undersize-field"],
            _canon(dict(sbase, ct=bytes(16))),
            "field-size",
        ),
        ("ct of 513 bytes", ["oversize-field"], _canon(dict(sbase, ct=bytes(513))), "field-size"),
    ]
    sealed_file = _file(
        "identity-keyfile_sealed",
        svalid,
        sinvalid,
        passphrase=PASSPHRASE,
        plaintext=encode(plain).hex(),
        semantic=_semantic(
            [
                (
                    "decrypts with the passphrase to `plaintext`",
                    encode(sealed),
                    NOW,
                    DIFFICULTY,
                    None,
                ),
                (
                    "salt changed: the header is authenticated",
                    encode(_replace(sealed, salt=_flip(sealed.salt))),
                    NOW,
                    DIFFICULTY,
                    "passphrase",
                ),
                (
                    "ciphertext bit flipped",
                    encode(_replace(sealed, ciphertext=_flip(sealed.ciphertext, 3))),
                    NOW,
                    DIFFICULTY,
                    "passphrase",
                ),
            ]
        ),
    )
    return keyfile, sealed_file


def vector_files() -> dict[str, dict[str, Any]]:
    """``identity/<rule>.json`` for every identity rule."""
    keyfile, sealed = _key_files()
    files = {
        "identity-cert": _certificates(),
        "identity-successor": _successors(),
        "identity-revocation": _revocations(),
        "identity-keyfile": keyfile,
        "identity-keyfile_sealed": sealed,
    }
    return {f"identity/{rule}.json": content for rule, content in files.items()}
