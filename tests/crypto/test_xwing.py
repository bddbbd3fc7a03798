"""X-Wing against the draft's published vectors, plus round trips and misuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qdht.crypto import xwing
from qdht.crypto.backend import get_backend
from qdht.errors import BackendUnavailableError, CryptoError

#: draft-08 Appendix C, as the spec publishes them (03-identity.md §1.2).
KAT = Path(__file__).resolve().parents[2] / "protocol-spec" / "kat" / "xwing.json"
VECTORS: list[dict[str, Any]] = json.loads(KAT.read_text(encoding="utf-8"))["tests"]


def _ids(vector: dict[str, Any]) -> str:
    return f"tc{vector['tcId']}"


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_keygen_derand_matches_published_public_key(vector: dict[str, Any]) -> None:
    sk, pk = xwing.generate_keypair_derand(bytes.fromhex(vector["seed"]))
    assert sk == bytes.fromhex(vector["seed"])
    assert pk.hex() == vector["pk"]


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_decapsulate_published_ciphertext_gives_published_secret(vector: dict[str, Any]) -> None:
    ct = bytes.fromhex(vector["ct"])
    assert xwing.decapsulate(bytes.fromhex(vector["seed"]), ct).hex() == vector["ss"]
    key = xwing.XWingPrivateKey.from_seed(bytes.fromhex(vector["seed"]))
    assert key.decapsulate(ct).hex() == vector["ss"]


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_encapsulate_derand_reproduces_vector_or_says_backend_cannot(
    vector: dict[str, Any],
) -> None:
    pk, eseed = bytes.fromhex(vector["pk"]), bytes.fromhex(vector["eseed"])
    if get_backend().name == "cryptography":
        with pytest.raises(BackendUnavailableError, match="deterministic ML-KEM"):
            xwing.encapsulate_derand(pk, eseed)
    else:
        try:
            ss, ct = xwing.encapsulate_derand(pk, eseed)
        except BackendUnavailableError:
            return  # the installed liboqs-python has no derandomized encapsulation
        assert (ss.hex(), ct.hex()) == (vector["ss"], vector["ct"])


def test_x25519_part_of_vector_ciphertext_is_eseed_public_key() -> None:
    # The part of EncapsulateDerand that does not need ML-KEM randomness.
    from cryptography.hazmat.primitives.asymmetric import x25519

    for vector in VECTORS:
        eseed = bytes.fromhex(vector["eseed"])
        ct_x = x25519.X25519PrivateKey.from_private_bytes(eseed[32:]).public_key()
        assert bytes.fromhex(vector["ct"])[1088:] == ct_x.public_bytes_raw()


def test_round_trip_and_sizes() -> None:
    key = xwing.XWingPrivateKey.generate()
    pk = key.public_key_bytes()
    assert len(pk) == xwing.PUBLIC_KEY_SIZE == 1216
    ss, ct = xwing.encapsulate(pk)
    assert len(ct) == xwing.CIPHERTEXT_SIZE == 1120
    assert len(ss) == xwing.SHARED_SECRET_SIZE == 32
    assert key.decapsulate(ct) == ss
    assert xwing.decapsulate(key.seed, ct) == ss


def test_seed_reproduces_key() -> None:
    key = xwing.XWingPrivateKey.generate()
    assert len(key.seed) == xwing.SEED_SIZE
    again = xwing.XWingPrivateKey.from_seed(key.seed)
    assert again.public_key_bytes() == key.public_key_bytes()


def test_two_encapsulations_differ() -> None:
    pk = xwing.XWingPrivateKey.generate().public_key_bytes()
    assert xwing.encapsulate(pk) != xwing.encapsulate(pk)


def test_tampered_mlkem_part_gives_unrelated_secret() -> None:
    key = xwing.XWingPrivateKey.generate()
    ss, ct = xwing.encapsulate(key.public_key_bytes())
    tampered = bytes([ct[0] ^ 1]) + ct[1:]
    assert key.decapsulate(tampered) != ss


def test_tampered_x25519_part_gives_unrelated_secret() -> None:
    key = xwing.XWingPrivateKey.generate()
    ss, ct = xwing.encapsulate(key.public_key_bytes())
    tampered = ct[:-1] + bytes([ct[-1] ^ 0x40])
    assert key.decapsulate(tampered) != ss


def test_wrong_key_gives_unrelated_secret() -> None:
    ss, ct = xwing.encapsulate(xwing.XWingPrivateKey.generate().public_key_bytes())
    assert xwing.XWingPrivateKey.generate().decapsulate(ct) != ss


@pytest.mark.parametrize("size", [0, 1119, 1121])
def test_ciphertext_of_wrong_length_is_rejected(size: int) -> None:
    key = xwing.XWingPrivateKey.generate()
    with pytest.raises(CryptoError, match="ciphertext must be 1120 bytes"):
        key.decapsulate(bytes(size))


@pytest.mark.parametrize("size", [0, 1215, 1217])
def test_public_key_of_wrong_length_is_rejected(size: int) -> None:
    with pytest.raises(CryptoError, match="public key must be 1216 bytes"):
        xwing.encapsulate(bytes(size))


def test_public_key_with_out_of_range_coefficients_is_rejected() -> None:
    # FIPS 203 §7.2 modulus check: 0xFFF > q = 3329.
    pk = xwing.XWingPrivateKey.generate().public_key_bytes()
    bad = b"\xff" * 3 + pk[3:]
    with pytest.raises(CryptoError, match="ML-KEM-768 public key"):
        xwing.encapsulate(bad)


def test_low_order_x25519_public_key_is_rejected() -> None:
    pk = xwing.XWingPrivateKey.generate().public_key_bytes()
    with pytest.raises(CryptoError, match="low-order"):
        xwing.encapsulate(pk[:1184] + bytes(32))


def test_low_order_x25519_ciphertext_is_rejected() -> None:
    key = xwing.XWingPrivateKey.generate()
    _, ct = xwing.encapsulate(key.public_key_bytes())
    with pytest.raises(CryptoError, match="low-order"):
        key.decapsulate(ct[:1088] + bytes(32))


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33)])
def test_seed_of_wrong_length_is_rejected(seed: bytes) -> None:
    with pytest.raises(CryptoError, match="seed must be 32 bytes"):
        xwing.XWingPrivateKey.from_seed(seed)
    with pytest.raises(CryptoError, match="32 bytes"):
        xwing.decapsulate(seed, bytes(1120))


def test_eseed_of_wrong_length_is_rejected() -> None:
    pk = xwing.XWingPrivateKey.generate().public_key_bytes()
    with pytest.raises(CryptoError, match="eseed must be 64 bytes"):
        xwing.encapsulate_derand(pk, bytes(32))


def test_repr_does_not_leak_the_seed() -> None:
    key = xwing.XWingPrivateKey.from_seed(bytes(range(32)))
    assert bytes(range(32)).hex() not in repr(key)
    assert "XWingPrivateKey" in repr(key)


def test_a_loaded_public_key_encapsulates_like_the_bytes() -> None:
    key = xwing.XWingPrivateKey.generate()
    public = xwing.XWingPublicKey(key.public_key_bytes())
    assert public.public_key_bytes() == key.public_key_bytes()
    secrets = set()
    for _ in range(3):
        secret, ct = public.encapsulate()
        assert len(ct) == xwing.CIPHERTEXT_SIZE
        assert key.decapsulate(ct) == secret
        secrets.add(secret)
    assert len(secrets) == 3  # fresh randomness every time


def test_a_loaded_public_key_refuses_what_encapsulate_refuses() -> None:
    pk = xwing.XWingPrivateKey.generate().public_key_bytes()
    with pytest.raises(CryptoError, match="public key must be 1216 bytes"):
        xwing.XWingPublicKey(pk[:-1])
    with pytest.raises(CryptoError, match="ML-KEM-768 public key"):
        xwing.XWingPublicKey(b"\xff" * 3 + pk[3:])
    low_order = xwing.XWingPublicKey(pk[:1184] + bytes(32))
    with pytest.raises(CryptoError, match="low-order"):
        low_order.encapsulate()
