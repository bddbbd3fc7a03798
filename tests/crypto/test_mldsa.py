"""ML-DSA-65 signing with context strings."""

from __future__ import annotations

import pytest

from qdht.crypto import mldsa
from qdht.errors import CryptoError, InvalidSignatureError

CTX = b"qdht/v1/test-object"


@pytest.fixture(scope="module")
def key() -> mldsa.MLDSAPrivateKey:
    return mldsa.MLDSAPrivateKey.generate()


def test_sign_verify_round_trip_and_sizes(key: mldsa.MLDSAPrivateKey) -> None:
    signature = key.sign(b"message", CTX)
    assert len(signature) == mldsa.SIGNATURE_SIZE == 3309
    assert len(key.public_key_bytes()) == mldsa.PUBLIC_KEY_SIZE == 1952
    mldsa.verify(key.public_key_bytes(), b"message", signature, CTX)


def test_signature_with_one_context_fails_with_another(key: mldsa.MLDSAPrivateKey) -> None:
    signature = key.sign(b"message", CTX)
    with pytest.raises(InvalidSignatureError):
        mldsa.verify(key.public_key_bytes(), b"message", signature, b"qdht/v1/other-object")


def test_signature_on_other_message_fails(key: mldsa.MLDSAPrivateKey) -> None:
    signature = key.sign(b"message", CTX)
    with pytest.raises(InvalidSignatureError):
        mldsa.verify(key.public_key_bytes(), b"messagE", signature, CTX)


def test_signature_under_other_key_fails(key: mldsa.MLDSAPrivateKey) -> None:
    other = mldsa.MLDSAPrivateKey.generate()
    with pytest.raises(InvalidSignatureError):
        mldsa.verify(other.public_key_bytes(), b"m", key.sign(b"m", CTX), CTX)


def test_flipped_signature_bit_fails(key: mldsa.MLDSAPrivateKey) -> None:
    signature = bytearray(key.sign(b"m", CTX))
    signature[100] ^= 1
    with pytest.raises(InvalidSignatureError):
        mldsa.verify(key.public_key_bytes(), b"m", bytes(signature), CTX)


@pytest.mark.parametrize(("pk_size", "sig_size"), [(1951, 3309), (1952, 3308), (0, 0)])
def test_malformed_inputs_are_invalid_signatures(pk_size: int, sig_size: int) -> None:
    with pytest.raises(InvalidSignatureError, match="bytes"):
        mldsa.verify(bytes(pk_size), b"m", bytes(sig_size), CTX)


def test_seed_reproduces_public_key(key: mldsa.MLDSAPrivateKey) -> None:
    assert len(key.seed) == mldsa.SEED_SIZE
    assert mldsa.MLDSAPrivateKey.from_seed(key.seed).public_key_bytes() == key.public_key_bytes()


@pytest.mark.parametrize("context", [b"", bytes(256)])
def test_context_must_be_1_to_255_bytes(key: mldsa.MLDSAPrivateKey, context: bytes) -> None:
    with pytest.raises(CryptoError, match=r"context must be 1\.\.255 bytes"):
        key.sign(b"m", context)


def test_wrong_seed_size_is_rejected() -> None:
    with pytest.raises(CryptoError, match="seed must be 32 bytes"):
        mldsa.MLDSAPrivateKey.from_seed(bytes(31))


def test_fips204_keygen_from_seed_is_deterministic_across_instances() -> None:
    # Same seed, same key: what lets a key file store the 32-byte seed only.
    seed = bytes(range(32))
    a, b = mldsa.MLDSAPrivateKey.from_seed(seed), mldsa.MLDSAPrivateKey.from_seed(seed)
    assert a.public_key_bytes() == b.public_key_bytes()
    mldsa.verify(b.public_key_bytes(), b"m", a.sign(b"m", CTX), CTX)
