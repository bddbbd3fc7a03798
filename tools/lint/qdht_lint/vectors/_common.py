"""The vector file format, shared by every area's generator (HACKING.md, "Protocol spec")."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["Case", "Valid", "vector_file"]

#: A valid test: comment, flags, encoding.
Valid = tuple[str, list[str], bytes]
#: An invalid test: comment, flags, encoding, expected DecodeError reason (None: unspecified).
Case = tuple[str, list[str], bytes, str | None]


def vector_file(
    rule: str,
    spec: str,
    valid: Iterable[Valid],
    invalid: Iterable[Case],
    *,
    head: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One Wycheproof-style vector file: valid tests first, then invalid, numbered from 1.

    ``head`` fields go before ``tests`` and ``extra`` fields after it, so the
    key order of the written JSON is stable.
    """
    tests: list[dict[str, Any]] = [
        {"comment": comment, "flags": flags, "cbor": data.hex(), "result": "valid"}
        for comment, flags, data in valid
    ]
    for comment, flags, data, reason in invalid:
        test: dict[str, Any] = {
            "comment": comment,
            "flags": flags,
            "cbor": data.hex(),
            "result": "invalid",
        }
        if reason is not None:
            test["reason"] = reason
        tests.append(test)
    numbered = [{"tcId": number, **test} for number, test in enumerate(tests, start=1)]
    return {"rule": rule, "spec": spec, **(head or {}), "tests": numbered, **extra}
