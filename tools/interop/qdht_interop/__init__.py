"""qdht-interop: the conformance harness for implementations of the qdht protocol.

Run with ``qdht-interop run --command CMD`` or ``--target URI``; the contract
between the harness and an implementation under test is in
``tools/interop/README.md``.
"""

from qdht_interop import _mix_cases  # noqa: F401  (registers the mix cases)
from qdht_interop._cases import CASES, Case
from qdht_interop._grades import FAILED, GRADES, INFORMATIONAL, NON_STRICT, OK, UNIMPLEMENTED
from qdht_interop._runner import CaseResult, RunOptions, RunReport, run_suite

__all__ = [
    "CASES",
    "FAILED",
    "GRADES",
    "INFORMATIONAL",
    "NON_STRICT",
    "OK",
    "UNIMPLEMENTED",
    "Case",
    "CaseResult",
    "RunOptions",
    "RunReport",
    "run_suite",
]
