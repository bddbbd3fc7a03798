"""The liboqs backend's adapter code, run against a stand-in ``oqs`` module.

liboqs is not installed in CI, so the real interoperability tests
(test_backend.py) skip.  These tests exercise the adapter itself: the stand-in
module mimics liboqs-python's API (KeyEncapsulation, Signature) on top of
``cryptography``, so the adapter's calls, argument order and error mapping are
checked, not liboqs.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import mldsa as cg_mldsa
from cryptography.hazmat.primitives.asymmetric import mlkem

from qdht.crypto import backend, mldsa, xwing
from qdht.errors import BackendUnavailableError, CryptoError, InvalidSignatureError


class _KeyEncapsulation:
    def __init__(self, alg_name: str) -> None:
        assert alg_name == "ML-KEM-768"
        self._key: mlkem.MLKEM768PrivateKey | None = None

    def __enter__(self) -> _KeyEncapsulation:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def generate_keypair_seed(self, seed: bytes) -> bytes:
        self._key = mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)
        return self._key.public_key().public_bytes_raw()

    def encap_secret(self, public_key: bytes) -> tuple[bytes, bytes]:
        try:
            key = mlkem.MLKEM768PublicKey.from_public_bytes(public_key)
        except ValueError as exc:
            raise RuntimeError("Can not encapsulate secret") from exc
        secret, ciphertext = key.encapsulate()
        return ciphertext, secret  # liboqs-python's order: (ciphertext, shared secret)

    def decap_secret(self, ciphertext: bytes) -> bytes:
        assert self._key is not None
        return self._key.decapsulate(ciphertext)


class _Signature:
    def __init__(self, alg_name: str) -> None:
        assert alg_name == "ML-DSA-65"

    def __enter__(self) -> _Signature:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def verify_with_ctx_str(
        self, message: bytes, signature: bytes, context: bytes, public_key: bytes
    ) -> bool:
        try:
            cg_mldsa.MLDSA65PublicKey.from_public_bytes(public_key).verify(
                signature, message, context
            )
        except Exception:
            return False
        return True


def _fake_oqs(*, seeded: bool = True) -> types.ModuleType:
    module = types.ModuleType("oqs")
    kem_cls: Any = _KeyEncapsulation
    if not seeded:
        kem_cls = type("OldKeyEncapsulation", (), {"__init__": lambda self, name: None})
    module.KeyEncapsulation = kem_cls  # type: ignore[attr-defined]
    module.Signature = _Signature  # type: ignore[attr-defined]
    module.is_kem_enabled = lambda name: name == "ML-KEM-768"  # type: ignore[attr-defined]
    module.is_sig_enabled = lambda name: name == "ML-DSA-65"  # type: ignore[attr-defined]
    return module


@pytest.fixture
def fake_oqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    previous = backend.get_backend().name
    monkeypatch.setitem(sys.modules, "oqs", _fake_oqs())
    monkeypatch.setattr(backend, "find_liboqs", lambda: "/fake/liboqs.so")
    backend.set_backend("oqs")
    yield
    backend.set_backend(previous)


def test_adapter_selected(fake_oqs: None) -> None:
    assert backend.get_backend().name == "oqs"


def test_adapter_xwing_matches_published_vector(fake_oqs: None) -> None:
    # tcId 1 of protocol-spec/kat/xwing.json, through the adapter.
    import json
    from pathlib import Path

    kat = Path(__file__).resolve().parents[2] / "protocol-spec" / "kat" / "xwing.json"
    vector = json.loads(kat.read_text(encoding="utf-8"))["tests"][0]
    sk, pk = xwing.generate_keypair_derand(bytes.fromhex(vector["seed"]))
    assert pk.hex() == vector["pk"]
    assert xwing.decapsulate(sk, bytes.fromhex(vector["ct"])).hex() == vector["ss"]


def test_adapter_round_trip_and_errors(fake_oqs: None) -> None:
    key = xwing.XWingPrivateKey.generate()
    ss, ct = xwing.encapsulate(key.public_key_bytes())
    assert key.decapsulate(ct) == ss
    with pytest.raises(CryptoError, match="ML-KEM-768 public key"):
        xwing.encapsulate(b"\xff" * 1184 + key.public_key_bytes()[1184:])
    with pytest.raises(BackendUnavailableError, match="deterministic"):
        xwing.encapsulate_derand(key.public_key_bytes(), bytes(64))


def test_adapter_signatures(fake_oqs: None) -> None:
    signer = mldsa.MLDSAPrivateKey.generate()
    signature = signer.sign(b"m", b"qdht/v1/test")
    mldsa.verify(signer.public_key_bytes(), b"m", signature, b"qdht/v1/test")
    with pytest.raises(InvalidSignatureError, match="does not verify"):
        mldsa.verify(signer.public_key_bytes(), b"m", signature, b"qdht/v1/other")


def test_old_liboqs_python_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "oqs", _fake_oqs(seeded=False))
    monkeypatch.setattr(backend, "find_liboqs", lambda: "/fake/liboqs.so")
    with pytest.raises(BackendUnavailableError, match=r"liboqs-python >= 0\.14"):
        backend.set_backend("oqs")


def test_liboqs_without_liboqs_python_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "oqs", None)  # import oqs raises ImportError
    monkeypatch.setattr(backend, "find_liboqs", lambda: "/fake/liboqs.so")
    with pytest.raises(BackendUnavailableError, match="liboqs-python could not be imported"):
        backend.set_backend("oqs")
