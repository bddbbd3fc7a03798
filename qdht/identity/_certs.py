"""Verification of identity certificates, successor statements and revocations.

Implements 03-identity.md §5 to §8.  These functions judge data received from
other nodes: they raise :class:`qdht.errors.IdentityError` (or its subclass
:class:`~qdht.errors.PuzzleError`) with the reason, and nothing else.
"""

from __future__ import annotations

from typing import Final

from qdht.crypto import mldsa
from qdht.crypto.hashes import sha3_256
from qdht.errors import IdentityError, InvalidSignatureError, PuzzleError
from qdht.identity._puzzle import compute_node_id, puzzle_ok
from qdht.wire import IdentityCertificate, Revocation, SuccessorStatement

__all__ = [
    "CERTIFICATE_CONTEXT",
    "CLOCK_SKEW",
    "MAX_CERTIFICATE_LIFETIME",
    "REVOCATION_CONTEXT",
    "SUCCESSOR_ACCEPT_CONTEXT",
    "SUCCESSOR_CONTEXT",
    "certificate_node_id",
    "revokes",
    "successor_in_grace",
    "verify_certificate",
    "verify_revocation",
    "verify_successor",
]

#: ML-DSA-65 context strings (FIPS 204 ctx), one per signed object type.
CERTIFICATE_CONTEXT: Final = b"qdht/v1/identity-certificate"
SUCCESSOR_CONTEXT: Final = b"qdht/v1/successor-statement"
SUCCESSOR_ACCEPT_CONTEXT: Final = b"qdht/v1/successor-acceptance"
REVOCATION_CONTEXT: Final = b"qdht/v1/revocation"

#: Longest validity a certificate may claim: 400 days.
MAX_CERTIFICATE_LIFETIME: Final = 400 * 86400
#: Clock skew tolerated when checking not_before, in seconds.
CLOCK_SKEW: Final = 300


def _verify(public: bytes, message: bytes, signature: bytes, context: bytes, what: str) -> None:
    try:
        mldsa.verify(public, message, signature, context)
    except InvalidSignatureError:
        raise IdentityError(f"{what}: signature does not verify") from None


def certificate_node_id(cert: IdentityCertificate) -> bytes:
    """The node ID a certificate claims (computed, never transmitted)."""
    return compute_node_id(cert.xwing_public, sha3_256(cert.mldsa_public), cert.nonce)


def verify_certificate(cert: IdentityCertificate, *, now: int, difficulty: int) -> bytes:
    """Check a certificate completely and return the node ID it proves.

    Order (cheap first, 03-identity.md §5.2): validity window, lifetime,
    puzzle at the network's ``difficulty``, then the ML-DSA signature.
    Raises PuzzleError for an unsolved puzzle and IdentityError otherwise.
    """
    if cert.not_after <= cert.not_before:
        raise IdentityError("certificate: not_after is not after not_before")
    if cert.not_after - cert.not_before > MAX_CERTIFICATE_LIFETIME:
        raise IdentityError("certificate: lifetime exceeds the maximum")
    if now + CLOCK_SKEW < cert.not_before:
        raise IdentityError("certificate: not yet valid")
    if now >= cert.not_after:
        raise IdentityError("certificate: expired")
    node_id = certificate_node_id(cert)
    if not puzzle_ok(node_id, difficulty):
        raise PuzzleError(
            f"certificate: node ID does not solve the puzzle at difficulty {difficulty}"
        )
    _verify(
        cert.mldsa_public, cert.signed_bytes(), cert.signature, CERTIFICATE_CONTEXT, "certificate"
    )
    return node_id


def verify_successor(statement: SuccessorStatement) -> None:
    """Check both signatures of a successor statement (03-identity.md §7)."""
    body = statement.signed_bytes()
    _verify(
        statement.old_public,
        body,
        statement.signature_old,
        SUCCESSOR_CONTEXT,
        "successor (old key)",
    )
    _verify(
        statement.new_public,
        body,
        statement.signature_new,
        SUCCESSOR_ACCEPT_CONTEXT,
        "successor (new key)",
    )


def successor_in_grace(statement: SuccessorStatement, now: int) -> bool:
    """Whether the old key is still honoured: ``issued <= now < issued + grace``."""
    return statement.issued <= now < statement.issued + statement.grace


def verify_revocation(revocation: Revocation) -> None:
    """Check a revocation's signature by the key it revokes (03-identity.md §8)."""
    _verify(
        revocation.mldsa_public,
        revocation.signed_bytes(),
        revocation.signature,
        REVOCATION_CONTEXT,
        "revocation",
    )


def revokes(revocation: Revocation, cert: IdentityCertificate) -> bool:
    """Whether a (verified) revocation withdraws ``cert``."""
    if revocation.mldsa_public != cert.mldsa_public:
        return False
    return revocation.serial is None or cert.serial <= revocation.serial
