"""Grades of a case, as conformance suites give them, and the exceptions cases raise."""

from __future__ import annotations

from typing import Final

__all__ = [
    "FAILED",
    "GRADES",
    "GRADE_MEANINGS",
    "INFORMATIONAL",
    "NON_STRICT",
    "OK",
    "UNIMPLEMENTED",
    "CaseFailed",
    "CaseUnimplemented",
    "worst",
]

OK: Final = "OK"
#: A SHOULD of the spec is broken; the case otherwise passed.
NON_STRICT: Final = "NON-STRICT"
#: A MUST is broken, the target crashed, hung, or answered garbage.
FAILED: Final = "FAILED"
#: The target lacks an optional feature the case needs.
UNIMPLEMENTED: Final = "UNIMPLEMENTED"
#: Nothing to grade (the case only reports what it saw).
INFORMATIONAL: Final = "INFORMATIONAL"
#: Every grade, worst first (the order of precedence within one case).
GRADES: Final = (FAILED, UNIMPLEMENTED, NON_STRICT, INFORMATIONAL, OK)
#: What each grade means, for the reports' legends (tools/interop/README.md).
GRADE_MEANINGS: Final = {
    OK: "the target did what the spec requires and recommends",
    NON_STRICT: "a SHOULD is broken (or a message from the target is NON-STRICT); the MUSTs hold",
    FAILED: (
        "a MUST is broken, a message from the target is INVALID or NON-DETERMINISTIC, "
        "or the target crashed, hung or could not be started"
    ),
    UNIMPLEMENTED: "the target refuses an optional feature the case needs",
    INFORMATIONAL: "nothing to grade; the details say why",
}


def worst(grades: list[str]) -> str:
    """The grade that wins among ``grades`` (OK when empty)."""
    for grade in GRADES:
        if grade in grades:
            return grade
    return OK


class CaseFailed(Exception):
    """A case found a MUST broken (the message is the reason shown to the user)."""


class CaseUnimplemented(Exception):
    """The target does not implement what the case needs."""
