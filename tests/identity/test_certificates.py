"""Certificates, X-Wing rotation, successor statements and revocations."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.errors import ConfigError, IdentityError, PuzzleError
from qdht.identity import (
    CERTIFICATE_CONTEXT,
    REVOCATION_CONTEXT,
    SUCCESSOR_ACCEPT_CONTEXT,
    SUCCESSOR_CONTEXT,
    Identity,
    IdentityCertificate,
    certificate_node_id,
    revokes,
    successor_in_grace,
    verify_certificate,
    verify_revocation,
    verify_successor,
)
from qdht.wire import decode, encode

from .conftest import DIFFICULTY, NOW


def test_certificate_verifies_and_names_the_node(identity: Identity) -> None:
    cert = identity.certificate(now=NOW)
    assert verify_certificate(cert, now=NOW, difficulty=DIFFICULTY) == identity.node_id
    assert certificate_node_id(cert) == identity.node_id
    assert cert.serial == NOW
    assert cert.not_after - cert.not_before == 30 * 86400


def test_certificate_survives_the_wire(identity: Identity) -> None:
    cert = identity.certificate(now=NOW)
    again = decode(encode(cert))
    assert again == cert
    assert isinstance(again, IdentityCertificate)
    verify_certificate(again, now=NOW, difficulty=DIFFICULTY)


def test_certificate_signature_uses_its_context(identity: Identity) -> None:
    from qdht.crypto import mldsa

    cert = identity.certificate(now=NOW)
    mldsa.verify(cert.mldsa_public, cert.signed_bytes(), cert.signature, CERTIFICATE_CONTEXT)
    assert (
        len({CERTIFICATE_CONTEXT, SUCCESSOR_CONTEXT, SUCCESSOR_ACCEPT_CONTEXT, REVOCATION_CONTEXT})
        == 4
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("serial", NOW + 1),
        ("not_after", NOW + 31 * 86400),
        ("not_before", NOW - 1),
        ("xwing_public", bytes(1216)),
    ],
)
def test_any_changed_field_breaks_the_signature(identity: Identity, field: str, value: Any) -> None:
    forged = attrs.evolve(identity.certificate(now=NOW), **{field: value})
    with pytest.raises(IdentityError):
        verify_certificate(forged, now=NOW, difficulty=0)


def test_certificate_signed_by_another_key_is_rejected(
    identity: Identity, other_identity: Identity
) -> None:
    cert = identity.certificate(now=NOW)
    forged = attrs.evolve(cert, signature=other_identity.certificate(now=NOW).signature)
    with pytest.raises(IdentityError, match="signature"):
        verify_certificate(forged, now=NOW, difficulty=DIFFICULTY)


def test_signature_of_another_object_type_is_rejected(identity: Identity) -> None:
    cert = identity.certificate(now=NOW)
    replayed = attrs.evolve(
        cert, signature=identity.mldsa.sign(cert.signed_bytes(), REVOCATION_CONTEXT)
    )
    with pytest.raises(IdentityError, match="signature"):
        verify_certificate(replayed, now=NOW, difficulty=DIFFICULTY)


def test_validity_window(identity: Identity) -> None:
    cert = identity.certificate(now=NOW, lifetime=100)
    verify_certificate(cert, now=NOW + 99, difficulty=DIFFICULTY)
    verify_certificate(cert, now=NOW - 300, difficulty=DIFFICULTY)  # clock skew allowance
    with pytest.raises(IdentityError, match="expired"):
        verify_certificate(cert, now=NOW + 100, difficulty=DIFFICULTY)
    with pytest.raises(IdentityError, match="not yet valid"):
        verify_certificate(cert, now=NOW - 301, difficulty=DIFFICULTY)


def test_inverted_or_overlong_validity_is_rejected(identity: Identity) -> None:
    cert = identity.certificate(now=NOW)
    with pytest.raises(IdentityError, match="not_after"):
        verify_certificate(attrs.evolve(cert, not_after=NOW), now=NOW, difficulty=0)
    with pytest.raises(IdentityError, match="lifetime"):
        verify_certificate(attrs.evolve(cert, not_after=NOW + 401 * 86400), now=NOW, difficulty=0)
    with pytest.raises(ConfigError, match="lifetime"):
        identity.certificate(now=NOW, lifetime=0)


def test_puzzle_below_network_difficulty_is_rejected(identity: Identity) -> None:
    cert = identity.certificate(now=NOW)
    with pytest.raises(PuzzleError, match="difficulty 40"):
        verify_certificate(cert, now=NOW, difficulty=40)


def test_x_wing_rotation_keeps_owner_changes_node_id(identity: Identity) -> None:
    rotated = identity.rotate_xwing()
    assert rotated.mldsa is identity.mldsa
    assert rotated.node_id != identity.node_id
    old, new = identity.certificate(now=NOW), rotated.certificate(now=NOW + 10)
    assert new.serial > old.serial
    assert new.mldsa_public == old.mldsa_public
    assert verify_certificate(new, now=NOW + 10, difficulty=DIFFICULTY) == rotated.node_id


def test_successor_statement(identity: Identity, other_identity: Identity) -> None:
    statement = identity.successor(other_identity, now=NOW, grace=3600)
    verify_successor(statement)
    verify_successor(decode(encode(statement)))  # type: ignore[arg-type]
    assert successor_in_grace(statement, NOW + 3599)
    assert not successor_in_grace(statement, NOW + 3600)
    assert not successor_in_grace(statement, NOW - 1)


def test_successor_without_new_key_consent_is_rejected(
    identity: Identity, other_identity: Identity
) -> None:
    statement = identity.successor(other_identity, now=NOW)
    intruder = MLDSAPrivateKey.generate()
    # The old key hands over to a key it does not control: the new signature is missing.
    forged = attrs.evolve(
        statement,
        new_public=intruder.public_key_bytes(),
        signature_old=identity.mldsa.sign(
            attrs.evolve(statement, new_public=intruder.public_key_bytes()).signed_bytes(),
            SUCCESSOR_CONTEXT,
        ),
    )
    with pytest.raises(IdentityError, match="new key"):
        verify_successor(forged)


def test_successor_with_changed_grace_is_rejected(
    identity: Identity, other_identity: Identity
) -> None:
    statement = identity.successor(other_identity, now=NOW, grace=60)
    with pytest.raises(IdentityError, match="old key"):
        verify_successor(attrs.evolve(statement, grace=86400))


def test_successor_needs_a_different_key(identity: Identity) -> None:
    with pytest.raises(ConfigError, match="different"):
        identity.successor(identity, now=NOW)


def test_revocation_of_key_and_of_serials(identity: Identity, other_identity: Identity) -> None:
    cert = identity.certificate(now=NOW)
    whole = identity.revocation(now=NOW, reason="key compromise")
    verify_revocation(whole)
    verify_revocation(decode(encode(whole)))  # type: ignore[arg-type]
    assert revokes(whole, cert)
    assert not revokes(whole, other_identity.certificate(now=NOW))
    upto = identity.revocation(now=NOW, serial=NOW - 1)
    verify_revocation(upto)
    assert not revokes(upto, cert)
    assert revokes(identity.revocation(now=NOW, serial=NOW), cert)


def test_forged_revocation_is_rejected(identity: Identity, other_identity: Identity) -> None:
    genuine = other_identity.revocation(now=NOW)
    forged = attrs.evolve(genuine, mldsa_public=identity.mldsa.public_key_bytes())
    with pytest.raises(IdentityError, match="revocation"):
        verify_revocation(forged)
    with pytest.raises(IdentityError, match="revocation"):
        verify_revocation(attrs.evolve(genuine, serial=5))
