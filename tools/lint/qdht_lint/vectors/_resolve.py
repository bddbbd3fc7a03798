"""Test vectors for identity resolution (``protocol-spec/16-resolve.md``).

Request IDs and node IDs come from fixed labels hashed with SHA3-256; the
certificate and revocation carried are the first valid ones of the identity
vectors (``vectors/identity/``), read from the spec directory.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

import cbor2

from qdht.wire import (
    IdentityCertificate,
    IdentityResolved,
    ResolveIdentity,
    Revocation,
    decode,
    encode,
)
from qdht_lint._cddl import default_spec_dir
from qdht_lint.vectors._common import Case, Valid, vector_file
from qdht_lint.vectors._dht import _common_invalid

__all__ = ["vector_files"]

SPEC: Final = "16-resolve.md"
RID: Final = hashlib.sha3_256(b"qdht/vectors/resolve/rid").digest()[:8]
NODE_ID: Final = hashlib.sha3_256(b"qdht/vectors/resolve/node-id").digest()


def _canon(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


def _first_valid(rule: str) -> Any:
    path = default_spec_dir() / "vectors" / "identity" / f"{rule}.json"
    tests = json.loads(path.read_text(encoding="utf-8"))["tests"]
    first = next(t for t in tests if t["result"] == "valid")
    return decode(bytes.fromhex(first["cbor"]))


def _resolve() -> dict[str, Any]:
    message = ResolveIdentity(RID, NODE_ID)
    as_map = message.to_cbor()
    valid: list[Valid] = [("typical", [], encode(message))]
    invalid: list[Case] = _common_invalid(as_map)
    invalid += [
        ("id of 31 bytes", ["wrong-size"], _canon(dict(as_map, id=NODE_ID[:31])), "field-size"),
        ("id is text", ["wrong-field-type"], _canon(dict(as_map, id="x")), "field-type"),
        ("id missing", ["missing-field"], _canon({"type": "resolve", "rid": RID}), "missing-field"),
    ]
    return vector_file("resolve-resolve", SPEC, valid, invalid)


def _resolved() -> dict[str, Any]:
    cert = _first_valid("identity-cert")
    revocation = _first_valid("identity-revocation")
    assert isinstance(cert, IdentityCertificate)
    assert isinstance(revocation, Revocation)
    full = IdentityResolved(RID, cert, revocation)
    as_map = full.to_cbor()
    valid: list[Valid] = [
        ("a certificate", [], encode(IdentityResolved(RID, cert))),
        ("unknown: no certificate", [], encode(IdentityResolved(RID))),
        ("a certificate and a revocation of its key", [], encode(full)),
    ]
    bad_cert = dict(as_map["cert"], extra=1)
    invalid: list[Case] = _common_invalid(as_map)
    invalid += [
        (
            "cert with an unknown field",
            ["unknown-field"],
            _canon(dict(as_map, cert=bad_cert)),
            "unknown-field",
        ),
        ("cert is bytes", ["wrong-field-type"], _canon(dict(as_map, cert=b"x")), "not-a-map"),
        (
            "revocation is a certificate",
            ["wrong-type"],
            _canon(dict(as_map, revocation=as_map["cert"])),
            "wrong-type",
        ),
    ]
    return vector_file("resolve-resolved", SPEC, valid, invalid)


def vector_files() -> dict[str, dict[str, Any]]:
    """``resolve/resolve-<type>.json`` for the two resolution messages."""
    return {
        "resolve/resolve-resolve.json": _resolve(),
        "resolve/resolve-resolved.json": _resolved(),
    }
