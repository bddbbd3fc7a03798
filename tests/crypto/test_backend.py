"""Backend selection, the liboqs guard, and cross-backend interoperability."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys
from collections.abc import Iterator

import pytest

from qdht.crypto import backend, mldsa, xwing
from qdht.errors import BackendUnavailableError, ConfigError

CTX = b"qdht/v1/interop-test"


@pytest.fixture
def restore_backend() -> Iterator[None]:
    previous = backend.get_backend().name
    yield
    backend.set_backend(previous)


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
        timeout=60,
    )


def test_importing_qdht_never_imports_oqs() -> None:
    result = _run(
        "import sys, qdht, qdht.crypto, qdht.identity, qdht.wire\n"
        "qdht.crypto.xwing.XWingPrivateKey.generate()\n"
        "print('oqs' in sys.modules, any(m.startswith('oqs.') for m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_default_backend_is_cryptography() -> None:
    result = _run(
        "from qdht.crypto import get_backend; print(get_backend().name)", QDHT_CRYPTO_BACKEND=""
    )
    assert result.stdout.strip() == "cryptography", result.stderr


def test_environment_selects_oqs_and_missing_liboqs_is_a_clear_error() -> None:
    if backend.find_liboqs() is not None:
        pytest.skip("liboqs is installed here; the missing-library error cannot be observed")
    result = _run(
        "import sys\n"
        "from qdht.crypto import xwing\n"
        "from qdht.errors import BackendUnavailableError\n"
        "try:\n"
        "    xwing.XWingPrivateKey.generate()\n"
        "except BackendUnavailableError as exc:\n"
        "    print('ERR', exc)\n"
        "print('oqs' in sys.modules)",
        QDHT_CRYPTO_BACKEND="oqs",
        OQS_INSTALL_PATH="/nonexistent/qdht-test",
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ERR the oqs backend needs liboqs"), result.stderr
    assert "OQS_INSTALL_PATH" in lines[0]
    assert "cmake" in lines[0]
    assert lines[-1] == "False"  # liboqs-python (and its auto-build) never ran


def test_set_backend_rejects_unknown_name() -> None:
    with pytest.raises(ConfigError, match="cryptography, oqs"):
        backend.set_backend("openssl")


def test_set_backend_oqs_without_liboqs_raises_and_keeps_current(
    restore_backend: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OQS_INSTALL_PATH", "/nonexistent/qdht-test")
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    before = backend.get_backend()
    with pytest.raises(BackendUnavailableError, match="install liboqs"):
        backend.set_backend("oqs")
    assert backend.get_backend() is before
    assert "oqs" not in sys.modules


def test_find_liboqs_honours_oqs_install_path(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    (root / "lib").mkdir()
    (root / "lib" / "liboqs.so.7").write_bytes(b"")
    monkeypatch.setenv("OQS_INSTALL_PATH", str(root))
    assert backend.find_liboqs() == str(root / "lib" / "liboqs.so.7")


def test_explicit_selection_of_cryptography(restore_backend: None) -> None:
    assert backend.set_backend("cryptography").name == "cryptography"
    assert backend.get_backend().name == "cryptography"


# ------------------------------------------------------------ interoperability


def _oqs_backend() -> backend.Backend:
    if backend.find_liboqs() is None:
        pytest.skip(
            "liboqs shared library not installed (set OQS_INSTALL_PATH or install liboqs): "
            "cross-backend interoperability not tested"
        )
    try:
        return backend.set_backend("oqs")
    except BackendUnavailableError as exc:
        pytest.skip(f"oqs backend unavailable: {exc}")


def test_interop_xwing_keys_and_ciphertexts(restore_backend: None) -> None:
    seed = bytes(range(32))
    backend.set_backend("cryptography")
    cg_key = xwing.XWingPrivateKey.from_seed(seed)
    _oqs_backend()
    oqs_key = xwing.XWingPrivateKey.from_seed(seed)
    assert oqs_key.public_key_bytes() == cg_key.public_key_bytes()
    ss, ct = xwing.encapsulate(cg_key.public_key_bytes())  # encapsulated by liboqs
    assert cg_key.decapsulate(ct) == ss
    backend.set_backend("cryptography")
    ss2, ct2 = xwing.encapsulate(oqs_key.public_key_bytes())
    assert oqs_key.decapsulate(ct2) == ss2


def test_interop_mldsa_signatures(restore_backend: None) -> None:
    backend.set_backend("cryptography")
    key = mldsa.MLDSAPrivateKey.from_seed(bytes(32))
    signature = key.sign(b"record", CTX)
    oqs_backend = _oqs_backend()
    assert oqs_backend.mldsa65_verify(key.public_key_bytes(), b"record", signature, CTX)
    assert not oqs_backend.mldsa65_verify(key.public_key_bytes(), b"record", signature, b"x")
    import oqs  # type: ignore[import-not-found,unused-ignore]

    with oqs.Signature("ML-DSA-65") as signer:
        public = bytes(signer.generate_keypair())
        foreign = bytes(signer.sign_with_ctx_str(b"record", CTX))
    backend.set_backend("cryptography")
    mldsa.verify(public, b"record", foreign, CTX)
