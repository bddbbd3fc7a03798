"""Test vectors for signed contact lists (``protocol-spec/06-bootstrap.md``).

Keys, nonces and certificates come from the identity vectors' fixed nodes
(alice, bob); ML-DSA-65 signatures are pinned in the file's ``signatures``
list exactly as there (signing is hedged, so a signature is reused while it
still verifies over the same bytes).  ``tests`` are wire-level cases;
``semantic`` cases decode and are checked by 06-bootstrap.md §3 with the
given ``now``, ``difficulty`` and optional pinned ``signer``; invalid ones name
the ``error`` class (``expired``, ``not-yet-valid``, ``validity``, ``signature``,
``signer``, ``puzzle``).
"""

from __future__ import annotations

import json
from typing import Any, Final

import cbor2

from qdht.crypto.hashes import sha3_256
from qdht.wire import CONTACT_LIST_CONTEXT, Address, Contact, ContactList, encode
from qdht_lint._cddl import default_spec_dir
from qdht_lint.vectors._common import vector_file
from qdht_lint.vectors._dht import _common_invalid
from qdht_lint.vectors._identity import (
    DAY,
    DIFFICULTY,
    NOW,
    _cert,
    _flip,
    _Node,
    _nodes,
    _Signer,
)

__all__ = ["vector_files"]

RULE: Final = "bootstrap-contact_list"
SPEC: Final = "06-bootstrap.md"


class _BootstrapSigner(_Signer):
    """A signer whose pins live in ``vectors/bootstrap/`` (one pin list for all objects)."""

    def __init__(self, rule: str) -> None:
        self.pinned: dict[tuple[str, str, str], str] = {}
        self.used: list[dict[str, str]] = []
        path = default_spec_dir() / "vectors" / "bootstrap" / f"{rule}.json"
        if path.is_file():
            for entry in json.loads(path.read_text(encoding="utf-8")).get("signatures", []):
                key = (entry["key"], entry["context"], entry["message_sha3"])
                self.pinned[key] = entry["signature"]


def _contacts(count: int) -> list[Contact]:
    out = []
    for i in range(count):
        node_id = sha3_256(f"qdht/vectors/bootstrap/contact-{i}".encode())
        address = Address("udp", f"198.51.100.{i % 250 + 1}", 6881)
        if i % 3 == 2:
            out.append(Contact(node_id, (address, Address("ws", "2001:db8::7", 443))))
        else:
            out.append(Contact(node_id, (address,)))
    return out


def _list(
    signer: _Signer,
    node: _Node,
    contacts: list[Contact],
    *,
    issued: int,
    expires: int,
    by: _Node | None = None,
    context: bytes = CONTACT_LIST_CONTEXT,
) -> ContactList:
    cert = _cert(signer, node, serial=issued, nbf=issued, naf=issued + 30 * DAY)
    unsigned = ContactList(cert, issued, expires, contacts, bytes(3309))
    signature = signer.sign(by or node, unsigned.signed_bytes(), context)
    return ContactList(cert, issued, expires, contacts, signature)


def _semantic(
    cases: list[tuple[str, bytes, int, bytes | None, str | None]],
) -> list[dict[str, Any]]:
    out = []
    for number, (comment, data, now, signer, error) in enumerate(cases, start=1):
        case: dict[str, Any] = {
            "tcId": number,
            "comment": comment,
            "cbor": data.hex(),
            "now": now,
            "difficulty": DIFFICULTY,
            "result": "valid" if error is None else "invalid",
        }
        if signer is not None:
            case["signer"] = signer.hex()
        if error is not None:
            case["error"] = error
        out.append(case)
    return out


def _canon(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


def vector_files() -> dict[str, dict[str, Any]]:
    """``bootstrap/bootstrap-contact_list.json``."""
    alice, bob, _ = _nodes()
    signer = _BootstrapSigner(RULE)
    contacts = _contacts(3)
    good = _list(signer, alice, contacts, issued=NOW, expires=NOW + 7 * DAY)
    single = _list(signer, alice, _contacts(1), issued=NOW, expires=NOW + 1)
    as_map = good.to_cbor()
    valid: list[tuple[str, list[str], bytes]] = [
        ("three contacts, 7 days", [], encode(good)),
        ("one contact, 1 second", [], encode(single)),
    ]
    invalid = _common_invalid(as_map)
    invalid += [
        ("contacts empty", ["undersize-field"], _canon(dict(as_map, contacts=[])), "field-size"),
        (
            "65 contacts",
            ["oversize-field"],
            _canon(dict(as_map, contacts=[c.to_cbor() for c in _contacts(65)])),
            "field-size",
        ),
        (
            "sig of 3308 bytes",
            ["undersize-field"],
            _canon(dict(as_map, sig=bytes(3308))),
            "field-size",
        ),
        (
            "cert missing",
            ["missing-field"],
            _canon({k: v for k, v in as_map.items() if k != "cert"}),
            "missing-field",
        ),
        ("cert is bytes", ["wrong-field-type"], _canon(dict(as_map, cert=b"cert")), "not-a-map"),
        (
            "cert with an unknown field",
            ["unknown-field"],
            _canon(dict(as_map, cert=dict(as_map["cert"], extra=1))),
            "unknown-field",
        ),
        ("version 2", ["wrong-field-value"], _canon(dict(as_map, v=2)), "field-value"),
        ("issued is text", ["wrong-field-type"], _canon(dict(as_map, issued="now")), "field-type"),
        (
            "contact with a bad transport",
            ["wrong-field-value"],
            _canon(
                dict(
                    as_map,
                    contacts=[
                        {
                            "id": contacts[0].node_id,
                            "addrs": [{"tr": "tcp", "ip": bytes(4), "port": 1}],
                        }
                    ],
                )
            ),
            "field-value",
        ),
    ]
    too_long = _list(signer, alice, contacts, issued=NOW, expires=NOW + 31 * DAY)
    backwards = _list(signer, alice, contacts, issued=NOW, expires=NOW)
    by_bob = _list(signer, alice, contacts, issued=NOW, expires=NOW + DAY, by=bob)
    wrong_context = _list(
        signer, alice, contacts, issued=NOW, expires=NOW + DAY, context=b"qdht/v1/revocation"
    )
    tampered = ContactList(good.cert, good.issued, good.expires, _contacts(4)[1:], good.signature)
    semantic = _semantic(
        [
            ("valid at issue time", encode(good), NOW, None, None),
            ("valid, signer pinned", encode(good), NOW + DAY, alice.node_id, None),
            ("valid within the clock skew before issue", encode(good), NOW - 300, None, None),
            ("pinned to another signer", encode(good), NOW, bob.node_id, "signer"),
            ("expired", encode(good), NOW + 7 * DAY, None, "expired"),
            ("not yet valid", encode(good), NOW - 301, None, "not-yet-valid"),
            ("lifetime over 30 days", encode(too_long), NOW, None, "validity"),
            ("expires equals issued", encode(backwards), NOW, None, "validity"),
            ("signed by bob's key", encode(by_bob), NOW, None, "signature"),
            ("signed with another context", encode(wrong_context), NOW, None, "signature"),
            ("contacts changed after signing", encode(tampered), NOW, None, "signature"),
            (
                "signature with one bit flipped",
                encode(
                    ContactList(
                        good.cert,
                        good.issued,
                        good.expires,
                        good.contacts,
                        _flip(good.signature, 7),
                    )
                ),
                NOW,
                None,
                "signature",
            ),
            ("puzzle harder than the signer's node ID meets", encode(good), NOW, None, None),
        ]
    )
    # The last case checks the puzzle at a higher difficulty than alice's ID solves.
    semantic[-1].update(
        {
            "comment": "signer's node ID does not meet the difficulty",
            "difficulty": 64,
            "result": "invalid",
            "error": "puzzle",
        }
    )
    content = vector_file(RULE, SPEC, valid, invalid, nodes=[alice.describe(), bob.describe()])
    content["semantic"] = semantic
    content["signatures"] = signer.used
    return {f"bootstrap/{RULE}.json": content}
