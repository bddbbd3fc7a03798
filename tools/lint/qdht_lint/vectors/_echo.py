"""Test vectors for the diagnostic echo service (``protocol-spec/15-echo.md``).

Request IDs and data come from fixed labels hashed with SHA3-256.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import cbor2

from qdht.wire import MAX_ECHO_DATA, Echo, Echoed, encode
from qdht_lint.vectors._common import Case, Valid, vector_file
from qdht_lint.vectors._dht import _common_invalid

__all__ = ["vector_files"]

SPEC: Final = "15-echo.md"
RID: Final = hashlib.sha3_256(b"qdht/vectors/echo/rid").digest()[:8]
DATA: Final = hashlib.sha3_256(b"qdht/vectors/echo/data").digest()


def _canon(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


def _file(rule: str, cls: type[Echo] | type[Echoed]) -> dict[str, Any]:
    message = cls(RID, DATA)
    as_map = message.to_cbor()
    valid: list[Valid] = [
        ("typical", [], encode(message)),
        ("empty data", [], encode(cls(RID, b""))),
        (f"data of {MAX_ECHO_DATA} bytes", [], encode(cls(RID, b"\x5a" * MAX_ECHO_DATA))),
    ]
    invalid: list[Case] = _common_invalid(as_map)
    invalid += [
        (
            f"data of {MAX_ECHO_DATA + 1} bytes",
            ["oversize-field"],
            _canon(dict(as_map, data=b"\x5a" * (MAX_ECHO_DATA + 1))),
            "field-size",
        ),
        ("data is text", ["wrong-field-type"], _canon(dict(as_map, data="hi")), "field-type"),
        (
            "data missing",
            ["missing-field"],
            _canon({k: v for k, v in as_map.items() if k != "data"}),
            "missing-field",
        ),
    ]
    return vector_file(rule, SPEC, valid, invalid)


def vector_files() -> dict[str, dict[str, Any]]:
    """``echo/echo-<type>.json`` for the two echo messages."""
    return {
        "echo/echo-echo.json": _file("echo-echo", Echo),
        "echo/echo-echoed.json": _file("echo-echoed", Echoed),
    }
