"""Helpers shared by the qdht-lint tests: a small spec following the conventions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cbor2

FIXTURE_SPEC = Path(__file__).parent / "fixture_spec"
RID = b"r" * 8
ADDRESS = {"tr": "udp", "ip": b"\x7f\x00\x00\x01", "port": 6881}
CONTACT = {"id": b"\x01" * 32, "addrs": [ADDRESS]}


def enc(obj: Any) -> bytes:
    """Deterministic CBOR, as a conforming sender writes it."""
    return cbor2.dumps(obj, canonical=True)


def ping() -> dict[str, Any]:
    return {"type": "ping", "rid": RID}


def nodes(*contacts: dict[str, Any]) -> dict[str, Any]:
    return {"type": "nodes", "rid": RID, "nodes": list(contacts)}


def vector_files() -> dict[str, dict[str, Any]]:
    """Vectors for the fixture spec: valid and invalid for every message rule."""

    def case(tc: int, obj: Any, result: str, **extra: Any) -> dict[str, Any]:
        data = obj if isinstance(obj, bytes) else enc(obj)
        test = {"tcId": tc, "comment": "", "flags": [], "cbor": data.hex(), "result": result}
        return {**test, **extra}

    return {
        "dht/dht-ping.json": {
            "rule": "dht-ping",
            "tests": [
                case(1, ping(), "valid"),
                case(2, {"type": "ping"}, "invalid", reason="missing-field"),
            ],
        },
        "dht/dht-nodes.json": {
            "rule": "dht-nodes",
            "tests": [
                case(1, nodes(CONTACT), "valid"),
                case(2, nodes(CONTACT, CONTACT), "valid", flags=["S-DHT-2"]),
                case(3, nodes({**CONTACT, "x": 1}), "invalid", reason="unknown-field"),
            ],
        },
        "dht/dht-error.json": {
            "rule": "dht-error",
            "tests": [
                case(1, {"type": "error", "code": 1, "message": "no"}, "valid"),
                case(2, {"type": "error", "code": "1", "message": "no"}, "invalid"),
            ],
        },
        "test/test-probe.json": {
            "rule": "test-probe",
            "tests": [
                case(1, {"type": "probe", "data": b""}, "valid"),
                case(2, {"type": "probe", "data": b"x" * 17}, "invalid", reason="field-size"),
            ],
        },
        "common/contact.json": {
            "rule": "contact",
            "tests": [case(1, CONTACT, "valid"), case(2, {"id": b""}, "invalid")],
        },
    }


def write_spec(directory: Path) -> Path:
    """A complete, passing copy of the fixture spec (CDDL and vectors) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURE_SPEC / "qdht.cddl", directory / "qdht.cddl")
    for name, content in vector_files().items():
        path = directory / "vectors" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    return directory
