"""Signed contact lists (06-bootstrap.md): signing, verification, the spec's vectors."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from qdht.dht import sign_contact_list, verify_contact_list
from qdht.errors import ConfigError, DecodeError, IdentityError, PuzzleError
from qdht.identity import Identity
from qdht.wire import Address, Contact, ContactList, decode, encode

SPEC_DIR = Path(__file__).resolve().parents[2] / "protocol-spec"
VECTORS = SPEC_DIR / "vectors" / "bootstrap" / "bootstrap-contact_list.json"
NOW = 1_750_000_000


@functools.cache
def signer() -> Identity:
    return Identity.generate(difficulty=4)


def contacts(n: int) -> list[Contact]:
    return [
        Contact(bytes([i]) * 32, (Address("udp", f"192.0.2.{i + 1}", 6881 + i),)) for i in range(n)
    ]


def error_class(exc: Exception) -> str:
    """The vector ``error`` class of a verification failure."""
    if isinstance(exc, PuzzleError):
        return "puzzle"
    text = str(exc)
    for needle, name in (
        ("not yet valid", "not-yet-valid"),
        ("expired", "expired"),
        ("lifetime", "validity"),
        ("not after", "validity"),
        ("another node", "signer"),
        ("signature", "signature"),
    ):
        if needle in text:
            return name
    return f"unexpected: {text}"


def test_signed_list_round_trips() -> None:
    identity = signer()
    signed = sign_contact_list(identity, contacts(5), now=NOW)
    data = encode(signed)
    assert decode(data) == signed
    got = verify_contact_list(data, now=NOW + 60, difficulty=4, signer=identity.node_id)
    assert got == contacts(5)


def test_tampered_or_foreign_lists_are_refused() -> None:
    identity = signer()
    signed = sign_contact_list(identity, contacts(2), now=NOW, lifetime=3600)
    swapped = ContactList(
        signed.cert, signed.issued, signed.expires, contacts(3)[1:], signed.signature
    )
    with pytest.raises(IdentityError, match="signature"):
        verify_contact_list(encode(swapped), now=NOW, difficulty=4)
    with pytest.raises(IdentityError, match="another node"):
        verify_contact_list(signed, now=NOW, difficulty=4, signer=bytes(32))
    with pytest.raises(IdentityError, match="expired"):
        verify_contact_list(signed, now=NOW + 3600, difficulty=4)
    with pytest.raises(DecodeError):
        verify_contact_list(b"\xa0", now=NOW, difficulty=4)


def test_signing_misuse_raises() -> None:
    with pytest.raises(ConfigError, match="contacts"):
        sign_contact_list(signer(), [], now=NOW)
    with pytest.raises(ConfigError, match="lifetime"):
        sign_contact_list(signer(), contacts(1), now=NOW, lifetime=31 * 86400)


def semantic_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(VECTORS.read_text(encoding="utf-8"))["semantic"]
    return cases


@pytest.mark.parametrize("case", semantic_cases(), ids=lambda case: case["comment"])
def test_semantic_vector(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["cbor"])
    pinned = bytes.fromhex(case["signer"]) if "signer" in case else None
    check = functools.partial(
        verify_contact_list, data, now=case["now"], difficulty=case["difficulty"], signer=pinned
    )
    if case["result"] == "valid":
        assert check()
    else:
        with pytest.raises(IdentityError) as info:
            check()
        assert error_class(info.value) == case["error"]
