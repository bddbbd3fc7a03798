"""EncryptWithLabel over cryptography's HPKE with X-Wing, checked against qdht's own X-Wing."""

from __future__ import annotations

import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from qdht.crypto import xwing
from qdht.errors import GroupError
from qdht.messaging import LeafKey
from qdht.messaging.mls import KEM_OUTPUT_SIZE, encrypt_context, encrypt_with_label, u16

#: RFC 9180 suite: X-Wing (0x647A), HKDF-SHA256 (0x0001), ChaCha20-Poly1305 (0x0003).
SUITE_ID = b"HPKE" + u16(0x647A) + u16(0x0001) + u16(0x0003)


def _labeled_extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt, b"HPKE-v1" + SUITE_ID + label + ikm, "sha256")


def _labeled_expand(prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled = u16(length) + b"HPKE-v1" + SUITE_ID + label + info
    return HKDFExpand(hashes.SHA256(), length, labeled).derive(prk)


def _open_base(shared_secret: bytes, info: bytes, ciphertext: bytes) -> bytes:
    """RFC 9180 §5.1 base mode key schedule and Open, sequence number 0."""
    context = (
        b"\x00"
        + _labeled_extract(b"", b"psk_id_hash", b"")
        + _labeled_extract(b"", b"info_hash", info)
    )
    secret = _labeled_extract(shared_secret, b"secret", b"")
    key = _labeled_expand(secret, b"key", context, 32)
    nonce = _labeled_expand(secret, b"base_nonce", context, 12)
    return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, b"")


def test_leaf_key_is_the_xwing_key_of_its_seed() -> None:
    seed = bytes(range(32))
    assert LeafKey(seed).public_key_bytes() == xwing.XWingPrivateKey(seed).public_key_bytes()


def test_cryptography_hpke_kem_is_qdht_xwing() -> None:
    # The KEM output decapsulates with qdht's X-Wing (draft-connolly-cfrg-xwing-kem,
    # checked against its vectors in tests/crypto) to the secret HPKE used.
    key = xwing.XWingPrivateKey(bytes(range(1, 33)))
    kem, ct = encrypt_with_label(key.public_key_bytes(), b"label", b"ctx", b"secret payload")
    assert len(kem) == KEM_OUTPUT_SIZE == xwing.CIPHERTEXT_SIZE
    shared = key.decapsulate(kem)
    assert _open_base(shared, encrypt_context(b"label", b"ctx"), ct) == b"secret payload"


def test_decrypt_with_label_binds_label_context_and_key() -> None:
    key = LeafKey(bytes(32))
    kem, ct = encrypt_with_label(key.public_key_bytes(), b"label", b"ctx", b"x")
    assert key.decrypt(b"label", b"ctx", kem, ct) == b"x"
    for label, context, other in (
        (b"other", b"ctx", key),
        (b"label", b"other", key),
        (b"label", b"ctx", LeafKey(bytes([1]) * 32)),
    ):
        with pytest.raises(GroupError):
            other.decrypt(label, context, kem, ct)


def test_invalid_public_key_is_refused() -> None:
    with pytest.raises(GroupError):
        encrypt_with_label(bytes(100), b"l", b"c", b"x")
