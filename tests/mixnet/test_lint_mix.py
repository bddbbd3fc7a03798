"""``qdht-lint`` on mixnet messages: packet shape, descriptors, directories (§14.5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cbor2
import pytest
from qdht_lint.engine import NON_STRICT, OK, Linter

VECTORS = Path(__file__).parents[2] / "protocol-spec" / "vectors" / "mix"


@pytest.fixture(scope="module")
def linter() -> Linter:
    return Linter()


def first_valid(rule: str) -> dict[str, Any]:
    file = json.loads((VECTORS / f"{rule}.json").read_text(encoding="utf-8"))
    message: dict[str, Any] = cbor2.loads(bytes.fromhex(file["tests"][0]["cbor"]))
    return message


def enc(message: dict[str, Any]) -> bytes:
    return cbor2.dumps(message, canonical=True)


@pytest.mark.parametrize(
    "rule", ["mix-packet", "mix-descriptor", "mix-directory", "mix-exit_forward", "mix-handoff"]
)
def test_the_valid_vectors_are_ok(linter: Linter, rule: str) -> None:
    assert linter.lint(enc(first_valid(rule))).verdict == OK


def test_a_packet_of_no_geometry_or_version_is_non_strict(linter: Linter) -> None:
    packet = first_valid("mix-packet")
    short = linter.lint(enc(dict(packet, data=packet["data"][:5000])))  # below every geometry
    assert (short.verdict, short.should) == (NON_STRICT, ("S-MIX-1",))
    assert "no geometry's packet size" in short.detail
    version = linter.lint(enc(dict(packet, data=b"\x00\x02" + packet["data"][2:])))
    assert (version.verdict, version.should) == (NON_STRICT, ("S-MIX-1",))


def test_a_descriptor_with_a_bad_signature_is_non_strict(linter: Linter) -> None:
    descriptor = first_valid("mix-descriptor")
    signature = bytearray(descriptor["sig"])
    signature[10] ^= 1
    verdict = linter.lint(enc(dict(descriptor, sig=bytes(signature))))
    assert (verdict.verdict, verdict.should) == (NON_STRICT, ("S-MIX-2",))
    assert "descriptor-bad-signature" in verdict.detail


def test_a_directory_with_an_unusable_key_is_non_strict(linter: Linter) -> None:
    directory = first_valid("mix-directory")
    mixes = [dict(directory["mixes"][0], key=b"\xff" * 1216), *directory["mixes"][1:]]
    verdict = linter.lint(enc(dict(directory, mixes=mixes)))
    assert (verdict.verdict, verdict.should) == (NON_STRICT, ("S-MIX-3",))


@pytest.mark.parametrize("rule", ["mix-exit_forward", "mix-handoff"])
def test_a_forwarded_message_without_a_type_is_non_strict(linter: Linter, rule: str) -> None:
    verdict = linter.lint(enc(dict(first_valid(rule), message=b"not cbor")))
    assert (verdict.verdict, verdict.should) == (NON_STRICT, ("S-MIX-4",))
